"""S-SGD under Keras's distribution API (`keras.distribution`) on JAX.

`DataParallel` over 2 virtual CPU devices
(`XLA_FLAGS=--xla_force_host_platform_device_count=2`). JAX fixes its
devices once per process, so each check runs in a fresh interpreter.
Skipped, with the reason, where JAX is not installed.
"""

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("jax") is None, reason="JAX is not installed"
)

SCRIPT = r"""
import json, os, sys
import keras, numpy as np
import keras_ssgd

x = np.random.default_rng(0).normal(size=(128, 8)).astype("float32")
y = x[:, :3].argmax(axis=1).astype("int32")

def train(method, distributed, epochs=2, **kwargs):
    keras.distribution.set_distribution(
        keras.distribution.DataParallel(
            devices=keras.distribution.list_devices())
        if distributed else None)
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8,))
    hidden = keras.layers.Dense(16, activation="tanh")(inputs)
    base = keras.Model(inputs, keras.layers.Dense(3)(hidden))
    model = keras_ssgd.wrap(base, method=method, seed=4, **kwargs)
    model.compile(
        optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(x, y, batch_size=32, epochs=epochs, shuffle=False,
                        verbose=0)
    return model, history.history["loss"]

def replicas_agree(model):
    # Every device holds the same value of every variable.
    for v in model.trainable_variables:
        shards = [np.asarray(s.data) for s in v.value.addressable_shards]
        if len(shards) < 2 or any(
                not np.array_equal(shards[0], s) for s in shards[1:]):
            return False
    return True

cases = {
    "plain": ("ssgd", dict(noise_level=0.0)),
    "ssgd": ("ssgd", dict(noise_level=0.3)),
    "split": ("ssgd", dict(noise_level=0.3, split_batch=True)),
    "weight-noise": ("weight-noise", dict(noise_level=0.3)),
}
out = {}
for name, (method, kwargs) in cases.items():
    single, single_loss = train(method, False, **kwargs)
    model, loss = train(method, True, **kwargs)
    out[name] = {
        "devices": len(keras.distribution.list_devices()),
        "max_diff": max(
            float(np.abs(np.asarray(a) - np.asarray(b)).max())
            for a, b in zip(model.trainable_variables,
                            single.trainable_variables)),
        "loss_diff": max(abs(a - b) for a, b in zip(loss, single_loss)),
        "moved": float(np.abs(np.asarray(model.trainable_variables[0])).sum()),
        "replicas_agree": replicas_agree(model),
    }
print("RESULT " + json.dumps(out))
"""


@pytest.fixture(scope="module")
def results():
    env = dict(
        os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="2",
        XLA_FLAGS="--xla_force_host_platform_device_count=2",
    )
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True,
        timeout=600, env=env,
    )
    lines = [l for l in done.stdout.splitlines() if l.startswith("RESULT ")]
    assert lines, done.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT "):])


@pytest.mark.parametrize("case", ["plain", "ssgd", "split", "weight-noise"])
def test_data_parallel_on_two_devices_is_the_single_device_algorithm(
    results, case
):
    # One noise for the whole global batch: the sharded step computes the
    # single-device step, whose noise, halves and passes it keeps.
    out = results[case]
    assert out["devices"] == 2
    assert out["max_diff"] < 1e-6, out
    assert out["loss_diff"] < 1e-6, out
    assert out["replicas_agree"], out
    assert np.isfinite(out["moved"])


PROGRAM = os.path.join(os.path.dirname(__file__), "jax_multiprocess_program.py")


def free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(case, out, processes, timeout=300):
    """Runs `case` as `processes` processes; returns their exit codes."""
    env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="2",
               JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)  # one CPU device per process
    port = free_port()
    jobs = [
        subprocess.Popen(
            [sys.executable, PROGRAM, case, str(out), str(i), str(processes),
             str(port)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env=env,
        )
        for i in range(processes)
    ]
    codes, logs = [], []
    for job in jobs:
        try:
            log, _ = job.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            job.kill()
            log, _ = job.communicate()
        codes.append(job.returncode)
        logs.append(log)
    return codes, logs


def arrays(path):
    with np.load(path) as f:
        return [f[k] for k in sorted(f.files, key=lambda k: int(k.split("_")[1]))]


@pytest.mark.parametrize("case", ["plain", "ssgd", "split"])
def test_two_processes_train_as_one(case, tmp_path):
    # 2 processes x B/2 (jax.distributed, CPU collectives) against one
    # process x B: the same weights, on both processes.
    codes, logs = launch(case, tmp_path, 2)
    assert codes == [0, 0], "\n".join(l[-2000:] for l in logs)
    codes, logs = launch(case, tmp_path, 1)
    assert codes == [0], logs[0][-2000:]
    single = arrays(tmp_path / f"{case}-1-0.npz")
    first, second = (arrays(tmp_path / f"{case}-2-{i}.npz") for i in (0, 1))
    for a, b, c in zip(first, second, single):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(a, c, atol=1e-6, rtol=0)
    losses = [
        json.loads((tmp_path / f"{case}-{n}-0.json").read_text())["loss"]
        for n in (2, 1)
    ]
    np.testing.assert_allclose(losses[0], losses[1], atol=1e-6)


def test_a_dead_process_ends_the_job_quickly(tmp_path):
    import time

    start = time.monotonic()
    codes, logs = launch("dies", tmp_path, 2, timeout=120)
    seconds = time.monotonic() - start
    assert codes[1] == 3
    assert codes[0] != 0, logs[0][-2000:]
    started = float((tmp_path / "started0").read_text())
    assert time.time() - started < 90 and seconds < 120


def test_keras_distribution_on_another_backend_is_a_clear_error():
    # Keras 3's distribution API runs on JAX only (TensorFlow's is a
    # prototype, PyTorch has none): S-SGD says so at fit().
    script = (
        "import keras, numpy as np, keras_ssgd\n"
        "keras.distribution.set_distribution(keras.distribution.DataParallel("
        "devices=keras.distribution.list_devices()))\n"
        "i = keras.Input((3,))\n"
        "m = keras_ssgd.SymmetricSGDModel(i, keras.layers.Dense(2)(i), "
        "noise_level=0.1, seed=0)\n"
        "m.compile(optimizer='sgd', loss='mse')\n"
        "try:\n"
        "    m.fit(np.ones((4, 3)), np.ones((4, 2)), verbose=0)\n"
        "except ValueError as e:\n"
        "    print('ERROR', e)\n"
    )
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True,
                          text=True, timeout=120, env=env)
    assert "ERROR keras.distribution (DataParallel, ModelParallel) is " \
        "supported on the jax Keras backend only" in done.stdout, (
            done.stdout + done.stderr[-2000:])
    assert "backend='tensorflow'" in done.stdout


RESUME_SCRIPT = r"""
import json, sys
import keras, numpy as np
import keras_ssgd

backup = sys.argv[1]
x = np.random.default_rng(0).normal(size=(128, 8)).astype("float32")
y = x[:, :3].argmax(axis=1).astype("int32")
keras.distribution.set_distribution(keras.distribution.DataParallel(
    devices=keras.distribution.list_devices()))

def model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8,))
    hidden = keras.layers.Dense(16, activation="tanh")(inputs)
    m = keras_ssgd.SymmetricSGDModel(
        inputs, keras.layers.Dense(3)(hidden), noise_level=0.3, seed=4)
    m.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return m

class Interrupt(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1:
            raise RuntimeError("interrupted")

def fit(m, extra=()):
    return m.fit(x, y, batch_size=32, epochs=4, shuffle=False, verbose=0,
          callbacks=[keras.callbacks.BackupAndRestore(backup), *extra])

straight = model()
straight.fit(x, y, batch_size=32, epochs=4, shuffle=False, verbose=0)
first = model()
try:
    fit(first, [Interrupt()])
except RuntimeError:
    pass
resumed = model()
history = fit(resumed)
print("RESULT " + json.dumps({
    "epochs_run": len(history.history["loss"]),
    "max_diff": max(float(np.abs(np.asarray(a) - np.asarray(b)).max())
                    for a, b in zip(straight.trainable_variables,
                                    resumed.trainable_variables)),
    "iterations": int(resumed.optimizer.iterations),
}))
"""


def test_backup_and_restore_continue_the_same_trajectory(tmp_path):
    # The noise of step t is a function of (seed, t): a run restored from a
    # backup under DataParallel draws what the straight run drew.
    env = dict(
        os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="2",
        XLA_FLAGS="--xla_force_host_platform_device_count=2",
    )
    done = subprocess.run(
        [sys.executable, "-c", RESUME_SCRIPT, str(tmp_path / "backup")],
        capture_output=True, text=True, timeout=300, env=env,
    )
    lines = [l for l in done.stdout.splitlines() if l.startswith("RESULT ")]
    assert lines, done.stderr[-3000:]
    out = json.loads(lines[-1][len("RESULT "):])
    assert out["iterations"] == 16
    assert out["epochs_run"] == 2  # restored after epoch 2, not rerun
    assert out["max_diff"] < 1e-6, out


SSGD_TRAIN = [
    "--distributed", "keras", "--model", "mlp", "--epochs", "1",
    "--seeds", "1", "--method", "sgd", "--method", "ssgd:0.3",
    "--method", "ssgd-split:0.3", "--quiet",
]


def ssgd_train_command():
    return [os.path.join(os.path.dirname(sys.executable), "ssgd-train")]


def test_ssgd_train_distributed_keras_over_two_devices(tmp_path):
    # The global computation of one device: the same losses as without
    # the distribution, on 2 devices.
    env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="2",
               JAX_PLATFORMS="cpu",
               XLA_FLAGS="--xla_force_host_platform_device_count=2")
    runs = []
    for name, extra in (("a", ["--no-scale-lr"]),
                        ("b", ["--distributed", "none"])):
        done = subprocess.run(
            ssgd_train_command() + SSGD_TRAIN + extra
            + ["--output", str(tmp_path / name)],
            capture_output=True, text=True, timeout=300, env=env,
        )
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        runs.append({r["method"]: r for r in json.loads(
            (tmp_path / name / "results.json").read_text())["runs"]})
    for method in ("sgd", "ssgd", "ssgd-split"):
        a, b = runs[0][method], runs[1][method]
        assert a["workers"] == 2 and a["distributed"] == "keras"
        assert a["status"] == "ok"
        np.testing.assert_allclose(
            a["train_loss_last_epoch"], b["train_loss_last_epoch"], rtol=1e-5)


def test_ssgd_train_distributed_keras_is_one_process(tmp_path):
    done = subprocess.run(
        ssgd_train_command() + SSGD_TRAIN + ["--output", str(tmp_path / "o")],
        capture_output=True, text=True, timeout=120,
        env=dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="2",
                 KERAS_DISTRIBUTION_NUM_PROCESSES="2"),
    )
    assert done.returncode == 2
    assert "KERAS_DISTRIBUTION_NUM_PROCESSES='2'" in done.stderr


def test_ssgd_train_distributed_keras_is_refused_off_jax(tmp_path):
    done = subprocess.run(
        ssgd_train_command() + SSGD_TRAIN + ["--output", str(tmp_path / "o")],
        capture_output=True, text=True, timeout=120,
        env=dict(os.environ, KERAS_BACKEND="tensorflow",
                 TF_CPP_MIN_LOG_LEVEL="2"),
    )
    assert done.returncode == 2
    assert "--distributed keras" in done.stderr
    assert "backend='tensorflow'" in done.stderr
