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

pytestmark = [
    pytest.mark.distributed,
    pytest.mark.skipif(
        importlib.util.find_spec("jax") is None, reason="JAX is not installed"
    ),
]

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
    "msam": ("msam", dict(rho=0.3)),
    "arwp": ("arwp", dict(sigma=0.02)),
    "marwp": ("marwp", dict(sigma=0.02)),
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


@pytest.mark.parametrize("case", ["plain", "ssgd", "split", "weight-noise",
                                  "msam", "arwp", "marwp"])
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


@pytest.mark.parametrize("case", ["plain", "ssgd", "split", "pairs"])
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


def keras_runs(folder, env, extra=(), processes=1, timeout=600):
    """`ssgd-train SSGD_TRAIN extra` as `processes` processes of one job;
    returns process 0's records by method and every process's output."""
    port = free_port()
    jobs = []
    for i in range(processes):
        job_env = dict(env)
        if processes > 1:
            job_env.update(
                KERAS_DISTRIBUTION_JOB_ADDRESSES=f"127.0.0.1:{port}",
                KERAS_DISTRIBUTION_NUM_PROCESSES=str(processes),
                KERAS_DISTRIBUTION_PROCESS_ID=str(i),
            )
        jobs.append(subprocess.Popen(
            ssgd_train_command() + SSGD_TRAIN + list(extra)
            + ["--output", str(folder)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env=job_env,
        ))
    logs = []
    for job in jobs:
        try:
            log, _ = job.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            job.kill()
            log, _ = job.communicate()
        logs.append(log)
    for job, log in zip(jobs, logs):
        assert job.returncode == 0, log[-3000:]
    runs = {r["method"]: r for r in json.loads(
        (folder / "results.json").read_text())["runs"]}
    return runs, logs


@pytest.fixture(scope="module")
def one_process_runs(tmp_path_factory):
    # 2 devices under --distributed keras, and 1 device without it.
    env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="2",
               JAX_PLATFORMS="cpu",
               XLA_FLAGS="--xla_force_host_platform_device_count=2")
    folder = tmp_path_factory.mktemp("keras_runs")
    return (
        keras_runs(folder / "a", env, ["--no-scale-lr"])[0],
        keras_runs(folder / "b", env, ["--distributed", "none"])[0],
    )


def test_ssgd_train_distributed_keras_over_two_devices(one_process_runs):
    # The global computation of one device: the same losses as without
    # the distribution, on 2 devices.
    for method in ("sgd", "ssgd", "ssgd-split"):
        a, b = (runs[method] for runs in one_process_runs)
        assert a["workers"] == 2 and a["distributed"] == "keras"
        assert a["status"] == "ok"
        np.testing.assert_allclose(
            a["train_loss_last_epoch"], b["train_loss_last_epoch"], rtol=1e-5)


def test_ssgd_train_distributed_keras_over_two_processes(
    one_process_runs, tmp_path
):
    # 2 processes x 1 device (jax.distributed on localhost), each feeding
    # its rows of every batch, in training and evaluation, against 1
    # process x 2 devices: the same runs; only process 0 writes.
    env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="2",
               JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)
    runs, logs = keras_runs(tmp_path / "p", env, ["--no-scale-lr"],
                            processes=2)
    devices, _ = one_process_runs
    for method in ("sgd", "ssgd", "ssgd-split"):
        a, b = runs[method], devices[method]
        assert a["workers"] == 2 and a["status"] == "ok"
        for key in ("train_loss_last_epoch", "test_loss", "train_loss"):
            np.testing.assert_allclose(a[key], b[key], rtol=1e-5)
        for key in ("test_accuracy", "train_accuracy"):
            np.testing.assert_allclose(a[key], b[key], atol=1e-9)
    assert "Wrote" in logs[0] and "Wrote" not in logs[1]


def test_ssgd_train_distributed_keras_needs_the_coordinator(tmp_path):
    done = subprocess.run(
        ssgd_train_command() + SSGD_TRAIN + ["--output", str(tmp_path / "o")],
        capture_output=True, text=True, timeout=120,
        env=dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="2",
                 KERAS_DISTRIBUTION_NUM_PROCESSES="2"),
    )
    assert done.returncode == 2
    assert "KERAS_DISTRIBUTION_JOB_ADDRESSES" in done.stderr
    assert "KERAS_DISTRIBUTION_NUM_PROCESSES=2 without it" in done.stderr


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


DEVICE_STEP_SCRIPT = r"""
import json
import keras, numpy as np
import keras_ssgd
from keras_ssgd.distributed import keras_distribution as kd
from keras_ssgd.distributed.collectives import (
    collective_bytes, gradient_bytes, step_hlo)

x = np.random.default_rng(0).normal(size=(128, 8)).astype("float32")
y = x[:, :3].argmax(axis=1).astype("int32")
devices = keras.distribution.list_devices()

def model(devices=None, batchnorm=False, dropout=False, optimizer=None,
          options=None, **kwargs):
    keras.distribution.set_distribution(
        keras.distribution.DataParallel(devices=devices) if devices else None)
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8,))
    hidden = keras.layers.Dense(16)(inputs)
    if batchnorm:
        hidden = keras.layers.BatchNormalization()(hidden)
    if dropout:
        hidden = keras.layers.Dropout(0.2)(hidden)
    hidden = keras.layers.Activation("tanh")(hidden)
    m = keras_ssgd.wrap(keras.Model(inputs, keras.layers.Dense(3)(hidden)),
                        seed=4, **kwargs)
    # The optimizer is made under the distribution, as the model is.
    m.compile(optimizer=(optimizer or (
                  lambda: keras.optimizers.SGD(0.1, momentum=0.9)))(),
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
              metrics=["accuracy"])
    if options is not None:
        kd.distribute(m, **options)
    return m

def fit(m, x=x, y=y, batch_size=32, epochs=2):
    h = m.fit(x, y, batch_size=batch_size, epochs=epochs, shuffle=False,
              verbose=0)
    return h.history

def diff(a, b):
    # Every weight, BatchNorm's moving statistics included.
    return max(float(np.abs(np.asarray(u) - np.asarray(v)).max())
               for u, v in zip(a.weights, b.weights))

def replicas_agree(m):
    for v in m.weights:
        shards = [np.asarray(s.data) for s in v.value.addressable_shards]
        if any(not np.array_equal(shards[0], s) for s in shards[1:]):
            return False
    return True

def sent(m):
    total, _ = collective_bytes(step_hlo(m, x[:32], y[:32]))
    return total / gradient_bytes(m)

out = {"devices": len(devices)}
cases = {
    "ssgd": dict(noise_level=0.3),
    "split": dict(noise_level=0.3, split_batch=True),
    "ssgd-bn": dict(noise_level=0.3, batchnorm=True),
    "split-bn": dict(noise_level=0.3, split_batch=True, batchnorm=True),
    "split-bn-first": dict(noise_level=0.3, split_batch=True, batchnorm=True,
                           batchnorm_update="first"),
    "dropout": dict(noise_level=0.3, dropout=True),
}
for name, kwargs in cases.items():
    single = model(**kwargs)
    single_history = fit(single)
    spread = model(devices, **kwargs)
    history = fit(spread)
    out[name] = {
        "max_diff": diff(spread, single),
        "loss_diff": max(abs(a - b) for a, b in zip(history["loss"],
                                                    single_history["loss"])),
        "accuracy_diff": max(abs(a - b) for a, b in zip(
            history["accuracy"], single_history["accuracy"])),
        "replicas_agree": replicas_agree(spread),
        "gradients_sent": sent(spread),
    }

# Pairs: device 0 at W + n, device 1 at W - n, per-device BatchNorm: the
# split step of one device on the concatenated batch.
single = model(noise_level=0.3, split_batch=True, batchnorm=True)
fit(single)
paired = model(devices, noise_level=0.3, split_batch=True, batchnorm=True,
               options=dict(pairs=True))
fit(paired)
out["pairs"] = {"max_diff": diff(paired, single), "passes": paired.passes,
                "replicas_agree": replicas_agree(paired),
                "gradients_sent": sent(paired)}

# Per-device noise: device i draws with seed 4 + i. One plain SGD step is
# the mean of the steps of one device on each shard with that seed.
sgd = lambda: keras.optimizers.SGD(0.1)
per_device = model(devices, noise_level=0.3, batchnorm=True, optimizer=sgd,
                   options=dict())
fit(per_device, x[:32], y[:32], epochs=1)
references = []
for i in range(2):
    reference = model(noise_level=0.3, batchnorm=True, optimizer=sgd)
    reference.noise_seed = 4 + i
    fit(reference, x[16 * i:16 * (i + 1)], y[16 * i:16 * (i + 1)], 16, 1)
    references.append(reference)
shared = model(devices, noise_level=0.3, batchnorm=True, optimizer=sgd,
               options=dict(shared_noise=True))
fit(shared, x[:32], y[:32], epochs=1)
out["per_device"] = {
    "max_diff": max(
        float(np.abs(np.asarray(v) - (np.asarray(a) + np.asarray(b)) / 2).max())
        for v, a, b in zip(per_device.weights, *(r.weights for r in references))),
    "vs_shared": diff(per_device, shared),
    "replicas_agree": replicas_agree(per_device),
}
# Shared noise through distribute(): the model's noise on each device,
# each device its own BatchNorm statistics: the mean of the steps with
# seed 4 on each shard.
second = model(noise_level=0.3, batchnorm=True, optimizer=sgd)
fit(second, x[16:32], y[16:32], 16, 1)
out["shared"] = {
    "max_diff": max(
        float(np.abs(np.asarray(v) - (np.asarray(a) + np.asarray(b)) / 2).max())
        for v, a, b in zip(shared.weights, references[0].weights,
                           second.weights)),
    "replicas_agree": replicas_agree(shared),
}

errors = {}
for name, make in {
    "odd": lambda: model(devices[:1], noise_level=0.3, split_batch=True,
                         options=dict(pairs=True)),
    "dropout": lambda: model(devices, noise_level=0.3, dropout=True,
                             options=dict()),
    "no-distribution": lambda: model(noise_level=0.3, options=dict()),
    "pairs-type": lambda: model(devices, noise_level=0.3,
                                options=dict(pairs=1)),
}.items():
    try:
        make()
        errors[name] = None
    except (ValueError, TypeError) as e:
        errors[name] = f"{type(e).__name__}: {e}"
out["errors"] = errors
print("RESULT " + json.dumps(out))
"""


@pytest.fixture(scope="module")
def device_step():
    env = dict(
        os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="2",
        XLA_FLAGS="--xla_force_host_platform_device_count=2",
    )
    done = subprocess.run(
        [sys.executable, "-c", DEVICE_STEP_SCRIPT], capture_output=True,
        text=True, timeout=900, env=env,
    )
    lines = [l for l in done.stdout.splitlines() if l.startswith("RESULT ")]
    assert lines, done.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT "):])


@pytest.mark.parametrize(
    "case", ["ssgd", "split", "ssgd-bn", "split-bn", "split-bn-first"]
)
def test_the_per_device_step_reduces_one_gradient_and_is_the_single_device_step(
    device_step, case
):
    # The passes' gradients are combined on each device, then reduced once
    # (read from the compiled step); BatchNorm's moments are averaged over
    # the devices measured at the same point, so every weight, the moving
    # statistics included, is the single-device step's.
    out = device_step[case]
    assert device_step["devices"] == 2
    assert 1.0 <= out["gradients_sent"] < 2.0, out
    assert out["max_diff"] < 1e-6, out
    assert out["loss_diff"] < 1e-6, out
    assert out["accuracy_diff"] == 0, out
    assert out["replicas_agree"], out


def test_a_model_with_dropout_keeps_the_step_on_the_global_batch(device_step):
    # Its mask over the global batch cannot be drawn shard by shard: the
    # global step (two gradients sent), exactly the single-device step.
    out = device_step["dropout"]
    assert out["gradients_sent"] >= 2.0, out
    assert out["max_diff"] < 1e-6, out


def test_device_pairs_are_the_split_step_on_the_concatenated_batch(
    device_step
):
    out = device_step["pairs"]
    assert out["max_diff"] < 1e-6, out
    assert out["passes"] == 1
    assert out["replicas_agree"]
    assert 1.0 <= out["gradients_sent"] < 2.0, out


def test_per_device_noise_averages_each_devices_step_with_its_own_seed(
    device_step
):
    out = device_step["per_device"]
    assert out["max_diff"] < 1e-6, out
    assert out["replicas_agree"]
    assert out["vs_shared"] > 1e-4, out  # the second device's noise differs
    shared = device_step["shared"]
    assert shared["max_diff"] < 1e-6, shared
    assert shared["replicas_agree"]


def test_distribute_refuses_what_it_cannot_run(device_step):
    errors = device_step["errors"]
    assert "Argument `pairs=True` needs an even number of workers " \
        "(keras.distribution devices)" in errors["odd"]
    assert "Received: pairs=True with 1 worker(s)" in errors["odd"]
    assert errors["dropout"].startswith("ValueError")
    assert "non-trainable state other than BatchNormalization" in \
        errors["dropout"]
    assert "seed_generator" in errors["dropout"]
    assert "set_distribution(DataParallel" in errors["no-distribution"]
    assert errors["pairs-type"] == (
        "TypeError: Argument `pairs` must be a bool. Received: pairs=1"
    )
