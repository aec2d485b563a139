"""What a person reads on the terminal: the progress line of `ssgd-train`,
Keras's epoch blocks only with --verbose, and no TensorFlow start-up lines."""

import io
import os
import pathlib
import subprocess
import sys

import pytest

from keras_ssgd.train import cli
from keras_ssgd.train.progress import SweepProgress
from keras_ssgd.train.progress import duration
from keras_ssgd.train.runner import RunSpec

SPECS = [RunSpec("sgd", None, 0), RunSpec("ssgd", 0.2, 0),
         RunSpec("sgd", None, 1)]


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def _sweep(progress, clock, seconds_per_epoch=1.0):
    for i, spec in enumerate(progress.specs):
        callback = progress.start(i)
        for epoch in range(progress.epochs):
            clock.now += seconds_per_epoch * progress.costs[i]
            callback.on_epoch_end(epoch, {"loss": 0.5, "accuracy": 0.875})
        progress.finish(i, {"status": "ok", "test_accuracy": 91.25 + i,
                            "epochs_run": progress.epochs})


def test_log_mode_writes_one_line_per_finished_run():
    stream, clock = io.StringIO(), Clock()
    progress = SweepProgress(SPECS, epochs=4, costs=[1, 2, 1],
                             stream=stream, clock=clock)
    assert not progress.in_place  # a StringIO is no terminal
    _sweep(progress, clock)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3 and "\r" not in stream.getvalue()
    assert lines[0].startswith("[1/3] sgd seed 0  epoch 4/4")
    assert lines[1].startswith("[2/3] ssgd 0.2 seed 0  epoch 4/4")
    assert "loss 0.5000  acc 87.50%  test 92.25%  8 s" in lines[1]
    # After run 1 (4 s for 4 units): 8 + 4 units left at 1 s each.
    assert lines[0].endswith("sweep ETA 12 s")
    assert lines[1].endswith("sweep ETA 4 s")
    assert "ETA" not in lines[2]  # the last run: nothing left


def test_terminal_mode_rewrites_the_line_in_place():
    stream, clock = io.StringIO(), Clock()
    progress = SweepProgress(SPECS[:2], epochs=3, costs=[1, 2],
                             stream=stream, in_place=True, clock=clock)
    _sweep(progress, clock, seconds_per_epoch=10)
    text = stream.getvalue()
    assert text.count("\n") == 2  # one per finished run
    first = text.split("\n")[0].split("\r")
    assert first[2].startswith("[1/2] sgd seed 0  epoch 1/3  loss 0.5000  "
                               "acc 87.50%  ETA 20 s, sweep 1 min 20 s")
    assert "evaluating" in first[-2] and "test 91.25%" in first[-1]


def test_a_diverged_run_says_so():
    stream = io.StringIO()
    progress = SweepProgress(SPECS[:1], epochs=5, stream=stream)
    progress.start(0).on_epoch_end(0, {"loss": float("nan")})
    progress.finish(0, {"status": "diverged", "test_accuracy": None,
                        "epochs_run": 1})
    assert "epoch 1/5  loss nan  diverged" in stream.getvalue()


def test_duration():
    assert [duration(s) for s in (4.4, 65, 3725)] == [
        "4 s", "1 min 5 s", "1 h 2 min"]


def _train(tmp_path, capsys, *flags):
    code = cli.main(["--model", "mlp", "--epochs", "2", "--seeds", "1",
                     "--method", "sgd", "--hessian-iterations", "0",
                     "--output", str(tmp_path / "run"), *flags])
    assert code == 0
    return capsys.readouterr().out


def test_default_output_is_one_line_per_run_and_verbose_adds_keras(
    tmp_path, capsys
):
    out = _train(tmp_path, capsys)
    assert "Epoch 1/2" not in out and "/step" not in out
    runs = [line for line in out.splitlines() if line.startswith("[1/1]")]
    assert len(runs) == 1
    assert runs[0].startswith("[1/1] sgd seed 0  epoch 2/2  loss ")
    assert " acc " in runs[0] and " test " in runs[0]
    verbose = _train(tmp_path / "verbose", capsys, "--verbose")
    assert "Epoch 1/2" in verbose and "Epoch 2/2" in verbose
    assert "[1/1] sgd seed 0  epoch 2/2" in verbose
    quiet = _train(tmp_path / "quiet", capsys, "--quiet")
    assert "[1/1]" not in quiet and "Epoch 1/2" not in quiet
    assert "| sgd | - |" in quiet


@pytest.mark.e2e  # real processes, each importing TensorFlow (5 s)
@pytest.mark.parametrize("onednn", ["0", "1"])
def test_landscape_help_has_no_tensorflow_log_lines(onednn):
    # oneDNN's start-up line ignores TF_CPP_MIN_LOG_LEVEL; "1" forces it (and
    # the line) on any x86-64 CPU, "0" is the path of CPUs without it.
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["TF_ENABLE_ONEDNN_OPTS"] = onednn
    done = subprocess.run(
        [sys.executable, "-c",
         "import sys; from keras_ssgd.landscape.cli import main; "
         "sys.argv[0] = 'ssgd-landscape'; sys.exit(main(['--help']))"],
        capture_output=True, text=True, timeout=120, env=env,
        cwd=pathlib.Path(__file__).parents[2],
    )
    assert done.returncode == 0
    assert done.stdout.startswith("usage: ssgd-landscape")
    for noise in ("cpu_feature_guard", "oneDNN", "absl", "I0000", "W0000"):
        assert noise not in done.stderr


@pytest.mark.e2e  # real processes, each importing TensorFlow (5 s)
@pytest.mark.parametrize("command", [
    "import sys; from keras_ssgd.train.cli import main; "
    "sys.argv[0] = 'ssgd-train'; sys.exit(main(['--help']))",
    "import runpy, sys; sys.argv[:] = ['ssgd-train', '--help']; "
    "runpy.run_module('keras_ssgd', run_name='__main__')",
], ids=["ssgd-train", "python-m"])
def test_train_help_has_no_tensorflow_log_lines(command):
    # The command quiets TensorFlow itself (`import keras_ssgd` does not):
    # oneDNN forced on, TF_CPP_MIN_LOG_LEVEL unset.
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["TF_ENABLE_ONEDNN_OPTS"] = "1"
    done = subprocess.run(
        [sys.executable, "-c", command],
        capture_output=True, text=True, timeout=120, env=env,
        cwd=pathlib.Path(__file__).parent.parent,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("usage: ssgd-train")
    for noise in ("cpu_feature_guard", "oneDNN", "absl", "I0000", "W0000"):
        assert noise not in done.stderr


def test_landscape_line_reports_each_point_to_one_progress(capsys):
    import keras
    import numpy as np

    from keras_ssgd import landscape

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(
        from_logits=True), metrics=["accuracy"])
    other = [w + 1.0 for w in model.get_weights()]
    data = (np.zeros((8, 4), "float32"), np.zeros((8,), "int32"))
    calls = []
    for _ in ("train", "test"):
        landscape.interpolate(model, model.get_weights(), other, data,
                              alphas=[0.0, 0.5, 1.0],
                              progress=lambda: calls.append(1))
    assert len(calls) == 6
    assert "/step" not in capsys.readouterr().out  # no bar of its own


def test_a_run_continued_from_a_checkpoint_is_paced_by_its_own_epochs():
    # Run 1 of 2 continues at epoch 3 of 4 (a checkpoint); its one epoch
    # here takes 10 s. Its pace is 10 s an epoch, not 10 s for 4 epochs:
    # the second run's 4 epochs are 40 s away once it ends.
    stream, clock = io.StringIO(), Clock()
    progress = SweepProgress(SPECS[:2], epochs=4, stream=stream,
                             in_place=True, clock=clock)
    callback = progress.start(0, first_epoch=3)
    assert "epoch 3/4" in stream.getvalue()
    clock.now += 10
    callback.on_epoch_end(3, {"loss": 0.5})
    progress.finish(0, {"status": "ok", "test_accuracy": 90.0,
                        "epochs_run": 4})
    first = stream.getvalue().split("\n")[0].split("\r")[-1]
    assert first.endswith("sweep ETA 40 s\x1b[K"), first
    callback = progress.start(1)
    clock.now += 10
    callback.on_epoch_end(0, {"loss": 0.5})
    assert stream.getvalue().split("\r")[-1].startswith(
        "[2/2] ssgd 0.2 seed 0  epoch 1/4  loss 0.5000  ETA 30 s")
