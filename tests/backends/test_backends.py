"""The core properties of the perturbed step, on whichever backend runs.

The same file runs once per Keras backend (`make test` runs it under
TensorFlow, JAX and PyTorch:
`KERAS_BACKEND=jax pytest tests/backends/test_backends.py`).
Each test states a property that must hold on every backend.
"""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from conftest import make_classification
from conftest import mlp

import keras_ssgd
from keras_ssgd import noise as noise_lib

BACKEND = keras.backend.backend()
CLASSES = {
    "ssgd": (keras_ssgd.SymmetricSGDModel, "noise_level", 0.5),
    "weight-noise": (keras_ssgd.WeightNoiseModel, "noise_level", 0.5),
    "smoothout": (keras_ssgd.SmoothOutModel, "noise_level", 0.5),
    "dropconnect": (keras_ssgd.DropConnectModel, "rate", 0.3),
    "sam": (keras_ssgd.SharpnessAwareModel, "rho", 0.05),
    "asam": (keras_ssgd.AdaptiveSharpnessAwareModel, "rho", 0.5),
}


def numpy_weights(model):
    return [keras.ops.convert_to_numpy(v) for v in model.weights]


def assert_bit_identical(a, b):
    assert len(a) == len(b)
    for i, (u, v) in enumerate(zip(a, b)):
        np.testing.assert_array_equal(u, v, err_msg=f"weight {i} differs")


def compile_model(model, optimizer=None, **kwargs):
    model.compile(
        optimizer=optimizer or keras.optimizers.SGD(0.05, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        **kwargs,
    )
    return model


def conv_net():
    inputs = keras.Input((16, 2))
    h = keras.layers.Conv1D(6, 3, activation="relu")(inputs)
    h = keras.layers.GlobalAveragePooling1D()(h)
    h = keras.layers.Dense(8, activation="relu")(h)
    return keras.Model(inputs, keras.layers.Dense(3)(h))


@pytest.mark.parametrize("method", sorted(CLASSES))
def test_exact_restore_with_zero_learning_rate(method):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((80, 16, 2)).astype("float32")
    y = rng.integers(0, 3, 80).astype("int32")
    _, argument, level = CLASSES[method]
    model = keras_ssgd.wrap(conv_net(), method=method, seed=1, **{argument: level})
    compile_model(model, keras.optimizers.SGD(0.0, momentum=0.9))
    start = numpy_weights(model)
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 10
    assert np.isfinite(history.history["loss"][0])
    assert_bit_identical(numpy_weights(model), start)


@pytest.mark.exact
def test_level_zero_is_bit_identical_to_keras():
    # Every method's level-0 step is the same `_plain_gradients` pass.
    x, y = make_classification(128)

    def train(wrap):
        keras.utils.set_random_seed(3)
        model = mlp(batchnorm=True, dropout=0.2)
        if wrap:
            model = keras_ssgd.wrap(model, noise_level=0.0, seed=5)
        compile_model(model, keras.optimizers.Adam(1e-2))
        history = model.fit(x, y, batch_size=32, epochs=2, verbose=0)
        return numpy_weights(model), history.history

    plain_weights, plain_history = train(wrap=False)
    wrapped_weights, wrapped_history = train(wrap=True)
    assert_bit_identical(wrapped_weights, plain_weights)
    assert wrapped_history == plain_history


def test_reported_loss_is_the_mean_of_both_passes():
    x, y = make_classification(64)
    model = keras_ssgd.wrap(mlp(), noise_level=0.8, seed=4)
    compile_model(model, keras.optimizers.SGD(0.0))
    model.build((None, 8))
    generator = keras.random.SeedGenerator(0)
    generator.state.assign(np.array([model.seed, 0], "int32"))
    variables = model.noise_variables
    noise = noise_lib.symmetric_noise(
        [v.value for v in variables], model.noise_level, generator
    )
    master = numpy_weights(model)
    history = model.fit(x, y, batch_size=64, epochs=1, verbose=0).history

    noise = {id(v): keras.ops.convert_to_numpy(n) for v, n in zip(variables, noise)}
    losses = []
    for sign in (1.0, -1.0):
        probe = compile_model(mlp())
        probe.set_weights(
            [
                w + sign * noise[id(v)] if id(v) in noise else w
                for v, w in zip(model.weights, master)
            ]
        )
        losses.append(probe.evaluate(x, y, batch_size=64, verbose=0)[0])
    assert losses[0] != pytest.approx(losses[1], rel=1e-3)
    assert history["loss"][0] == pytest.approx(np.mean(losses), rel=1e-5)


def test_quadratic_loss_gives_the_plain_gradient():
    # For a linear model under squared error the mean of the gradients at
    # W + n and W - n is the gradient at W (paper Eq. 9 with constant
    # curvature), so one S-SGD step is the plain step.
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 5)).astype("float32")
    y = rng.standard_normal((32, 2)).astype("float32")

    def step(cls, **kwargs):
        keras.utils.set_random_seed(1)
        inputs = keras.Input((5,))
        outputs = keras.layers.Dense(2, use_bias=False)(inputs)
        model = cls(inputs, outputs, **kwargs)
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        start = keras.ops.convert_to_numpy(model.weights[0])
        model.fit(x, y, batch_size=32, epochs=1, verbose=0)
        return start, keras.ops.convert_to_numpy(model.weights[0])

    start, ssgd = step(keras_ssgd.SymmetricSGDModel, noise_level=0.9, seed=2)
    _, plain = step(keras.Model)
    _, noisy = step(keras_ssgd.WeightNoiseModel, noise_level=0.9, seed=2)
    gradient = 2 * x.T @ (x @ start - y) / y.size
    np.testing.assert_allclose(ssgd, start - 0.1 * gradient, atol=1e-5)
    np.testing.assert_allclose(plain, start - 0.1 * gradient, atol=1e-5)
    assert np.abs(noisy - plain).max() > 1e-3  # one-sided noise is not


def test_non_finite_loss_leaves_the_weights_intact():
    x, y = make_classification(64)
    x[5, 0] = np.nan  # poisons the first batch
    model = compile_model(keras_ssgd.wrap(mlp(), noise_level=0.5, seed=0))
    start = numpy_weights(model)
    history = model.fit(
        x, y, batch_size=32, epochs=1, shuffle=False, verbose=0,
        callbacks=[keras.callbacks.TerminateOnNaN()],
    )
    assert np.isnan(history.history["loss"][0])
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 0
    assert_bit_identical(numpy_weights(model), start)


@pytest.mark.exact
def test_level_zero_treats_a_non_finite_loss_as_keras_does():
    # Level 0 is Keras's own step, the non-finite loss included: the
    # update is applied, and TerminateOnNaN stops the run.
    x, y = make_classification(64)
    x[5, 0] = np.nan

    def train(wrap):
        keras.utils.set_random_seed(1)
        model = mlp()
        if wrap:
            model = keras_ssgd.wrap(model, noise_level=0.0, seed=0)
        compile_model(model)
        history = model.fit(
            x, y, batch_size=32, epochs=1, shuffle=False, verbose=0,
            callbacks=[keras.callbacks.TerminateOnNaN()],
        )
        iterations = keras.ops.convert_to_numpy(model.optimizer.iterations)
        return numpy_weights(model), history.history, int(iterations)

    plain_weights, plain_history, plain_iterations = train(wrap=False)
    weights, history, iterations = train(wrap=True)
    assert np.isnan(history["loss"][0]) and iterations == plain_iterations
    assert_bit_identical(weights, plain_weights)  # NaN where Keras has NaN


def test_noise_schedule_switches_the_level_inside_one_fit():
    # Epoch 0 at level 0 must match a level-0 model; epoch 1 at 0.5 must
    # not: the level is read by the compiled step, not frozen into it.
    x, y = make_classification(64)

    def run(schedule):
        keras.utils.set_random_seed(0)
        model = compile_model(keras_ssgd.wrap(mlp(), noise_level=0.5, seed=0))
        after_epoch = []
        record = keras.callbacks.LambdaCallback(
            on_epoch_end=lambda e, logs: after_epoch.append(
                numpy_weights(model)
            )
        )
        model.fit(
            x, y, batch_size=32, epochs=2, shuffle=False, verbose=0,
            callbacks=[keras_ssgd.callbacks.NoiseSchedule(schedule), record],
        )
        return after_epoch

    switched = run(lambda epoch: [0.0, 0.5][epoch])
    off = run(lambda epoch: 0.0)
    assert_bit_identical(switched[0], off[0])
    gap = max(np.abs(a - b).max() for a, b in zip(switched[1], off[1]))
    assert gap > 1e-4


def test_stateful_rnn_state_is_carried_as_the_mean_of_the_passes():
    rng = np.random.default_rng(1)
    x = rng.random((4, 5, 3)).astype("float32")
    y = rng.integers(0, 2, (4, 5))

    def lstm(cls, **kwargs):
        keras.utils.set_random_seed(3)
        inputs = keras.Input((5, 3), batch_size=4)
        h = keras.layers.LSTM(6, stateful=True, return_sequences=True)(inputs)
        model = cls(inputs, keras.layers.Dense(2)(h), **kwargs)
        model.compile(
            optimizer=keras.optimizers.SGD(0.0),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        return model

    model = lstm(keras_ssgd.SymmetricSGDModel, noise_level=0.1, seed=1)
    model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    plain = lstm(keras.Model)
    plain.set_weights(model.get_weights())
    plain(x)  # an eager call carries the state on all backends
    states = [keras.ops.convert_to_numpy(v) for v in model.layers[1].states]
    clean = [keras.ops.convert_to_numpy(v) for v in plain.layers[1].states]
    for got, expected in zip(states, clean):
        assert np.abs(got).sum() > 0  # the state moved on
        np.testing.assert_allclose(got, expected, atol=0.02)
        assert not np.allclose(got, expected, atol=1e-7)


def test_mixed_precision_trains():
    keras.config.set_dtype_policy("mixed_float16")
    x, y = make_classification(64)
    model = compile_model(keras_ssgd.wrap(mlp(), noise_level=0.5, seed=0))
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    history = model.fit(x, y, batch_size=32, epochs=2, verbose=0)
    assert all(np.isfinite(history.history["loss"]))


# The saving backend for each loading one. Not PyTorch: Keras records its
# torch-only optimizer class in a torch-saved file's compile state, so on
# another backend even a plain `keras.Model` must be compiled again.
OTHER_BACKEND = {"tensorflow": "jax", "jax": "tensorflow", "torch": "jax"}
SAVE_PROGRAM = """
import sys, keras, numpy as np, keras_ssgd
keras.utils.set_random_seed(0)
inputs = keras.Input((8,))
h = keras.layers.BatchNormalization()(keras.layers.Dense(16)(inputs))
model = keras_ssgd.SymmetricSGDModel(
    inputs, keras.layers.Dense(3)(h), noise_level=0.3,
    noise_filter="dense_kernels", batchnorm_update="first", seed=17)
model.compile(optimizer="sgd", jit_compile=False,  # torch.compile is slow
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
x = np.random.default_rng(0).standard_normal((64, 8)).astype("float32")
model.save(sys.argv[1])
np.save(sys.argv[2], model.predict(x, verbose=0))
"""


@pytest.mark.e2e
def test_a_model_saved_on_another_backend_loads_and_trains(tmp_path):
    path, predictions = tmp_path / "m.keras", tmp_path / "p.npy"
    env = dict(os.environ, KERAS_BACKEND=OTHER_BACKEND[BACKEND])
    subprocess.run(
        [sys.executable, "-c", SAVE_PROGRAM, str(path), str(predictions)],
        env=env, check=True, capture_output=True,
    )
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, keras_ssgd.SymmetricSGDModel)
    assert loaded.noise_level == pytest.approx(0.3)
    assert loaded.noise_filter is keras_ssgd.filters.dense_kernels
    assert (loaded.batchnorm_update, loaded.seed) == ("first", 17)
    x = np.random.default_rng(0).standard_normal((64, 8)).astype("float32")
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), np.load(predictions), atol=1e-5
    )
    assert loaded.compiled and loaded.loss is not None
    history = loaded.fit(x, np.zeros(64, "int32"), batch_size=32, verbose=0)
    assert np.isfinite(history.history["loss"][0])


@pytest.mark.skipif(BACKEND == "tensorflow", reason="Horovod runs on TF")
def test_gradient_reducer_names_the_backend():
    model = keras_ssgd.wrap(mlp(), noise_level=0.5, seed=0)
    with pytest.raises(ValueError, match=f"backend='{BACKEND}'"):
        model.gradient_reducer = lambda gradients, finite: (gradients, finite)


@pytest.mark.skipif(BACKEND != "jax", reason="JAX's stateless train_step")
@pytest.mark.parametrize("level", [0.5, 0.0])
def test_jax_train_step_called_directly_matches_fit(level):
    # A custom JAX loop calls `train_step(state, data)` itself: the level is
    # then tested inside the compiled step (`lax.cond`), not before it.
    import jax

    x, y = make_classification(32)

    def build():
        keras.utils.set_random_seed(0)
        model = keras_ssgd.wrap(
            mlp(batchnorm=True), noise_level=level, seed=0
        )
        return compile_model(model)

    fitted = build()
    fitted.fit(x, y, batch_size=32, epochs=1, verbose=0)
    model = build()
    model.optimizer.build(model.trainable_variables)
    state = tuple(
        [v.value for v in variables]
        for variables in (
            model.trainable_variables,
            model.non_trainable_variables,
            model.optimizer.variables,
            model.metrics_variables,
        )
    )
    logs, state = jax.jit(model.train_step)(state, (x, y))
    for got, expected in zip(state[0], fitted.trainable_variables):
        np.testing.assert_allclose(got, expected.value, rtol=1e-6, atol=1e-7)
    expected_loss = float(fitted.get_metrics_result()["loss"])
    assert float(logs["loss"]) == pytest.approx(expected_loss, rel=1e-6)


@pytest.mark.skipif(BACKEND != "jax", reason="one non-TF backend suffices")
def test_distributed_horovod_names_the_backend():
    from keras_ssgd.distributed import engines as distribution  # imports TensorFlow

    for name in ("horovod", "mirrored"):
        with pytest.raises(ValueError, match=f"distributed='{name}' with "):
            distribution.make(name)


def test_regularized_weights_outside_the_filter_are_penalised():
    # The dense kernels carry an L2 penalty but only the conv kernel is
    # perturbed: each pass must still see (and differentiate) the penalty.
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 16, 2)).astype("float32")
    y = rng.integers(0, 3, 8).astype("int32")
    penalty = 0.25

    def step(regularizer):
        keras.utils.set_random_seed(5)
        inputs = keras.Input((16, 2))
        h = keras.layers.Conv1D(6, 3, activation="relu")(inputs)
        h = keras.layers.GlobalAveragePooling1D()(h)
        outputs = keras.layers.Dense(3, kernel_regularizer=regularizer)(h)
        model = keras_ssgd.SymmetricSGDModel(
            inputs, outputs, noise_level=0.3, noise_filter="conv_kernels",
            seed=1,
        )
        compile_model(model, keras.optimizers.SGD(1.0))
        before = keras.ops.convert_to_numpy(model.layers[-1].kernel)
        model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
        return before, keras.ops.convert_to_numpy(model.layers[-1].kernel)

    start, plain = step(None)
    same_start, penalised = step(keras.regularizers.L2(penalty))
    np.testing.assert_array_equal(start, same_start)
    # d/dW (penalty * ||W||^2) = 2 * penalty * W, at learning rate 1.
    np.testing.assert_allclose(
        plain - penalised, 2 * penalty * start, rtol=1e-4, atol=1e-6
    )


BLOCK_TENSORFLOW = """
import sys

class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "tf_keras"):
            raise ImportError(f"{name} is blocked (a machine without it)")

sys.meta_path.insert(0, Block())
import keras
import numpy as np
import keras_ssgd
inputs = keras.Input((4,))
model = keras_ssgd.SymmetricSGDModel(
    inputs, keras.layers.Dense(2)(inputs), noise_level=0.3, seed=0
)
model.compile(optimizer="sgd", loss="mse")
history = model.fit(np.ones((8, 4)), np.ones((8, 2)), verbose=0)
assert np.isfinite(history.history["loss"][0])
assert "tensorflow" not in sys.modules
print("ok")
"""


@pytest.mark.e2e
@pytest.mark.skipif(BACKEND != "jax", reason="the GPU machine's case: JAX")
def test_import_and_train_without_tensorflow():
    env = dict(os.environ, KERAS_BACKEND=BACKEND)
    done = subprocess.run(
        [sys.executable, "-c", BLOCK_TENSORFLOW], env=env,
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("ok")


def test_noise_is_fresh_each_step_and_a_function_of_seed_and_step():
    # Learning rate 0 keeps W fixed, so the loss changes only with the noise.
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 16, 2)).astype("float32")
    y = rng.integers(0, 3, 16).astype("int32")

    def losses(seed):
        keras.utils.set_random_seed(0)
        model = keras_ssgd.wrap(conv_net(), noise_level=0.5, seed=seed)
        compile_model(model, keras.optimizers.SGD(0.0))
        history = model.fit(x, y, batch_size=16, epochs=3, verbose=0)
        return history.history["loss"]

    first = losses(seed=1)
    assert len(set(first)) == 3  # a new direction at every step
    assert losses(seed=1) == first  # (seed, step) fixes the directions
    assert losses(seed=2) != first
