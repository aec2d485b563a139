"""Hessian-vector products and eigenvalues on the backend in use.

Backend-neutral (tests/conftest.py): `make test` runs it under TensorFlow,
JAX and PyTorch. The products are checked against closed forms (a linear
model under MSE, whose Hessian is `2 X^T X / n`) and against central
differences of the gradient (an MLP with BatchNorm, in inference mode).
"""

import keras
import numpy as np
import pytest

from keras_ssgd.data import batches
from keras_ssgd.landscape import HessianOperator
from keras_ssgd.landscape import hessian_eigenvalues
from keras_ssgd.landscape import hessian_trace

METHODS = ["double-backprop", "forward-over-reverse"]


def linear_problem(n=100, features=6, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=(n, features))
         * np.linspace(0.5, 3, features)).astype("float32")
    y = rng.normal(size=(n, 1)).astype("float32")
    model = keras.Sequential([keras.Input((features,)),
                              keras.layers.Dense(1, use_bias=False)])
    hessian = 2.0 * x.astype("float64").T @ x.astype("float64") / n
    return model, x, y, hessian


def mlp_problem(n=40, seed=0):
    rng = np.random.default_rng(seed)
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((3,))
    h = keras.layers.Dense(4, activation="tanh")(inputs)
    h = keras.layers.BatchNormalization()(h)
    model = keras.Model(inputs, keras.layers.Dense(3)(h))
    # Moving statistics away from (0, 1): inference mode must use them.
    mean, variance = model.layers[2].non_trainable_variables
    mean.assign(rng.normal(size=4).astype("float32") * 0.1)
    variance.assign(rng.uniform(0.5, 2.0, size=4).astype("float32"))
    x = rng.normal(size=(n, 3)).astype("float32")
    y = rng.integers(0, 3, size=n).astype("int32")
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(
        from_logits=True))
    return model, x, y


def explicit_hessian(operator, model, eps=1e-2):
    """The Hessian by central differences of the gradient, column by
    column (symmetrized)."""
    variables = operator.variables
    start = [np.array(keras.ops.convert_to_numpy(v)) for v in variables]
    flat = np.concatenate([w.reshape(-1) for w in start]).astype(np.float64)

    def gradient_at(point):
        for v, part in zip(variables, operator.split(point)):
            v.assign(part)
        return operator.gradient()

    columns = []
    for i in range(operator.dim):
        step = np.zeros(operator.dim)
        step[i] = eps
        columns.append((gradient_at(flat + step) - gradient_at(flat - step))
                       / (2 * eps))
    for v, w in zip(variables, start):
        v.assign(w)
    hessian = np.stack(columns, axis=1)
    return (hessian + hessian.T) / 2


@pytest.mark.parametrize("hvp", METHODS)
def test_hvp_of_linear_mse_is_the_closed_form(hvp):
    model, x, y, hessian = linear_problem()
    operator = HessianOperator(model, (x, y), loss="mse", hvp=hvp)
    v = np.random.default_rng(1).normal(size=operator.dim)
    np.testing.assert_allclose(operator.matvec(v), hessian @ v, rtol=1e-4,
                               atol=1e-4)
    assert operator.num_examples == 100


@pytest.mark.parametrize("hvp", METHODS)
@pytest.mark.parametrize("method, k", [("lanczos", 3), ("power", 1)])
def test_eigenvalues_of_linear_mse_match_eigvalsh(hvp, method, k):
    model, x, y, hessian = linear_problem()
    # NumPy batches of 32 (32 + 32 + 32 + 4): weighted by their size.
    data = batches(x, y, batch_size=32, shuffle=False)
    found = hessian_eigenvalues(
        model, data, k=k, loss="mse", method=method, hvp=hvp,
        iterations=None if method == "lanczos" else 200,
    )
    np.testing.assert_allclose(found, np.linalg.eigvalsh(hessian)[::-1][:k],
                               rtol=1e-3)


@pytest.mark.parametrize("hvp", METHODS)
def test_arpack_eigenvalues_of_a_wider_linear_mse_match_eigvalsh(hvp):
    # 30 parameters, more than the 10 Lanczos vectors: scipy's eigsh over
    # the backend's HVPs (the 6-parameter problem above forms its Hessian).
    model, x, y, hessian = linear_problem(features=30)
    data = batches(x, y, batch_size=32, shuffle=False)
    found = hessian_eigenvalues(model, data, k=3, loss="mse", hvp=hvp,
                                iterations=10)
    np.testing.assert_allclose(found, np.linalg.eigvalsh(hessian)[::-1][:3],
                               rtol=1e-3)


@pytest.mark.parametrize("hvp", METHODS)
def test_hvp_of_an_mlp_with_batchnorm_is_the_gradients_difference(hvp):
    model, x, y = mlp_problem()
    operator = HessianOperator(model, (x, y), hvp=hvp)
    hessian = explicit_hessian(operator, model)
    rng = np.random.default_rng(2)
    for _ in range(3):
        v = rng.normal(size=operator.dim)
        expected = hessian @ v
        np.testing.assert_allclose(operator.matvec(v), expected,
                                   atol=2e-3 * np.abs(expected).max())
    top = hessian_eigenvalues(model, (x, y), k=2, hvp=hvp)
    np.testing.assert_allclose(top, np.linalg.eigvalsh(hessian)[::-1][:2],
                               rtol=1e-2)


def test_hessian_over_some_variables_is_their_block():
    model, x, y = mlp_problem()
    operator = HessianOperator(model, (x, y))
    hessian = explicit_hessian(operator, model)
    kernel = model.layers[-1].kernel  # the last 12 + 3 parameters: 12
    block = HessianOperator(model, (x, y), variables=[kernel])
    offset = operator.dim - 15
    expected = hessian[offset:offset + 12, offset:offset + 12]
    v = np.random.default_rng(3).normal(size=12)
    np.testing.assert_allclose(block.matvec(v), expected @ v,
                               atol=2e-3 * np.abs(expected @ v).max())


def test_trace_is_within_its_error_of_the_trace():
    model, x, y, hessian = linear_problem()
    estimate, error = hessian_trace(model, (x, y), samples=200, loss="mse")
    assert error > 0
    assert abs(estimate - np.trace(hessian)) < 4 * error


def test_bad_data_and_variables_are_named():
    model, x, y, _ = linear_problem()
    with pytest.raises(TypeError, match="Argument `data` must be an"):
        hessian_eigenvalues(model, iter([(x, y)]), loss="mse")
    with pytest.raises(ValueError, match="`data` is empty"):
        hessian_eigenvalues(model, (x[:0], y[:0]), loss="mse")
    other = keras.Variable(np.zeros((6, 1)), name="elsewhere")
    with pytest.raises(ValueError, match="Argument `variables` must hold "
                       "variables of the model"):
        HessianOperator(model, (x, y), loss="mse", variables=[other])
