"""`ssgd-train --seeds` as a count, a range or a list, and sweeps over one
recipe that combine across invocations."""

import json
import shutil

import pytest

from keras_ssgd.train import cli
from keras_ssgd.train import runner
from keras_ssgd.train.registry import METHODS

TINY = ["--model", "mlp", "--epochs", "1", "--quiet", "--hessian-iterations",
        "0"]


def _fake_train(config, spec, **kwargs):
    # A made-up accuracy: S-SGD 1 to 2 points above SGD on every seed.
    accuracy = 80.0 + spec.seed + (0 if spec.level is None else 1 + 0.2 * (spec.seed % 3))
    return {
        "key": spec.key, "method": spec.method, "level": spec.level,
        "level_name": METHODS[spec.method].level_name, "seed": spec.seed,
        "status": "ok", "test_accuracy": accuracy, "train_loss": 1.0,
        "seconds": 1.0, "epochs_run": config.epochs,
    }


def _seeds(argv):
    _, specs, _ = cli.parse([*TINY, *argv])
    return sorted({spec.seed for spec in specs})


@pytest.mark.parametrize(
    "text, seeds",
    [
        ("3", [0, 1, 2]),  # a count: seeds 0 .. N-1, as before
        ("1", [0]),
        ("10-14", [10, 11, 12, 13, 14]),
        ("1,3,5", [1, 3, 5]),
        ("0,10-11", [0, 10, 11]),
        ("4-4", [4]),
        ("2,2,1", [1, 2]),  # each seed once
    ],
)
def test_seeds_count_range_and_list(text, seeds):
    assert _seeds(["--seeds", text]) == seeds


def test_seeds_default_is_0_1_2():
    assert _seeds([]) == [0, 1, 2]


@pytest.mark.parametrize(
    "text, message",
    [
        ("0", "must be an int > 0. Received: 0"),
        ("-2", "must be an int > 0. Received: -2"),
        ("14-10", "needs A <= B. Received: '14-10'"),
        ("a", "Received: 'a'"),
        ("1,,2", "Received: '1,,2' (bad part '')"),
        ("3-", "Received: '3-'"),
        ("1.5", "Received: '1.5'"),
    ],
)
def test_bad_seeds_exit_2_naming_the_value(text, message, tmp_path,
                                           monkeypatch, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*TINY, "--seeds", text, "--output", str(tmp_path / "run")])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "--seeds" in error and message in error
    assert not (tmp_path / "run").exists()


def test_invocations_over_one_recipe_combine(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runner, "train", _fake_train)
    out = str(tmp_path / "run")
    methods = ["--method", "sgd", "--method", "ssgd:0.2"]
    assert cli.main([*TINY, *methods, "--seeds", "2", "--output", out]) == 0
    # Without --resume the folder is refused: nothing is overwritten.
    assert cli.main([*TINY, *methods, "--seeds", "2-4", "--output", out]) == 2
    assert "add runs of the same recipe" in capsys.readouterr().err
    trained = []

    def train(config, spec, **kwargs):
        trained.append(spec.key)
        return _fake_train(config, spec, **kwargs)

    monkeypatch.setattr(runner, "train", train)
    # Seeds 1 .. 4: seed 1 is done and skipped; 2 .. 4 are added.
    assert cli.main([*TINY, *methods, "--seeds", "1-4", "--output", out,
                     "--resume"]) == 0
    assert trained == [f"{m}-seed{s}" for s in (2, 3, 4)
                       for m in ("sgd", "ssgd-0.2")]
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["config"]["runs"] == [
        f"{m}-seed{s}" for s in range(5) for m in ("sgd", "ssgd-0.2")
    ]
    assert len(results["runs"]) == 10
    (verdict,) = results["verdicts"]
    assert verdict["seeds"] == [0, 1, 2, 3, 4]
    assert verdict["better"] == 5 and verdict["verdict"] == "better"
    summary = (tmp_path / "run" / "summary.md").read_text()
    assert "better on 5 of 5 seeds: better than sgd" in summary
    assert "better on 5 of 5 seeds" in capsys.readouterr().out


def test_records_from_another_folder_of_the_same_recipe_combine(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(runner, "train", _fake_train)
    first, second = tmp_path / "a", tmp_path / "b"
    assert cli.main([*TINY, "--seeds", "0-1", "--output", str(first)]) == 0
    assert cli.main([*TINY, "--seeds", "2-3", "--output", str(second)]) == 0
    for path in (second / "runs").glob("*.json"):
        shutil.copy(path, first / "runs" / path.name)

    def refuse(*args, **kwargs):
        raise AssertionError("trained a run that was already done")

    monkeypatch.setattr(runner, "train", refuse)
    assert cli.main([*TINY, "--seeds", "4", "--output", str(first),
                     "--resume"]) == 0
    results = json.loads((first / "results.json").read_text())
    assert {r["seed"] for r in results["runs"]} == {0, 1, 2, 3}
    assert results["verdicts"][0]["n"] == 4


def test_records_of_another_recipe_do_not_combine(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runner, "train", _fake_train)
    first, second = tmp_path / "a", tmp_path / "b"
    assert cli.main([*TINY, "--seeds", "1", "--output", str(first)]) == 0
    assert cli.main([*TINY, "--seeds", "1-1", "--lr", "0.3", "--output",
                     str(second)]) == 0
    shutil.copy(second / "runs" / "sgd-seed1.json", first / "runs")
    assert cli.main([*TINY, "--seeds", "2", "--output", str(first),
                     "--resume"]) == 2
    assert "trained with another recipe" in capsys.readouterr().err
