"""`ssgd-train` on the user's own model (`--model package.module:function`)
and data (`--dataset path.npz`, `module:function`, `tfds:NAME`)."""

import json
import secrets
import sys
import textwrap

import numpy as np
import pytest

from keras_ssgd.train import cli
from keras_ssgd.train import runner
from keras_ssgd.train.registry import METHODS
from keras_ssgd.train.runner import Config
from keras_ssgd.train.runner import RunSpec

TINY = ["--epochs", "1", "--seeds", "1", "--quiet", "--hessian-iterations",
        "0"]

BUILDERS = '''
import keras


def build(input_shape, num_classes, dropout=0.0):
    inputs = keras.Input(input_shape)
    x = keras.layers.Flatten()(inputs)
    x = keras.layers.Dense(16, activation="relu")(x)
    if dropout:
        x = keras.layers.Dropout(dropout)(x)
    return keras.Model(inputs, keras.layers.Dense(num_classes)(x))


def no_dropout(input_shape, num_classes):
    return build(input_shape, num_classes)


def three_classes(input_shape, num_classes, dropout=0.0):
    return build(input_shape, 3)


def images_only(input_shape, num_classes, dropout=0.0):
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(num_classes)(x))


def no_arguments():
    return build((40, 1), 10)


def not_a_model(input_shape, num_classes, dropout=0.0):
    return "a string"


NOT_CALLABLE = 3


def load_data():
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 5)).astype("float32")
    y = (x[:, 0] > 0).astype("int64") + (x[:, 1] > 0)
    return (x[:40], y[:40]), (x[40:], y[40:])


def load_dict():
    (x, y), (x_test, y_test) = load_data()
    return {"x_train": x, "y_train": y, "x_test": x_test, "y_test": y_test,
            "num_classes": 4}


class Pairs(keras.utils.PyDataset):
    """(x, y) batches in an order NumPy's global generator redraws after
    each epoch; every batch it serves is logged in SERVED."""

    def __init__(self, x, y, batch_size, name):
        super().__init__()
        import numpy as np

        self.x, self.y, self.batch_size, self.name = x, y, batch_size, name
        self.order = np.arange(len(x))
        self.log = []
        SERVED.append((name, self.log))

    def __len__(self):
        return -(-len(self.x) // self.batch_size)

    def __getitem__(self, index):
        rows = self.order[index * self.batch_size:
                          (index + 1) * self.batch_size]
        self.log.append(self.y[rows].tolist())
        return self.x[rows], self.y[rows]

    def on_epoch_end(self):
        import numpy as np

        self.order = np.random.permutation(len(self.x))


SERVED = []


def load_pydatasets():
    (x, y), (x_test, y_test) = load_data()
    test = Pairs(x_test, y_test, 8, "test")
    return {"train": Pairs(x, y, 8, "train"), "test": test}


def load_tf_datasets():
    import tensorflow as tf

    (x, y), (x_test, y_test) = load_data()
    train = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(40).batch(8)
    test = tf.data.Dataset.from_tensor_slices((x_test, y_test)).batch(8)
    return train, test, 4


def load_generator():
    (x, y), _ = load_data()
    return (batch for batch in [(x, y)])


def load_mixed():
    import tensorflow as tf

    (x, y), (x_test, y_test) = load_data()
    return (Pairs(x, y, 8, "train"),
            tf.data.Dataset.from_tensor_slices((x_test, y_test)).batch(8))


def load_endless():
    train, test, _ = load_tf_datasets()
    return train.repeat(), test


def load_no_test():
    return {"train": load_pydatasets()["train"], "validation": None}


def load_float_labels():
    import tensorflow as tf

    (x, y), (x_test, y_test) = load_data()
    return (tf.data.Dataset.from_tensor_slices((x, y * 0.5)).batch(8),
            tf.data.Dataset.from_tensor_slices((x_test, y_test)).batch(8))


def load_nothing():
    return None


def load_fails():
    raise OSError("the disk is gone")
'''


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """A fresh module of builders in tmp_path, the current folder."""
    name = f"user_models_{secrets.token_hex(4)}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(BUILDERS))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield name
    sys.modules.pop(name, None)


def _fail_if_called(*args, **kwargs):
    raise AssertionError("training started despite bad input")


@pytest.mark.slow  # two runs on MNIST-1D: about 30 s on 2 cores
def test_user_model_trains_end_to_end(user_module, tmp_path, capsys):
    out = tmp_path / "run"
    code = cli.main([*TINY, "--model", f"{user_module}:build", "--method",
                     "sgd", "--method", "ssgd:0.2", "--output", str(out)])
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["recipe"]["model"] == f"{user_module}:build"
    assert {r["status"] for r in results["runs"]} == {"ok"}
    (verdict,) = results["verdicts"]
    assert verdict["method"] == "ssgd" and verdict["n"] == 1
    assert (out / "accuracy.png").stat().st_size > 1000
    assert verdict["text"] in (out / "summary.md").read_text()
    assert verdict["text"] in capsys.readouterr().out


def test_user_model_same_initial_weights_for_every_method(user_module):
    from keras_ssgd import data as data_lib

    data = data_lib.load("mnist1d", batch_size=100, seed=0)
    config = Config("mnist1d", f"{user_module}:build", 1, 100, 0.1, "sgd",
                    0.9, "cosine", ())
    reference = runner.build_model(config, RunSpec("sgd", None, 3), data)
    for name, method in METHODS.items():
        level = None if method.level_name is None else 0.3
        model = runner.build_model(config, RunSpec(name, level, 3), data)
        for a, b in zip(reference.get_weights(), model.get_weights()):
            np.testing.assert_array_equal(a, b)
    other = runner.build_model(config, RunSpec("sgd", None, 4), data)
    assert not np.array_equal(reference.get_weights()[0], other.get_weights()[0])


@pytest.mark.parametrize(
    "model, extra, message",
    [
        ("nosuch_pkg.models:build", [],
         "no module named 'nosuch_pkg' in the current folder"),
        ("{mod}:missing", [], "has no function 'missing'"),
        ("{mod}:NOT_CALLABLE", [], "is not a function (it is a int)"),
        ("{mod}:no_arguments", [], "must take (input_shape, num_classes)"),
        ("{mod}:no_dropout", ["--method", "dropout"], "takes no dropout rate"),
        ("not a spec", [], "invalid choice: 'not a spec'"),
    ],
)
def test_bad_user_model_exits_2_naming_it(model, extra, message, user_module,
                                          tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runner, "train", _fail_if_called)
    model = model.format(mod=user_module)
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*TINY, "--model", model, *extra, "--output",
                  str(tmp_path / "run")])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert message in error and model in error
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "function, message",
    [
        ("three_classes", "give outputs of shape (2, 3); the data has 10 "
         "classes"),
        ("images_only", "does not take the data's inputs: examples of shape "
         "(40, 1)"),
        ("not_a_model", "must return a keras.Model. Received: str"),
    ],
)
def test_user_model_that_does_not_fit_the_data_exits_2(
    function, message, user_module, tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(runner, "train", _fail_if_called)
    model = f"{user_module}:{function}"
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*TINY, "--model", model, "--output", str(tmp_path / "run")])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert message in error and model in error
    assert not (tmp_path / "run").exists()


# The user's data.


def _arrays(n_train=48, n_test=24, features=6, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_train + n_test, features)).astype("float32")
    y = rng.integers(0, classes, size=n_train + n_test)
    return {"x_train": x[:n_train], "y_train": y[:n_train],
            "x_test": x[n_train:], "y_test": y[n_train:]}


@pytest.fixture
def npz(tmp_path):
    path = tmp_path / "data.npz"
    np.savez(path, **_arrays())
    return path


def test_user_npz_and_model_train_end_to_end(npz, user_module, tmp_path,
                                              capsys):
    out = tmp_path / "run"
    code = cli.main([
        *TINY, "--dataset", str(npz), "--model", f"{user_module}:build",
        "--seeds", "2", "--batch-size", "16", "--method", "sgd", "--method",
        "ssgd:0.2", "--validation-split", "0.25", "--eval-every-epoch",
        "--output", str(out),
    ])
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    recipe = results["config"]["recipe"]
    assert recipe["dataset"] == str(npz) and len(recipe["data_digest"]) == 16
    assert recipe["validation_split"] == 0.25
    assert len(results["runs"]) == 4
    for record in results["runs"]:
        assert record["status"] == "ok"
        assert 0 <= record["validation_accuracy"] <= 100
        assert len(record["history"]["val_accuracy"]) == 1
    (verdict,) = results["verdicts"]
    assert verdict["n"] == 2 and verdict["low"] is not None
    assert (out / "accuracy.png").stat().st_size > 1000
    assert verdict["text"] in (out / "summary.md").read_text()
    assert verdict["text"] in capsys.readouterr().out


def test_user_npz_with_the_default_model(npz, tmp_path):
    out = tmp_path / "run"
    assert cli.main([*TINY, "--dataset", str(npz), "--method", "sgd",
                     "--output", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["recipe"]["model"] == "mlp"


def test_changed_data_does_not_combine(npz, tmp_path, monkeypatch, capsys):
    def fake_train(config, spec, **kwargs):
        return {"key": spec.key, "method": spec.method, "level": spec.level,
                "level_name": METHODS[spec.method].level_name,
                "seed": spec.seed, "status": "ok", "test_accuracy": 50.0,
                "train_loss": 1.0, "seconds": 1.0}

    monkeypatch.setattr(runner, "train", fake_train)
    out = str(tmp_path / "run")
    args = [*TINY, "--dataset", str(npz), "--method", "sgd", "--output", out]
    assert cli.main(args) == 0
    np.savez(npz, **_arrays(seed=1))
    assert cli.main([*args, "--seeds", "2", "--resume"]) == 2
    assert "data_digest" in capsys.readouterr().err


@pytest.mark.parametrize("function", ["load_data", "load_dict"])
def test_user_data_function(function, user_module):
    config, _, _ = cli.parse([*TINY, "--dataset", f"{user_module}:{function}"])
    data = runner.load_data(config, seed=0)
    assert data.input_shape == (5,) and data.train_size == 40
    assert data.num_classes == (4 if function == "load_dict" else 3)


def test_user_data_order_is_reshuffled_per_epoch_from_the_seed(npz):
    config, _, _ = cli.parse([*TINY, "--dataset", str(npz), "--batch-size",
                              "48"])

    def epochs(seed):
        data = runner.load_data(config, seed=seed)
        return [np.asarray(next(iter(data.train))[1]).tolist()
                for _ in range(2)]

    first = epochs(3)
    assert first == epochs(3)  # the same order for every method of a seed
    assert first[0] != first[1]  # a new order each epoch
    assert first != epochs(4)


def _save(path, **arrays):
    np.savez(path, **arrays)
    return str(path)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: _save(p, **{k: v for k, v in _arrays().items()
                               if k != "y_test"}),
         "missing y_test; a .npz must hold x_train, y_train, x_test, y_test"),
        (lambda p: _save(p, **{**_arrays(), "y_train": -np.ones(48, int)}),
         "labels out of range: y_train holds -1"),
        (lambda p: _save(p, **_arrays(), num_classes=2),
         "labels out of range: y_train holds 2"),
        (lambda p: _save(p, **{**_arrays(), "y_train": np.eye(3)[
            np.zeros(48, int)]}), "one-hot labels?"),
        (lambda p: _save(p, **{**_arrays(), "y_train": np.full(48, 0.5)}),
         "must hold integer class ids"),
        (lambda p: _save(p, **{**_arrays(), "x_test": np.zeros((24, 7))}),
         "x_train and x_test examples differ in shape: (6,) and (7,)"),
        (lambda p: _save(p, **{**_arrays(), "y_test": np.zeros(5, int)}),
         "x_test has 24 examples but y_test has 5 labels"),
        (lambda p: str(p.with_name("absent.npz")), "cannot read the file"),
        (lambda p: (p.write_text("not a zip"), str(p))[1],
         "not a readable .npz file"),
    ],
)
def test_bad_npz_exits_2_naming_it(make, message, tmp_path, monkeypatch,
                                   capsys):
    monkeypatch.setattr(runner, "train", _fail_if_called)
    path = make(tmp_path / "data.npz")
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*TINY, "--dataset", path, "--output", str(tmp_path / "run")])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert message in error and path in error
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "dataset, extra, message",
    [
        ("nosuch_data_pkg:load", [], "no module named 'nosuch_data_pkg'"),
        ("{mod}:absent", [], "has no function 'absent'"),
        ("{mod}:load_nothing", [], "must give a dict with x_train"),
        ("{mod}:load_fails", [], "calling it failed: OSError: the disk is gone"),
        ("{mod}:load_data", ["--model", "{mod}:images_only"],
         "does not take the data's inputs: examples of shape (5,)"),
        ("{mod}:load_dict", ["--model", "{mod}:three_classes"],
         "give outputs of shape (2, 3); the data has 4 classes"),
        ("{mod}:load_data", ["--validation-split", "0.999"],
         "leaves 40 for validation and 0 for training"),
        ("mnist1d", ["--validation-split", "0.2"], "needs your own data"),
        ("mnist1d", ["--data-dir", "/tmp"], "only --dataset tfds:NAME"),
        ("imagenet", [], "or your own data: path/to/data.npz"),
    ],
)
def test_bad_user_data_exits_2_naming_it(dataset, extra, message, user_module,
                                         tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runner, "train", _fail_if_called)
    dataset = dataset.format(mod=user_module)
    extra = [arg.format(mod=user_module) for arg in extra]
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*TINY, "--dataset", dataset, *extra, "--output",
                  str(tmp_path / "run")])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert message in error and dataset in error
    assert not (tmp_path / "run").exists()


def test_tfds_without_tensorflow_exits_2(tmp_path, monkeypatch, capsys):
    from keras_ssgd.data import arrays

    arrays._read_tfds.cache_clear()
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)
    monkeypatch.setattr(runner, "train", _fail_if_called)
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*TINY, "--dataset", "tfds:mnist", "--output",
                  str(tmp_path / "run")])
    assert exit_info.value.code == 2
    assert "--dataset tfds:mnist needs TensorFlow and tensorflow-datasets" in (
        capsys.readouterr().err)
    arrays._read_tfds.cache_clear()


def test_tfds_dataset_trains(tmp_path, monkeypatch):
    tfds = pytest.importorskip("tensorflow_datasets")
    from keras_ssgd.data import arrays

    arrays._read_tfds.cache_clear()
    out = tmp_path / "run"
    with tfds.testing.mock_data(num_examples=16):
        code = cli.main([*TINY, "--dataset", "tfds:mnist", "--data-dir",
                         str(tmp_path / "tfds"), "--batch-size", "8",
                         "--method", "sgd", "--output", str(out)])
    arrays._read_tfds.cache_clear()
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["recipe"]["data_dir"] == str(tmp_path / "tfds")
    assert results["runs"][0]["status"] == "ok"


# The user's dataset objects (keras_ssgd.data.objects).


def test_user_pydatasets_train_each_method_in_the_same_order(
        user_module, tmp_path, capsys):
    out = tmp_path / "run"
    code = cli.main([
        "--epochs", "2", "--seeds", "2", "--quiet", "--hessian-iterations",
        "3", "--dataset", f"{user_module}:load_pydatasets", "--model",
        f"{user_module}:build", "--method", "sgd", "--method", "ssgd:0.2",
        "--output", str(out),
    ])
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    recipe = results["config"]["recipe"]
    assert recipe["data_order"] == "user" and recipe["batch_size"] == 8
    assert recipe["data_digest"] is None
    assert {r["status"] for r in results["runs"]} == {"ok"}
    assert all(r["hessian_top"] > 0 for r in results["runs"])
    assert "ssgd-train does not reshuffle them by seed" in (
        out / "summary.md").read_text()
    # One fresh training set per run (and one for the checks): the two
    # methods of a seed read the same batches, epoch after epoch.
    served = [log for name, log in sys.modules[user_module].SERVED
              if name == "train"]
    assert len(served) == 5
    (sgd0, ssgd0, sgd1, ssgd1) = served[1:]
    assert sgd0 == ssgd0 and sgd1 == ssgd1
    first_epoch = sgd0[:5]
    assert sgd0[5:10] != first_epoch  # on_epoch_end reshuffled
    assert sgd1[5:10] != sgd0[5:10]  # from the run's seed


def test_user_tf_datasets_follow_the_run_seed(user_module, tmp_path):
    import keras

    config, _, _ = cli.parse([*TINY, "--dataset",
                              f"{user_module}:load_tf_datasets"])
    assert config.data_order == "user" and config.batch_size == 8

    def epochs(seed):
        keras.utils.set_random_seed(seed)  # as runner.train does
        data = runner.load_data(config, seed=seed)
        assert data.num_classes == 4 and data.steps_per_epoch == 5
        return [[y.numpy().tolist() for _, y in data.train]
                for _ in range(2)]

    first = epochs(3)
    assert first == epochs(3)
    assert first[0] != first[1]
    assert first != epochs(4)
    out = tmp_path / "run"
    assert cli.main([*TINY, "--dataset", f"{user_module}:load_tf_datasets",
                     "--method", "sgd", "--output", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["runs"][0]["status"] == "ok"
    assert results["config"]["recipe"]["data_order"] == "user"


@pytest.mark.parametrize(
    "function, extra, message",
    [
        ("load_generator", [], "Received: generator (a generator is spent "
         "after one epoch: wrap it in a keras.utils.PyDataset)"),
        ("load_mixed", [], "must both be keras.utils.PyDataset or both "
         "tf.data.Dataset. Received: train Pairs, test"),
        ("load_endless", [], "its train tf.data.Dataset has infinite "
         "cardinality"),
        ("load_no_test", [], "must hold train and test (and optionally "
         "train_eval and num_classes). Received the keys: train, validation"),
        ("load_float_labels", [], "the labels y of its train batches must "
         "be integer class ids"),
        ("load_pydatasets", ["--batch-size", "16"], "argument --batch-size: "
         "--dataset {mod}:load_pydatasets returns dataset objects"),
        ("load_pydatasets", ["--validation-split", "0.2"],
         "--validation-split needs arrays"),
        ("load_pydatasets", ["--distributed", "mirrored"],
         "which the distributed engines do not shard"),
    ],
)
def test_bad_user_dataset_objects_exit_2_naming_the_function(
        function, extra, message, user_module, tmp_path, monkeypatch,
        capsys):
    monkeypatch.setattr(runner, "train", _fail_if_called)
    dataset = f"{user_module}:{function}"
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*TINY, "--dataset", dataset, *extra, "--output",
                  str(tmp_path / "run")])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert message.format(mod=user_module) in error
    assert dataset in error
    assert not (tmp_path / "run").exists()
