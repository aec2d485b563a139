"""Adaptive random weight perturbation (`arwp`) and its mixed form
(`marwp`): the noise rule against NumPy, each step against a hand
computation on a linear model (the gradient of a squared error in closed
form, the model's draw reproduced from `(seed, step)`), on every backend;
the history's saving and resuming; level 0. Fast tier, about 4 s per
backend."""

import keras
import numpy as np
import pytest
from keras import ops

import keras_ssgd
from keras_ssgd.baselines import arwp

X = np.random.default_rng(0).standard_normal((8, 3)).astype("float32")
Y = np.random.default_rng(1).standard_normal((8, 2)).astype("float32")
W0 = np.array([[0.3, -0.1], [-0.2, 0.4], [0.5, 0.2]], "float32")
SEED = 11


def generator_at(seed, step):
    """A seed generator in the state the model puts its own in at `step`."""
    generator = keras.random.SeedGenerator(0)
    generator.state.assign(np.array([seed, step], "uint32"))
    return generator


def gradient(w):
    """d/dw of mean((X w - Y)^2) over every element."""
    return 2.0 * X.T @ (X @ w - Y) / Y.size


def test_the_noise_scale_is_per_filter_and_damped_by_the_history():
    kernel = np.arange(1, 7, dtype="float32").reshape(3, 2)
    bias = np.array([3.0, 4.0], "float32")
    histories = [np.full((3, 2), 0.5, "float32"), np.array([0.0, 8.0],
                                                           "float32")]
    e = arwp.adaptive_random_perturbation(
        [ops.convert_to_tensor(kernel), ops.convert_to_tensor(bias)],
        [ops.convert_to_tensor(h) for h in histories], 0.1, 2.0,
        generator_at(3, 0))
    generator = generator_at(3, 0)
    z = [ops.convert_to_numpy(keras.random.normal(s, seed=generator))
         for s in ((3, 2), (2,))]
    # Kernel: filter f is column f; its norm and its history summed.
    filter_norm = np.sqrt((kernel**2).sum(axis=0, keepdims=True))
    expected_kernel = z[0] * 0.1 * filter_norm / np.sqrt(1 + 2.0 * 1.5)
    # Bias: the whole vector's norm (5), the history elementwise.
    expected_bias = z[1] * 0.1 * 5.0 / np.sqrt(1 + 2.0 * histories[1])
    np.testing.assert_allclose(ops.convert_to_numpy(e[0]), expected_kernel,
                               rtol=1e-5)
    np.testing.assert_allclose(ops.convert_to_numpy(e[1]), expected_bias,
                               rtol=1e-5)


def linear(method, **kwargs):
    inputs = keras.Input((3,))
    dense = keras.layers.Dense(2, use_bias=False)
    model = keras.Model(inputs, dense(inputs))
    dense.kernel.assign(W0)
    return keras_ssgd.wrap(model, method=method, seed=SEED, **kwargs)


def by_hand(steps, sigma, lr, eta=1.0, beta=0.9, mix=0.0, start=0,
            w=None, h=None):
    """SGD on the ARWP (mix = 0) or m-ARWP gradient, the noise drawn as the
    model draws it at each step."""
    w = W0.astype("float64") if w is None else w
    h = np.zeros_like(w) if h is None else h
    for step in range(start, start + steps):
        z = ops.convert_to_numpy(
            keras.random.normal((3, 2), seed=generator_at(SEED, step)))
        scale = sigma * np.sqrt((w**2).sum(axis=0, keepdims=True))
        e = z * scale / np.sqrt(1 + eta * h.sum(axis=0, keepdims=True))
        g = mix * gradient(w) + (1 - mix) * gradient(w + e)
        w = w - lr * g
        h = beta * h + g**2
    return w, h


def fit(model, steps, lr=0.1):
    model.compile(optimizer=keras.optimizers.SGD(lr), loss="mse")
    model.fit(X, Y, batch_size=8, epochs=steps, shuffle=False, verbose=0)
    kernel = ops.convert_to_numpy(model.trainable_variables[0])
    history = ops.convert_to_numpy(model._histories[0])
    return kernel, history


@pytest.mark.parametrize("method, mix", [("arwp", 0.0), ("marwp", 0.5),
                                         ("marwp", 0.25)])
def test_each_step_is_the_hand_computed_one(method, mix):
    kwargs = {"mix": mix} if method == "marwp" else {}
    kernel, history = fit(linear(method, sigma=0.2, **kwargs), 4)
    w, h = by_hand(4, 0.2, 0.1, mix=mix)
    np.testing.assert_allclose(kernel, w, rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(history, h, rtol=2e-5, atol=1e-7)
    # The noise mattered: plain SGD ends elsewhere.
    assert not np.allclose(kernel, by_hand(4, 0.0, 0.1)[0], atol=1e-3)


def test_the_passes_and_the_arguments():
    assert keras_ssgd.AdaptiveRandomPerturbationModel.passes == 1
    assert keras_ssgd.MixedAdaptiveRandomPerturbationModel.passes == 2
    config = linear("marwp", sigma=0.02, eta=0.5, beta=0.8,
                    mix=0.3).get_config()
    assert (config["sigma"], config["eta"], config["beta"], config["mix"]) \
        == (0.02, 0.5, 0.8, 0.3)
    for kwargs, message in (
            ({"sigma": -1.0}, "sigma"), ({"beta": 1.0}, "beta=1.0"),
            ({"eta": -0.5}, "eta"), ({"mix": 1.5}, "mix=1.5")):
        with pytest.raises(ValueError, match=message):
            linear("marwp", **kwargs)


def test_save_load_and_a_resumed_fit_continue_the_history(tmp_path):
    model = linear("arwp", sigma=0.2)
    fit(model, 2)
    path = tmp_path / "arwp.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, keras_ssgd.AdaptiveRandomPerturbationModel)
    np.testing.assert_array_equal(
        ops.convert_to_numpy(loaded._histories[0]),
        ops.convert_to_numpy(model._histories[0]))
    # Two more epochs of the loaded model are the hand steps 3 and 4.
    loaded.fit(X, Y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    w, h = by_hand(4, 0.2, 0.1)
    np.testing.assert_allclose(
        ops.convert_to_numpy(loaded.trainable_variables[0]), w,
        rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(ops.convert_to_numpy(loaded._histories[0]),
                               h, rtol=2e-5, atol=1e-7)


@pytest.mark.exact
@pytest.mark.parametrize("method", ["arwp", "marwp"])
def test_level_zero_trains_as_keras_bit_for_bit(method, op_determinism):
    # Level 0 is Keras's own step (for the mixed form, mix * g + (1 - mix)
    # * g would differ from g in floating point: it is never computed).
    def train(wrap):
        keras.utils.set_random_seed(3)
        inputs = keras.Input((3,))
        h = keras.layers.Dense(4, activation="tanh")(inputs)
        model = keras.Model(inputs, keras.layers.Dense(2)(h))
        if wrap:
            model = keras_ssgd.wrap(model, method=method, sigma=0.0, seed=1)
        model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
                      loss="mse")
        model.fit(X, Y, batch_size=4, epochs=2, shuffle=False, verbose=0)
        return [ops.convert_to_numpy(v) for v in model.trainable_variables]

    for a, b in zip(train(True), train(False)):
        np.testing.assert_array_equal(a, b)
