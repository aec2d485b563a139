"""The split form of S-SGD (`SymmetricSGDModel(split_batch=True)`).

Runs under every backend (`KERAS_BACKEND=jax pytest tests/core/test_split.py`);
the TensorFlow-only parts (`ssgd-train`, a batch size unknown when the
step is traced) are skipped elsewhere.
"""


import keras
import numpy as np
import pytest
from conftest import assert_bit_identical
from conftest import compile_for_classification
from conftest import make_classification
from conftest import mlp

import keras_ssgd
from keras_ssgd import noise as noise_lib
from keras_ssgd.callbacks import NoiseSchedule
from keras_ssgd.phases import PhasePlan
from keras_ssgd.wrapping import SymmetricSGDWrapper

BACKEND = keras.backend.backend()
LEVEL = 0.5


def numpy_weights(model):
    return [keras.ops.convert_to_numpy(v) for v in model.weights]


def noise_at_step(model, step):
    """The noise of optimizer step `step`, drawn as the model draws it."""
    generator = keras.random.SeedGenerator(0)
    generator.state.assign(np.array([model.seed, step], "int32"))
    weights = [v.value for v in model.noise_variables]
    noise = noise_lib.symmetric_noise(weights, model.noise_level, generator)
    return [keras.ops.convert_to_numpy(n) for n in noise]


def linear(features=5, classes=3, **kwargs):
    """A softmax regression: its gradients are easy to write by hand."""
    keras.utils.set_random_seed(1)
    inputs = keras.Input((features,))
    outputs = keras.layers.Dense(classes)(inputs)
    return keras_ssgd.SymmetricSGDModel(inputs, outputs, **kwargs)


def softmax_ce(x, y, kernel, bias):
    """Per-example cross-entropy and its mean gradients, in float64."""
    x, kernel, bias = (np.asarray(a, "float64") for a in (x, kernel, bias))
    logits = x @ kernel + bias
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    losses = -np.log(p[np.arange(len(y)), y])
    d = p.copy()
    d[np.arange(len(y)), y] -= 1.0
    return losses, x.T @ d / len(y), d.sum(axis=0) / len(y)


def data(n, features=5, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, features)).astype("float32")
    return x, rng.integers(0, classes, n).astype("int32")


@pytest.mark.parametrize("batch", [8, 7])
def test_one_step_is_the_size_weighted_mean_of_the_half_gradients(batch):
    x, y = data(batch)
    model = linear(noise_level=LEVEL, seed=3, split_batch=True)
    compile_for_classification(model, keras.optimizers.SGD(0.1))
    (n,) = noise_at_step(model, 0)  # the kernel only (default filter)
    kernel, bias = numpy_weights(model)
    model.fit(x, y, batch_size=batch, epochs=1, shuffle=False, verbose=0)

    m1 = (batch + 1) // 2  # the extra example goes to the W + n half
    _, g1, gb1 = softmax_ce(x[:m1], y[:m1], kernel + n, bias)
    _, g2, gb2 = softmax_ce(x[m1:], y[m1:], kernel - n, bias)
    m2 = batch - m1
    g = (m1 * g1 + m2 * g2) / batch
    gb = (m1 * gb1 + m2 * gb2) / batch
    new_kernel, new_bias = numpy_weights(model)
    np.testing.assert_allclose(new_kernel, kernel - 0.1 * g, atol=2e-6)
    np.testing.assert_allclose(new_bias, bias - 0.1 * gb, atol=2e-6)
    # Not the full S-SGD step, nor the plain one.
    _, g_full_plus, _ = softmax_ce(x, y, kernel + n, bias)
    _, g_full_minus, _ = softmax_ce(x, y, kernel - n, bias)
    full = kernel - 0.1 * (g_full_plus + g_full_minus) / 2
    assert np.abs(new_kernel - full).max() > 1e-4


def test_quadratic_loss_and_identical_halves_give_the_plain_step():
    # Linear model and MSE: the gradient is linear in W, so on two
    # identical halves (g(W + n) + g(W - n)) / 2 == g(W) exactly.
    rng = np.random.default_rng(0)
    half_x = rng.standard_normal((16, 5)).astype("float32")
    half_y = rng.standard_normal((16, 2)).astype("float32")
    x, y = np.concatenate([half_x, half_x]), np.concatenate([half_y, half_y])

    def step(cls, **kwargs):
        keras.utils.set_random_seed(1)
        inputs = keras.Input((5,))
        model = cls(inputs, keras.layers.Dense(2)(inputs), **kwargs)
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        model.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0)
        return numpy_weights(model)

    split = step(
        keras_ssgd.SymmetricSGDModel, noise_level=0.9, seed=2, split_batch=True
    )
    plain = step(keras.Model)
    for s, p in zip(split, plain):
        np.testing.assert_allclose(s, p, atol=1e-6)


def conv_net():
    inputs = keras.Input((16, 2))
    h = keras.layers.Conv1D(6, 3, activation="relu")(inputs)
    h = keras.layers.GlobalAveragePooling1D()(h)
    h = keras.layers.Dense(8, activation="relu")(h)
    return keras.Model(inputs, keras.layers.Dense(3)(h))


def test_zero_learning_rate_leaves_every_weight_bit_identical():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 16, 2)).astype("float32")
    y = rng.integers(0, 3, 40).astype("int32")
    model = keras_ssgd.wrap(
        conv_net(), noise_level=LEVEL, seed=1, split_batch=True
    )
    compile_for_classification(model, keras.optimizers.SGD(0.0, momentum=0.9))
    start = numpy_weights(model)
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 5
    assert np.isfinite(history.history["loss"][0])
    assert_bit_identical(numpy_weights(model), start)


def test_level_zero_is_keras_training():
    x, y = make_classification(128)

    def train(wrap):
        keras.utils.set_random_seed(3)
        model = mlp(batchnorm=True, dropout=0.2)
        if wrap:
            model = keras_ssgd.wrap(
                model, noise_level=0.0, seed=5, split_batch=True
            )
        compile_for_classification(model, keras.optimizers.Adam(1e-2))
        history = model.fit(x, y, batch_size=32, epochs=2, verbose=0)
        return numpy_weights(model), history.history

    plain_weights, plain_history = train(wrap=False)
    split_weights, split_history = train(wrap=True)
    assert_bit_identical(split_weights, plain_weights)
    assert split_history == plain_history


@pytest.mark.parametrize("weighted", [False, True])
def test_odd_batch_reports_the_batch_mean_of_the_per_example_losses(weighted):
    x, y = data(9)
    model = linear(noise_level=0.8, seed=4, split_batch=True)
    compile_for_classification(model, keras.optimizers.SGD(0.0))
    (n,) = noise_at_step(model, 0)
    kernel, bias = numpy_weights(model)
    weights = np.linspace(0.2, 2.0, 9).astype("float32") if weighted else None
    history = model.fit(
        x, y, sample_weight=weights, batch_size=9, epochs=1, shuffle=False,
        verbose=0,
    ).history
    plus, _, _ = softmax_ce(x[:5], y[:5], kernel + n, bias)
    minus, _, _ = softmax_ce(x[5:], y[5:], kernel - n, bias)
    losses = np.concatenate([plus, minus])  # each example at its own point
    if weighted:
        losses = losses * weights  # "sum_over_batch_size": sum(w * l) / 9
    assert history["loss"][0] == pytest.approx(losses.mean(), rel=1e-5)
    # Not the unweighted mean of the two halves' means.
    halves = (losses[:5].mean() + losses[5:].mean()) / 2
    assert history["loss"][0] != pytest.approx(halves, rel=1e-4)


def test_identical_halves_give_full_ssgd_on_one_half():
    # Same seed, same step, same n: split S-SGD on [a; a] is full S-SGD on
    # a, BatchNorm statistics and metrics included.
    x, y = make_classification(32)
    doubled = np.concatenate([x[:16], x[:16]]), np.concatenate([y[:16], y[:16]])

    def train(split, x, y, batch):
        keras.utils.set_random_seed(0)
        model = keras_ssgd.wrap(
            mlp(batchnorm=True), noise_level=LEVEL, seed=7, split_batch=split
        )
        compile_for_classification(model, keras.optimizers.SGD(0.1))
        history = model.fit(
            x, y, batch_size=batch, epochs=3, shuffle=False, verbose=0
        )
        return numpy_weights(model), history.history

    split_weights, split_history = train(True, *doubled, 32)
    full_weights, full_history = train(False, x[:16], y[:16], 16)
    for a, b in zip(split_weights, full_weights):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        split_history["loss"], full_history["loss"], rtol=1e-5
    )
    np.testing.assert_allclose(
        split_history["accuracy"], full_history["accuracy"]
    )


@pytest.mark.parametrize("policy", ["both", "first"])
def test_batchnorm_normalises_and_updates_per_half(policy):
    # BatchNorm first: its statistics do not depend on the noise. The two
    # halves have different means; "both" applies the W + n half's update
    # then the W - n half's, "first" only the W + n half's.
    rng = np.random.default_rng(0)
    x = np.concatenate(
        [rng.normal(3.0, 1.0, (32, 4)), rng.normal(-1.0, 1.0, (32, 4))]
    ).astype("float32")
    y = np.zeros(64, "int32")
    inputs = keras.Input((4,))
    h = keras.layers.BatchNormalization(momentum=0.5)(inputs)
    model = keras_ssgd.SymmetricSGDModel(
        inputs, keras.layers.Dense(2)(h), noise_level=LEVEL,
        batchnorm_update=policy, seed=0, split_batch=True,
    )
    compile_for_classification(model, keras.optimizers.SGD(0.0))
    model.fit(x, y, batch_size=64, epochs=1, shuffle=False, verbose=0)
    moving_mean = keras.ops.convert_to_numpy(model.layers[1].moving_mean)
    first, second = x[:32].mean(axis=0), x[32:].mean(axis=0)
    expected = 0.5 * first
    if policy == "both":
        expected = 0.5 * expected + 0.5 * second
    np.testing.assert_allclose(moving_mean, expected, rtol=1e-5, atol=1e-6)


def test_mixed_precision_trains():
    keras.config.set_dtype_policy("mixed_float16")
    x, y = make_classification(128)
    model = keras_ssgd.wrap(mlp(), noise_level=LEVEL, seed=0, split_batch=True)
    compile_for_classification(model)
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    history = model.fit(x, y, batch_size=32, epochs=4, verbose=0).history
    assert all(np.isfinite(history["loss"]))
    assert history["loss"][-1] < history["loss"][0]


def test_config_keras_file_and_wrap_keep_the_form(tmp_path):
    model = keras_ssgd.wrap(mlp(), noise_level=0.3, seed=17, split_batch=True)
    assert model.split_batch is True and model.passes == 1
    assert keras_ssgd.wrap(mlp()).split_batch is False
    assert keras_ssgd.wrap(mlp()).passes == 2
    config = model.get_config()
    assert config["split_batch"] is True
    clone = type(model).from_config(config)
    assert clone.split_batch is True
    assert type(model).from_config(
        keras_ssgd.wrap(mlp()).get_config()
    ).split_batch is False

    compile_for_classification(model)
    x, y = make_classification(64)
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    path = tmp_path / "split.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, keras_ssgd.SymmetricSGDModel)
    assert (loaded.split_batch, loaded.seed) == (True, 17)
    assert loaded.noise_level == pytest.approx(0.3)
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6
    )
    history = loaded.fit(x, y, batch_size=32, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


class Net(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.hidden = keras.layers.Dense(8, activation="tanh")
        self.out = keras.layers.Dense(3)

    def call(self, x):
        return self.out(self.hidden(x))


def test_wrap_passes_it_to_a_subclassed_model():
    model = keras_ssgd.wrap(Net(), noise_level=0.3, seed=0, split_batch=True)
    assert isinstance(model, SymmetricSGDWrapper)
    assert model.split_batch and model.get_config()["split_batch"] is True
    compile_for_classification(model)
    x, y = make_classification(64)
    history = model.fit(x, y, batch_size=32, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


def test_a_last_batch_of_one_is_measured_at_both_points():
    # 9 examples in batches of 4: the last batch has one example. It is not
    # the first step, so it is not refused: its example is measured at
    # W + n and at W - n, which gives a finite, full S-SGD step.
    x, y = make_classification(9)
    model = keras_ssgd.wrap(mlp(), noise_level=LEVEL, seed=0, split_batch=True)
    compile_for_classification(model)
    history = model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 6
    assert np.isfinite(history.history["loss"]).all()
    assert all(np.isfinite(w).all() for w in numpy_weights(model))


@pytest.mark.skipif(BACKEND != "tensorflow", reason="a dynamic batch size")
def test_a_batch_of_one_of_unknown_size_is_full_ssgd_on_it():
    import tensorflow as tf

    x, y = make_classification(1)

    def step(split):
        keras.utils.set_random_seed(0)
        model = keras_ssgd.wrap(
            mlp(batchnorm=True), noise_level=LEVEL, seed=2, split_batch=split
        )
        compile_for_classification(model, keras.optimizers.SGD(0.1))
        dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(2)
        assert dataset.element_spec[0].shape[0] is None
        history = model.fit(dataset, epochs=1, shuffle=False, verbose=0)
        return numpy_weights(model), history.history["loss"][0]

    split_weights, split_loss = step(True)
    full_weights, full_loss = step(False)
    assert np.isfinite(split_loss)
    assert split_loss == pytest.approx(full_loss, rel=1e-6)
    for a, b in zip(split_weights, full_weights):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_a_first_batch_of_one_is_refused():
    x, y = make_classification(3)
    model = keras_ssgd.wrap(mlp(), noise_level=LEVEL, seed=0, split_batch=True)
    compile_for_classification(model)
    with pytest.raises(
        ValueError, match=r"`split_batch=True`.*batch size 1\)"
    ):
        model.fit(x, y, batch_size=1, epochs=1, verbose=0)


def stateful_lstm(**kwargs):
    inputs = keras.Input((5, 3), batch_size=4)
    h = keras.layers.LSTM(6, stateful=True, return_sequences=True)(inputs)
    return keras_ssgd.SymmetricSGDModel(
        inputs, keras.layers.Dense(2)(h), noise_level=0.1, seed=1, **kwargs
    )


def test_stateful_rnn_is_refused():
    with pytest.raises(
        ValueError, match=r"`split_batch=True`.*stateful RNN.*\['lstm"
    ):
        stateful_lstm(split_batch=True)
    model = stateful_lstm()
    with pytest.raises(ValueError, match="Received: split_batch=True"):
        model.split_batch = True
    assert model.split_batch is False

    # A plan's H phase asks for it too, when the phase starts.
    model.compile(optimizer="sgd", loss="mse")
    x = np.zeros((4, 5, 3), "float32")
    with pytest.raises(ValueError, match=r"split_batch=True \(from an `H`"):
        model.fit(
            x, np.zeros((4, 5, 2), "float32"), batch_size=4, epochs=1,
            verbose=0, callbacks=[NoiseSchedule("1H", noise_level=0.1)],
        )


@pytest.mark.parametrize("bad", [1, 0, "yes", None, 1.0])
def test_split_batch_must_be_a_bool(bad):
    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(2)(inputs)
    with pytest.raises(
        TypeError, match=rf"`split_batch` must be a bool. Received: split_batch={bad!r}"
    ):
        keras_ssgd.SymmetricSGDModel(inputs, outputs, split_batch=bad)
    model = keras_ssgd.wrap(mlp())
    with pytest.raises(TypeError, match="`split_batch`"):
        model.split_batch = bad
    assert model.split_batch is False


def test_phase_plan_with_split_phases():
    plan = PhasePlan.parse("75 - 25S - 25H")
    assert plan.phases == ((75, False), (25, True), (25, True))
    assert plan.split == (False, False, True)
    assert str(plan) == "75-25S-25H" and PhasePlan.parse(str(plan)) == plan
    assert plan.has_split and not PhasePlan.parse("75-25S").has_split
    assert [plan.noisy(e) for e in (74, 75, 100)] == [False, True, True]
    assert [plan.splits(e) for e in (74, 75, 99, 100, 130)] == [
        False, False, False, True, True,
    ]
    assert plan.cost() == 75 + 2 * 25 + 25  # H costs what SGD costs
    assert PhasePlan.parse("75-25S") == PhasePlan(((75, False), (25, True)))
    for bad in ("25h", "25SH", "25HS", "H"):
        with pytest.raises(ValueError, match="'H' for split S-SGD"):
            PhasePlan.parse(bad)
    with pytest.raises(ValueError, match="Argument `split`"):
        PhasePlan(((5, False),), (True,))
    with pytest.raises(ValueError, match="Argument `split`"):
        PhasePlan(((5, True),), (True, False))


class Form(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.passes = []

    def on_epoch_end(self, epoch, logs=None):
        self.passes.append(self.model.passes)


def test_noise_schedule_switches_the_form_between_phases():
    x, y = make_classification(64)

    def build(split=False):
        keras.utils.set_random_seed(0)
        model = keras_ssgd.wrap(mlp(), noise_level=0.4, seed=0, split_batch=split)
        return compile_for_classification(model, keras.optimizers.SGD(0.1))

    def fit(model, epochs, callbacks=()):
        model.fit(
            x, y, batch_size=32, epochs=epochs, shuffle=False, verbose=0,
            callbacks=list(callbacks),
        )

    switched, form = build(), Form()
    fit(switched, 3, [NoiseSchedule("1S-1H-1S", noise_level=0.4), form])
    assert form.passes == [2, 1, 2]
    assert switched.split_batch is False and switched.passes == 2

    # The same steps by hand: one full epoch, one split, one full (the
    # noise follows the optimizer's step counter across fits).
    by_hand = build()
    fit(by_hand, 1)
    by_hand.split_batch = True
    fit(by_hand, 1)
    by_hand.split_batch = False
    fit(by_hand, 1)
    for a, b in zip(numpy_weights(switched), numpy_weights(by_hand)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    full = build()
    fit(full, 3)
    gap = max(
        np.abs(a - b).max()
        for a, b in zip(numpy_weights(switched), numpy_weights(full))
    )
    assert gap > 1e-5

    # An S phase runs the model's own form: split for a split model.
    own, form = build(split=True), Form()
    fit(own, 2, [NoiseSchedule("1S-1H", noise_level=0.4), form])
    assert form.passes == [1, 1] and own.split_batch is True


def test_split_phases_need_a_symmetric_sgd_model():
    x, y = make_classification(32)
    model = keras_ssgd.wrap(mlp(), method="weight-noise", seed=0)
    compile_for_classification(model)
    with pytest.raises(TypeError, match="'1H'.*WeightNoiseModel"):
        model.fit(
            x, y, epochs=1, verbose=0,
            callbacks=[NoiseSchedule("1H", noise_level=0.3)],
        )


@pytest.mark.skipif(BACKEND != "tensorflow", reason="ssgd-train is on TF")
def test_ssgd_train_method_and_phases():
    from keras_ssgd.train import cli
    from keras_ssgd.train.registry import METHODS

    method = METHODS["ssgd-split"]
    assert method.passes == 1 and METHODS["ssgd"].passes == 2
    assert method.level_name == "noise_level" and method.default_levels
    model = keras_ssgd.wrap(
        mlp(), method=method.model_class, noise_level=0.2, **method.options
    )
    assert model.split_batch is True and model.passes == method.passes

    config, specs, _ = cli.parse(
        ["--method", "ssgd-split:0.3", "--method", "ssgd", "--method", "sgd",
         "--phases", "2-1S-1H", "--seeds", "1"]
    )
    assert config.phases == "2-1S-1H" and config.epochs == 4
    assert [s.method for s in specs] == ["ssgd-split", "ssgd", "sgd"]
    with pytest.raises(SystemExit):
        cli.parse(["--method", "sam", "--phases", "2-1H"])
    from keras_ssgd.train.runner import passes_per_step

    # Passes per step over a plan: S epochs cost the method's passes.
    assert passes_per_step(METHODS["ssgd"], "2-1S-1H") == 1.25
    assert passes_per_step(METHODS["ssgd"], None) == 2
    assert passes_per_step(METHODS["ssgd-split"], "2-1S-1H") == 1
    assert passes_per_step(METHODS["sgd"], "2-1S") == 1


def test_a_required_input_given_as_none_raises_kerass_error():
    # The halves are cut by the targets' batch size; the model's own call
    # then refuses the missing input (never a silent end of `fit()`).
    inputs = keras.Input((3,), name="x")
    model = keras_ssgd.SymmetricSGDModel(
        inputs, keras.layers.Dense(1)(inputs), noise_level=0.1, seed=0,
        split_batch=True,
    )
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match="not optional"):
        model.fit(None, np.ones((4, 1)), verbose=0)


def test_pairs_need_a_symmetric_sgd_model_and_an_even_number():
    from keras_ssgd.distributed.pairs import WorkerPairs
    from keras_ssgd.distributed.pairs import set_pairs

    class Pairs(WorkerPairs):
        engine = "test workers"

        def __init__(self, size):
            self._size = size

        def index(self):
            return 0

        def size(self):
            return self._size

    noise = keras_ssgd.wrap(mlp(), method="weight-noise", seed=0)
    with pytest.raises(TypeError, match="SymmetricSGDModel.*WeightNoiseModel"):
        set_pairs(noise, Pairs(2))
    split = keras_ssgd.wrap(mlp(), noise_level=0.2, seed=0, split_batch=True)
    with pytest.raises(ValueError, match="Received: pairs=True with 3 worker"):
        set_pairs(split, Pairs(3))
    with pytest.warns(UserWarning, match="split_batch=False"):
        set_pairs(keras_ssgd.wrap(mlp(), noise_level=0.2, seed=0), Pairs(2))
    assert set_pairs(split, Pairs(4)) is split and split.passes == 1


def test_the_even_worker_of_a_pair_measures_at_plus_n_the_odd_at_minus_n():
    # One worker of a pair, on one device: its step is the gradient of its
    # whole batch at W + n (index 0) or W - n (index 1), from the same n.
    from keras_ssgd.distributed.pairs import WorkerPairs
    from keras_ssgd.distributed.pairs import set_pairs

    class Worker(WorkerPairs):
        engine = "test workers"

        def __init__(self, index):
            self._index = index

        def index(self):
            return self._index

        def size(self):
            return 2

    x, y = data(8)
    for index, sign in ((0, 1.0), (1, -1.0)):
        model = linear(noise_level=LEVEL, seed=3, split_batch=True)
        set_pairs(model, Worker(index))
        compile_for_classification(model, keras.optimizers.SGD(0.1))
        (n,) = noise_at_step(model, 0)
        kernel, bias = numpy_weights(model)
        model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
        _, g, gb = softmax_ce(x, y, kernel + sign * n, bias)
        new_kernel, new_bias = numpy_weights(model)
        np.testing.assert_allclose(new_kernel, kernel - 0.1 * g, atol=2e-6)
        np.testing.assert_allclose(new_bias, bias - 0.1 * gb, atol=2e-6)
        assert model.passes == 1


@pytest.mark.skipif(BACKEND != "tensorflow", reason="tf.SparseTensor input")
def test_sparse_inputs_are_cut_into_halves():
    import tensorflow as tf

    x, y = data(8)
    x[np.abs(x) < 0.8] = 0.0
    weights = []
    for inputs in (x, tf.sparse.from_dense(x)):
        model = linear(noise_level=LEVEL, seed=3, split_batch=True)
        compile_for_classification(model, keras.optimizers.SGD(0.1))
        model.fit(
            tf.data.Dataset.from_tensors((inputs, y)), epochs=1, verbose=0
        )
        weights.append(numpy_weights(model))
    for dense, sparse in zip(*weights):
        np.testing.assert_allclose(dense, sparse, atol=1e-6)
