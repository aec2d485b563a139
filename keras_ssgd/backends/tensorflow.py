"""The TensorFlow part of the perturbed step: `tf.GradientTape`, graph
control dependencies and `tf.distribute` (MirroredStrategy,
MultiWorkerMirroredStrategy, Horovod)."""

import keras
import tensorflow as tf
from keras import ops

from keras_ssgd import _keras_compat as compat
from keras_ssgd import backends


# How the Rademacher noise takes its signs (`keras_ssgd.noise._signed`).
SIGNS = "sign-bit"


def bitcast(x, dtype):
    """The bits of `x` read as `dtype` of the same width."""
    return tf.bitcast(x, dtype)


def run_step(model, args, step):
    """`train_step(data)`: Keras traces it into a `tf.function`."""
    return step(*args)


def keras_step(model, args, step):
    """Keras's own `train_step` (`step`) on the trainer's arguments."""
    return step(*args)


def make_train_function(model, make, force):
    """One traced step per branch (`keras_ssgd.backends.per_branch`): the
    level-0 graph is Keras's own, so TensorFlow's graph rewrites (oneDNN
    fusions, grappler) compile it exactly as they compile `keras.Model`'s."""
    return backends.per_branch(model, make, force)


def measure(model, x, y, sample_weight, noise_variables, values):
    """One pass with `noise_variables` at `values`, under a gradient tape.

    Returns `(loss, gradients, y_pred, new_value)`: the gradients are taken
    with respect to `values` for the perturbed variables and to the
    variables themselves for the others, in the order of
    `trainable_variables`; `new_value(variable)` is the value the pass left
    in a variable (or `None`).
    """
    mapping = list(zip(noise_variables, values))
    mapping += [
        (v, tf.identity(v.value))
        for v in backends.regularized_rest(model, noise_variables)
    ]
    with tf.GradientTape() as tape:
        tape.watch([value for _, value in mapping])
        with keras.StatelessScope(
            state_mapping=mapping, collect_losses=True
        ) as scope:
            y_pred, loss = backends.forward(model, x, y, sample_weight)
        scaled_loss = model.optimizer.scale_loss(loss)
    perturbed = {id(v): value for v, value in mapping}
    targets = [perturbed.get(id(v), v) for v in model.trainable_variables]
    gradients = tape.gradient(scaled_loss, targets)
    return loss, gradients, y_pred, scope.get_current_value


def plain_gradients(model, x, y, sample_weight):
    """The plain Keras pass: `(loss, gradients, y_pred)`."""
    with tf.GradientTape() as tape:
        y_pred, loss = backends.forward(model, x, y, sample_weight)
        scaled_loss = model.optimizer.scale_loss(loss)
    gradients = tape.gradient(scaled_loss, model.trainable_variables)
    return loss, gradients, y_pred


def after(dependencies, fn, *args):
    """`fn(*args)` under control dependencies on `dependencies`."""
    with tf.control_dependencies(dependencies):
        return fn(*args)


def dense(gradient):
    """A dense tensor from a gradient (`tf.IndexedSlices` included)."""
    return tf.convert_to_tensor(gradient)


def num_replicas():
    """Replicas of the current `tf.distribute` strategy."""
    return tf.distribute.get_strategy().num_replicas_in_sync


def apply_if_finite(model, gradients, finite):
    """Updates the trainable variables, unless `finite` is false.

    Under `tf.distribute` the flag is first combined over every replica in
    sync (one all-reduce of a scalar: a non-finite loss on any replica, on
    any worker of a `MultiWorkerMirroredStrategy`, skips the step on all of
    them, so they never diverge or wait for each other in the optimizer's
    gradient all-reduce). The optimizer's update synchronises replicas,
    which a conditional in replica context cannot hold; there the decision
    is taken once, in cross-replica context (as Keras's
    `LossScaleOptimizer` does).
    """
    variables = model.trainable_variables
    finite = _finite_everywhere(finite)

    def apply(gradients):
        model.optimizer.apply_gradients(zip(gradients, variables))

    if compat.tf_strategy_supports_no_merge_call():
        ops.cond(finite, lambda: apply(gradients), lambda: None)
        return

    def cross_replica(strategy, gradients, finite):
        # Every replica holds the same combined flag; the local results
        # are this worker's replicas only.
        all_finite = ops.all(
            ops.stack(strategy.experimental_local_results(finite))
        )
        ops.cond(
            all_finite,
            lambda: strategy.extended.call_for_each_replica(
                apply, args=(gradients,)
            ),
            lambda: None,
        )

    tf.distribute.get_replica_context().merge_call(
        cross_replica, args=(gradients, finite)
    )


def _finite_everywhere(finite):
    """`finite` and-ed over the replicas in sync of the current strategy
    (itself outside `tf.distribute`, or with one replica)."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return finite
    not_finite = context.all_reduce(
        tf.distribute.ReduceOp.SUM,
        tf.cast(tf.logical_not(tf.convert_to_tensor(finite)), "float32"),
    )
    return tf.equal(not_finite, 0.0)


def loss_and_gradients(loss_fn, variables):
    """`(loss, gradients)` of `loss_fn()` under a gradient tape, as
    Keras's guide to a custom `train_step` takes them (the level-0 path of
    `SymmetricSGDModel.symmetric_gradients`)."""
    with tf.GradientTape() as tape:
        loss = loss_fn()
    return loss, tape.gradient(loss, variables)


def loss_and_gradients_at(loss_fn, variables, noise_variables, values):
    """`loss_fn()` with `noise_variables` at `values`, under a gradient
    tape: `(loss, gradients, new_value)`, the gradients with respect to
    `values` for the perturbed variables and to the variables for the
    others of `variables`, in their order; `new_value(variable)` is the
    value the pass left in a variable (or `None`)."""
    mapping = list(zip(noise_variables, values))
    perturbed = {id(v) for v in noise_variables}
    # Keras reads a regularized variable from the scope only.
    mapping += [
        (v, tf.identity(v.value)) for v in variables
        if id(v) not in perturbed and getattr(v, "regularizer", None)
    ]
    with tf.GradientTape() as tape:
        tape.watch([value for _, value in mapping])
        with keras.StatelessScope(
            state_mapping=mapping, collect_losses=True
        ) as scope:
            loss = loss_fn()
    targets_by_id = {id(v): value for v, value in mapping}
    targets = [targets_by_id.get(id(v), v) for v in variables]
    return loss, tape.gradient(loss, targets), scope.get_current_value


# Steps run on the variables (no state threaded through a pure function).
STATELESS = False


def mesh_axis():
    """No `keras.distribution` batch axis: its per-device step is JAX's."""
    return None
