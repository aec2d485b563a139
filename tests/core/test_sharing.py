"""`model.sharing`: the one object through which engines configure the
step, and the engines' part of the bargain (they write no private
attribute of a model or of its layers)."""

import ast
import pathlib

import keras
import numpy as np
import pytest

import keras_ssgd
from keras_ssgd.sharing import StepSharing
from keras_ssgd.sharing import WorkerPairs

ROOT = pathlib.Path(__file__).resolve().parents[2]


def linear(**kwargs):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    return keras_ssgd.SymmetricSGDModel(
        inputs, keras.layers.Dense(1)(inputs), seed=0, **kwargs
    )


class Pairs(WorkerPairs):
    engine = "test workers"

    def __init__(self, index, size=2):
        self._index, self._size = index, size

    def index(self):
        return self._index

    def size(self):
        return self._size


def test_the_default_is_one_workers_step():
    model = linear(noise_level=0.2)
    assert isinstance(model.sharing, StepSharing)
    assert model.sharing.pairs is None
    assert (model.sharing.noise, model.sharing.batchnorm) == ("shared", "global")
    assert not model.sharing.per_device
    assert repr(model.sharing) == (
        "StepSharing(pairs=None, noise='shared', batchnorm='global')"
    )


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        ({"noise": "per_rank"}, ValueError, "Received: noise='per_rank'"),
        ({"batchnorm": "sync"}, ValueError, "Received: batchnorm='sync'"),
        ({"pairs": 2}, TypeError, "Received: pairs=2 (of type int)"),
    ],
)
def test_bad_arguments_name_the_argument_and_the_value(kwargs, error, words):
    with pytest.raises(error, match=r"Argument `\w+`") as info:
        StepSharing(**kwargs)
    assert words in str(info.value)


def test_anything_but_the_default_asks_for_the_per_device_step():
    assert StepSharing(pairs=Pairs(0)).per_device
    assert StepSharing(noise="per_pair").per_device
    assert StepSharing(batchnorm="local").per_device


def test_assigning_sharing_checks_the_type_and_retraces():
    model = linear(noise_level=0.2)
    model.compile(optimizer="sgd", loss="mse")
    x, y = np.ones((4, 4), "float32"), np.zeros((4, 1), "float32")
    model.fit(x, y, verbose=0)
    assert model.train_function is not None
    with pytest.raises(TypeError, match="Received: sharing='pairs'"):
        model.sharing = "pairs"
    model.sharing = StepSharing(pairs=Pairs(0))
    assert model.train_function is None


def test_set_pairs_sets_the_public_object():
    from keras_ssgd.distributed.pairs import set_pairs

    model = linear(noise_level=0.2, split_batch=True)
    pairs = Pairs(1)
    assert set_pairs(model, pairs) is model
    assert model.sharing.pairs is pairs
    assert model.passes == 1


def test_a_pair_of_workers_averages_to_the_split_step():
    # Worker 0 measures its batch at W + n, worker 1 at W - n (the same n):
    # the mean of their updates is the split step on their two batches.
    from keras_ssgd.distributed.pairs import set_pairs

    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 4)).astype("float32")
    y = rng.normal(size=(8, 1)).astype("float32")
    weights = []
    for index, rows in ((0, slice(0, 4)), (1, slice(4, 8)), (None, None)):
        model = linear(noise_level=0.3, split_batch=True)
        if index is not None:
            set_pairs(model, Pairs(index))
            batch = (x[rows], y[rows])
        else:
            batch = (x, y)
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        model.fit(*batch, batch_size=len(batch[0]), shuffle=False, verbose=0)
        weights.append(model.get_weights())
    for plus, minus, split in zip(*weights):
        np.testing.assert_allclose((plus + minus) / 2, split, rtol=1e-5,
                                   atol=1e-6)
    assert not np.allclose(weights[0][0], weights[1][0])


def _private_writes(path):
    """`(line, text)` of every assignment to an underscored attribute of
    something other than `self` in the module at `path`."""
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [
                node.target
            ]
        elif isinstance(node, ast.Delete):
            targets = node.targets
        elif isinstance(node, ast.Call) and getattr(
            node.func, "id", None
        ) in ("setattr", "delattr"):
            name = node.args[1] if len(node.args) > 1 else None
            if isinstance(name, ast.Constant) and str(name.value).startswith(
                "_"
            ):
                found.append((node.lineno, ast.unparse(node)))
        for target in targets:
            if (
                isinstance(target, ast.Attribute)
                and target.attr.startswith("_")
                and not (
                    isinstance(target.value, ast.Name)
                    and target.value.id in ("self", "cls")
                )
            ):
                found.append((node.lineno, ast.unparse(target)))
    return found


def test_no_engine_writes_a_private_attribute():
    engines = sorted((ROOT / "keras_ssgd" / "distributed").glob("*.py"))
    assert len(engines) >= 4
    writes = {
        path.name: _private_writes(path) for path in engines
        if _private_writes(path)
    }
    assert writes == {}


def test_the_private_writes_check_finds_them(tmp_path):
    sample = tmp_path / "engine.py"
    sample.write_text(
        "def f(model, layer):\n"
        "    model._pairing = None\n"
        "    setattr(layer, '_moments', None)\n"
        "    self._ok = 1\n"
    )
    found = _private_writes(sample)
    assert [line for line, _ in found] == [2, 3]
