"""The baselines: their noise rules and their training steps.

The noise rules of `keras_ssgd.noise` and SAM's and ASAM's ascent steps
are checked as pure functions; each baseline model's step is checked
against a hand computation with `tf.GradientTape` on a plain copy of the
model, with the model's random draw reproduced from `(seed, optimizer
step)`.
"""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import assert_bit_identical
from conftest import compile_for_classification
from conftest import make_classification
from conftest import mlp
from conftest import weights_of
from keras import ops

import keras_ssgd
from keras_ssgd import noise as noise_lib
from keras_ssgd.baselines import dropconnect
from keras_ssgd.baselines import smoothout
from keras_ssgd.baselines.asam import adaptive_sharpness_aware_perturbation
from keras_ssgd.baselines.sam import sharpness_aware_perturbation
from keras_ssgd.methods import METHODS
from keras_ssgd.wrapping import wrapper_class

BASELINES = {
    "weight-noise": keras_ssgd.WeightNoiseModel,
    "smoothout": keras_ssgd.SmoothOutModel,
    "dropconnect": keras_ssgd.DropConnectModel,
    "sam": keras_ssgd.SharpnessAwareModel,
    "asam": keras_ssgd.AdaptiveSharpnessAwareModel,
    "msam": keras_ssgd.MomentumSAMModel,
}
LEVEL_ARGUMENT = {
    "weight-noise": "noise_level",
    "smoothout": "noise_level",
    "dropconnect": "rate",
    "sam": "rho",
    "asam": "rho",
    "msam": "rho",
}
RANDOM = ("weight-noise", "smoothout", "dropconnect")
# The methods that draw nothing at random, and so take no seed.
SEEDLESS = ("sam", "asam", "msam")
# The methods `wrap()` builds by name, and their model classes.
WRAPPABLE = {name: m.model_class for name, m in METHODS.items() if m.wrappable}


def tensors(shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [
        ops.convert_to_tensor(rng.standard_normal(s) * (i + 1), "float32")
        for i, s in enumerate(shapes)
    ]


def generator_at(seed, step):
    """A seed generator in the state a model puts its own in at `step`."""
    generator = keras.random.SeedGenerator(0)
    generator.state.assign(np.array([seed, step], "uint32"))
    return generator


def level_kwargs(method, level, seed=None):
    kwargs = {LEVEL_ARGUMENT[method]: level}
    if seed is not None and method not in SEEDLESS:
        kwargs["seed"] = seed
    return kwargs


def sparse_ce(y, logits):
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)(
        y, logits
    )


def loss_and_gradients(model, weights, x, y):
    """Loss and gradients of a plain `model` with its weights set to `weights`."""
    model.set_weights(weights)
    with tf.GradientTape() as tape:
        loss = sparse_ce(y, model(x, training=True))
    gradients = tape.gradient(loss, model.trainable_variables)
    return float(loss), [np.array(g) for g in gradients]


# --------------------------------------------------------------------------
# The noise rules, as pure functions.
# --------------------------------------------------------------------------

SHAPES = [(3, 3, 4, 8), (8, 10), (5, 7, 2), (20,)]


@pytest.mark.parametrize("level", [0.05, 0.5, 1.7])
def test_gaussian_noise_has_the_relative_length_of_each_weight(level):
    weights = tensors(SHAPES, seed=1)
    noise = noise_lib.gaussian_noise(weights, level, seed=4)
    assert len(noise) == len(weights)
    for w, n in zip(weights, noise):
        assert tuple(n.shape) == tuple(w.shape)
        np.testing.assert_allclose(
            np.linalg.norm(np.array(n)),
            level * np.linalg.norm(np.array(w)),
            rtol=1e-5,
        )


@pytest.mark.parametrize("level", [0.1, 0.8])
def test_uniform_noise_is_bounded_per_element_by_each_weight(level):
    weights = tensors(SHAPES, seed=2)
    noise = smoothout.uniform_noise(weights, level, seed=5)
    for w, n in zip(weights, noise):
        w, n = np.array(w), np.array(n)
        assert n.shape == w.shape
        bound = level * np.linalg.norm(w) / math.sqrt(w.size)
        assert np.abs(n).max() <= bound * (1 + 1e-6)
        # The bound of this tensor, not a smaller one: some element nears it.
        assert np.abs(n).max() > 0.7 * bound


def test_uniform_noise_elements_are_uniform_on_the_bound():
    level = 0.6
    rng = np.random.default_rng(3)
    w = rng.standard_normal((300, 300)).astype("float32") * 0.2
    n = np.array(smoothout.uniform_noise([ops.convert_to_tensor(w)], level, 7)[0])
    a = level * np.linalg.norm(w) / math.sqrt(w.size)
    assert abs(n.mean()) < 0.01 * a
    np.testing.assert_allclose(n.var(), a**2 / 3, rtol=0.03)
    # Uniform, not concentrated at the bound nor at 0: a quarter per quarter.
    quarters = np.histogram(n, bins=4, range=(-a, a))[0] / n.size
    np.testing.assert_allclose(quarters, 0.25, atol=0.01)
    # Expected length level * ||W|| / sqrt(3): weaker than S-SGD's.
    np.testing.assert_allclose(
        np.linalg.norm(n), level * np.linalg.norm(w) / math.sqrt(3), rtol=0.02
    )


@pytest.mark.parametrize("rate", [0.2, 0.6])
def test_dropconnect_scales_drop_a_fraction_rate_and_rescale_the_rest(rate):
    weights = tensors([(200, 300), (50,)], seed=4)
    scales = dropconnect.dropconnect_scales(weights, rate, seed=6)
    assert [tuple(s.shape) for s in scales] == [(200, 300), (50,)]
    assert all(
        keras.backend.standardize_dtype(s.dtype) == "float32" for s in scales
    )
    s = np.concatenate([np.array(t).ravel() for t in scales])
    kept = s != 0
    np.testing.assert_allclose(s[kept], np.float32(1 / (1 - rate)), rtol=1e-6)
    assert abs((~kept).mean() - rate) < 0.01
    assert abs(s.mean() - 1.0) < 0.02  # E[W * scale] = W


def test_dropconnect_rate_zero_keeps_every_weight():
    scales = dropconnect.dropconnect_scales(tensors([(30, 40), (7,)]), 0.0, 1)
    for s in scales:
        np.testing.assert_array_equal(np.array(s), np.ones(s.shape, "float32"))


def test_sharpness_aware_perturbation_has_radius_rho_along_g():
    rho = 0.3
    g = tensors([(3, 4), (5,), (2, 2, 2)], seed=5)
    gradients = [g[0], None, g[1], g[2]]
    steps = sharpness_aware_perturbation(gradients, rho)
    assert steps[1] is None
    present = [np.array(e) for e in steps if e is not None]
    total = math.sqrt(sum(float(np.sum(e**2)) for e in present))
    np.testing.assert_allclose(total, rho, rtol=1e-5)
    # One scale for the whole list: e = rho * g / ||g||, ||g|| global.
    g_norm = math.sqrt(sum(float(np.sum(np.array(t) ** 2)) for t in g))
    for e, t in zip(present, g):
        assert e.shape == tuple(t.shape)
        np.testing.assert_allclose(e, rho * np.array(t) / g_norm, rtol=1e-5)
    # A per-tensor normalisation would give each tensor length rho.
    assert np.linalg.norm(present[0]) < rho * 0.99


def test_sharpness_aware_perturbation_all_none():
    assert sharpness_aware_perturbation([None, None], 0.1) == [
        None,
        None,
    ]


@pytest.mark.parametrize("bad", [0.0, np.inf, -np.inf, np.nan])
def test_sharpness_aware_perturbation_zero_or_non_finite_gradient(bad):
    g = [np.ones((3, 2), "float32"), np.full((4,), 2.0, "float32")]
    if bad == 0.0:
        g = [np.zeros_like(t) for t in g]
    else:
        g[1][2] = bad
    steps = sharpness_aware_perturbation(
        [ops.convert_to_tensor(t) for t in g], 0.5
    )
    for e, t in zip(steps, g):
        np.testing.assert_array_equal(np.array(e), np.zeros_like(t))


def asam_by_hand(gradients, weights, rho, eta):
    """ASAM's step in float64: `rho * T^2 g / ||T g||`, `T = |W| + eta`."""
    pairs = [
        (np.array(g, "float64"), np.abs(np.array(w, "float64")) + eta)
        for g, w in zip(gradients, weights) if g is not None
    ]
    norm = math.sqrt(sum(float(np.sum((t * g) ** 2)) for g, t in pairs))
    steps = iter([rho * t**2 * g / norm for g, t in pairs])
    return [None if g is None else next(steps) for g in gradients]


@pytest.mark.parametrize("eta", [0.01, 0.0, 0.7])
def test_adaptive_sharpness_aware_perturbation_by_hand(eta):
    rho = 0.3
    shapes = [(3, 4), (6,), (5,), (2, 2, 2)]
    g = tensors(shapes, seed=6)
    w = tensors(shapes, seed=7)
    w[2] = ops.zeros((5,))  # a zero weight: T = eta there
    gradients = [g[0], None, g[2], g[3]]
    steps = adaptive_sharpness_aware_perturbation(
        gradients, w, rho, eta=eta
    )
    assert steps[1] is None
    expected = asam_by_hand(gradients, w, rho, eta)
    for e, x, t in zip(steps, expected, gradients):
        if t is None:
            continue
        assert tuple(e.shape) == tuple(t.shape)
        np.testing.assert_allclose(np.array(e), x, rtol=1e-5, atol=1e-7)
    # The radius: ||T^-1 e|| = rho over the whole list (where T = 0, e = 0).
    total = 0.0
    for e, v in zip(steps, w):
        if e is not None:
            t = np.abs(np.array(v, "float64")) + eta
            e = np.array(e, "float64")
            assert np.all(e[t == 0] == 0)
            total += float(np.sum((e[t > 0] / t[t > 0]) ** 2))
    total = math.sqrt(total)
    # A zero weight moves only with eta > 0.
    assert (np.abs(np.array(steps[2])).max() > 0) == (eta > 0)
    np.testing.assert_allclose(total, rho, rtol=1e-5)


def test_adaptive_sharpness_aware_perturbation_eta_0_is_davda54_sam():
    # davda54/sam, adaptive=True: e_w = p^2 * g * rho / ||(|p| * g)||.
    rho = 0.5
    g = tensors([(4, 3), (3,)], seed=8)
    p = tensors([(4, 3), (3,)], seed=9)
    steps = adaptive_sharpness_aware_perturbation(g, p, rho, eta=0)
    gs = [np.array(t, "float64") for t in g]
    ps = [np.array(t, "float64") for t in p]
    norm = np.linalg.norm(
        np.concatenate([(np.abs(q) * t).ravel() for q, t in zip(ps, gs)])
    )
    for e, q, t in zip(steps, ps, gs):
        np.testing.assert_allclose(
            np.array(e), q**2 * t * rho / norm, rtol=1e-5, atol=1e-7
        )
    # Scale invariance: weights scaled by c give steps scaled by c.
    c = 4.0
    scaled = adaptive_sharpness_aware_perturbation(
        g, [t * c for t in p], rho, eta=0
    )
    for a, b in zip(scaled, steps):
        np.testing.assert_allclose(np.array(a), c * np.array(b), rtol=1e-5)


def test_adaptive_sharpness_aware_perturbation_all_none_and_lengths():
    w = tensors([(2,), (3,)])
    assert adaptive_sharpness_aware_perturbation(
        [None, None], w, 0.1
    ) == [None, None]
    with pytest.raises(ValueError, match="`gradients` and `weights`"):
        adaptive_sharpness_aware_perturbation(w, w[:1], 0.1)


@pytest.mark.parametrize("bad", [0.0, np.inf, -np.inf, np.nan])
@pytest.mark.parametrize("where", ["gradient", "weight"])
def test_adaptive_sharpness_aware_perturbation_zero_or_non_finite(bad, where):
    g = [np.ones((3, 2), "float32"), np.full((4,), 2.0, "float32")]
    w = [np.full((3, 2), 0.5, "float32"), np.ones((4,), "float32")]
    if bad == 0.0:
        g = [np.zeros_like(t) for t in g]
    elif where == "gradient":
        g[1][2] = bad
    else:
        w[1][2] = bad
    steps = adaptive_sharpness_aware_perturbation(
        [ops.convert_to_tensor(t) for t in g],
        [ops.convert_to_tensor(t) for t in w], 0.5,
    )
    for e, t in zip(steps, g):
        np.testing.assert_array_equal(np.array(e), np.zeros_like(t))


# --------------------------------------------------------------------------
# The training steps, against hand computations.
# --------------------------------------------------------------------------

KERNELS = (0, 2)  # positions of the kernels in mlp().trainable_variables


def expected_random_step(method, level, seed, start, x, y, lr):
    """`(loss, new weights)` of one step of a random baseline, by hand.

    The noise is drawn on the kernels only (not the biases), with the seed
    generator at `[seed, 0]`, as the model draws it at its first step.
    """
    kernels = [ops.convert_to_tensor(start[i]) for i in KERNELS]
    generator = generator_at(seed, 0)
    perturbed = list(start)
    scales = {}
    if method == "dropconnect":
        drawn = dropconnect.dropconnect_scales(kernels, level, generator)
        for i, s in zip(KERNELS, drawn):
            scales[i] = np.array(s)
            perturbed[i] = start[i] * scales[i]
    else:
        rule = {
            "weight-noise": noise_lib.gaussian_noise,
            "smoothout": smoothout.uniform_noise,
        }[method]
        drawn = rule(kernels, level, generator)
        for i, n in zip(KERNELS, drawn):
            perturbed[i] = start[i] + np.array(n)
    loss, gradients = loss_and_gradients(mlp(), perturbed, x, y)
    for i, s in scales.items():
        gradients[i] = gradients[i] * s  # chain rule through W * scale
    return loss, [w - lr * g for w, g in zip(start, gradients)], scales


@pytest.mark.parametrize(
    "method,level", [("weight-noise", 0.5), ("smoothout", 0.8), ("dropconnect", 0.5)]
)
def test_random_baseline_step_is_the_gradient_at_the_drawn_point(method, level):
    x, y = make_classification(32)
    lr = 0.5
    model = keras_ssgd.wrap(mlp(), method=method, **level_kwargs(method, level, 3))
    compile_for_classification(model, keras.optimizers.SGD(lr))
    start = weights_of(model)
    history = model.fit(x, y, batch_size=32, epochs=1, verbose=0).history
    after = weights_of(model)

    loss, expected, scales = expected_random_step(
        method, level, 3, start, x, y, lr
    )
    for i, (a, e) in enumerate(zip(after, expected)):
        np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-6, err_msg=f"{i}")
    assert history["loss"][0] == pytest.approx(loss, rel=1e-5)

    # The noise mattered: plain SGD would have moved the weights elsewhere.
    plain_loss, plain_grads = loss_and_gradients(mlp(), start, x, y)
    plain = [w - lr * g for w, g in zip(start, plain_grads)]
    assert max(np.abs(a - p).max() for a, p in zip(after, plain)) > 1e-3
    assert loss != pytest.approx(plain_loss, rel=1e-3)

    if method == "dropconnect":
        # A dropped weight gets no gradient: plain SGD leaves it as it was.
        for i, s in scales.items():
            dropped = s == 0
            assert 0 < dropped.sum() < dropped.size
            np.testing.assert_array_equal(after[i][dropped], start[i][dropped])
            assert (after[i][~dropped] != start[i][~dropped]).mean() > 0.9


@pytest.mark.parametrize("method", ["weight-noise", "smoothout"])
def test_additive_noise_on_a_linear_model_in_closed_form(method):
    # Linear model + MSE: grad L(W + n) = grad L(W) + 2/(N k) x^T x n, so
    # one-sided noise shifts the update (S-SGD's +n/-n average cancels it),
    # and the bias is unperturbed: its gradient is taken at the clean bias.
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 5)).astype("float32")
    y = rng.standard_normal((16, 2)).astype("float32")
    lr, level = 0.2, 0.5
    inputs = keras.Input((5,))
    model = BASELINES[method](
        inputs, keras.layers.Dense(2)(inputs), noise_level=level, seed=11
    )
    model.compile(keras.optimizers.SGD(lr), loss="mse")
    w, b = (np.array(v, "float64") for v in model.trainable_variables)
    kernel = model.trainable_variables[0]
    rule = {
        "weight-noise": noise_lib.gaussian_noise,
        "smoothout": smoothout.uniform_noise,
    }[method]
    n = np.array(rule([kernel.value], level, generator_at(11, 0))[0], "float64")
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)

    scale = 2.0 / y.size
    residual = x @ (w + n) + b - y
    np.testing.assert_allclose(
        np.array(kernel), w - lr * scale * x.T @ residual, rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        np.array(model.trainable_variables[1]),
        b - lr * scale * residual.sum(axis=0),
        rtol=1e-5,
        atol=1e-6,
    )
    shift = lr * scale * x.T @ x @ n  # the one-sided noise's first-order term
    assert np.abs(shift).max() > 1e-2


def _one_step_at(method, lr, ascent, **kwargs):
    """One full-batch step of `method`, checked against the plain gradient
    at the point `ascent(start, g)` gives (`g` the gradient at `W`): the
    update, the reported loss (at that point, above the loss at `W`), and
    that it is not plain SGD's update. Returns `(start, after, g, probe,
    x, y)` for the method's own checks."""
    x, y = make_classification(32)
    model = keras_ssgd.wrap(mlp(), method=method, **kwargs)
    compile_for_classification(model, keras.optimizers.SGD(lr))
    start = weights_of(model)
    history = model.fit(x, y, batch_size=32, epochs=1, verbose=0).history
    after = weights_of(model)

    probe = mlp()
    plain_loss, g = loss_and_gradients(probe, start, x, y)
    loss, g_point = loss_and_gradients(probe, ascent(start, g), x, y)
    expected = [w - lr * t for w, t in zip(start, g_point)]
    for i, (a, e) in enumerate(zip(after, expected)):
        np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-6, err_msg=f"{i}")
    # The reported loss is the loss at W + e, which is above the loss at W.
    assert history["loss"][0] == pytest.approx(loss, rel=1e-5)
    assert loss > plain_loss * 1.01
    plain = [w - lr * t for w, t in zip(start, g)]
    assert max(np.abs(a - p).max() for a, p in zip(after, plain)) > 1e-3
    return start, after, g, probe, x, y


def _norm(tensors):
    return math.sqrt(sum(float(np.sum(t.astype("float64") ** 2))
                         for t in tensors))


def test_sharpness_aware_step_by_hand():
    lr, rho = 0.5, 0.4
    start, after, g, probe, x, y = _one_step_at(
        "sam", lr,
        lambda start, g: [w + rho * t / _norm(g)  # biases too
                          for w, t in zip(start, g)],
        rho=rho,
    )
    # Without the biases in e the step differs: the default filter has them.
    no_bias = [
        w + rho * t / _norm(g) if w.ndim >= 2 else w
        for w, t in zip(start, g)
    ]
    _, g_kernels_only = loss_and_gradients(probe, no_bias, x, y)
    assert max(
        np.abs(a - (w - lr * t)).max()
        for a, w, t in zip(after, start, g_kernels_only)
    ) > 1e-5


def test_adaptive_sharpness_aware_step_by_hand():
    lr, rho, eta = 0.5, 0.5, 0.05
    start, after, g, probe, x, y = _one_step_at(
        "asam", lr,
        # Biases too, T = eta on them.
        lambda start, g: [w + e for w, e in
                          zip(start, asam_by_hand(g, start, rho, eta))],
        rho=rho, eta=eta,
    )
    # SAM's point at the same radius is another one: the rule mattered.
    sam_point = [w + rho * t / _norm(g) for w, t in zip(start, g)]
    _, g_sam = loss_and_gradients(probe, sam_point, x, y)
    assert max(
        np.abs(a - (w - lr * t)).max() for a, w, t in zip(after, start, g_sam)
    ) > 1e-4


def test_default_noise_variables_of_each_baseline():
    def conv_net():
        inputs = keras.Input((16, 2))
        h = keras.layers.Conv1D(6, 3, activation="relu")(inputs)
        h = keras.layers.GlobalAveragePooling1D()(h)
        return keras.Model(inputs, keras.layers.Dense(3)(h))

    base = conv_net()

    def paths(method):
        model = keras_ssgd.wrap(base, method=method)
        return [v.path for v in model.noise_variables]

    kernels = ["conv1d/kernel", "dense/kernel"]
    assert paths("weight-noise") == kernels
    assert paths("smoothout") == kernels
    assert paths("dropconnect") == ["dense/kernel"]  # no Conv1D kernel
    every = ["conv1d/kernel", "conv1d/bias", "dense/kernel", "dense/bias"]
    assert paths("sam") == every
    assert paths("asam") == every
    for cls in (
        keras_ssgd.SharpnessAwareModel, keras_ssgd.AdaptiveSharpnessAwareModel
    ):
        assert cls.default_noise_filter is keras_ssgd.filters.all_trainable


def train_at_level_zero(method):
    x, y = make_classification(64)
    keras.utils.set_random_seed(3)
    # BatchNorm: a second pass at level 0 would update its statistics twice.
    model = mlp(batchnorm=True)
    if method is not None:
        model = keras_ssgd.wrap(
            model, method=method, **level_kwargs(method, 0.0, seed=5)
        )
    compile_for_classification(model)
    history = model.fit(x, y, batch_size=32, epochs=2, verbose=0)
    return weights_of(model), history.history


_PLAIN_KERAS = []  # the plain run, computed once for every method


@pytest.mark.parametrize("method", sorted(BASELINES))
@pytest.mark.exact
def test_level_zero_is_bit_identical_to_keras(method, op_determinism):
    if not _PLAIN_KERAS:
        _PLAIN_KERAS.append(train_at_level_zero(None))
    plain_weights, plain_history = _PLAIN_KERAS[0]
    weights, history = train_at_level_zero(method)
    assert_bit_identical(weights, plain_weights)
    assert history == plain_history


@pytest.mark.parametrize("method", sorted(BASELINES))
def test_zero_learning_rate_and_non_finite_loss_keep_the_weights(method):
    x, y = make_classification(32)
    model = keras_ssgd.wrap(mlp(), method=method, **level_kwargs(method, 0.5, 2))
    compile_for_classification(model, keras.optimizers.SGD(0.0, momentum=0.9))
    start = weights_of(model)

    # The same batch three times with lr = 0: W is never written, yet the
    # random methods measure a new point (a new loss) at every step.
    losses = []
    record = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda b, logs: losses.append(logs["loss"])
    )
    model.fit(
        np.tile(x, (3, 1)), np.tile(y, 3), batch_size=32, shuffle=False,
        callbacks=[record], verbose=0,
    )
    assert model.optimizer.iterations.numpy() == 3
    assert_bit_identical(weights_of(model), start)
    assert np.isfinite(losses).all()
    # `logs["loss"]` is the running mean over the epoch: equal losses give
    # equal means up to the rounding of the mean itself.
    spread = max(losses) - min(losses)
    if method in RANDOM:
        assert spread > 1e-4
    else:
        assert spread <= 1e-6 * abs(losses[0])

    # With lr > 0, a batch whose loss is NaN skips the update entirely...
    model.optimizer.learning_rate.assign(0.1)
    poisoned = x.copy()
    poisoned[5, 0] = np.nan
    history = model.fit(
        poisoned, y, batch_size=32, verbose=0,
        callbacks=[keras.callbacks.TerminateOnNaN()],
    )
    assert np.isnan(history.history["loss"][0])
    assert model.optimizer.iterations.numpy() == 3
    assert_bit_identical(weights_of(model), start)
    # ... and the next finite batch updates every weight.
    model.fit(x, y, batch_size=32, verbose=0)
    assert model.optimizer.iterations.numpy() == 4
    assert all(
        np.isfinite(a).all() and not np.array_equal(a, b)
        for a, b in zip(weights_of(model), start)
    )


# --------------------------------------------------------------------------
# Arguments, aliases, saving and wrapping.
# --------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [1.0, 1.5, -0.1])
def test_dropconnect_refuses_a_rate_outside_0_1(rate):
    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(2)(inputs)
    with pytest.raises(ValueError, match=rf"`rate`.*rate={rate}"):
        keras_ssgd.DropConnectModel(inputs, outputs, rate=rate)
    with pytest.raises(ValueError, match=rf"`rate`.*rate={rate}"):
        keras_ssgd.wrap(mlp(), method="dropconnect", rate=rate)


def test_dropconnect_rate_is_the_noise_level():
    model = keras_ssgd.wrap(mlp(), method="dropconnect", rate=0.3)
    assert model.rate == pytest.approx(0.3)
    assert model.noise_level == pytest.approx(0.3)
    model.rate = 0.1
    assert model.noise_level == pytest.approx(0.1)
    model.noise_level = 0.25
    assert model.rate == pytest.approx(0.25)
    with pytest.raises(ValueError, match=r"`rate`.*rate=1.0"):
        model.rate = 1.0
    with pytest.raises(ValueError, match=r"`rate`"):
        model.noise_level = 2.0
    assert model.rate == pytest.approx(0.25)
    assert model.get_config()["rate"] == pytest.approx(0.25)


def test_sam_rho_is_the_noise_level():
    model = keras_ssgd.wrap(mlp(), method="sam")
    assert model.rho == pytest.approx(0.05)  # the paper's default
    model.rho = 0.2
    assert model.noise_level == pytest.approx(0.2)
    model.noise_level = 0.125
    assert model.rho == 0.125
    with pytest.raises(ValueError, match=r"`rho`.*rho=-1.0"):
        model.rho = -1.0
    assert model.rho == 0.125
    config = model.get_config()
    assert config["rho"] == 0.125
    assert "noise_level" not in config


def test_asam_defaults_rho_and_eta():
    model = keras_ssgd.wrap(mlp(), method="asam")
    assert type(model).__name__ == "AdaptiveSharpnessAwareModel"
    assert isinstance(model, keras_ssgd.SharpnessAwareModel)
    assert model.rho == 0.5  # the authors' CIFAR-10 radius
    assert model.eta == 0.01
    assert model.passes == 2 and model.level_argument == "rho"
    model.rho = 0.25
    assert model.noise_level == 0.25
    with pytest.raises(ValueError, match=r"`rho`.*rho=-1.0"):
        model.rho = -1.0
    config = model.get_config()
    assert config["rho"] == 0.25 and config["eta"] == 0.01
    assert "noise_level" not in config and "seed" not in config
    with pytest.raises(AttributeError):
        model.eta = 0.5  # fixed at construction
    assert keras_ssgd.wrap(mlp(), method="asam", eta=0).eta == 0.0


@pytest.mark.parametrize("eta", [-1, -0.5, np.inf, np.nan])
def test_asam_refuses_a_bad_eta(eta):
    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(2)(inputs)
    message = (
        rf"Argument `eta` must be a finite float >= 0\. "
        rf"Received: eta={float(eta)}"
    )
    with pytest.raises(ValueError, match=message):
        keras_ssgd.AdaptiveSharpnessAwareModel(inputs, outputs, eta=eta)
    with pytest.raises(ValueError, match=message):
        keras_ssgd.wrap(mlp(), method="asam", eta=eta)
    with pytest.raises(TypeError, match=r"`eta`.*eta='big'"):
        keras_ssgd.wrap(mlp(), method="asam", eta="big")


@pytest.mark.parametrize("method", sorted(BASELINES))
def test_save_and_load_keeps_the_class_and_arguments(method, tmp_path):
    argument = LEVEL_ARGUMENT[method]
    kwargs = {argument: 0.375, "batchnorm_update": "first"}
    if method not in SEEDLESS:
        kwargs["seed"] = 17
    if method == "asam":
        kwargs["eta"] = 0.125
    model = keras_ssgd.wrap(mlp(), method=method, **kwargs)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)

    cls = BASELINES[method]
    assert type(loaded).__name__ == cls.__name__
    assert isinstance(loaded, cls)
    config = loaded.get_config()
    assert config[argument] == 0.375
    assert loaded.noise_level == 0.375
    assert loaded.batchnorm_update == "first"
    if method == "asam":
        assert config["eta"] == 0.125
        assert loaded.eta == 0.125
    if method in SEEDLESS:
        assert "seed" not in config
    else:
        assert config["seed"] == 17
        assert loaded.seed == 17
    if argument != "noise_level":
        assert "noise_level" not in config
    x = make_classification(8)[0]
    np.testing.assert_array_equal(np.array(loaded(x)), np.array(model(x)))


def test_wrap_returns_each_method_class():
    assert set(BASELINES) <= set(WRAPPABLE)
    for name, cls in WRAPPABLE.items():
        model = keras_ssgd.wrap(mlp(), method=name)
        assert type(model).__name__ == cls.__name__
        assert isinstance(model, cls)
        assert isinstance(model, keras_ssgd.PerturbedModel)
        if name in BASELINES:
            assert cls is BASELINES[name]
    assert type(keras_ssgd.wrap(mlp())).__name__ == "SymmetricSGDModel"


def test_wrap_refuses_an_unknown_method():
    with pytest.raises(ValueError, match="`method`") as info:
        keras_ssgd.wrap(mlp(), method="bogus")
    message = str(info.value)
    assert "'bogus'" in message
    for name in WRAPPABLE:
        assert repr(name) in message


class Plain(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.hidden = keras.layers.Dense(16, activation="tanh")
        self.out = keras.layers.Dense(3)

    def call(self, x):
        return self.out(self.hidden(x))


def test_wrapping_a_subclassed_model_with_sam_trains():
    x, y = make_classification(32)
    base = Plain()
    model = keras_ssgd.wrap(base, method="sam", rho=0.1)
    wrapper = wrapper_class(keras_ssgd.SharpnessAwareModel)
    assert type(model) is wrapper
    assert wrapper_class(keras_ssgd.SharpnessAwareModel) is wrapper
    assert isinstance(model, keras_ssgd.SharpnessAwareModel)
    name = keras.saving.get_registered_name(wrapper)
    assert name == "keras_ssgd>SharpnessAwareModelWrapper"
    assert keras.saving.get_registered_object(name) is wrapper
    assert model.rho == pytest.approx(0.1)

    compile_for_classification(model, keras.optimizers.SGD(0.1))
    model.build((None, 8))
    start = weights_of(model)
    history = model.fit(x, y, batch_size=32, epochs=1, verbose=0).history
    assert model.optimizer.iterations.numpy() == 1
    assert np.isfinite(history["loss"][0])
    assert len(model.noise_variables) == 4  # biases too
    assert all(
        not np.array_equal(a, b) for a, b in zip(weights_of(model), start)
    )
    # The base model holds the trained weights.
    assert {id(v) for v in base.weights} == {id(v) for v in model.weights}
