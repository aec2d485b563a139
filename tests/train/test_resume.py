"""A run stopped in progress continues from its checkpoint (`--resume`),
to the record and weights of the run never stopped, on every backend;
damaged and foreign checkpoints are refused, naming the file.

The runs are the MLP on MNIST-1D, a few epochs each. A stop is a
`KeyboardInterrupt` raised by a callback at the end of an epoch (after
the checkpoint of that epoch is written), which `ssgd-train` handles as
Ctrl-C; the e2e test kills a real process with SIGKILL.
"""

import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
from conftest import assert_same_runs as _assert_same_runs
from conftest import fake_train as _fake_train

from keras_ssgd import store
from keras_ssgd import checkpoint
from keras_ssgd.train import cli
from keras_ssgd.train import runner

TINY = ["--model", "mlp", "--seeds", "1", "--quiet",
        "--hessian-iterations", "0"]


def run_cli(args, output):
    return cli.main([*TINY, *args, "--output", str(output)])


class _Stop(keras.callbacks.Callback):
    """Ctrl-C at the end of epoch `epoch` (0-based)."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt


def _stopping_at(monkeypatch, epoch, batch=None):
    """Every run that starts from its first epoch is stopped at the end of
    `epoch` (or, with `batch`, after that batch of it); a resumed one runs
    to its end."""
    real = runner.train

    def train(config, spec, **kwargs):
        if kwargs.get("restore") is None:
            stop = _Stop(epoch) if batch is None else _StopWithin(epoch,
                                                                  batch)
            kwargs["extra_callbacks"] = [*kwargs.get("extra_callbacks", ()),
                                         stop]
        return real(config, spec, **kwargs)

    monkeypatch.setattr(runner, "train", train)
    return real


def _temp_files(folder):
    return sorted(p.name for p in folder.rglob("*") if store.is_temp_file(p))


def _stop_and_resume(args, tmp_path, monkeypatch, epoch, runs, batch=None):
    """`args` trained twice: stopped at the end of `epoch` (or after its
    batch `batch`) in each of its `runs` and resumed each time, then never
    stopped; both folders."""
    stopped, whole = tmp_path / "stopped", tmp_path / "whole"
    real = _stopping_at(monkeypatch, epoch, batch)
    codes = [run_cli(args, stopped)]
    while codes[-1] == cli.EXIT_INTERRUPTED and len(codes) <= runs:
        held = sorted(p.name for p in (stopped / "runs").glob(
            "*" + checkpoint.SUFFIX))
        assert len(held) == 1, held  # one checkpoint: the run stopped
        codes.append(run_cli([*args, "--resume"], stopped))
    assert codes == [cli.EXIT_INTERRUPTED] * runs + [0]
    monkeypatch.setattr(runner, "train", real)
    assert run_cli(args, whole) == 0
    return stopped, whole


# The resumed run is the run never stopped (every backend).


@pytest.mark.e2e
@pytest.mark.parametrize("args", [
    ["--method", "ssgd:0.2", "--epochs", "2"],
    ["--method", "ssgd-split:0.2", "--epochs", "2"],
    # Stopped at the end of the S phase, resumed into the H phase.
    ["--method", "ssgd:0.2", "--phases", "1S-1H"],
    # PyTorch's unseeded Dropout draws from torch's global generator.
    ["--method", "dropout:0.3", "--epochs", "2"],
], ids=["ssgd", "ssgd-split", "phases", "dropout"])
def test_a_run_stopped_after_an_epoch_resumes_to_the_same_record_and_weights(
    args, tmp_path, monkeypatch
):
    """e2e tier (so that CI runs it on every backend): two 2-epoch MLP runs
    on MNIST-1D at batch 500 and a resumption after the first epoch; the
    four cases took 19 s on TensorFlow and 30 s on PyTorch (2 busy CPU
    cores)."""
    stopped, whole = _stop_and_resume([*args, "--batch-size", "500"],
                                      tmp_path, monkeypatch, epoch=0, runs=1)
    _assert_same_runs(stopped, whole)


class _StopWithin(keras.callbacks.Callback):
    """Ctrl-C after batch `batch` (0-based, the last of an execution) of
    epoch `epoch`, after that batch's checkpoint, if one is due."""

    def __init__(self, epoch, batch):
        super().__init__()
        self.at = (epoch, batch)
        self.epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            raise KeyboardInterrupt


@pytest.mark.e2e
@pytest.mark.parametrize("args, stop, resumes_at", [
    # One step per execution; checkpoints at steps 3 and 6 of 7; stopped
    # after step 5, so steps 4 and 5 are trained again.
    (["--method", "ssgd:0.2", "--steps-per-execution", "1",
      "--checkpoint-every", "3"], (0, 4), (0, 3)),
    (["--method", "ssgd-split:0.2", "--steps-per-execution", "1",
      "--checkpoint-every", "3"], (0, 4), (0, 3)),
    # Two steps per execution (one on PyTorch), a checkpoint after batch 4
    # of each epoch, stopped after batch 6 of the H phase's epoch.
    (["--method", "ssgd:0.2", "--phases", "1S-1H", "--steps-per-execution",
      "2", "--checkpoint-every", "4"], (1, 5), (1, 4)),
    # PyTorch's unseeded Dropout draws from torch's global generator, from
    # which starting the rest of an epoch may draw too.
    (["--method", "dropout:0.3", "--steps-per-execution", "1",
      "--checkpoint-every", "3"], (1, 4), (1, 3)),
], ids=["ssgd", "ssgd-split", "phases", "dropout"])
def test_a_run_stopped_within_an_epoch_resumes_to_the_same_record_and_weights(
    args, stop, resumes_at, tmp_path, monkeypatch
):
    """e2e tier (every backend): 2-epoch MLP runs on MNIST-1D at batch 500
    (7 steps an epoch), stopped within an epoch and resumed from the last
    checkpoint before the stop, against the run never stopped: the same
    record (history, accuracies) and weights, bit for bit. About 4 s a
    case on TensorFlow, 2 on PyTorch, 5 on JAX (2 CPU cores)."""
    args = [*args, "--batch-size", "500", "--epochs", "2"]
    stopped, whole = tmp_path / "stopped", tmp_path / "whole"
    real = runner.train
    restored = []

    def train(config, spec, **kwargs):
        held = kwargs.get("restore")
        if held is None:
            kwargs["extra_callbacks"] = [
                *kwargs.get("extra_callbacks", ()), _StopWithin(*stop)]
        else:
            restored.append((held.epoch, held.batch, len(held.metrics)))
        return real(config, spec, **kwargs)

    monkeypatch.setattr(runner, "train", train)
    assert run_cli(args, stopped) == cli.EXIT_INTERRUPTED
    assert run_cli([*args, "--resume"], stopped) == 0
    (epoch, batch, metrics), = restored
    assert (epoch, batch) == resumes_at and metrics > 0
    monkeypatch.setattr(runner, "train", real)
    assert run_cli(args, whole) == 0
    _assert_same_runs(stopped, whole)


@pytest.mark.e2e
@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="TensorBoard's files, on TensorFlow")
def test_a_resumed_runs_tensorboard_curves_are_one(tmp_path):
    """e2e tier: an `ssgd-train` process with --tensorboard killed (SIGKILL)
    just after its first epoch's checkpoint, then resumed: the log folder
    holds each epoch's loss once, the history of the record; about 12 s on
    2 CPU cores."""
    from tensorflow.python.summary.summary_iterator import summary_iterator

    from keras_ssgd import kill_points

    out = tmp_path / "run"
    args = [*TINY, "--method", "ssgd:0.2", "--epochs", "3", "--tensorboard",
            "--output", str(out)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2",
           # The 2nd write is the first epoch's checkpoint (after
           # config.json): killed once it is renamed into place.
           kill_points.VARIABLE: "write-renamed:2"}
    killed = subprocess.run([sys.executable, "-m", "keras_ssgd", *args],
                            env=env, capture_output=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL
    assert checkpoint.read(out / "runs" / f"ssgd-0.2-seed0{checkpoint.SUFFIX}",
                           "ssgd-0.2-seed0", lambda recipe: "").epoch == 1
    assert cli.main([*args, "--resume"]) == 0
    logs = out / "tensorboard" / "ssgd-0.2-seed0" / "train"
    losses = {}
    for events in sorted(logs.glob("events.out.tfevents*")):
        for event in summary_iterator(str(events)):
            for value in event.summary.value:
                if value.tag == "epoch_loss":
                    losses.setdefault(event.step, []).append(
                        float(tf_value(value)))
    record = json.loads((out / "runs" / "ssgd-0.2-seed0.json").read_text())
    assert record["resumed"] == 1
    assert losses == {epoch: [np.float32(loss)] for epoch, loss in
                      enumerate(record["history"]["loss"])}


def tf_value(value):
    """A scalar summary's number (TF2 writes it as a tensor)."""
    import tensorflow as tf

    return tf.make_ndarray(value.tensor)


def test_checkpoint_every_must_be_a_multiple_of_steps_per_execution(
        tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        run_cli(["--method", "sgd", "--steps-per-execution", "4",
                 "--checkpoint-every", "6"], tmp_path / "run")
    assert exit_.value.code == cli.EXIT_USAGE
    assert ("--checkpoint-every: must be a multiple of steps_per_execution "
            "(4)") in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="the baselines' resumption, on TensorFlow")
def test_the_baselines_resume_to_the_same_records_and_weights(
    tmp_path, monkeypatch
):
    """Slow tier: SAM, weight noise, Dropout (its seed generators), EMA
    (the optimizer's averages), SWA (the callback's sums) and the every-k
    methods (S-SGD and SAM on one step in 5), each stopped within its
    second epoch (after batch 24 of 35, a checkpoint every 8) and resumed;
    about 60 s on 2 CPU cores."""
    methods = ["sam:0.05", "weight-noise:0.2", "dropout:0.3", "ema:0.9",
               "swa:0.3", "ssgd-every:0.2", "sam-every:0.05"]
    args = ["--epochs", "3", "--checkpoint-every", "8"]
    for method in methods:
        args += ["--method", method]
    stopped, whole = _stop_and_resume(args, tmp_path, monkeypatch, epoch=1,
                                      runs=len(methods), batch=23)
    _assert_same_runs(stopped, whole)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="the files' life, on TensorFlow (the slow tier "
                    "resumes on every backend)")
def test_a_checkpoint_is_written_each_epoch_and_removed_when_the_run_ends(
    tmp_path, monkeypatch
):
    """Fast tier: one 2-epoch MLP run (SGD) stopped after its first epoch,
    then resumed; about 4 s on 2 CPU cores (TensorFlow only)."""
    out = tmp_path / "run"
    _stopping_at(monkeypatch, 0)
    assert run_cli(["--method", "sgd", "--epochs", "2"], out) == 130
    path = out / "runs" / f"sgd-seed0{checkpoint.SUFFIX}"
    held = checkpoint.read(path, "sgd-seed0",
                           lambda recipe: "" if recipe["epochs"] == 2 else "x")
    assert (held.epoch, held.resumed) == (1, 0)
    assert held.step == 35  # MNIST-1D: 3500 training signals, batch 100
    assert len(held.history["loss"]) == 1
    assert not (out / "runs" / "sgd-seed0.json").exists()
    assert run_cli(["--method", "sgd", "--epochs", "2", "--resume"],
                   out) == 0
    record = json.loads((out / "runs" / "sgd-seed0.json").read_text())
    assert record["resumed"] == 1 and record["epochs_run"] == 2
    assert len(record["history"]["loss"]) == 2
    assert not path.exists()
    assert _temp_files(out) == []


@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="the files' life, on TensorFlow")
def test_a_full_disk_stops_the_run_naming_the_file_and_keeps_the_last_checkpoint(
    tmp_path, monkeypatch, capsys
):
    """Fast tier: a 3-epoch MLP run (SGD) whose second checkpoint write
    finds the disk full (ENOSPC, raised by the writer); about 4 s on 2 CPU
    cores (TensorFlow only). The run stops with exit code 2 and a message
    naming the file and the reason, no traceback; the first epoch's
    checkpoint is intact and `--resume` continues from it."""
    import errno

    out = tmp_path / "run"
    path = out / "runs" / f"sgd-seed0{checkpoint.SUFFIX}"
    real_savez, calls = np.savez, []

    def savez(file, **arrays):
        calls.append(file)
        if len(calls) == 2:
            file.write(b"half a checkpoint")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_savez(file, **arrays)

    monkeypatch.setattr(checkpoint.np, "savez", savez)
    args = ["--method", "sgd", "--epochs", "3"]
    assert run_cli(args, out) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert f"Could not write {path}: No space left on device (ENOSPC)" in err
    assert "--resume" in err and "Traceback" not in err
    held = checkpoint.read(path, "sgd-seed0", lambda recipe: "")
    assert held.epoch == 1
    assert _temp_files(out) == []
    assert not (out / "runs" / "sgd-seed0.json").exists()
    monkeypatch.setattr(checkpoint.np, "savez", real_savez)
    assert run_cli([*args, "--resume"], out) == 0
    record = json.loads((out / "runs" / "sgd-seed0.json").read_text())
    assert record["resumed"] == 1 and record["epochs_run"] == 3


def test_an_unwritable_file_is_a_store_error_naming_it(tmp_path):
    # A folder where the file should be: the writer's OSError (EISDIR or
    # EEXIST, by platform) becomes a message naming the path.
    target = tmp_path / "record.json"
    target.mkdir()
    with pytest.raises(store.StoreError, match=f"Could not write {target}"):
        store.atomic_write_text(target, "{}")
    assert _temp_files(tmp_path) == []


# Damaged and foreign checkpoints.


def _fail_if_called(*args, **kwargs):
    raise AssertionError("training started despite a damaged checkpoint")


def _state(key, recipe):
    return checkpoint.State(
        key=key, recipe=recipe, epoch=1, step=35,
        history={"loss": [1.0]}, resumed=0,
        model=[np.zeros((2, 2), "float32")],
        optimizer=[np.array(35, "int64")], callbacks={},
    )


def _folder_with_a_run_to_resume(tmp_path, monkeypatch):
    """A run folder whose `sgd-seed0` finished and `sgd-seed1` holds a
    checkpoint (written with no training: a state of the right recipe)."""
    monkeypatch.setattr(runner, "train", _fake_train)
    out = tmp_path / "run"
    assert run_cli(["--method", "sgd", "--epochs", "1"], out) == 0
    recipe = json.loads((out / "config.json").read_text())["recipe"]
    path = out / "runs" / f"sgd-seed1{checkpoint.SUFFIX}"
    checkpoint.write(path, _state("sgd-seed1", recipe))
    return out, path, recipe


def _damage_truncated(path, recipe, tmp_path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return "not a complete .npz file"


def _damage_empty(path, recipe, tmp_path):
    path.write_bytes(b"")
    return "not a complete .npz file"


def _damage_not_a_checkpoint(path, recipe, tmp_path):
    with open(path, "wb") as file:
        np.savez(file, weights=np.zeros(3))
    return "is not an `ssgd-train` checkpoint"


def _damage_other_run(path, recipe, tmp_path):
    checkpoint.write(path, _state("sgd-seed7", recipe))
    return "holds the run 'sgd-seed7'"


def _damage_other_recipe(path, recipe, tmp_path):
    checkpoint.write(path, _state("sgd-seed1", {**recipe, "lr": 0.3}))
    return "another recipe (lr: 0.3 there, 0.05 now)"


@pytest.mark.parametrize(
    "damage",
    [_damage_truncated, _damage_empty, _damage_not_a_checkpoint,
     _damage_other_run, _damage_other_recipe],
    ids=lambda f: f.__name__[len("_damage_"):],
)
def test_resume_with_a_damaged_or_foreign_checkpoint_exits_2_naming_it(
    damage, tmp_path, monkeypatch, capsys
):
    """Fast tier: no training (a fake run and a written state); well under
    a second."""
    out, path, recipe = _folder_with_a_run_to_resume(tmp_path, monkeypatch)
    message = damage(path, recipe, tmp_path)
    capsys.readouterr()
    monkeypatch.setattr(runner, "train", _fail_if_called)
    args = ["--method", "sgd", "--epochs", "1", "--seeds", "2", "--resume"]
    assert run_cli(args, out) == 2
    err = capsys.readouterr().err
    assert "ssgd-train: error: " in err and "Traceback" not in err
    assert str(path) in err and message in err
    assert "from its first epoch" in err


def test_compare_refuses_a_damaged_checkpoint_in_its_own_words(
    tmp_path, monkeypatch
):
    """Fast tier: no training; well under a second."""
    import keras_ssgd

    out, path, _ = _folder_with_a_run_to_resume(tmp_path, monkeypatch)
    path.write_bytes(b"PK\x03\x04 cut short")
    with pytest.raises(ValueError, match="pick another output") as caught:
        keras_ssgd.compare("mlp", "mnist1d", methods=["sgd"], seeds=2,
                           epochs=1, hessian_iterations=0, output=out,
                           resume=True)
    assert str(path) in str(caught.value)


def test_a_checkpoint_of_another_model_is_refused_when_training_begins(
    tmp_path, monkeypatch
):
    """Fast tier: the recipe matches but the variables do not (a builder
    changed under the same name); one MLP built, no epoch trained."""
    from keras_ssgd.train import plan

    real = runner.train
    _, path, _ = _folder_with_a_run_to_resume(tmp_path, monkeypatch)
    config, specs, _, _ = plan.make_plan(
        "mlp", "mnist1d", methods=["sgd"], seeds=2, epochs=1,
        hessian_iterations=0)
    held = checkpoint.read(path, "sgd-seed1", lambda recipe: "")
    with pytest.raises(store.StoreError, match="does not fit this run's "
                       "model: it holds 1 variables, the model has 6"):
        real(config, specs[1], verbose=0, checkpoint=path, restore=held)


# A real process killed with SIGKILL.


@pytest.mark.e2e
@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="what a kill leaves on disk does not depend on the "
                    "backend; each backend's resumption is checked by the "
                    "stop-after-an-epoch test above")
def test_a_run_killed_with_sigkill_resumes_to_the_run_never_stopped(
    tmp_path
):
    """E2e tier: an `ssgd-train` process (S-SGD, MLP, 4 epochs) killed with
    SIGKILL once its first checkpoint is on disk, resumed by a second
    process, against a third never stopped, which runs beside the first;
    about 20 s on 2 CPU cores."""
    args = [*TINY, "--method", "ssgd:0.2", "--epochs", "4"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    stopped, whole = tmp_path / "stopped", tmp_path / "whole"

    def start(folder, *extra):
        return subprocess.Popen(
            [sys.executable, "-m", "keras_ssgd", *args, *extra, "--output",
             str(folder)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            env=env,
        )

    process, never_stopped = start(stopped), start(whole)
    path = stopped / "runs" / f"ssgd-0.2-seed0{checkpoint.SUFFIX}"
    try:
        deadline = time.monotonic() + 300
        while not path.exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "no checkpoint in 300 s"
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == -signal.SIGKILL
    assert not (stopped / "runs" / "ssgd-0.2-seed0.json").exists()
    resumed = start(stopped, "--resume")
    for done in (resumed, never_stopped):
        _, stderr = done.communicate(timeout=300)
        assert done.returncode == 0, stderr
    # Killed between epochs, possibly while a later checkpoint was being
    # written: its temporary file may stay, and is never read.
    for leftover in _temp_files(stopped):
        (stopped / "runs" / leftover).unlink()
    _assert_same_runs(stopped, whole)
