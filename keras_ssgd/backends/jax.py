"""The JAX part of the perturbed step: a stateless `train_step`.

Keras's JAX trainer calls `train_step(state, data)` under `jax.jit` with the
values of the trainable, non-trainable, optimizer and metric variables, and
expects the new values back. `run_step` maps that state onto the variables
with a `keras.StatelessScope`, runs the shared step (its variable writes are
recorded by the scope) and reads the new state out of the scope: the same
threading as Keras's own `train_step`, seed-generator states included.
Conditionals and passes become pure functions of the values the scope holds.
"""

import jax
import keras
from keras import ops

from keras_ssgd import backends


def _groups(model):
    return [
        model.trainable_variables,
        model.non_trainable_variables,
        model.optimizer.variables,
        model.metrics_variables,
    ]


def run_step(model, args, step):
    """`train_step(state, data) -> (logs, state)` around the shared step."""
    state, data = args
    groups = _groups(model)
    mapping = [
        (variable, value)
        for variables, values in zip(groups, state)
        for variable, value in zip(variables, values)
    ]
    with keras.StatelessScope(state_mapping=mapping) as scope:
        logs = step(data)
    new_state = tuple(
        [scope.get_current_value(v) for v in variables] for variables in groups
    )
    return logs, new_state


def make_train_function(model, make, force):
    """One compiled step per branch, chosen by the noise level per call.

    XLA on a CPU runs convolutions inside `lax.cond` an order of magnitude
    slower than outside it, so the level-0 branch (the plain pass) and the
    noisy branch are compiled as two functions, each at most once, and the
    current `noise_level` picks one before each call. The level's value is
    still read inside the step: changing it (`NoiseSchedule`) never
    retraces.
    """
    if model.train_function is not None and not force:
        return model.train_function
    compiled = {}

    def train_function(state, iterator):
        noisy = model.noise_level > 0
        if noisy not in compiled:
            # A step function of its own, so that `jax.jit` traces it anew.
            model.train_step = _branch_step(model, noisy)
            try:
                make(force=True)
            finally:
                del model.train_step
            compiled[noisy] = model.train_function
            model.train_function = train_function
        return compiled[noisy](state, iterator)

    model.train_function = train_function
    return train_function


def _branch_step(model, noisy):
    """`model.train_step` with the branch fixed to `noisy`."""

    def train_step(state, data):
        model._static_noisy = noisy
        try:
            return type(model).train_step(model, state, data)
        finally:
            model._static_noisy = None

    return train_step


def noisy(model):
    """The branch of the compiled step being traced (set by
    `make_train_function`), or None for a `train_step` called directly,
    which then tests the level inside the step."""
    return getattr(model, "_static_noisy", None)


def extra_state(model):
    """Variables the jitted step reads that Keras would not pass in: the
    noise level (so that `NoiseSchedule` changes it without retracing) and
    the states of stateful RNNs. The model lists them among its
    `non_trainable_variables`, which the trainer threads."""
    return [model._noise.level] + model._recurrent_states()


def _all_variables(model):
    seen, out = set(), []
    for variables in _groups(model):
        for v in variables:
            if id(v) not in seen:
                seen.add(id(v))
                out.append(v)
    return out


def _current(variables):
    """The values the enclosing scope holds for `variables`."""
    return [v.value for v in variables]


def measure(model, x, y, sample_weight, noise_variables, values):
    """One pass with `noise_variables` at `values`, by `jax.value_and_grad`.

    The pass is a pure function of the trainable values (the perturbed ones
    at `values`); every other variable is mapped to the value the step holds
    for it, and the values the pass leaves are returned for the caller to
    write back. Returns `(loss, gradients, y_pred, new_value)`.
    """
    trainable = model.trainable_variables
    trainable_ids = {id(v) for v in trainable}
    others = [v for v in _all_variables(model) if id(v) not in trainable_ids]
    others_values = _current(others)
    perturbed = {id(v): value for v, value in zip(noise_variables, values)}
    targets = [perturbed.get(id(v), v.value) for v in trainable]

    def forward(target_values):
        mapping = list(zip(trainable, target_values))
        mapping += list(zip(others, others_values))
        with keras.StatelessScope(state_mapping=mapping) as scope:
            y_pred, loss = backends.forward(model, x, y, sample_weight)
            scaled_loss = model.optimizer.scale_loss(loss)
        new = [scope.get_current_value(v) for v in others]
        return scaled_loss, (loss, y_pred, new)

    (_, (loss, y_pred, new)), gradients = jax.value_and_grad(
        forward, has_aux=True
    )(targets)
    new_values = {id(v): value for v, value in zip(others, new)}
    return loss, list(gradients), y_pred, lambda v: new_values.get(id(v))


def plain_gradients(model, x, y, sample_weight):
    """The plain pass: `measure` with nothing perturbed, every change the
    pass makes (BatchNorm statistics, RNN states, seeds) kept."""
    loss, gradients, y_pred, new_value = measure(
        model, x, y, sample_weight, [], []
    )
    trainable_ids = {id(v) for v in model.trainable_variables}
    for v in _all_variables(model):
        if id(v) not in trainable_ids and new_value(v) is not None:
            v.assign(new_value(v))
    return loss, gradients, y_pred


def cond(pred, true_fn, false_fn, model=None):
    """`jax.lax.cond` over branches that assign variables.

    Inside `jit` a branch cannot write to the enclosing scope, so each
    branch runs in a scope of its own and returns the new values of the
    model's variables next to its result; they are assigned after the
    conditional.
    """
    variables = _all_variables(model)
    values = _current(variables)

    def branch(fn):
        def run():
            with keras.StatelessScope(
                state_mapping=list(zip(variables, values))
            ) as scope:
                out = fn()
            return out, [scope.get_current_value(v) for v in variables]

        return run

    out, new = jax.lax.cond(pred, branch(true_fn), branch(false_fn))
    for v, value in zip(variables, new):
        v.assign(value)
    return out


def after(dependencies, fn, *args):
    """`fn(*args)`, scheduled once `dependencies` exist (an XLA
    optimization barrier ties them together)."""
    _, args = jax.lax.optimization_barrier((list(dependencies), args))
    return fn(*args)


def dense(gradient):
    return gradient


def num_replicas():
    return 1


def apply_if_finite(model, gradients, finite):
    """The optimizer update, kept only where `finite` is true.

    `optimizer.stateless_apply` computes the new trainable and optimizer
    values (mixed precision's loss scale included); a select keeps the old
    ones when the loss was not finite.
    """
    trainable = model.trainable_variables
    optimizer_variables = model.optimizer.variables
    old_trainable = _current(trainable)
    old_optimizer = _current(optimizer_variables)
    new_trainable, new_optimizer = model.optimizer.stateless_apply(
        old_optimizer, gradients, old_trainable
    )
    for v, old, new in zip(
        trainable + optimizer_variables,
        old_trainable + old_optimizer,
        list(new_trainable) + list(new_optimizer),
    ):
        v.assign(ops.where(finite, new, old))
