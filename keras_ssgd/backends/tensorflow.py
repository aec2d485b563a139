"""The TensorFlow part of the perturbed step: `tf.GradientTape`, graph
control dependencies and `tf.distribute` (MirroredStrategy,
MultiWorkerMirroredStrategy, Horovod)."""

import keras
import tensorflow as tf
from keras import ops

from keras_ssgd import _keras_compat as compat
from keras_ssgd import backends
from keras_ssgd.backends.base import Backend


class TensorFlowBackend(Backend):
    """The step under `tf.function`, one traced step per branch
    (`keras_ssgd.backends.per_branch`): the level-0 graph is Keras's own, so
    TensorFlow's graph rewrites (oneDNN fusions, grappler) compile it
    exactly as they compile `keras.Model`'s."""

    def loss_and_gradients_at(self, loss_fn, variables, noise_variables,
                              values):
        """`loss_fn()` with `noise_variables` at `values`, under a gradient
        tape (`Backend.loss_and_gradients_at`)."""
        mapping = list(zip(noise_variables, values))
        mapping += [
            (v, tf.identity(v.value))
            for v in backends.regularized_among(variables, noise_variables)
        ]
        with tf.GradientTape() as tape:
            tape.watch([value for _, value in mapping])
            with keras.StatelessScope(
                state_mapping=mapping, collect_losses=True
            ) as scope:
                loss = loss_fn()
        perturbed = {id(v): value for v, value in mapping}
        targets = [perturbed.get(id(v), v) for v in variables]
        return loss, tape.gradient(loss, targets), scope.get_current_value

    def loss_and_gradients(self, loss_fn, variables):
        """`(loss, gradients)` of `loss_fn()` under a gradient tape, as
        Keras's guide to a custom `train_step` takes them."""
        with tf.GradientTape() as tape:
            loss = loss_fn()
        return loss, tape.gradient(loss, variables)

    def after(self, dependencies, fn, *args):
        """`fn(*args)` under control dependencies on `dependencies`."""
        with tf.control_dependencies(dependencies):
            return fn(*args)

    def dense(self, gradient):
        """A dense tensor from a gradient (`tf.IndexedSlices` included)."""
        return tf.convert_to_tensor(gradient)

    def num_replicas(self):
        """Replicas of the current `tf.distribute` strategy."""
        return tf.distribute.get_strategy().num_replicas_in_sync

    def apply_if_finite(self, model, gradients, finite):
        """Updates the trainable variables, unless `finite` is false.

        Under `tf.distribute` the flag is first combined over every replica
        in sync (one all-reduce of a scalar: a non-finite loss on any
        replica, on any worker of a `MultiWorkerMirroredStrategy`, skips
        the step on all of them, so they never diverge or wait for each
        other in the optimizer's gradient all-reduce). The optimizer's
        update synchronises replicas, which a conditional in replica
        context cannot hold; there the decision is taken once, in
        cross-replica context (as Keras's `LossScaleOptimizer` does).
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

    def scope(self, name):
        """`tf.name_scope(name)`: a prefix of the enclosed ops' names
        (`Backend.scope`)."""
        return tf.name_scope(name)

    def bitcast(self, x, dtype):
        """The bits of `x` read as `dtype` of the same width."""
        return tf.bitcast(x, dtype)


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
