"""Hessian eigenvalues and trace against closed forms."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_ssgd import landscape


def linear_problem(n=96, features=6, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=(n, features)) * np.linspace(0.5, 3, features)).astype("float32")
    y = rng.normal(size=(n, 1)).astype("float32")
    model = keras.Sequential([keras.Input((features,)), keras.layers.Dense(1, use_bias=False)])
    hessian = 2.0 * x.astype("float64").T @ x.astype("float64") / n
    return model, x, y, hessian


@pytest.mark.parametrize("hvp", ["double-backprop", "forward-over-reverse"])
@pytest.mark.parametrize("method, k", [("lanczos", 3), ("power", 1)])
def test_eigenvalues_of_linear_mse_match_closed_form(hvp, method, k):
    model, x, y, hessian = linear_problem()
    expected = np.linalg.eigvalsh(hessian)[::-1][:k]
    # Batches of 32: the whole-data Hessian is the weighted sum of batches.
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
    found = landscape.hessian_eigenvalues(
        model, data, k=k, loss="mse", method=method, hvp=hvp,
        iterations=None if method == "lanczos" else 200,
    )
    np.testing.assert_allclose(found, expected, rtol=1e-3)


def test_uneven_batches_are_weighted_by_size():
    model, x, y, hessian = linear_problem(n=100)
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(64)  # 64 + 36
    found = landscape.hessian_eigenvalues(model, data, k=1, loss="mse")
    np.testing.assert_allclose(found, np.linalg.eigvalsh(hessian)[-1:], rtol=1e-3)


def test_hutchinson_trace_is_within_its_error_of_the_trace():
    model, x, y, hessian = linear_problem()
    estimate, error = landscape.hessian_trace(model, (x, y), samples=200, loss="mse")
    assert error > 0
    assert abs(estimate - np.trace(hessian)) < 4 * error


def test_compiled_loss_is_used_by_default():
    model, x, y, hessian = linear_problem()
    model.compile(loss="mse")
    found = landscape.hessian_eigenvalues(model, (x, y), k=1)
    np.testing.assert_allclose(found, np.linalg.eigvalsh(hessian)[-1:], rtol=1e-3)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"k": 0}, ValueError, "Argument `k` must be an int >= 1"),
        ({"k": 7}, ValueError, "at most the number of parameters (6)"),
        ({"method": "arnoldi"}, ValueError, "Argument `method` must be one of"),
        ({"hvp": "finite-differences"}, ValueError, "Argument `hvp` must be one of"),
    ],
)
def test_bad_arguments_are_named(kwargs, error, message):
    model, x, y, _ = linear_problem()
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        landscape.hessian_eigenvalues(model, (x, y), loss="mse", **kwargs)


def test_empty_data_and_missing_loss_are_clear_errors():
    model, x, y, _ = linear_problem()
    with pytest.raises(ValueError, match="`data` is empty"):
        landscape.hessian_eigenvalues(model, (x[:0], y[:0]), loss="mse")
    empty = tf.data.Dataset.from_tensor_slices((x, y)).take(0).batch(8)
    with pytest.raises(ValueError, match="yields no batch"):
        landscape.hessian_eigenvalues(model, empty, loss="mse")
    with pytest.raises(ValueError, match="not compiled with a loss"):
        landscape.hessian_eigenvalues(model, (x, y))
