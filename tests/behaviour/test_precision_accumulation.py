"""The two things SAM users ask for most, on every backend: mixed precision
(`mixed_float16`, Keras's `LossScaleOptimizer`) and gradient accumulation
(the optimizer's `gradient_accumulation_steps`). The S-SGD steps are
checked against a hand computation on a one-layer tanh model (the
gradient of a squared error in closed form, the noise reproduced from
`(seed, step)`; not a linear model, whose squared error is quadratic: S-SGD's
two points would cancel any noise there).
Fast tier, about 3 s per backend; the bit-for-bit ones in the exact tier.
"""

import keras
import numpy as np
import pytest
from keras import ops

import keras_ssgd
from keras_ssgd import noise as noise_lib

X = np.random.default_rng(0).standard_normal((16, 3)).astype("float32")
Y = np.random.default_rng(1).standard_normal((16, 2)).astype("float32")
W0 = np.array([[0.3, -0.1], [-0.2, 0.4], [0.5, 0.2]], "float32")
SEED, LEVEL, LR = 5, 0.5, 0.1


@pytest.fixture
def mixed_float16():
    keras.config.set_dtype_policy("mixed_float16")
    yield
    keras.config.set_dtype_policy("float32")


def generator_at(seed, step):
    generator = keras.random.SeedGenerator(0)
    generator.state.assign(np.array([seed, step], "uint32"))
    return generator


def gradient(w, x, y):
    """d/dw of mean((tanh(x w) - y)^2) over every element."""
    out = np.tanh(x @ w)
    return 2.0 * x.T @ ((out - y) * (1 - out**2)) / y.size


def ssgd_gradient(w, x, y, step):
    """S-SGD's gradient at step `step`: the mean of the gradients at W + n
    and W - n, `n` drawn as the model draws it."""
    n = ops.convert_to_numpy(noise_lib.symmetric_noise(
        [ops.convert_to_tensor(w.astype("float32"))], LEVEL,
        generator_at(SEED, step))[0]).astype("float64")
    return (gradient(w + n, x, y) + gradient(w - n, x, y)) / 2


def linear(level=LEVEL, wrap=True):
    inputs = keras.Input((3,))
    dense = keras.layers.Dense(2, use_bias=False, activation="tanh")
    model = keras.Model(inputs, dense(inputs))
    dense.kernel.assign(W0)
    if wrap:
        model = keras_ssgd.wrap(model, noise_level=level, seed=SEED)
    return model


def kernel(model):
    return ops.convert_to_numpy(model.trainable_variables[0]).astype("float64")


# Mixed precision.


def test_mixed_float16_step_is_the_float32_step_within_half_precision(
        mixed_float16):
    # One step on one batch: the update of the loss-scaled S-SGD step is
    # the float32 S-SGD update. A loss scale left in (or divided out twice)
    # would make it 32768 times too large (or too small).
    model = linear()
    model.compile(optimizer=keras.optimizers.SGD(LR), loss="mse")
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    model.fit(X, Y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    assert model.trainable_variables[0].dtype == "float32"
    expected = W0 - LR * ssgd_gradient(W0.astype("float64"), X, Y, 0)
    moved, expected_moved = kernel(model) - W0, expected - W0
    np.testing.assert_allclose(moved, expected_moved, rtol=2e-2, atol=2e-4)


@pytest.mark.exact
def test_mixed_float16_at_level_zero_is_keras_bit_for_bit(mixed_float16):
    def train(wrap):
        model = linear(level=0.0, wrap=wrap)
        model.compile(optimizer=keras.optimizers.SGD(LR, momentum=0.9),
                      loss="mse")
        model.fit(X, Y, batch_size=4, epochs=2, shuffle=False, verbose=0)
        return [ops.convert_to_numpy(v) for v in model.optimizer.variables
                ] + [kernel(model)]

    for a, b in zip(train(True), train(False)):
        np.testing.assert_array_equal(a, b)


# Gradient accumulation.


def test_accumulation_is_s_sgd_on_the_whole_batch_with_one_noise():
    # 4 micro-batches of 4, accumulated 2 at a time: 2 updates. The
    # optimizer's step counter counts updates, so the micro-batches of one
    # update share its noise n = noise(seed, update): the update is the
    # S-SGD step of the 8 examples, as with batch 8 and no accumulation.
    model = linear()
    model.compile(optimizer=keras.optimizers.SGD(
        LR, gradient_accumulation_steps=2), loss="mse")
    model.fit(X, Y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    w = W0.astype("float64")
    for update in (0, 1):
        half = slice(8 * update, 8 * update + 8)
        w = w - LR * ssgd_gradient(w, X[half], Y[half], update)
    np.testing.assert_allclose(kernel(model), w, rtol=2e-5, atol=1e-6)
    assert int(ops.convert_to_numpy(model.optimizer.iterations)) == 2
    # The same two updates without accumulation, at batch 8.
    plain = linear()
    plain.compile(optimizer=keras.optimizers.SGD(LR), loss="mse")
    plain.fit(X, Y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    np.testing.assert_allclose(kernel(plain), w, rtol=2e-5, atol=1e-6)
    # And the noise mattered (a step without it ends elsewhere).
    noiseless = W0.astype("float64")
    for update in (0, 1):
        half = slice(8 * update, 8 * update + 8)
        noiseless = noiseless - LR * gradient(noiseless, X[half], Y[half])
    assert not np.allclose(kernel(model), noiseless, atol=1e-5)


@pytest.mark.exact
def test_accumulation_at_level_zero_is_keras_bit_for_bit():
    def train(wrap):
        model = linear(level=0.0, wrap=wrap)
        model.compile(optimizer=keras.optimizers.SGD(
            LR, momentum=0.9, gradient_accumulation_steps=2), loss="mse")
        model.fit(X, Y, batch_size=4, epochs=2, shuffle=False, verbose=0)
        return kernel(model)

    np.testing.assert_array_equal(train(True), train(False))
