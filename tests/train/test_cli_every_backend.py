"""`ssgd-train`'s main path in-process on the backend in use (`make test`
runs this file under TensorFlow, JAX and PyTorch;
`tests/train/test_cli_backends.py` runs it in real processes with TensorFlow
blocked)."""

import keras
import pytest
from conftest import check_folder

from keras_ssgd.train import cli


def test_ssgd_train_in_process(tmp_path, capsys):
    methods = ["sgd", "ssgd", "ssgd-split"]
    args = ["--model", "mlp", "--epochs", "1", "--seeds", "1", "--quiet",
            "--hessian-iterations", "2", "--output", str(tmp_path / "out")]
    for method in methods:
        args += ["--method", method]
    assert cli.main(args) == 0
    check_folder(tmp_path / "out", methods, keras.backend.backend())
    assert "| ssgd-split |" in capsys.readouterr().out


@pytest.mark.e2e  # ssgd-train end to end on each backend (make test-e2e)
def test_the_cheap_baselines_at_equal_passes_in_process(tmp_path):
    import json

    methods = ["sgd", "ema", "swa", "asam", "msam", "arwp", "marwp"]
    # The MLP: the BatchNorm pass of EMA and SWA is tested on every
    # backend in tests/core/test_weight_averaging.py.
    args = ["--model", "mlp", "--epochs", "1", "--seeds", "1",
            "--quiet", "--hessian-iterations", "0", "--budget", "passes",
            "--batch-size", "500",
            "--output", str(tmp_path / "out")]
    for method in methods:
        args += ["--method", method]
    assert cli.main(args) == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    runs = {r["method"]: r for r in results["runs"]}
    assert sorted(runs) == sorted(methods)
    for record in runs.values():
        assert record["status"] == "ok", record
        assert record["budgets"] == ["passes"]
    # ASAM's 1 epoch at 2 passes: the one-pass methods train 2 epochs
    # (every-k's rounding: tests/train/test_budget.py).
    assert {m: r["epochs"] for m, r in runs.items()} == {
        "sgd": 2, "ema": 2, "swa": 2, "asam": 1, "msam": 2, "arwp": 2,
        "marwp": 1}
    assert {m: runs[m]["passes_per_step"] for m in ("msam", "arwp", "marwp")} \
        == {"msam": 1, "arwp": 1, "marwp": 2}
    assert {v["budget"] for v in results["verdicts"]} == {"passes"}
