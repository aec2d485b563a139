"""A sweep killed with SIGKILL again and again, at named points of its
writes and at seeded random batches, and resumed each time, ends with the
`results.json` of the sweep never stopped (`keras_ssgd/kill_points.py`).

Slow tier, TensorFlow: what a kill leaves on disk does not depend on the
backend, and each backend's resumption is checked exactly by
`tests/train/test_resume.py`.
"""

import json
import os
import signal
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_ssgd import checkpoint
from keras_ssgd import kill_points
from keras_ssgd import store

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                       reason="the files a kill leaves, on TensorFlow"),
]

# Three runs of 2 epochs of 7 batches, a checkpoint after every 2 batches.
ARGS = ["--model", "mlp", "--seeds", "1", "--quiet",
        "--hessian-iterations", "0", "--method", "sgd",
        "--method", "ssgd:0.2", "--method", "ssgd-split:0.2",
        "--epochs", "2", "--batch-size", "500",
        "--steps-per-execution", "1", "--checkpoint-every", "2"]
# What may differ from the sweep never stopped: wall times, the folder's
# path, and how many times a run was resumed.
UNEQUAL = {"seconds", "finished", "seconds_mean", "time_vs_sgd",
           "model_file", "resumed"}
# Each named point, at a count where records and checkpoints exist.
NAMED = [("write-start", 3), ("write-written", 5), ("write-synced", 7),
         ("write-renamed", 9), ("batch", 5)]


def kills(random=10, seed=0):
    """The named points, then `random` kills at seeded random batches."""
    rng = np.random.default_rng(seed)
    return NAMED + [("batch", int(k)) for k in rng.integers(1, 8, random)]


def start(folder, kill=None):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop(kill_points.VARIABLE, None)
    if kill is not None:
        env[kill_points.VARIABLE] = "{}:{}".format(*kill)
    resume = ["--resume"] if (folder / "config.json").exists() else []
    return subprocess.Popen(
        [sys.executable, "-m", "keras_ssgd", *ARGS, *resume,
         "--output", str(folder)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
    )


def comparable(value):
    """`value` without the fields that may differ (`UNEQUAL`)."""
    if isinstance(value, dict):
        return {k: comparable(v) for k, v in value.items()
                if k not in UNEQUAL}
    if isinstance(value, list):
        return [comparable(v) for v in value]
    return value


def test_a_sweep_killed_anywhere_and_resumed_is_the_sweep_never_stopped(
        tmp_path):
    """About 100 s on 2 CPU cores: 15 killed processes and the last one,
    beside the sweep never stopped."""
    stopped, whole = tmp_path / "stopped", tmp_path / "whole"
    never_stopped = start(whole)
    killed = []
    for kill in kills():
        process = start(stopped, kill)
        _, stderr = process.communicate(timeout=300)
        if process.returncode == 0:
            break  # the sweep finished before reaching the point
        assert process.returncode == -signal.SIGKILL, stderr
        killed.append(kill)
        # Whatever was on disk reads: every record, every checkpoint.
        for path in store.record_paths(stopped):
            json.loads(path.read_text(encoding="utf-8"))
        for path in (stopped / "runs").glob("*" + checkpoint.SUFFIX):
            key = path.name[: -len(checkpoint.SUFFIX)]
            checkpoint.read(path, key, lambda recipe: "")
    assert len(killed) >= len(NAMED)  # every named point was reached
    last = start(stopped)
    for process in (last, never_stopped):
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr
    a = json.loads((stopped / "results.json").read_text())
    b = json.loads((whole / "results.json").read_text())
    assert comparable(a) == comparable(b)
    assert any(run.get("resumed") for run in a["runs"])
    assert store.temp_files(stopped) == []
    assert not list(stopped.rglob("*" + checkpoint.SUFFIX))


def test_a_kill_point_is_named_and_counted():
    with pytest.raises(ValueError, match="KERAS_SSGD_KILL_AT must be "
                       "NAME:N.*Received: KERAS_SSGD_KILL_AT='write:0'"):
        kill_points._parse("write:0")
    assert kill_points._parse("batch:3") == ("batch", 3)
    assert kill_points._parse("") is None
