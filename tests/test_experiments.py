"""The paper-reproduction scripts, end to end on tfds mock data."""

import importlib.util
import pathlib

import pytest

EXPERIMENTS = pathlib.Path(__file__).parents[1] / "experiments"


def load(name):
    spec = importlib.util.spec_from_file_location(name, EXPERIMENTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_table2_runs_the_paper_recipe_and_writes_the_table(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    table2 = load("table2_cifar")
    with tfds.testing.mock_data(num_examples=40):
        code = table2.main(["--models", "resnet20", "--datasets", "cifar10",
                            "--seeds", "1", "--epochs", "2", "--quiet",
                            "--output", str(tmp_path)])
    assert code == 0
    table = (tmp_path / "table2.md").read_text()
    assert "| resnet20 | SGD | cifar10 |" in table and "| 92.17 |" in table
    assert "| resnet20 | S-SGD (0.5) | cifar10 |" in table and "| 92.62 |" in table
    import json

    recipe = json.loads((tmp_path / "cifar10-resnet20" / "config.json").read_text())["recipe"]
    assert recipe["lr"] == 0.1 and recipe["batch_size"] == 128
    assert recipe["lr_schedule"] == "step" and recipe["lr_drops"] == [1]
