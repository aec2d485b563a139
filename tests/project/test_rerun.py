"""`experiments/rerun.py`: recorded runs rerun to the same figures, bit for
bit, and a figure that differs is named. The records are made here, in the
same process, so the check holds on any machine (e2e tier: two one-epoch
MLP runs, rerun)."""

import importlib.util
import json
import pathlib

import pytest

SCRIPT = pathlib.Path(__file__).parents[2] / "experiments" / "rerun.py"


def load():
    spec = importlib.util.spec_from_file_location("rerun", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    from keras_ssgd.train import cli

    output = tmp_path_factory.mktemp("runs")
    assert cli.main(["--model", "mlp", "--epochs", "1", "--seeds", "1",
                     "--batch-size", "500", "--hessian-iterations", "0",
                     "--quiet", "--method", "ssgd:0.1", "--method",
                     "ssgd-split:0.1", "--output", str(output)]) == 0
    return output


@pytest.mark.e2e
def test_a_rerun_gives_the_recorded_figures(folder, capsys):
    assert load().main([str(folder), "--seed", "0"]) == 0
    out = capsys.readouterr().out
    assert "2 of 2 runs identical" in out


@pytest.mark.e2e
def test_a_figure_that_differs_is_named(folder, tmp_path, capsys):
    copy = tmp_path / "copy"
    (copy / "runs").mkdir(parents=True)
    (copy / "config.json").write_text((folder / "config.json").read_text())
    record = json.loads((folder / "runs" / "ssgd-0.1-seed0.json").read_text())
    record["test_accuracy"] += 1e-6
    (copy / "runs" / "ssgd-0.1-seed0.json").write_text(json.dumps(record))
    assert load().main([str(copy), "--run", "ssgd-0.1-seed0"]) == 1
    assert "ssgd-0.1-seed0: DIFFERS in test_accuracy" in capsys.readouterr().out
