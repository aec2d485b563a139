"""S-SGD inside a `train_step` of the user's own.

`SymmetricSGDModel.symmetric_gradients` (TensorFlow, PyTorch: a stateful
step) and `SymmetricSGDModel.symmetric_value_and_grad` (JAX: a stateless
step) are these functions, bound to the model. Each draws `n` for the
variables the model's filter selects, measures at `W + n` and `W - n`
through `keras_ssgd.points.measure_points`, and returns the mean loss and
gradient (paper Eq. 3). At level 0 each is the plain gradient, computed as
Keras's guides compute it. The guide: `docs/guides/custom-steps.md`.
"""

import keras

from keras_ssgd import backends
from keras_ssgd import filters
from keras_ssgd import noise as noise_lib
from keras_ssgd import points as points_lib
from keras_ssgd.points import Point


def symmetric_gradients(model, loss_fn, variables=None, optimizer=None):
    """S-SGD's loss and gradients of `loss_fn`, for your own
    `train_step` (TensorFlow and PyTorch).

    Where Keras's guides take the gradient with `tf.GradientTape` or
    `loss.backward()`, call this instead: it draws `n` for the variables
    the model's `noise_filter` selects among `variables`, calls
    `loss_fn` at `W + n` and at `W - n` without writing the variables,
    and returns the mean loss and gradient (paper Eq. 3). The level,
    its schedule, the filter, the seed and `noise_distribution` are the
    model's; at level 0 it is the plain gradient, as the guides compute
    it. BatchNorm statistics follow `batchnorm_update`; metric updates
    belong after the call. `split_batch` does not apply.

    Args:
        model: the `SymmetricSGDModel` (bound: call
            `self.symmetric_gradients(loss_fn)` in its `train_step`).
        loss_fn: callable taking no argument and returning the scalar
            loss, computed from the model's variables.
        variables: the trainable variables to differentiate, in the
            order of the returned gradients; only those the filter
            selects get noise (a GAN's generator step passes the
            generator's). Defaults to `None`, `trainable_variables`.
        optimizer: the optimizer whose step counter positions the noise
            stream (the one that applies these gradients). Defaults to
            `None`, the model's `optimizer`.

    Returns:
        `(loss, gradients)`, the gradients aligned with `variables`.

    Raises:
        ValueError: on the JAX backend (use `symmetric_value_and_grad`),
            or without an optimizer.

    Example:

    ```python
    class MyModel(keras_ssgd.SymmetricSGDModel):
        def train_step(self, data):
            x, y = data

            def loss_fn():
                return self.compute_loss(
                    y=y, y_pred=self(x, training=True)
                )

            loss, gradients = self.symmetric_gradients(loss_fn)
            self.optimizer.apply(gradients, self.trainable_variables)
            return {"loss": loss}
    ```

    Reference:
    - Sung et al., "S-SGD", Eq. 3; the guide, `docs/guides/custom-steps.md`.
    """
    backends.require(
        "symmetric_gradients (a stateful train_step)",
        "symmetric_gradients(...) (on JAX: symmetric_value_and_grad)",
        backends=("tensorflow", "torch"),
    )
    variables = _variables(model, variables)
    optimizer = _optimizer(model, optimizer, "symmetric_gradients")
    step = backends.current()
    noisy = noise_targets(model, variables)
    if not model._noisy() or not noisy:
        return step.loss_and_gradients(loss_fn, variables)
    weights = [v.value for v in noisy]
    noise = noise_lib.symmetric_noise(
        weights, model._noise.level, model._noise.generator(optimizer),
        distribution=model.noise_distribution,
    )
    both = model.batchnorm_update == "both"

    def measure(point, values):
        loss, gradients, new_value = step.loss_and_gradients_at(
            loss_fn, variables, noisy, values
        )
        model._write_back(new_value, point.keep_statistics)
        return loss, gradients, None

    loss, gradients, _ = points_lib.measure_points(
        [Point(None, 1.0, 0.5, True), Point(None, -1.0, 0.5, both)],
        weights, noise, measure, step.after, step.scope,
    )
    return loss, gradients


def symmetric_value_and_grad(
    model, fun, has_aux=False, variables=None, optimizer=None
):
    """S-SGD's `jax.value_and_grad`, for your own stateless `train_step`
    (JAX).

    Where Keras's JAX guide writes `jax.value_and_grad(fun, has_aux=...)`
    write `self.symmetric_value_and_grad(fun, has_aux=...)`: the returned
    function takes the same arguments plus `optimizer_variables=` (the
    optimizer's state, whose step counter positions the noise stream),
    evaluates `fun` at `W + n` and at `W - n` and returns the mean value
    and gradient. At level 0 it is `jax.value_and_grad(fun)`. The level
    is read when the step is traced: changing it traces the step again,
    once per level.

    Args:
        model: the `SymmetricSGDModel` (bound: call
            `self.symmetric_value_and_grad(fun)` in its `train_step`).
        fun: `fun(values, *args, **kwargs)`, `values` aligned with
            `variables`; returns the loss, or `(loss, aux)` with
            `has_aux`.
        has_aux: bool. With `True` the returned function gives
            `((loss, (aux_plus, aux_minus)), gradients)` (at level 0,
            `fun`'s own aux twice). Defaults to `False`.
        variables: the variables `values` stand for. Defaults to
            `None`, the model's `trainable_variables`.
        optimizer: the optimizer whose state `optimizer_variables`
            holds. Defaults to `None`, the model's `optimizer`.

    Returns:
        A function `(values, *args, optimizer_variables, **kwargs) ->
        (value, gradients)`.

    Example:

    <!-- example: skip the JAX backend's stateless train_step. -->

    ```python
    def train_step(self, state, data):
        trainable, non_trainable, optimizer_variables, metrics = state
        x, y = data

        def fun(trainable, non_trainable):
            y_pred, non_trainable = self.stateless_call(
                trainable, non_trainable, x, training=True
            )
            return self.compute_loss(y=y, y_pred=y_pred), non_trainable

        grad_fn = self.symmetric_value_and_grad(fun, has_aux=True)
        (loss, (_, non_trainable)), grads = grad_fn(
            trainable, non_trainable,
            optimizer_variables=optimizer_variables,
        )
        trainable, optimizer_variables = self.optimizer.stateless_apply(
            optimizer_variables, grads, trainable
        )
        ...
    ```

    Reference:
    - Sung et al., "S-SGD", Eq. 3; the guide, `docs/guides/custom-steps.md`.
    """
    backends.require(
        "symmetric_value_and_grad (a stateless train_step)",
        "symmetric_value_and_grad(...) (on TensorFlow and PyTorch: "
        "symmetric_gradients)",
        backends=("jax",),
    )
    variables = _variables(model, variables)
    optimizer = _optimizer(model, optimizer, "symmetric_value_and_grad")
    step = backends.current()
    plain = step.value_and_grad(fun, has_aux=has_aux)

    def value_and_grad(values, *args, optimizer_variables, **kwargs):
        selected = {id(v) for v in noise_targets(model, variables)}
        positions = [i for i, v in enumerate(variables) if id(v) in selected]
        if not model._noisy() or not positions:
            value, gradients = plain(values, *args, **kwargs)
            if has_aux:  # the structure of the perturbed step's
                value = (value[0], (value[1], value[1]))
            return value, gradients
        iterations = [id(v) for v in optimizer.variables].index(
            id(optimizer.iterations)
        )
        weights = [values[i] for i in positions]
        counter = [(optimizer.iterations, optimizer_variables[iterations])]
        with keras.StatelessScope(state_mapping=counter):
            noise = noise_lib.symmetric_noise(
                weights, model.noise_level,
                model._noise.generator(optimizer),
                distribution=model.noise_distribution,
            )

        def measure(point, shifted):
            moved = list(values)
            for i, value in zip(positions, shifted):
                moved[i] = value
            value, gradients = plain(moved, *args, **kwargs)
            if has_aux:
                return value[0], gradients, value[1]
            return value, gradients, None

        loss, gradients, aux = points_lib.measure_points(
            [Point(None, 1.0, 0.5, True), Point(None, -1.0, 0.5, True)],
            weights, noise, measure, step.after, step.scope,
        )
        return ((loss, tuple(aux)) if has_aux else loss), gradients

    return value_and_grad


def noise_targets(model, variables):
    """The variables among `variables` that `model`'s filter selects."""
    selected = {
        id(v) for v in filters.select(
            model, model.noise_filter or model.default_noise_filter
        )
    }
    return [v for v in variables if id(v) in selected]


def _variables(model, variables):
    if variables is None:
        return list(model.trainable_variables)
    return list(variables)


def _optimizer(model, optimizer, method):
    if optimizer is None:
        optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        raise ValueError(
            f"`{method}` positions its noise stream at an optimizer's "
            f"step counter, and model '{model.name}' has none: compile "
            "it with an optimizer, or pass `optimizer=` (the one that "
            "applies the gradients). Received: optimizer=None"
        )
    return optimizer
