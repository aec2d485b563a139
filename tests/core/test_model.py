"""The S-SGD training step: the properties users rely on."""

import keras
import numpy as np
import pytest
from conftest import assert_bit_identical
from conftest import compile_for_classification
from conftest import make_classification
from conftest import mlp
from conftest import weights_of

import keras_ssgd
from keras_ssgd import noise as noise_lib


def conv_net(name=None):
    inputs = keras.Input((16, 2))
    h = keras.layers.Conv1D(6, 3, activation="relu")(inputs)
    h = keras.layers.GlobalAveragePooling1D()(h)
    outputs = keras.layers.Dense(3)(h)
    return keras.Model(inputs, outputs, name=name)


def noise_at_step(model, step):
    """The noise a model draws at optimizer step `step`, recomputed."""
    generator = keras.random.SeedGenerator(0)
    generator.state.assign(np.array([model.seed, step], "uint32"))
    weights = [v.value for v in model.noise_variables]
    return noise_lib.symmetric_noise(weights, model.noise_level, generator)


def test_exact_restore_after_200_steps_with_zero_learning_rate():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1600, 16, 2)).astype("float32")
    y = rng.integers(0, 3, 1600).astype("int32")
    model = keras_ssgd.wrap(conv_net(), noise_level=0.5, seed=1)
    compile_for_classification(
        model, keras.optimizers.SGD(0.0, momentum=0.9)
    )
    start = weights_of(model)
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert model.optimizer.iterations.numpy() == 200
    assert np.isfinite(history.history["loss"][0])
    assert_bit_identical(weights_of(model), start)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.exact
def test_noise_level_zero_is_bit_identical_to_keras(optimizer, op_determinism):
    x, y = make_classification(256)

    def train(wrap):
        keras.utils.set_random_seed(3)
        model = mlp(batchnorm=True, dropout=0.2)
        if wrap:
            model = keras_ssgd.wrap(model, noise_level=0.0, seed=5)
        opt = (
            keras.optimizers.SGD(0.05, momentum=0.9)
            if optimizer == "sgd"
            else keras.optimizers.Adam(1e-2)
        )
        compile_for_classification(model, opt)
        history = model.fit(x, y, batch_size=32, epochs=3, verbose=0)
        return weights_of(model), history.history

    plain_weights, plain_history = train(wrap=False)
    ssgd_weights, ssgd_history = train(wrap=True)
    assert_bit_identical(ssgd_weights, plain_weights)
    assert ssgd_history == plain_history


def test_quadratic_loss_gives_the_plain_gradient():
    # Linear model + MSE: the Hessian is constant, so Eq. 9's second term
    # vanishes and (grad L(W+n) + grad L(W-n)) / 2 == grad L(W).
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 5)).astype("float32")
    y = rng.standard_normal((64, 2)).astype("float32")

    def one_step(build):
        keras.utils.set_random_seed(1)
        inputs = keras.Input((5,))
        hidden = build(inputs)
        model = keras_ssgd.SymmetricSGDModel(
            inputs, keras.layers.Dense(2)(hidden), noise_level=0.5, seed=2
        )
        model.compile(keras.optimizers.SGD(1.0), loss="mse")
        before = weights_of(model)
        model.fit(x, y, batch_size=64, epochs=1, verbose=0)
        ssgd_step = [a - b for a, b in zip(weights_of(model), before)]
        model.set_weights(before)
        model.noise_level = 0.0
        model.fit(x, y, batch_size=64, epochs=1, verbose=0)
        plain_step = [a - b for a, b in zip(weights_of(model), before)]
        return ssgd_step, plain_step

    ssgd_step, plain_step = one_step(lambda t: t)  # linear: quadratic loss
    for s, p in zip(ssgd_step, plain_step):
        np.testing.assert_allclose(s, p, atol=1e-5)

    ssgd_step, plain_step = one_step(  # tanh layer: not quadratic
        lambda t: keras.layers.Dense(8, activation="tanh")(t)
    )
    gap = max(np.abs(s - p).max() for s, p in zip(ssgd_step, plain_step))
    assert gap > 1e-3


def test_reported_loss_and_metrics_are_the_mean_of_both_passes():
    x, y = make_classification(64)
    model = keras_ssgd.wrap(mlp(), noise_level=0.8, seed=4)
    compile_for_classification(model, keras.optimizers.SGD(0.0))
    model.build((None, 8))
    noise = noise_at_step(model, 0)
    master = weights_of(model)
    history = model.fit(x, y, batch_size=64, epochs=1, verbose=0).history

    losses, accuracies = [], []
    for sign in (1.0, -1.0):
        probe = mlp()
        compile_for_classification(probe)
        perturbed = iter(np.array(n) for n in noise)
        probe.set_weights(
            [
                w + sign * next(perturbed) if w.ndim >= 2 else w
                for w in master
            ]
        )
        loss, accuracy = probe.evaluate(x, y, batch_size=64, verbose=0)
        losses.append(loss)
        accuracies.append(accuracy)
    assert losses[0] != pytest.approx(losses[1], rel=1e-3)
    assert history["loss"][0] == pytest.approx(np.mean(losses), rel=1e-5)
    assert history["accuracy"][0] == pytest.approx(np.mean(accuracies))


def test_a_new_direction_every_step():
    x, y = make_classification(32)
    model = keras_ssgd.wrap(mlp(), noise_level=0.5, seed=4)
    compile_for_classification(model)
    model.build((None, 8))
    first, second = noise_at_step(model, 0), noise_at_step(model, 1)
    for a, b in zip(first, second):
        assert not np.allclose(np.array(a), np.array(b))

    # Observed through training: the same batch, weights frozen by lr=0,
    # still gives a different loss at each step.
    compile_for_classification(model, keras.optimizers.SGD(0.0))
    losses = []
    cb = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda b, logs: losses.append(logs["loss"])
    )
    xs, ys = np.tile(x, (4, 1)), np.tile(y, 4)
    model.fit(xs, ys, batch_size=32, epochs=1, shuffle=False, callbacks=[cb], verbose=0)
    assert len(set(np.round(losses, 7))) == 4


def test_biases_and_batchnorm_are_never_perturbed(op_determinism):
    x, y = make_classification(128)

    def build():
        keras.utils.set_random_seed(2)
        model = mlp(batchnorm=True)
        for layer in model.layers:
            if isinstance(layer, keras.layers.Dense):
                layer.kernel.trainable = False
        return model

    plain = compile_for_classification(build())
    plain.fit(x, y, batch_size=32, epochs=2, verbose=0)
    model = keras_ssgd.wrap(build(), noise_level=0.5, seed=1)
    compile_for_classification(model)
    assert model.noise_variables == []
    with pytest.warns(UserWarning, match="no variable to perturb"):
        model.fit(x, y, batch_size=32, epochs=2, verbose=0)
    assert_bit_identical(weights_of(model), weights_of(plain))


def test_default_filter_selects_kernels_only():
    model = keras_ssgd.wrap(mlp(batchnorm=True))
    assert [v.path for v in model.noise_variables] == [
        "dense/kernel",
        "dense_1/kernel",
    ]


def test_same_seed_same_trajectory_other_seed_other_trajectory():
    x, y = make_classification(128)

    def train(seed):
        keras.utils.set_random_seed(0)
        model = keras_ssgd.wrap(mlp(), noise_level=0.5, seed=seed)
        compile_for_classification(model)
        model.fit(x, y, batch_size=32, epochs=2, verbose=0)
        return weights_of(model)

    a, b, c = train(1), train(1), train(2)
    assert_bit_identical(a, b)
    assert not np.allclose(a[0], c[0])


class _StopAfter(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise RuntimeError("interrupted")


def test_resume_from_backup_continues_the_same_noise(tmp_path, op_determinism):
    x, y = make_classification(128)

    def build():
        keras.utils.set_random_seed(0)
        model = keras_ssgd.wrap(mlp(batchnorm=True), noise_level=0.5, seed=9)
        return compile_for_classification(model)

    straight = build()
    straight.fit(x, y, batch_size=32, epochs=4, shuffle=False, verbose=0)

    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
    interrupted = build()
    with pytest.raises(RuntimeError, match="interrupted"):
        interrupted.fit(
            x, y, batch_size=32, epochs=4, shuffle=False, verbose=0,
            callbacks=[backup, _StopAfter(1)],
        )
    keras.utils.set_random_seed(123)  # a new process: other initial weights
    resumed = keras_ssgd.wrap(mlp(batchnorm=True), noise_level=0.5, seed=9)
    compile_for_classification(resumed)
    history = resumed.fit(
        x, y, batch_size=32, epochs=4, shuffle=False, verbose=0,
        callbacks=[backup],
    )
    assert len(history.history["loss"]) == 2  # epochs 3 and 4 only
    assert_bit_identical(weights_of(resumed), weights_of(straight))


@pytest.mark.parametrize(
    "optimizer",
    [
        lambda: keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
        lambda: keras.optimizers.Adam(1e-2),
        lambda: keras.optimizers.AdamW(1e-2, weight_decay=1e-3),
        lambda: keras.optimizers.RMSprop(1e-3),
    ],
)
def test_any_keras_optimizer_trains(optimizer):
    x, y = make_classification(256)
    model = keras_ssgd.wrap(mlp(), noise_level=0.3, seed=0)
    compile_for_classification(model, optimizer())
    history = model.fit(x, y, batch_size=32, epochs=6, verbose=0).history
    assert history["loss"][-1] < history["loss"][0]


@pytest.mark.parametrize("weighting", ["sample_weight", "class_weight"])
def test_sample_and_class_weights_reach_both_passes(weighting):
    x, y = make_classification(128)
    model = keras_ssgd.wrap(mlp(), noise_level=0.5, seed=0)
    compile_for_classification(model, keras.optimizers.SGD(0.1))
    start = weights_of(model)
    if weighting == "sample_weight":
        kwargs = {"sample_weight": np.zeros(len(y), "float32")}
    else:
        kwargs = {"class_weight": {0: 0.0, 1: 0.0, 2: 0.0}}
    history = model.fit(x, y, batch_size=32, epochs=1, verbose=0, **kwargs)
    assert history.history["loss"][0] == 0.0
    assert_bit_identical(weights_of(model), start)

    # Weighting one class changes the update relative to uniform weights.
    uniform = keras_ssgd.wrap(mlp(), noise_level=0.5, seed=0)
    compile_for_classification(uniform, keras.optimizers.SGD(0.1))
    uniform.set_weights(start)
    model.set_weights(start)
    uniform.fit(x, y, batch_size=128, epochs=1, verbose=0)
    weights = {"sample_weight": np.where(y == 0, 3.0, 1.0).astype("float32")}
    if weighting == "class_weight":
        weights = {"class_weight": {0: 3.0, 1: 1.0, 2: 1.0}}
    model.fit(x, y, batch_size=128, epochs=1, verbose=0, **weights)
    assert not np.allclose(weights_of(model)[0], weights_of(uniform)[0])


def test_jit_compile_keeps_the_semantics():
    x, y = make_classification(256)
    model = keras_ssgd.wrap(mlp(batchnorm=True), noise_level=0.5, seed=0)
    compile_for_classification(
        model, keras.optimizers.SGD(0.0, momentum=0.9), jit_compile=True
    )
    assert model.jit_compile is True
    start = weights_of(model)
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    trainable = [np.array(v) for v in model.trainable_variables]
    expected = [w for w, v in zip(start, model.weights) if v.trainable]
    assert_bit_identical(trainable, expected)  # exact restore under XLA

    compile_for_classification(model, jit_compile=True)
    history = model.fit(x, y, batch_size=32, epochs=5, verbose=0).history
    assert history["loss"][-1] < history["loss"][0]


def test_mixed_float16_scales_both_passes_and_unscales_once():
    keras.config.set_dtype_policy("mixed_float16")
    x, y = make_classification(256)
    model = keras_ssgd.wrap(mlp(), noise_level=0.5, seed=0)
    compile_for_classification(model)
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    history = model.fit(x, y, batch_size=32, epochs=5, verbose=0).history
    assert all(v.dtype == "float32" for v in model.trainable_variables)
    assert all(np.isfinite(w).all() for w in weights_of(model))
    assert history["loss"][-1] < history["loss"][0]


def test_lstm_kernels_are_perturbed_and_its_bias_is_not():
    inputs = keras.Input((12,), dtype="int32")
    h = keras.layers.Embedding(50, 8)(inputs)
    h = keras.layers.LSTM(10)(h)
    outputs = keras.layers.Dense(3)(h)
    model = keras_ssgd.SymmetricSGDModel(inputs, outputs, noise_level=0.3, seed=0)
    paths = [v.path for v in model.noise_variables]
    assert any(p.endswith("lstm_cell/kernel") for p in paths)
    assert any(p.endswith("lstm_cell/recurrent_kernel") for p in paths)
    assert any(p.endswith("embeddings") for p in paths)
    assert not any("bias" in p for p in paths)

    # Trains, including the sparse (IndexedSlices) embedding gradient, and
    # the LSTM kernels really move under the S-SGD update.
    rng = np.random.default_rng(0)
    x = rng.integers(0, 50, (128, 12)).astype("int32")
    y = (x[:, 0] % 3).astype("int32")
    compile_for_classification(model)
    start = weights_of(model)
    history = model.fit(x, y, batch_size=32, epochs=4, verbose=0).history
    assert np.isfinite(history["loss"]).all()
    moved = [not np.array_equal(a, b) for a, b in zip(start, weights_of(model))]
    assert all(moved)


def test_evaluate_and_predict_use_the_master_weights():
    x, y = make_classification(128)
    model = keras_ssgd.wrap(mlp(batchnorm=True), noise_level=1.0, seed=0)
    compile_for_classification(model)
    model.fit(x, y, batch_size=32, epochs=2, verbose=0)
    clean = mlp(batchnorm=True)
    compile_for_classification(clean)
    clean.set_weights(model.get_weights())
    np.testing.assert_array_equal(
        model.predict(x, verbose=0), clean.predict(x, verbose=0)
    )
    assert model.evaluate(x, y, verbose=0) == clean.evaluate(x, y, verbose=0)


@pytest.mark.parametrize("policy", ["both", "first"])
def test_batchnorm_update_policy_counts_the_updates(policy):
    # BatchNorm first: both passes see the same batch statistics, so the
    # moving mean tells how many updates were applied.
    x = np.random.default_rng(0).normal(3.0, 1.0, (64, 4)).astype("float32")
    y = np.zeros(64, "int32")
    inputs = keras.Input((4,))
    h = keras.layers.BatchNormalization(momentum=0.5)(inputs)
    outputs = keras.layers.Dense(2)(h)
    model = keras_ssgd.SymmetricSGDModel(
        inputs, outputs, noise_level=0.5, batchnorm_update=policy, seed=0
    )
    compile_for_classification(model, keras.optimizers.SGD(0.0))
    model.fit(x, y, batch_size=64, epochs=1, verbose=0)
    moving_mean = np.array(model.layers[1].moving_mean)
    updates = 2 if policy == "both" else 1
    expected = (1 - 0.5**updates) * x.mean(axis=0)
    np.testing.assert_allclose(moving_mean, expected, rtol=1e-5)


def test_noise_level_changes_without_retracing():
    x, y = make_classification(64)
    model = keras_ssgd.wrap(mlp(), noise_level=0.5, seed=0)
    compile_for_classification(model)
    traces = []  # the branch of each trace: True perturbed, False plain
    train_step = model.train_step
    model.train_step = lambda data: (
        traces.append(model._static_noisy) or train_step(data)
    )
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    first_fit_traces = len(traces)
    assert first_fit_traces >= 1 and all(traces)
    train_function = model.train_function
    for level in (0.0, 0.2, 0.0, 0.7):
        model.noise_level = level
        model.fit(x, y, batch_size=32, epochs=1, verbose=0)
        assert model.train_function is train_function
    # The perturbed branch is never traced again; the plain branch (level
    # 0, Keras's own step) is traced once, when first used.
    assert traces.count(True) == first_fit_traces
    assert 1 <= traces.count(False) <= first_fit_traces
    assert model.noise_level == pytest.approx(0.7)


def test_non_finite_loss_leaves_the_master_weights_intact():
    x, y = make_classification(128)
    x[5, 0] = np.nan  # poisons the first batch, both passes
    model = keras_ssgd.wrap(mlp(), noise_level=0.5, seed=0)
    compile_for_classification(model)
    start = weights_of(model)
    history = model.fit(
        x, y, batch_size=32, epochs=3, shuffle=False, verbose=0,
        callbacks=[keras.callbacks.TerminateOnNaN()],
    )
    assert np.isnan(history.history["loss"][0])
    assert model.optimizer.iterations.numpy() == 0
    assert_bit_identical(weights_of(model), start)


def test_subclassed_symmetric_sgd_model_trains():
    class Net(keras_ssgd.SymmetricSGDModel):
        def __init__(self, units=16, **kwargs):
            super().__init__(**kwargs)
            self.units = units
            self.hidden = keras.layers.Dense(units, activation="relu")
            self.out = keras.layers.Dense(3)

        def call(self, x):
            return self.out(self.hidden(x))

    x, y = make_classification(128)
    model = Net(noise_level=0.4, seed=0)
    compile_for_classification(model)
    history = model.fit(x, y, batch_size=32, epochs=5, verbose=0).history
    assert history["loss"][-1] < history["loss"][0]
    assert len(model.noise_variables) == 2
