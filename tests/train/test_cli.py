"""`ssgd-train` end to end on a tiny budget, and its bad-input handling."""

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from conftest import fake_train as _fake_train

from keras_ssgd.train import cli
from keras_ssgd.train import runner
from keras_ssgd.train.registry import METHODS
from keras_ssgd.train.runner import Config
from keras_ssgd.train.runner import RunSpec

TINY = ["--model", "mlp", "--epochs", "1", "--seeds", "1", "--quiet"]


def run_cli(args, output):
    return cli.main([*TINY, *args, "--output", str(output)])


def test_end_to_end_writes_json_summary_plot_and_models(tmp_path, capsys):
    out = tmp_path / "run"
    code = run_cli(["--method", "sgd", "--method", "ssgd:0.2,0.4"], out)
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["recipe"]["model"] == "mlp"
    assert results["config"]["runs"] == [
        "sgd-seed0", "ssgd-0.2-seed0", "ssgd-0.4-seed0"
    ]
    keys = {r["key"] for r in results["runs"]}
    assert keys == set(results["config"]["runs"])
    for record in results["runs"]:
        assert record["status"] == "ok"
        assert 0 <= record["test_accuracy"] <= 100
        assert record["train_loss"] > 0
        assert record["epochs_run"] == 1
        assert record["hessian_top"] > 0  # the training loss curves up
        assert (out / "runs" / f"{record['key']}.keras").exists()
    rows = {(r["method"], r["level"]): r for r in results["summary"]}
    assert set(rows) == {("sgd", None), ("ssgd", 0.2), ("ssgd", 0.4)}
    assert rows[("ssgd", 0.2)]["passes_vs_sgd"] == 2
    assert rows[("sgd", None)]["time_vs_sgd"] == pytest.approx(1.0)
    assert (out / "accuracy.png").stat().st_size > 1000
    assert (out / "curves.png").stat().st_size > 1000
    summary = (out / "summary.md").read_text()
    assert "| ssgd | noise_level 0.4 |" in summary
    assert "top Hessian eigenvalue" in summary
    printed = capsys.readouterr().out
    assert "| sgd | - |" in printed
    # One seed: the verdict is written everywhere and claims nothing. S-SGD
    # had two configurations: one line, its pick on validation accuracy.
    verdicts = {v["method"]: v for v in results["verdicts"]}
    assert set(verdicts) == {"ssgd"}
    by_level = {r["level"]: r["validation_accuracy"] for r in results["runs"]
                if r["method"] == "ssgd"}
    assert verdicts["ssgd"]["level"] == max(by_level, key=by_level.get)
    assert verdicts["ssgd"]["candidates"] == 2
    assert "pick of 2" in summary
    for v in verdicts.values():
        assert v["n"] == 1 and v["verdict"] == "no difference shown"
        assert v["text"] in printed and f"- {v['text']}" in summary


def test_every_method_starts_from_the_same_weights():
    data = __import__("keras_ssgd").data.load("mnist1d", batch_size=100, seed=0)
    config = Config("mnist1d", "mnist1d-cnn-bn", 1, 100, 0.1, "sgd", 0.9,
                    "cosine", ())
    reference = runner.build_model(config, RunSpec("sgd", None, 3), data)
    for name, method in METHODS.items():
        level = None if method.level_name is None else 0.3
        model = runner.build_model(config, RunSpec(name, level, 3), data)
        for a, b in zip(reference.get_weights(), model.get_weights()):
            np.testing.assert_array_equal(a, b)
    other_seed = runner.build_model(config, RunSpec("sgd", None, 4), data)
    assert not np.array_equal(
        reference.get_weights()[0], other_seed.get_weights()[0]
    )


def test_interrupted_sweep_keeps_finished_runs_and_resume_skips_them(
    tmp_path, monkeypatch
):
    out = tmp_path / "run"
    real_train = runner.train
    trained = []

    def train_then_interrupt(config, spec, **kwargs):
        if trained:
            raise KeyboardInterrupt
        trained.append(spec.key)
        return real_train(config, spec, **kwargs)

    monkeypatch.setattr(runner, "train", train_then_interrupt)
    args = ["--method", "sgd", "--method", "dropout:0.2"]
    assert run_cli(args, out) == 130
    assert sorted(p.name for p in (out / "runs").glob("*.json")) == [
        "sgd-seed0.json"
    ]
    # Without --resume the folder is refused, so nothing is overwritten.
    assert run_cli(args, out) == 2

    def train_recording(config, spec, **kwargs):
        trained.append(spec.key)
        return real_train(config, spec, **kwargs)

    monkeypatch.setattr(runner, "train", train_recording)
    assert run_cli([*args, "--resume"], out) == 0
    assert trained == ["sgd-seed0", "dropout-0.2-seed0"]
    results = json.loads((out / "results.json").read_text())
    assert {r["key"] for r in results["runs"]} == {
        "sgd-seed0", "dropout-0.2-seed0"
    }


def test_resume_refuses_a_different_recipe(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runner, "train", _fake_train)
    out = tmp_path / "run"
    assert run_cli(["--method", "sgd"], out) == 0
    assert run_cli(["--method", "sgd", "--lr", "0.3", "--resume"], out) == 2
    assert "recipe differs" in capsys.readouterr().err


def test_resume_needs_an_existing_run(tmp_path, capsys):
    assert run_cli(["--resume"], tmp_path / "nothing") == 2
    assert "holds no earlier run" in capsys.readouterr().err


def test_diverged_run_is_recorded_not_raised(tmp_path):
    out = tmp_path / "run"
    code = run_cli(["--method", "sgd", "--method", "ssgd", "--lr", "1e30"], out)
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert {r["status"] for r in results["runs"]} == {"diverged"}
    assert all(r["test_accuracy"] is None for r in results["runs"])
    assert "diverged" in (out / "summary.md").read_text()


def test_unwritable_output_fails_before_training(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runner, "train", _fail_if_called)
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert run_cli([], blocker / "run") == 2
    assert "Cannot write to the output folder" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--method", "adamw"], "valid methods: sgd, ssgd, weight-noise"),
        (["--dataset", "imagenet"], "choose from 'cifar10', 'cifar100', 'imagenet2012', 'mnist1d'"),
        (["--model", "vit"], "choose from 'mnist1d-cnn-bn'"),
        (["--noise-level", "-0.1"], "--noise-level must be a finite number >= 0"),
        (["--method", "ssgd:-1"], "--method ssgd must be a finite number >= 0"),
        (["--method", "dropout:1.5"], "must be in [0, 1)"),
        (["--method", "sgd:0.1"], "method 'sgd' takes no level"),
        (["--epochs", "0"], "must be an int > 0. Received: 0"),
        (["--seeds", "-2"], "must be an int > 0. Received: -2"),
        (["--lr", "0"], "must be a finite number > 0"),
        (["--phases", "10-x"], "--phases"),
        (["--phases", "2-1S", "--epochs", "4"], "the plan 2-1S sets 3 epochs"),
        (["--lr-schedule", "step", "--lr-drops", "1"], "is not before the end"),
        (["--momentum", "1.0"], "must be in [0, 1)"),
        (["--hessian-iterations", "-1"], "must be >= 0. Received: -1"),
        (["--shared-noise"], "need --distributed horovod"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(
    args, message, tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(runner, "train", _fail_if_called)
    with pytest.raises(SystemExit) as exit_info:
        run_cli(args, tmp_path / "run")
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_phase_plan_sets_epochs_and_noise_phases(tmp_path):
    out = tmp_path / "run"
    args = ["--model", "mlp", "--seeds", "1", "--quiet", "--method", "ssgd",
            "--phases", "1-1S", "--output", str(out)]
    assert cli.main(args) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["recipe"]["epochs"] == 2
    record = results["runs"][0]
    assert record["epochs_run"] == 2
    assert record["history"]["noise_level"] == [0.0, pytest.approx(0.2)]


@pytest.mark.e2e
def test_module_entry_point_prints_help():
    done = subprocess.run(
        [sys.executable, "-m", "keras_ssgd", "--help"],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0
    for flag in ("--method", "--noise-level", "--seeds", "--resume",
                 "--lr-schedule", "--phases", "--quiet"):
        assert flag in done.stdout


def test_every_entry_point_in_process(monkeypatch, capsys):
    # `python -m keras_ssgd`, `ssgd-train` and `ssgd-landscape` (setup.py's
    # console scripts) reach their parsers; the real processes are the e2e
    # tier's (test_module_entry_point_prints_help).
    import runpy

    from keras_ssgd.landscape import cli as landscape_cli

    monkeypatch.setattr(sys, "argv", ["keras_ssgd", "--help"])
    with pytest.raises(SystemExit) as done:
        runpy.run_module("keras_ssgd", run_name="__main__")
    assert done.value.code == 0
    assert "--noise-level" in capsys.readouterr().out
    for main, flag in ((cli.main, "--method"), (landscape_cli.main, "--grid")):
        with pytest.raises(SystemExit) as done:
            main(["--help"])
        assert done.value.code == 0
        assert flag in capsys.readouterr().out


def _fail_if_called(*args, **kwargs):
    raise AssertionError("training started despite bad input")


def test_mirrored_strategy_run(tmp_path):
    out = tmp_path / "run"
    code = run_cli(["--method", "ssgd", "--distributed", "mirrored",
                    "--hessian-iterations", "0"], out)
    assert code == 0
    record = json.loads((out / "results.json").read_text())["runs"][0]
    assert record["distributed"] == "mirrored" and record["workers"] >= 1
    assert record["status"] == "ok"


def test_horovod_missing_is_a_clear_error(tmp_path, monkeypatch, capsys):
    from keras_ssgd.distributed import horovod

    def missing():
        raise ImportError("No module named 'horovod'")

    monkeypatch.setattr(horovod, "_hvd", missing)
    monkeypatch.setattr(runner, "train", _fail_if_called)
    assert run_cli(["--distributed", "horovod"], tmp_path / "run") == 2
    assert "--distributed horovod: No module named 'horovod'" in capsys.readouterr().err


def test_noise_filter_and_per_epoch_evaluation(tmp_path, monkeypatch):
    seen = []
    real_build = runner.build_model

    def build(*args, **kwargs):
        model = real_build(*args, **kwargs)
        seen.append([v.path for v in model.noise_variables])
        return model

    monkeypatch.setattr(runner, "build_model", build)
    out = tmp_path / "run"
    code = run_cli(["--method", "ssgd", "--noise-filter", "dense_kernels",
                    "--eval-every-epoch", "--hessian-iterations", "0",
                    "--model", "mnist1d-cnn"], out)
    assert code == 0
    assert seen == [["logits/kernel"]]
    record = json.loads((out / "results.json").read_text())["runs"][0]
    assert len(record["history"]["val_accuracy"]) == 1


def test_resume_accepts_a_recipe_saved_before_new_default_fields(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "train", _fake_train)
    out = tmp_path / "run"
    assert run_cli(["--method", "sgd"], out) == 0
    config = json.loads((out / "config.json").read_text())
    del config["recipe"]["epoch_eval"]  # as written by an older version
    (out / "config.json").write_text(json.dumps(config))
    # More seeds on resume: the planned runs may grow.
    assert run_cli(["--method", "sgd", "--seeds", "2", "--resume"], out) == 0
    assert {r["key"] for r in json.loads((out / "results.json").read_text())["runs"]} == {
        "sgd-seed0", "sgd-seed1"}


def test_cifar_sweeps_choose_on_its_held_out_images(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    out = tmp_path / "run"
    with tfds.testing.mock_data(num_examples=16):
        code = cli.main(["--model", "mlp", "--epochs", "1", "--seeds", "1",
                         "--quiet", "--hessian-iterations", "0",
                         "--dataset", "cifar10", "--batch-size", "8",
                         "--method", "ssgd:0.1,0.2", "--output", str(out)])
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert all(r["validation_accuracy"] is not None for r in results["runs"])
    assert "pick of 2" in (out / "summary.md").read_text()


def test_msam_runs_at_one_pass_and_needs_a_momentum(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main([*TINY, "--method", "sgd", "--method", "msam:0.3",
                     "--budget", "passes", "--hessian-iterations", "0",
                     "--output", str(out)]) == 0
    runs = json.loads((out / "results.json").read_text())["runs"]
    msam = next(r for r in runs if r["method"] == "msam")
    assert msam["passes_per_step"] == 1 and msam["status"] == "ok"
    assert msam["epochs"] == next(r for r in runs
                                  if r["method"] == "sgd")["epochs"]
    with pytest.raises(SystemExit) as stop:
        cli.main([*TINY, "--method", "msam", "--momentum", "0",
                  "--output", str(tmp_path / "refused")])
    assert stop.value.code == 2
    assert ("argument --momentum: must be > 0 for --method msam, which "
            "perturbs along the optimizer's momentum") in capsys.readouterr().err
    assert not (tmp_path / "refused").exists()


def test_curves_are_drawn_from_the_records_of_each_pick(tmp_path):
    from keras_ssgd.train import report

    def record(method, level, seed, losses, val):
        return {"key": f"{method}-{level}-seed{seed}", "method": method,
                "level": level, "lr": 0.1, "seed": seed, "status": "ok",
                "budgets": ["epochs"], "validation_accuracy": val[-1] * 100,
                "test_accuracy": 90.0,
                "history": {"loss": losses, "val_accuracy": val}}

    records = [record("sgd", None, s, [1.0, 0.5, 0.3], [0.5, 0.6, 0.7])
               for s in (0, 1)]
    records += [record("ssgd", lv, s, [1.1, 0.6, 0.4], [0.5, 0.7, v])
                for lv, v in ((0.1, 0.8), (0.2, 0.75)) for s in (0, 1)]
    picks = report.curve_picks(records)
    assert [(p.method, p.level) for p in picks] == [("sgd", None),
                                                     ("ssgd", 0.1)]
    assert report.plot_curves(records, tmp_path / "c.png", title="t")
    assert (tmp_path / "c.png").stat().st_size > 1000
    for r in records:
        del r["history"]
    assert report.curve_picks(records) == []
    assert not report.plot_curves(records, tmp_path / "none.png")
    assert not (tmp_path / "none.png").exists()


@pytest.mark.e2e  # real TensorBoard event files (make test-e2e), about 5 s
def test_tensorboard_logs_every_run_with_its_noise_level(tmp_path):
    pytest.importorskip("tensorflow")
    out = tmp_path / "run"
    assert cli.main([*TINY, "--epochs", "2", "--method", "sgd",
                     "--method", "ssgd:0.2", "--tensorboard",
                     "--hessian-iterations", "0",
                     "--output", str(out)]) == 0
    logs = out / "tensorboard"
    assert sorted(p.name for p in logs.iterdir()) == ["sgd-seed0",
                                                      "ssgd-0.2-seed0"]
    events = list((logs / "ssgd-0.2-seed0").rglob("events.out.tfevents*"))
    assert events
    from tensorflow.python.summary.summary_iterator import summary_iterator

    tags = {v.tag for e in events for event in summary_iterator(str(e))
            for v in event.summary.value}
    assert {"epoch_loss", "epoch_noise_level", "epoch_passes_per_step"} <= tags
    # The records' histories are the run's own: the scalars are not in them.
    runs = json.loads((out / "results.json").read_text())["runs"]
    assert all("noise_level" not in r["history"] for r in runs)


def test_replot_redraws_a_finished_folder_from_its_records(tmp_path, capsys):
    # A committed record, copied: no training.
    record = pathlib.Path(__file__).parents[2] / "experiments" / "results" / (
        "mnist1d-mlp")
    folder = tmp_path / "done"
    folder.mkdir()
    for name in ("results.json", "config.json"):
        (folder / name).write_text((record / name).read_text())
    assert cli.main(["--replot", str(folder)]) == 0
    assert (folder / "accuracy.png").stat().st_size > 1000
    assert (folder / "curves.png").stat().st_size > 1000
    assert "curves.png" in capsys.readouterr().out
    assert sorted(p.name for p in folder.iterdir()) == [
        "accuracy.png", "config.json", "curves.png", "results.json"]


def test_replot_refuses_a_folder_without_results(tmp_path, capsys):
    assert cli.main(["--replot", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert f"--replot {tmp_path}" in error and "results.json" in error
