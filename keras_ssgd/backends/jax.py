"""The JAX part of the perturbed step: a stateless `train_step`.

Keras's JAX trainer calls `train_step(state, data)` under `jax.jit` with the
values of the trainable, non-trainable, optimizer and metric variables, and
expects the new values back. `run_step` maps that state onto the variables
with a `keras.StatelessScope`, runs the shared step (its variable writes are
recorded by the scope) and reads the new state out of the scope: the same
threading as Keras's own `train_step`, seed-generator states included.
Conditionals and passes become pure functions of the values the scope holds.
"""

import functools

import jax
import keras
from keras import ops

from keras_ssgd import _keras_compat as compat
from keras_ssgd import backends
from keras_ssgd.backends import jax_devices
from keras_ssgd.backends import threefry
from keras_ssgd.backends.base import Backend


class JAXBackend(Backend):
    """The step as a pure function of the state Keras threads."""

    # A train step is a pure function of Keras's state: a variable the state
    # does not carry (the noise level) is a constant of the trace.
    STATELESS = True
    # XLA fuses the shift, mask and arithmetic into one loop.
    SIGNS = "arithmetic"

    def run_step(self, model, args, step):
        """`train_step(state, data) -> (logs, state)` around the shared step.

        The state may carry the values of `_extras(model)` after the
        non-trainable ones (the train function puts them there); a
        `train_step` called directly with Keras's state reads them from the
        variables instead.
        """
        state, data = args
        extras = _extras(model)
        if len(state[1]) == len(model.non_trainable_variables):
            extras = []
        groups = _groups(model, extras)
        mapping = [
            (variable, value)
            for variables, values in zip(groups, state)
            for variable, value in zip(variables, values)
        ]
        with keras.StatelessScope(state_mapping=mapping) as scope:
            logs = step(data)
        new_state = tuple(
            [scope.get_current_value(v) for v in variables]
            for variables in groups
        )
        return logs, new_state

    def keras_step(self, model, args, step):
        """Keras's own `train_step` (`step`) on `(state, data)`.

        A step compiled for the perturbed branch that trains plainly after
        all (a model with nothing to perturb) gets the extra values
        `_extras` after the non-trainable ones: Keras's step runs on the
        state without them, and they are passed through unchanged.
        """
        state, data = args
        count = len(model.non_trainable_variables)
        trainable, non_trainable, *rest = state
        extras = list(non_trainable[count:])
        if not extras:
            return step(state, data)
        logs, (trainable, non_trainable, *rest) = step(
            (trainable, non_trainable[:count], *rest), data
        )
        return logs, (trainable, list(non_trainable) + extras, *rest)

    def make_train_function(self, model, make, force):
        """One compiled step per branch (`keras_ssgd.backends.per_branch`).

        Besides picking the plain branch at level 0 (Keras's own step,
        compiled as Keras compiles it), this keeps XLA on a CPU from running
        convolutions inside `lax.cond`, an order of magnitude slower than
        outside it.

        Under `keras.distribution` (`DataParallel`, `ModelParallel`) Keras
        compiles the step with the state's shardings as `out_shardings`,
        read from the live variables. The branches are compiled at their
        first call, inside `fit()`, when Keras has moved the values out of
        the variables, so the shardings are read here, before, and the
        perturbed branch's extra values (`_extras`) get theirs after the
        non-trainable ones.
        """
        make_branch = None
        if keras.distribution.distribution() is not None and (
            model.train_function is None or force
        ):
            trainable, non_trainable, optimizer, metrics = (
                compat.state_sharding_spec(model)
            )
            extras = [v.value.sharding for v in _extras(model)]

            def make_branch(noisy):
                spec = (
                    trainable,
                    list(non_trainable)
                    + (extras if noisy and not model.runs_own_step else []),
                    optimizer,
                    metrics,
                )
                with compat.state_sharding_spec_as(model, spec):
                    make(force=True)

        return backends.per_branch(
            model, make, force, call=functools.partial(_thread_extras, model),
            make_branch=make_branch,
        )

    def measure(self, model, x, y, sample_weight, noise_variables, values):
        """One pass with `noise_variables` at `values`, by
        `jax.value_and_grad` (`Backend.measure`).

        The pass is a pure function of the trainable values (the perturbed
        ones at `values`); every other variable is mapped to the value the
        step holds for it, and the values the pass leaves are returned for
        the caller to write back.
        """
        trainable = model.trainable_variables
        trainable_ids = {id(v) for v in trainable}
        others = [
            v for v in _all_variables(model) if id(v) not in trainable_ids
        ]
        others_values = _current(others)
        perturbed = {id(v): value for v, value in zip(noise_variables, values)}
        targets = [perturbed.get(id(v), v.value) for v in trainable]

        def forward(target_values):
            mapping = list(zip(trainable, target_values))
            mapping += list(zip(others, others_values))
            with keras.StatelessScope(
                state_mapping=mapping, collect_losses=True
            ) as scope:
                y_pred, loss = backends.forward(model, x, y, sample_weight)
                scaled_loss = model.optimizer.scale_loss(loss)
            new = [scope.get_current_value(v) for v in others]
            return scaled_loss, (loss, y_pred, new)

        (_, (loss, y_pred, new)), gradients = jax.value_and_grad(
            forward, has_aux=True
        )(targets)
        new_values = {id(v): value for v, value in zip(others, new)}
        return loss, list(gradients), y_pred, lambda v: new_values.get(id(v))

    def scope(self, name):
        """`jax.named_scope(name)`: the name is kept in the compiled
        program's metadata (`Backend.scope`)."""
        return jax.named_scope(name)

    def value_and_grad(self, fun, has_aux=False):
        """`jax.value_and_grad`, for `symmetric_value_and_grad`."""
        return jax.value_and_grad(fun, has_aux=has_aux)

    def after(self, dependencies, fn, *args):
        """`fn(*args)`, scheduled once `dependencies` exist (an XLA
        optimization barrier ties them together)."""
        _, args = jax.lax.optimization_barrier((list(dependencies), args))
        return fn(*args)

    def apply_if_finite(self, model, gradients, finite):
        """The optimizer update, kept only where `finite` is true.

        `optimizer.stateless_apply` computes the new trainable and optimizer
        values (mixed precision's loss scale included); a select keeps the
        old ones when the loss was not finite.
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

    def mesh_axis(self):
        """The `keras.distribution.DataParallel` batch axis, `(mesh, axis,
        size)`, or `None` (`keras_ssgd.backends.jax_devices`)."""
        return jax_devices.mesh_axis()

    def device_plan(self, mesh, axis, size, noise, signs, sync):
        """The per-device step's plan
        (`keras_ssgd.backends.jax_devices.Plan`)."""
        return jax_devices.Plan(
            mesh, axis, size, noise, signs, sync, variables_of=_all_variables
        )

    def bitcast(self, x, dtype):
        """The bits of `x` read as `dtype` of the same width."""
        return jax.lax.bitcast_convert_type(x, dtype)

    def normal(self, size, seed):
        """`keras.random.normal` of a seed generator, bit for bit, with the
        Threefry hash unrolled so that XLA fuses it on a CPU
        (`keras_ssgd.backends.threefry`); other seeds take Keras's own
        draw."""
        if not isinstance(seed, keras.random.SeedGenerator):
            return super().normal(size, seed)
        key = seed.next()
        draw = functools.partial(threefry.normal, size=size)
        if jax.default_backend() != "cpu":
            return draw(key)
        # XLA on a CPU fuses the hash (integer ops, which it counts as
        # cheap) into every consumer of the draw: the norms, `W + n` and
        # `W - n` would each hash again. A conditional's result is computed
        # once; both branches are the same draw, so the predicate is
        # immaterial. (An optimization barrier would not do: XLA's CPU
        # pipeline removes barriers before it fuses.) On an accelerator a
        # conditional would wait for the device, so there the draw stays
        # as it is.
        return jax.lax.cond(key[0] >= key[1], draw, draw, key)


def _groups(model, extras=()):
    return [
        model.trainable_variables,
        model.non_trainable_variables + list(extras),
        model.optimizer.variables,
        model.metrics_variables,
    ]


def _extras(model):
    """Variables the perturbed step reads that Keras does not thread: the
    noise level (so that `NoiseSchedule` changes it without retracing) and
    the states of stateful RNNs (Keras keeps them out of
    `non_trainable_variables`). The train function passes their values in
    next to the non-trainable state (`_thread_extras`), so the model's own
    variable lists stay those of `keras.Model`."""
    return model.extra_step_variables


def _thread_extras(model, function, noisy, state, data):
    """Runs the compiled `function` of branch `noisy`; the perturbed branch
    gets the values of `_extras(model)` after the non-trainable ones, and
    the RNN states it returns are written back to their variables."""
    if not noisy or model.runs_own_step:
        # A step of the user's own takes Keras's state as it is.
        return function(state, data)
    extras = _extras(model)
    trainable, non_trainable, *rest = state
    # Copies: the compiled step donates its state buffers.
    values = [jax.numpy.array(v.value, copy=True) for v in extras]
    state = (trainable, list(non_trainable) + values, *rest)
    logs, state = function(state, data)
    trainable, non_trainable, *rest = state
    count = len(non_trainable) - len(extras)
    for variable, value in zip(extras[1:], non_trainable[count + 1:]):
        variable.assign(value)
    return logs, (trainable, non_trainable[:count], *rest)


def _all_variables(model):
    seen, out = set(), []
    for variables in _groups(model, _extras(model)):
        for v in variables:
            if id(v) not in seen:
                seen.add(id(v))
                out.append(v)
    return out


def _current(variables):
    """The values the enclosing scope holds for `variables`."""
    return [v.value for v in variables]
