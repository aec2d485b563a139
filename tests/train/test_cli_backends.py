"""`ssgd-train` and its data on JAX and PyTorch, in subprocesses.

Each subprocess sets `KERAS_BACKEND`; most also block TensorFlow
(`sys.modules["tensorflow"] = None`), so that what runs there is known to
need none of it.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import check_folder

from keras_ssgd.train import runner
from keras_ssgd.store import RunStore
from keras_ssgd.store import StoreError

# Real processes of every backend, TensorFlow blocked in most: `make test-e2e`.
pytestmark = pytest.mark.e2e

BLOCK_TF = "import sys; sys.modules['tensorflow'] = None\n"

# The labels of every batch `fit()` trains on, over 3 epochs, as the model's
# train_step receives them.
ORDER_PROGRAM = """
import json, sys
import keras
import numpy as np
from keras_ssgd.data import batches

x = np.arange(23, dtype="float32")[:, None]
y = np.arange(23, dtype="int32")
seen = []


class Recorder(keras.Model):
    def train_step(self, *args):  # JAX: (state, data)
        seen.append(np.asarray(keras.ops.convert_to_numpy(args[-1][1])).tolist())
        return super().train_step(*args)


inputs = keras.Input((1,))
model = Recorder(inputs, keras.layers.Dense(23)(inputs))
model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(
    from_logits=True), run_eagerly=True)
model.fit(batches(x, y, 5, seed=7), epochs=3, verbose=0, shuffle=False)
print("ORDER", json.dumps(seen))
"""


def run_python(code, backend, block_tf=False, timeout=120):
    env = {**os.environ, "KERAS_BACKEND": backend,
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, "-c", (BLOCK_TF if block_tf else "") + code],
        capture_output=True, text=True, env=env, timeout=timeout,
    )


def cli(backend, args, block_tf=True, timeout=150):
    code = (
        "from keras_ssgd.train.cli import main\n"
        f"sys.exit(main({list(map(str, args))!r}))\n"
    )
    return run_python("import sys\n" + code, backend, block_tf, timeout)


def test_same_batches_on_every_backend():
    orders = {}
    for backend in ("tensorflow", "jax", "torch"):
        result = run_python(ORDER_PROGRAM, backend,
                            block_tf=backend != "tensorflow")
        assert result.returncode == 0, result.stderr[-3000:]
        line = next(l for l in result.stdout.splitlines()
                    if l.startswith("ORDER "))
        orders[backend] = json.loads(line[len("ORDER "):])
    expected = [
        np.random.default_rng([7, epoch]).permutation(23)[i:i + 5].tolist()
        for epoch in range(3) for i in range(0, 23, 5)
    ]
    assert orders["tensorflow"] == expected
    assert orders["jax"] == expected
    assert orders["torch"] == expected


def test_import_without_tensorflow():
    result = run_python(
        "import keras_ssgd, keras_ssgd.train.cli, keras_ssgd.train.runner\n"
        "import keras_ssgd.train.compare, keras_ssgd.data\n"
        "keras_ssgd.data.load('mnist1d', batch_size=100, seed=0)\n"
        "assert sys.modules['tensorflow'] is None\n"
        "print('OK')\n",
        "jax", block_tf=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "OK" in result.stdout


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_ssgd_train_end_to_end_without_tensorflow(tmp_path, backend):
    methods = ["sgd", "ssgd", "ssgd-split"]
    args = ["--model", "mlp", "--epochs", 1, "--seeds", 1, "--quiet",
            "--hessian-iterations", 2, "--output", tmp_path / "out"]
    for method in methods:
        args += ["--method", method]
    result = cli(backend, args, timeout=300)  # three Hessians on torch
    assert result.returncode == 0, result.stderr[-3000:]
    check_folder(tmp_path / "out", methods, backend)


def test_ssgd_landscape_names_the_backend(tmp_path):
    result = run_python(
        "import sys\nfrom keras_ssgd.landscape.cli import main\n"
        f"sys.exit(main(['a.keras', 'b.keras', '--output', "
        f"{str(tmp_path / 'out')!r}]))\n",
        "torch", block_tf=True, timeout=60,
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert "needs the TensorFlow backend" in result.stderr
    assert "Received: backend='torch'" in result.stderr
    assert "Traceback" not in result.stderr


def test_jax_npz_without_tensorflow(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "data.npz"
    np.savez(path, x_train=rng.normal(size=(60, 6)).astype("float32"),
             y_train=rng.integers(0, 3, 60), x_test=rng.normal(size=(20, 6)),
             y_test=rng.integers(0, 3, 20))
    result = cli("jax", ["--dataset", path, "--model", "mlp", "--epochs", 1,
                         "--seeds", 1, "--quiet", "--method", "sgd",
                         "--method", "ssgd-split", "--batch-size", 16,
                         "--validation-split", 0.25,
                         "--output", tmp_path / "out"],
                 timeout=300)  # two Hessians too: slow on a loaded machine
    assert result.returncode == 0, result.stderr[-3000:]
    check_folder(tmp_path / "out", ["sgd", "ssgd-split"], "jax")


@pytest.mark.parametrize("args, needs", [
    (["--dataset", "cifar10"], "--dataset cifar10"),
    (["--dataset", "tfds:mnist"], "--dataset tfds:mnist"),
    (["--distributed", "horovod"], "--distributed horovod"),
    (["--distributed", "mirrored"], "--distributed mirrored"),
    (["--distributed", "multiworker"], "--distributed multiworker"),
])
def test_tensorflow_features_refused_clearly(tmp_path, args, needs):
    result = cli("jax", [*args, "--epochs", 1, "--seeds", 1, "--quiet",
                         "--output", tmp_path / "out"], timeout=60)
    assert result.returncode == 2, result.stderr[-3000:]
    assert needs in result.stderr
    assert "Traceback" not in result.stderr
    assert "TensorFlow" in result.stderr or "tensorflow" in result.stderr


def test_resume_refuses_the_old_tf_data_order(tmp_path):
    config = runner.Config(
        dataset="mnist1d", model="mlp", epochs=1, batch_size=100, lr=0.05,
        optimizer="sgd", momentum=0.9, lr_schedule="cosine", lr_drops=(),
    )
    assert config.data_order == "numpy-permutation-per-epoch"
    old = {k: v for k, v in config.to_json().items() if k != "data_order"}
    RunStore(tmp_path, {"recipe": old, "runs": []})
    with pytest.raises(StoreError, match="data_order.*order changed"):
        RunStore(tmp_path, {"recipe": config.to_json(), "runs": []},
                 resume=True, defaults=runner.Config.defaults())
    # CIFAR keeps its tf.data pipeline: its old folders still resume.
    cifar = runner.Config(
        dataset="cifar10", model="resnet20", epochs=1, batch_size=128,
        lr=0.1, optimizer="sgd", momentum=0.9, lr_schedule="step",
        lr_drops=(),
    )
    assert cifar.data_order is None
    old = {k: v for k, v in cifar.to_json().items() if k != "data_order"}
    RunStore(tmp_path / "cifar", {"recipe": old, "runs": []})
    RunStore(tmp_path / "cifar", {"recipe": cifar.to_json(), "runs": []},
             resume=True, defaults=runner.Config.defaults())


USER_DATASETS = """
import keras
import numpy as np


class Pairs(keras.utils.PyDataset):
    def __init__(self, x, y):
        super().__init__()
        self.x, self.y = x, y

    def __len__(self):
        return len(self.x) // 10

    def __getitem__(self, index):
        return self.x[index * 10:index * 10 + 10], self.y[index * 10:index * 10 + 10]


def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 5)).astype("float32")
    return x, (x[:, 0] > 0).astype("int32")


def load_pydatasets():
    x, y = data()
    return Pairs(x[:40], y[:40]), Pairs(x[40:], y[40:])


def load_tf_datasets():
    import tensorflow as tf

    x, y = data()
    return (tf.data.Dataset.from_tensor_slices((x[:40], y[:40])).batch(10),
            tf.data.Dataset.from_tensor_slices((x[40:], y[40:])).batch(10))
"""


def test_user_dataset_objects_on_jax(tmp_path):
    (tmp_path / "user_datasets.py").write_text(USER_DATASETS)

    def run(function, block_tf):
        args = ["--dataset", f"user_datasets:{function}", "--model", "mlp",
                "--epochs", "1", "--seeds", "1", "--quiet", "--method",
                "sgd", "--hessian-iterations", "2", "--output",
                str(tmp_path / function)]
        return run_python(
            f"import sys; sys.path.insert(0, {str(tmp_path)!r})\n"
            "from keras_ssgd.train.cli import main\n"
            f"sys.exit(main({args!r}))\n", "jax", block_tf=block_tf,
        )

    result = run("load_pydatasets", block_tf=True)
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(
        (tmp_path / "load_pydatasets" / "results.json").read_text())
    assert results["config"]["recipe"]["data_order"] == "user"
    assert results["runs"][0]["hessian_top"] > 0
    result = run("load_tf_datasets", block_tf=False)
    assert result.returncode == 2, result.stderr[-3000:]
    assert ("returned tf.data.Dataset objects, which ssgd-train takes on "
            "the TensorFlow backend only. Received: backend='jax'"
            in result.stderr)
    assert "Traceback" not in result.stderr
