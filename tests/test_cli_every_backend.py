"""`ssgd-train`'s main path in-process on the backend in use (`make test`
runs this file under TensorFlow, JAX and PyTorch; `tests/test_cli_backends.py`
runs it in real processes with TensorFlow blocked)."""

import keras
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
