import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

# The suite runs on TensorFlow; under another backend (KERAS_BACKEND=jax or
# torch) only the backend-neutral modules are collected.
BACKEND_NEUTRAL = {"test_backends.py", "test_cli_every_backend.py",
                   "test_keras_compat.py", "test_noise.py",
                   "test_hessian_backends.py",
                   "test_keras_contract.py", "test_split.py",
                   "test_wrap_own_logic.py", "test_custom_step.py",
                   "test_weight_averaging.py",
                   "test_every.py", "test_msam.py", "test_arwp.py",
                   "test_precision_accumulation.py", "test_resume.py",
                   "test_keras_hub.py"}


# `make test` and the other side-by-side tiers (tests/side_by_side.sh) run
# TensorFlow's tests in two shares: the first beside JAX and PyTorch, the
# second after them in their process, so that both processes take about
# the same time. KERAS_SSGD_TEST_SHARE=first or second picks one; unset,
# all of TensorFlow's tests run.
# Measured on 2 cores: TensorFlow's fast tier took 443 s beside JAX and
# PyTorch's 235 s, its e2e tier 506 s beside their 268 s.
SECOND_SHARE = {
    "test_keras_hub.py", "test_wheel_install.py",  # e2e, about 150 s
    "test_kill_points.py",  # slow, about 75 s
    # fast, about 80 s
    "test_model.py", "test_cli_user.py", "test_budget.py", "test_verdict.py",
}


def pytest_ignore_collect(collection_path, config):
    name = collection_path.name
    if not name.startswith("test_"):
        return None
    if os.environ["KERAS_BACKEND"] != "tensorflow":
        return name not in BACKEND_NEUTRAL
    share = os.environ.get("KERAS_SSGD_TEST_SHARE")
    if share == "first" and name in SECOND_SHARE:
        return True
    if share == "second" and collection_path.is_file():
        return name not in SECOND_SHARE
    return None


import json  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

# The tiers (tests/tiers.py) and pytester, with which
# tests/project/test_tiers.py runs small suites of its own.
pytest_plugins = ["tiers", "pytester"]


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    keras.utils.set_random_seed(0)
    yield
    keras.config.set_dtype_policy("float32")
    # Without free_memory, which runs a full garbage collection (about 0.7 s
    # with TensorFlow loaded, more than most tests take).
    keras.backend.clear_session(free_memory=False)


@pytest.fixture
def op_determinism():
    """Deterministic TensorFlow kernels for this test only (this disables
    XLA in Keras while on, so it must not leak into other tests)."""
    from tensorflow.python.framework import config

    config.enable_op_determinism()
    yield
    config.disable_op_determinism()


def make_classification(n=128, features=8, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, features)).astype("float32")
    w = rng.standard_normal((features, classes))
    y = np.argmax(x @ w, axis=1).astype("int32")
    return x, y


def mlp(features=8, classes=3, batchnorm=False, dropout=0.0, name=None):
    inputs = keras.Input((features,))
    h = keras.layers.Dense(16, activation="tanh")(inputs)
    if batchnorm:
        h = keras.layers.BatchNormalization()(h)
    if dropout:
        h = keras.layers.Dropout(dropout)(h)
    outputs = keras.layers.Dense(classes)(h)
    return keras.Model(inputs, outputs, name=name)


def compile_for_classification(model, optimizer=None, **kwargs):
    model.compile(
        optimizer=optimizer or keras.optimizers.SGD(0.05, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        **kwargs,
    )
    return model


def weights_of(model):
    return [np.array(v) for v in model.weights]


def assert_bit_identical(a, b):
    assert len(a) == len(b)
    for i, (u, v) in enumerate(zip(a, b)):
        np.testing.assert_array_equal(u, v, err_msg=f"weight {i} differs")


def check_folder(folder, methods, backend):
    """An `ssgd-train` output folder of one seed of `methods`, trained on
    MNIST-1D's NumPy order with the backend's own Hessian."""
    for name in ("results.json", "summary.md", "accuracy.png"):
        assert (folder / name).exists(), name
    results = json.loads((folder / "results.json").read_text())
    runs = {r["method"]: r for r in results["runs"]}
    assert sorted(runs) == sorted(methods)
    for record in runs.values():
        assert record["status"] == "ok"
        assert 0 <= record["test_accuracy"] <= 100
        # The backend's own Hessian-vector products.
        assert isinstance(record["hessian_top"], float)
        assert record["hessian_top"] > 0  # the training loss curves up
        assert "hessian_note" not in record
    assert results["verdicts"]
    assert results["config"]["recipe"]["data_order"] == (
        "numpy-permutation-per-epoch"
    )


def fake_train(config, spec, **kwargs):
    """A stand-in for `runner.train` that trains nothing: the record of a
    finished run, for the tests of the run folder around it."""
    from keras_ssgd.train.registry import METHODS

    return {
        "key": spec.key, "method": spec.method, "level": spec.level,
        "level_name": METHODS[spec.method].level_name, "seed": spec.seed,
        "status": "ok", "test_accuracy": 50.0, "train_loss": 1.0,
        "seconds": 1.0, "epochs_run": config.epochs,
    }


def stop_once_after_an_epoch(monkeypatch):
    """Makes the first epoch that any `keras.Model.fit` trains from now on
    end in a Ctrl-C (`KeyboardInterrupt`, after the epoch's callbacks that
    come before it, checkpoints included); later epochs and fits run on."""
    real_fit = keras.Model.fit
    stops = []

    class Stop(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if not stops:
                stops.append(epoch)
                raise KeyboardInterrupt

    def fit(self, *args, callbacks=(), **kwargs):
        return real_fit(self, *args, callbacks=[*(callbacks or ()), Stop()],
                        **kwargs)

    monkeypatch.setattr(keras.Model, "fit", fit)


# Fields of a record that may differ between a resumed run and the run
# never stopped: the wall times, the folder of its model, and `resumed`.
UNEQUAL = {"seconds", "finished", "model_file", "resumed"}


def keras_file_weights(path):
    """Every array of a `.keras` file's weights, by its place in the file."""
    import io
    import zipfile

    import h5py

    out = {}
    with zipfile.ZipFile(path) as archive:
        data = io.BytesIO(archive.read("model.weights.h5"))
    with h5py.File(data, "r") as file:
        file.visititems(lambda name, item: out.__setitem__(name, item[()])
                        if isinstance(item, h5py.Dataset) else None)
    return out


def assert_same_runs(stopped, whole):
    """The records and weights of run folder `stopped` (each run resumed
    once) are those of `whole`, bit for bit, but for the wall times; no
    checkpoint or temporary file is left in either."""
    from keras_ssgd import checkpoint
    from keras_ssgd import store

    keys = sorted(p.stem for p in store.record_paths(whole))
    assert keys == sorted(p.stem for p in store.record_paths(stopped))
    for key in keys:
        a = json.loads((stopped / "runs" / f"{key}.json").read_text())
        b = json.loads((whole / "runs" / f"{key}.json").read_text())
        assert a["resumed"] == 1 and "resumed" not in b
        assert {k: v for k, v in a.items() if k not in UNEQUAL} == {
            k: v for k, v in b.items() if k not in UNEQUAL}, key
        wa = keras_file_weights(stopped / "runs" / f"{key}.keras")
        wb = keras_file_weights(whole / "runs" / f"{key}.keras")
        assert wa.keys() == wb.keys()
        for name in wa:
            np.testing.assert_array_equal(wa[name], wb[name], err_msg=name)
    for folder in (stopped, whole):
        assert not list(folder.rglob("*" + checkpoint.SUFFIX))
        assert store.temp_files(folder) == []
