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


class EigshSpy:
    """`scipy.sparse.linalg.eigsh` in `keras_ssgd.landscape.hessian`, with
    its arguments kept; and the HVPs counted."""

    def __init__(self, monkeypatch):
        from keras_ssgd.landscape import hessian

        self.calls, self.products = [], 0
        eigsh, matvec = hessian.eigsh, hessian.HessianOperator.matvec

        def spy_eigsh(*args, **kwargs):
            self.calls.append(kwargs)
            return eigsh(*args, **kwargs)

        def spy_matvec(operator, flat):
            self.products += 1
            return matvec(operator, flat)

        monkeypatch.setattr(hessian, "eigsh", spy_eigsh)
        monkeypatch.setattr(hessian.HessianOperator, "matvec", spy_matvec)


@pytest.mark.parametrize("hvp", ["double-backprop", "forward-over-reverse"])
def test_arpack_eigenvalues_of_a_wider_linear_mse_match_closed_form(hvp, monkeypatch):
    # 40 parameters, more than the 12 Lanczos vectors: eigsh, not the
    # explicit Hessian.
    model, x, y, hessian = linear_problem(features=40)
    spy = EigshSpy(monkeypatch)
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
    found = landscape.hessian_eigenvalues(
        model, data, k=3, loss="mse", hvp=hvp, iterations=12)
    np.testing.assert_allclose(found, np.linalg.eigvalsh(hessian)[::-1][:3], rtol=1e-3)
    assert found.dtype == np.float64 and list(found) == sorted(found, reverse=True)
    (call,) = spy.calls
    assert (call["ncv"], call["which"], call["k"]) == (12, "LA", 3)
    assert 0 < spy.products < 40


def test_lanczos_reports_the_largest_algebraic_eigenvalues(monkeypatch):
    # The negated mean squared error: every eigenvalue is negative, and the
    # top ones are the smallest in magnitude (power iteration would find
    # the largest in magnitude instead).
    model, x, y, hessian = linear_problem(features=40)
    spy = EigshSpy(monkeypatch)
    found = landscape.hessian_eigenvalues(
        model, (x, y), k=2, iterations=10,
        loss=lambda y_true, y_pred: -keras.losses.mean_squared_error(y_true, y_pred))
    np.testing.assert_allclose(found, np.linalg.eigvalsh(-hessian)[::-1][:2], rtol=1e-3)
    assert len(spy.calls) == 1 and found[0] < 0


def test_small_hessians_are_formed_from_one_hvp_per_parameter(monkeypatch):
    # 6 parameters: k = 6 and 6 or more Lanczos vectors (the default 30, or
    # the least, 2k + 1) form the Hessian from 6 HVPs, exactly.
    model, x, y, hessian = linear_problem()
    expected = np.linalg.eigvalsh(hessian)[::-1]
    for k, iterations in ((6, None), (3, None), (3, 1), (2, 6)):
        spy = EigshSpy(monkeypatch)
        found = landscape.hessian_eigenvalues(
            model, (x, y), k=k, loss="mse", iterations=iterations)
        np.testing.assert_allclose(found, expected[:k], rtol=1e-5)
        assert spy.calls == [] and spy.products == 6


def test_eigenvalues_are_deterministic_in_the_seed(monkeypatch):
    model, x, y, _ = linear_problem(features=40)
    spy = EigshSpy(monkeypatch)
    runs = [landscape.hessian_eigenvalues(model, (x, y), k=2, loss="mse", iterations=8,
                                          seed=seed)
            for seed in (0, 0, 1)]
    np.testing.assert_array_equal(runs[0], runs[1])
    np.testing.assert_allclose(runs[2], runs[0], rtol=1e-5)
    starts = [call["v0"] for call in spy.calls]
    np.testing.assert_array_equal(starts[0], starts[1])
    np.testing.assert_array_equal(starts[0], np.random.default_rng(0).standard_normal(40))
    assert not np.allclose(starts[0], starts[2])


def test_arpack_without_convergence_is_a_clear_error(monkeypatch):
    from scipy.sparse.linalg import ArpackNoConvergence

    from keras_ssgd.landscape import hessian

    def no_convergence(*args, **kwargs):
        raise ArpackNoConvergence("no convergence", np.zeros(0), np.zeros((40, 0)))

    monkeypatch.setattr(hessian, "eigsh", no_convergence)
    model, x, y, _ = linear_problem(features=40)
    with pytest.raises(RuntimeError, match=r"did not converge .* Pass a larger `iterations`"
                       r" .*Received: iterations=10"):
        landscape.hessian_eigenvalues(model, (x, y), k=1, loss="mse", iterations=10)


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
        ({"iterations": 0}, ValueError,
         "Argument `iterations` must be None or an int >= 1. Received: iterations=0"),
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


def classifier(seed, batchnorm=False):
    keras.utils.set_random_seed(seed)
    layers = [keras.Input((6,)), keras.layers.Dense(8, activation="tanh")]
    if batchnorm:
        layers.append(keras.layers.BatchNormalization())
    layers.append(keras.layers.Dense(3))
    model = keras.Sequential(layers)
    model.compile(
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def classification_data(n=90):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(n, 6)).astype("float32")
    return x, x[:, :3].argmax(axis=1).astype("int32")


def test_interpolation_endpoints_equal_evaluate():
    x, y = classification_data()
    a, b, probe = classifier(1), classifier(2), classifier(3)
    line = landscape.interpolate(probe, a, b, (x, y), alphas=[0.0, 0.5, 1.0, 1.5])
    assert line["alpha"] == [0.0, 0.5, 1.0, 1.5]
    for model, i in ((a, 0), (b, 2)):
        loss, accuracy = model.evaluate(x, y, verbose=0, batch_size=256)
        assert line["loss"][i] == pytest.approx(loss, rel=1e-6)
        assert line["error"][i] == pytest.approx(1 - accuracy, abs=1e-7)
    assert line["loss"][1] != pytest.approx(line["loss"][0])
    # The probe model's own weights are left as they were.
    np.testing.assert_array_equal(probe.get_weights()[0], classifier(3).get_weights()[0])


def test_plane_places_models_at_their_coordinates():
    x, y = classification_data()
    models = [classifier(s) for s in (1, 2, 3)]
    first = landscape.plane(models[0], *models, (x, y), grid=5)
    (x1, y1), (x2, y2), (x3, y3) = first["points"]
    assert (x1, y1, y2) == (0.0, 0.0, 0.0) and x2 > 0 and y3 > 0
    assert len(first["loss"]) == 5 and len(first["loss"][0]) == 5
    exact = landscape.plane(models[0], *models, (x, y), grid=([0.0, x2, x3], [0.0, y3]))
    losses = [m.evaluate(x, y, verbose=0, batch_size=256)[0] for m in models]
    np.testing.assert_allclose(
        [exact["loss"][0][0], exact["loss"][0][1], exact["loss"][1][2]], losses, rtol=1e-5
    )


def test_plane_refuses_collinear_points_and_other_architectures():
    x, y = classification_data()
    a, b = classifier(1), classifier(2)
    middle = [(p + q) / 2 for p, q in zip(a.get_weights(), b.get_weights())]
    with pytest.raises(ValueError, match="collinear"):
        landscape.plane(a, a, b, middle, (x, y), grid=3)
    other = classifier(1, batchnorm=True)
    with pytest.raises(ValueError, match="architectures differ"):
        landscape.interpolate(a, a, other, (x, y))
    wide = keras.Sequential([keras.Input((6,)), keras.layers.Dense(9), keras.layers.Dense(3)])
    with pytest.raises(ValueError, match="first mismatching variable is '.*kernel'"):
        landscape.interpolate(a, a, wide, (x, y))
    with pytest.raises(ValueError, match="is empty"):
        landscape.interpolate(a, a, b, (x[:0], y[:0]))


def test_recomputed_batchnorm_statistics_are_the_batch_average():
    x, _ = classification_data(n=96)
    model = keras.Sequential([keras.Input((6,)), keras.layers.BatchNormalization()])
    data = tf.data.Dataset.from_tensor_slices(x).batch(32)
    assert landscape.recompute_batchnorm(model, data) == 3
    bn = model.layers[0]
    np.testing.assert_allclose(bn.moving_mean.numpy(), x.mean(axis=0), atol=1e-5)
    batch_vars = np.mean([x[i:i + 32].var(axis=0) for i in (0, 32, 64)], axis=0)
    np.testing.assert_allclose(bn.moving_variance.numpy(), batch_vars, rtol=1e-4)
    assert bn.momentum == 0.99  # restored


def test_filter_normalized_directions():
    model = classifier(1, batchnorm=True)
    (direction,) = landscape.random_directions(model, seed=3)
    for w, d in zip(model.get_weights(), direction):
        if w.ndim < 2:
            assert not d.any()
        else:
            np.testing.assert_allclose(
                np.linalg.norm(d, axis=0), np.linalg.norm(w, axis=0), rtol=1e-5
            )
    other = landscape.random_directions(model, seed=4)[0]
    assert not np.allclose(direction[0], other[0])


def test_epsilon_sharpness_grows_with_epsilon_and_restores_weights():
    x, y = classification_data()
    model = classifier(1)
    model.fit(x, y, epochs=5, verbose=0)
    before = [w.copy() for w in model.get_weights()]
    small = landscape.epsilon_sharpness(model, (x, y), epsilon=1e-3)
    large = landscape.epsilon_sharpness(model, (x, y), epsilon=1e-1)
    assert 0 < small < large
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
