"""Momentum-SAM (`MomentumSAMModel`, `wrap(method="msam")`): its step
against a hand computation of the authors' rule on a linear model (the
gradient of a squared error in closed form, so it runs on every backend),
with SGD's and Adam's momentum; its refusals; save and resume. Fast tier,
about 3 s per backend."""

import keras
import numpy as np
import pytest

import keras_ssgd

X = np.random.default_rng(0).standard_normal((8, 3)).astype("float32")
Y = np.random.default_rng(1).standard_normal((8, 1)).astype("float32")
W0 = np.array([[0.3], [-0.2], [0.5]], "float32")


def gradient(w):
    """d/dw of mean((X w - Y)^2)."""
    return 2.0 * X.T @ (X @ w - Y) / len(X)


def linear(**kwargs):
    inputs = keras.Input((3,))
    dense = keras.layers.Dense(1, use_bias=False)
    model = keras.Model(inputs, dense(inputs))
    dense.kernel.assign(W0)
    return keras_ssgd.wrap(model, method="msam", **kwargs)


def fit(model, optimizer, steps):
    model.compile(optimizer=optimizer, loss="mse")
    model.fit(X, Y, batch_size=8, epochs=steps, shuffle=False, verbose=0)
    return keras.ops.convert_to_numpy(model.layers[-1].kernel)


def authors_sgd(rho, lr, mu, steps):
    """The authors' rule (MarlonBecker/MSAM, PyTorch's SGD buffer
    `v = mu v + g`, weights moved by `-lr v`): the gradient at
    `w - rho v / ||v||`, no perturbation while `v = 0`."""
    w, v = W0.astype("float64"), np.zeros_like(W0, "float64")
    for _ in range(steps):
        norm = np.linalg.norm(v)
        point = w - (rho * v / norm if norm > 0 else 0.0)
        v = mu * v + gradient(point)
        w = w - lr * v
    return w


@pytest.mark.parametrize("rho", [0.0, 0.4])
def test_step_is_the_authors_rule_with_sgd_momentum(rho):
    got = fit(linear(rho=rho), keras.optimizers.SGD(0.1, momentum=0.9), 4)
    np.testing.assert_allclose(got, authors_sgd(rho, 0.1, 0.9, 4),
                               rtol=2e-5, atol=1e-6)
    if rho:  # and the perturbation mattered
        assert not np.allclose(got, authors_sgd(0.0, 0.1, 0.9, 4), atol=1e-3)


def test_step_with_adam_perturbs_against_its_first_moment():
    lr, b1, b2, eps, rho, steps = 0.05, 0.9, 0.999, 1e-7, 0.3, 3
    w = W0.astype("float64")
    m, s = np.zeros_like(w), np.zeros_like(w)
    for t in range(1, steps + 1):
        norm = np.linalg.norm(m)
        g = gradient(w - (rho * m / norm if norm > 0 else 0.0))
        m = b1 * m + (1 - b1) * g
        s = b2 * s + (1 - b2) * g * g
        # Keras's Adam: lr scaled by the bias corrections, eps outside.
        alpha = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
        w = w - alpha * m / (np.sqrt(s) + eps)
    got = fit(linear(rho=rho), keras.optimizers.Adam(lr, b1, b2, eps), steps)
    np.testing.assert_allclose(got, w, rtol=2e-5, atol=1e-6)


def test_an_optimizer_without_momentum_is_refused():
    with pytest.raises(ValueError, match=(
            r"Argument `optimizer` must keep a momentum for MomentumSAMModel"
            r".*Received: optimizer=SGD\(momentum=0.0\)")):
        fit(linear(), keras.optimizers.SGD(0.1), 1)
    with pytest.raises(ValueError, match="Received: optimizer=RMSprop"):
        fit(linear(), "rmsprop", 1)
    with pytest.raises(ValueError, match="rho"):
        linear(rho=-0.1)


def test_save_load_and_a_resumed_fit_continue_the_momentum(tmp_path):
    optimizer = keras.optimizers.SGD(0.1, momentum=0.9)
    model = linear(rho=0.4)
    fit(model, optimizer, 2)
    assert model.get_config()["rho"] == 0.4 and "seed" not in model.get_config()
    path = tmp_path / "msam.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, keras_ssgd.MomentumSAMModel)
    # Two more epochs of the loaded model (its optimizer state restored)
    # are the authors' steps 3 and 4.
    loaded.fit(X, Y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    got = keras.ops.convert_to_numpy(loaded.layers[-1].kernel)
    np.testing.assert_allclose(got, authors_sgd(0.4, 0.1, 0.9, 4),
                               rtol=2e-5, atol=1e-6)
