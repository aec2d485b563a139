"""SymmetricSGDModel under tf.distribute.MirroredStrategy (two CPU replicas).

TensorFlow fixes its logical devices once per process, so the check runs in
a fresh interpreter.
"""

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

# Two replicas in a fresh interpreter: `make test-distributed`.
pytestmark = pytest.mark.distributed

SCRIPT = r"""
import json, os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2
)
import keras, numpy as np
sys.path.insert(0, sys.argv[1])
from conftest import compile_for_classification, make_classification, mlp
import keras_ssgd

strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
x, y = make_classification(256)

def train(level, wrap=True, x=x, callbacks=()):
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = mlp(batchnorm=True)
        if wrap:
            model = keras_ssgd.wrap(model, noise_level=level, seed=0)
        compile_for_classification(model)
    start = [np.array(v) for v in model.trainable_variables]
    history = model.fit(
        x, y, batch_size=64, epochs=3, shuffle=False, verbose=0,
        callbacks=list(callbacks),
    )
    end = [np.array(v) for v in model.trainable_variables]
    return start, end, history.history["loss"]

out = {}
_, plain, plain_loss = train(0.0, wrap=False)
_, level0, level0_loss = train(0.0)
out["level0_max_diff"] = max(float(np.abs(a - b).max()) for a, b in zip(plain, level0))
out["level0_loss_diff"] = max(abs(a - b) for a, b in zip(plain_loss, level0_loss))
start, noisy, noisy_loss = train(0.5)
out["noisy_loss"] = noisy_loss
out["noisy_moved"] = all(not np.array_equal(a, b) for a, b in zip(start, noisy))
bad = x.copy()
bad[3, 0] = np.nan  # first batch, first replica's half
start, after, nan_loss = train(
    0.5, x=bad, callbacks=[keras.callbacks.TerminateOnNaN()]
)
out["nan_first_loss"] = str(nan_loss[0])
out["nan_moved"] = any(not np.array_equal(a, b) for a, b in zip(start, after))

# The one-pass peers: MSAM reads the optimizer's (mirrored) momentum, ARWP
# updates its gradient history in each replica (the mean is kept).
for method, kwargs in (("msam", {"rho": 0.3}), ("arwp", {"sigma": 0.02}),
                       ("marwp", {"sigma": 0.02})):
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = keras_ssgd.wrap(mlp(batchnorm=True), method=method, seed=0,
                                **kwargs)
        compile_for_classification(model)
    loss = model.fit(x, y, batch_size=64, epochs=3, shuffle=False,
                     verbose=0).history["loss"]
    history = [float(np.abs(np.array(h)).sum())
               for h in getattr(model, "_histories", None) or []]
    out[method] = {"loss": loss, "history": history}
print("RESULT " + json.dumps(out))
"""


def test_mirrored_strategy_two_replicas():
    tests = pathlib.Path(__file__).parents[1]
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tests)],
        capture_output=True, text=True, timeout=600,
    )
    lines = [l for l in done.stdout.splitlines() if l.startswith("RESULT ")]
    assert lines, done.stderr[-3000:]
    out = json.loads(lines[-1][len("RESULT "):])
    # Noise level 0 follows Keras's own mirrored training.
    assert out["level0_max_diff"] < 1e-6
    assert out["level0_loss_diff"] < 1e-6
    # S-SGD trains under the strategy.
    assert out["noisy_moved"]
    assert out["noisy_loss"][-1] < out["noisy_loss"][0]
    # A NaN on one replica skips the update on all of them, and
    # TerminateOnNaN stops the run after that first batch.
    assert out["nan_first_loss"] == "nan"
    assert not out["nan_moved"]
    # MSAM, ARWP and m-ARWP train under the strategy; ARWP's history grows.
    for method in ("msam", "arwp", "marwp"):
        loss = out[method]["loss"]
        assert np.isfinite(loss).all() and loss[-1] < loss[0], (method, loss)
    assert all(h > 0 for h in out["arwp"]["history"] + out["marwp"]["history"])


PAIRS_SCRIPT = r"""
import json, os, sys, warnings
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * int(sys.argv[2])
)
import keras, numpy as np
sys.path.insert(0, sys.argv[1])
from conftest import compile_for_classification, make_classification, mlp
import keras_ssgd
from keras_ssgd.distributed.pairs import pair_replicas

replicas = int(sys.argv[2])
strategy = tf.distribute.MirroredStrategy(
    [f"/cpu:{i}" for i in range(replicas)])
x, y = make_classification(256)

def train(strategy=None, pairs=False, batchnorm=False):
    keras.utils.set_random_seed(0)
    scope = strategy.scope() if strategy else tf.distribute.get_strategy().scope()
    with scope:
        model = keras_ssgd.wrap(
            mlp(batchnorm=batchnorm), noise_level=0.3, seed=5,
            split_batch=True)
        if pairs:
            pair_replicas(model)
        compile_for_classification(model)
    history = model.fit(x, y, batch_size=64, epochs=2, shuffle=False,
                        verbose=0)
    return model, history.history["loss"]

out = {}
if replicas % 2:
    try:
        train(strategy, pairs=True)
    except ValueError as error:
        out["error"] = str(error)
else:
    paired, paired_loss = train(strategy, pairs=True)
    single, single_loss = train()
    out["max_diff"] = max(
        float(np.abs(np.array(a) - np.array(b)).max())
        for a, b in zip(paired.trainable_variables, single.trainable_variables))
    out["loss_diff"] = max(abs(a - b) for a, b in zip(paired_loss, single_loss))
    out["passes"] = paired.passes
    # BatchNorm: each replica normalises its whole part with its own
    # statistics; it trains.
    _, bn_loss = train(strategy, pairs=True, batchnorm=True)
    out["bn_loss"] = bn_loss
print("RESULT " + json.dumps(out))
"""


def run_pairs(replicas):
    tests = pathlib.Path(__file__).parents[1]
    done = subprocess.run(
        [sys.executable, "-c", PAIRS_SCRIPT, str(tests), str(replicas)],
        capture_output=True, text=True, timeout=600,
    )
    lines = [l for l in done.stdout.splitlines() if l.startswith("RESULT ")]
    assert lines, done.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT "):])


def test_replica_pairs_equal_the_split_step_on_the_global_batch():
    # Replica 0 measures the first half of each global batch at W + n,
    # replica 1 the second half at W - n: the split step of one device.
    out = run_pairs(2)
    assert out["max_diff"] < 1e-6
    assert out["loss_diff"] < 1e-6
    assert out["passes"] == 1
    assert all(np.isfinite(out["bn_loss"]))


def test_replica_pairs_refuse_an_odd_number_of_replicas():
    out = run_pairs(3)
    assert "Argument `pairs=True` needs an even number of workers" in out["error"]
    assert "Received: pairs=True with 3 worker(s)" in out["error"]
