"""S-SGD inside a `train_step` of one's own: `symmetric_gradients`
(TensorFlow, PyTorch) and `symmetric_value_and_grad` (JAX). Runs on the
three backends, each step written in its backend's guide style."""

import keras
import numpy as np
import pytest
from keras import ops

import keras_ssgd

BACKEND = keras.backend.backend()


def custom_step_class(base, symmetric):
    """A model whose `train_step` is written as Keras's "customizing what
    happens in fit()" guide writes it for the backend; with `symmetric`,
    the gradient comes from the S-SGD API instead."""
    if BACKEND == "jax":
        import jax

        class Model(base):
            def train_step(self, state, data):
                trainable, non_trainable, optimizer_variables, metrics = state
                x, y = data

                def fun(trainable, non_trainable):
                    y_pred, non_trainable = self.stateless_call(
                        trainable, non_trainable, x, training=True
                    )
                    return self.compute_loss(y=y, y_pred=y_pred), non_trainable

                if symmetric:
                    grad_fn = self.symmetric_value_and_grad(fun, has_aux=True)
                    (loss, (_, non_trainable)), grads = grad_fn(
                        trainable, non_trainable,
                        optimizer_variables=optimizer_variables,
                    )
                else:
                    grad_fn = jax.value_and_grad(fun, has_aux=True)
                    (loss, non_trainable), grads = grad_fn(
                        trainable, non_trainable
                    )
                trainable, optimizer_variables = (
                    self.optimizer.stateless_apply(
                        optimizer_variables, grads, trainable
                    )
                )
                return {"loss": loss}, (
                    trainable, non_trainable, optimizer_variables, metrics
                )

        return Model

    if BACKEND == "torch":
        import torch

        class Model(base):
            def train_step(self, data):
                x, y = data

                def loss_fn():
                    return self.compute_loss(
                        y=y, y_pred=self(x, training=True)
                    )

                variables = self.trainable_variables
                if symmetric:
                    loss, grads = self.symmetric_gradients(loss_fn)
                else:
                    self.zero_grad()
                    loss = loss_fn()
                    loss.backward()
                    grads = [v.value.grad for v in variables]
                with torch.no_grad():
                    self.optimizer.apply(grads, variables)
                return {"loss": loss}

        return Model

    import tensorflow as tf

    class Model(base):
        def train_step(self, data):
            x, y = data

            def loss_fn():
                return self.compute_loss(y=y, y_pred=self(x, training=True))

            if symmetric:
                loss, grads = self.symmetric_gradients(loss_fn)
            else:
                with tf.GradientTape() as tape:
                    loss = loss_fn()
                grads = tape.gradient(loss, self.trainable_variables)
            self.optimizer.apply(grads, self.trainable_variables)
            return {"loss": loss}

    return Model


def build(cls, **kwargs):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6,))
    h = keras.layers.Dense(8)(inputs)
    h = keras.layers.BatchNormalization()(h)
    h = keras.layers.Activation("relu")(h)
    model = cls(inputs, keras.layers.Dense(1)(h), **kwargs)
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
                  loss="mse")
    return model


def data():
    rng = np.random.default_rng(0)
    return (rng.normal(size=(32, 6)).astype("float32"),
            rng.normal(size=(32, 1)).astype("float32"))


def fit(model):
    x, y = data()
    model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    return model.get_weights()


@pytest.mark.exact
def test_level_0_is_the_plain_custom_step_bit_for_bit():
    plain = fit(build(custom_step_class(keras.Model, symmetric=False)))
    ssgd = fit(build(custom_step_class(keras_ssgd.SymmetricSGDModel, True),
                     noise_level=0.0, seed=0))
    assert len(plain) == len(ssgd) == 8  # kernels, biases, BatchNorm
    for a, b in zip(plain, ssgd):
        np.testing.assert_array_equal(a, b)


def test_a_perturbed_custom_step_follows_seed_and_step():
    cls = custom_step_class(keras_ssgd.SymmetricSGDModel, True)
    plain = fit(build(custom_step_class(keras.Model, symmetric=False)))
    first = fit(build(cls, noise_level=0.3, seed=4))
    again = fit(build(cls, noise_level=0.3, seed=4))
    other = fit(build(cls, noise_level=0.3, seed=5))
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.allclose(first[0], plain[0])
    assert not np.allclose(first[0], other[0])
    # The BatchNorm moving statistics were written back by the passes.
    assert not np.allclose(first[4], np.zeros_like(first[4]))


class _Measured(Exception):
    pass


@pytest.mark.parametrize("step", ["train_step", "custom"])
def test_every_step_measures_through_the_one_loop(monkeypatch, step):
    # S-SGD's train step and the custom-step API (symmetric_gradients on
    # TensorFlow and PyTorch, symmetric_value_and_grad on JAX) all measure
    # through `keras_ssgd.points.measure_points`.
    from keras_ssgd import points

    def measure_points(*args, **kwargs):
        raise _Measured

    monkeypatch.setattr(points, "measure_points", measure_points)
    if step == "train_step":
        model = build(keras_ssgd.SymmetricSGDModel, noise_level=0.3, seed=0)
    else:
        cls = custom_step_class(keras_ssgd.SymmetricSGDModel, True)
        model = build(cls, noise_level=0.3, seed=0)
    with pytest.raises(_Measured):
        fit(model)


def test_the_level_can_change_between_steps():
    cls = custom_step_class(keras_ssgd.SymmetricSGDModel, True)
    x, y = data()
    model = build(cls, noise_level=0.3, seed=4)
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    model.noise_level = 0.0
    reference = build(cls, noise_level=0.3, seed=4)
    reference.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    plain_model = build(custom_step_class(keras.Model, symmetric=False))
    plain_model.set_weights(reference.get_weights())
    plain_model.optimizer.build(plain_model.trainable_variables)
    for v, r in zip(plain_model.optimizer.variables,
                    reference.optimizer.variables):
        v.assign(r)
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    plain_model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    # After the switch to level 0 the step is the plain one.
    for a, b in zip(model.get_weights(), plain_model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    model.noise_level = 0.5  # and back: traced again, no error
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)


def quadratic_model(seed=0, level=0.3):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((5,))
    model = keras_ssgd.SymmetricSGDModel(
        inputs, keras.layers.Dense(3, use_bias=False)(inputs),
        noise_level=level, seed=seed,
    )
    model.compile(optimizer="sgd", loss="mse")
    model.optimizer.build(model.trainable_variables)
    return model


def gradients_of(model, loss_of_kernel):
    """S-SGD's `(loss, gradient)` of `loss_of_kernel(kernel_value)`, through
    the backend's API, outside `fit()`."""
    kernel = model.trainable_variables[0]
    if BACKEND == "jax":
        fun = model.symmetric_value_and_grad(
            lambda values: loss_of_kernel(values[0])
        )
        loss, grads = fun(
            [kernel.value],
            optimizer_variables=[v.value for v in model.optimizer.variables],
        )
    else:
        loss, grads = model.symmetric_gradients(
            lambda: loss_of_kernel(kernel.value)
        )
    return float(ops.convert_to_numpy(loss)), ops.convert_to_numpy(grads[0])


def test_a_quadratic_loss_gets_the_plain_gradient():
    # Paper Eq. 9: for L(W) = |x W|^2 / 2 the +-n gradients average to
    # the gradient at W, while the loss grows by |x n|^2 / 2.
    x = np.random.default_rng(1).normal(size=(7, 5)).astype("float32")
    model = quadratic_model()
    kernel = ops.convert_to_numpy(model.trainable_variables[0].value)

    def loss(w):
        return 0.5 * ops.sum(ops.square(ops.matmul(x, w)))

    got_loss, got = gradients_of(model, loss)
    np.testing.assert_allclose(got, x.T @ x @ kernel, rtol=1e-4, atol=1e-4)
    plain_loss = 0.5 * np.sum((x @ kernel) ** 2)
    assert got_loss > plain_loss * 1.01


def test_the_noise_is_a_function_of_seed_and_step():
    def loss(w):
        return ops.sum(ops.sin(3.0 * w))

    first = gradients_of(quadratic_model(seed=2), loss)[1]
    again = gradients_of(quadratic_model(seed=2), loss)[1]
    other = gradients_of(quadratic_model(seed=3), loss)[1]
    later_model = quadratic_model(seed=2)
    later_model.optimizer.iterations.assign(1)
    later = gradients_of(later_model, loss)[1]
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)
    assert not np.allclose(first, later)
    plain = gradients_of(quadratic_model(seed=2, level=0.0), loss)[1]
    assert not np.allclose(first, plain)


def test_only_the_chosen_models_kernels_are_perturbed():
    # A GAN's generator step: the gradient of the generator's variables,
    # the discriminator read at its master weights.
    keras.utils.set_random_seed(0)
    generator = keras.layers.Dense(4, name="generator")
    discriminator = keras.layers.Dense(1, name="discriminator")
    inputs = keras.Input((3,))
    model = keras_ssgd.SymmetricSGDModel(
        inputs, discriminator(generator(inputs)), noise_level=0.5, seed=0
    )
    model.compile(optimizer="sgd", loss="mse")
    g_optimizer = keras.optimizers.SGD(0.1)
    g_optimizer.build(generator.trainable_variables)
    z = np.ones((2, 3), "float32")
    g_master = ops.convert_to_numpy(generator.kernel.value)
    d_master = ops.convert_to_numpy(discriminator.kernel.value)
    seen = []
    if BACKEND == "jax":
        # Stateless: `fun` gets the generator's values, perturbed, and
        # reads the discriminator's master kernel itself.
        def fun(values):
            h = ops.matmul(z, values[0]) + values[1]
            return ops.sum(ops.sin(ops.matmul(h, discriminator.kernel.value)))

        grad_fn = model.symmetric_value_and_grad(
            fun, variables=generator.trainable_variables, optimizer=g_optimizer
        )
        values = [v.value for v in generator.trainable_variables]
        optimizer_variables = [v.value for v in g_optimizer.variables]
        loss, grads = grad_fn(values, optimizer_variables=optimizer_variables)
        import jax

        plain = jax.grad(fun)(values)
        # The generator's kernel is perturbed (the gradient moves), its
        # bias is not (rank 1).
        assert not np.allclose(grads[0], plain[0])
        assert np.isfinite(float(loss))
    else:
        def loss_fn():
            seen.append((ops.convert_to_numpy(generator.kernel.value),
                         ops.convert_to_numpy(discriminator.kernel.value)))
            return ops.sum(discriminator(generator(z)))

        loss, grads = model.symmetric_gradients(
            loss_fn, generator.trainable_variables, optimizer=g_optimizer
        )
        assert len(seen) == 2
        for _, d in seen:
            np.testing.assert_array_equal(d, d_master)
        g_seen = [g for g, _ in seen]
        assert not np.allclose(g_seen[0], g_master)
        # W + n and W - n: symmetric around the master kernel.
        np.testing.assert_allclose((g_seen[0] + g_seen[1]) / 2, g_master,
                                   rtol=1e-5, atol=1e-6)
    assert len(grads) == 2  # the generator's kernel and bias only


def test_the_api_names_the_other_backends_form():
    model = quadratic_model()
    if BACKEND == "jax":
        with pytest.raises(ValueError, match="symmetric_gradients"):
            model.symmetric_gradients(lambda: 0.0)
    else:
        with pytest.raises(ValueError, match="symmetric_value_and_grad"):
            model.symmetric_value_and_grad(lambda values: 0.0)


def test_without_an_optimizer_the_error_says_which_to_pass():
    inputs = keras.Input((2,))
    model = keras_ssgd.SymmetricSGDModel(
        inputs, keras.layers.Dense(1)(inputs), noise_level=0.1
    )
    method = (model.symmetric_value_and_grad if BACKEND == "jax"
              else model.symmetric_gradients)
    with pytest.raises(ValueError, match="pass `optimizer=`.*"
                       "Received: optimizer=None"):
        method(lambda *args: 0.0)


def test_wrap_refuses_a_model_that_already_runs_ssgd_in_its_step():
    model = build(custom_step_class(keras_ssgd.SymmetricSGDModel, True),
                  noise_level=0.1)
    with pytest.raises(ValueError, match="already a keras_ssgd"):
        keras_ssgd.wrap(model)
