"""The methods' table (`keras_ssgd.methods`): each method carries its
behaviour as hooks, `register` adds one, and `ssgd-train` never asks for a
method by its name. Fast tier, about 1 s (no training)."""

import ast
import dataclasses
import pathlib

import keras
import pytest

from keras_ssgd import baselines
from keras_ssgd import methods
from keras_ssgd.methods import METHODS

TRAIN = pathlib.Path(methods.__file__).parent / "train"


def _strings(path):
    """`(line, value)` of each string constant of `path`, docstrings
    aside."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value) for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef))
        and node.body and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and id(node) not in docstrings]


def test_no_method_is_told_apart_by_its_name_in_train():
    # A method id in `train/` may only be the optimizer's name ("sgd" is
    # both a method and `--optimizer sgd`), on a line about the optimizer.
    found = []
    for path in sorted(TRAIN.glob("*.py")):
        lines = path.read_text().splitlines()
        for number, value in _strings(path):
            line = lines[number - 1]
            if value in METHODS and "optimizer" not in line.lower():
                found.append(f"{path.name}:{number}: {line.strip()}")
    assert found == []
    # runner.py, where the methods run, holds none at all.
    assert [v for _, v in _strings(TRAIN / "runner.py") if v in METHODS] == []


def test_the_hooks_say_what_each_method_adds():
    assert METHODS["ema"].optimizer_options(0.99) == {
        "use_ema": True, "ema_momentum": 0.99}
    assert METHODS["sgd"].optimizer_options(None) == {}
    assert METHODS["ema"].callbacks(0.99, data=None) == []
    [swap] = METHODS["ema"].callbacks(0.99, data=None, epoch_eval=True)
    assert isinstance(swap, keras.callbacks.SwapEMAWeights)
    data = type("D", (), {"train_eval": [1]})()
    [swa] = METHODS["swa"].callbacks(0.5, data=data)
    assert swa.start == 0.5
    assert [m for m, v in METHODS.items() if v.uses_dropout] == ["dropout"]
    assert {n: m.level_range for n, m in METHODS.items()
            if m.level_range != "nonnegative"} == {
        "dropconnect": "probability", "dropout": "probability",
        "ema": "fraction", "swa": "fraction"}


def test_build_model_wraps_rebuilds_or_keeps_the_plain_model():
    import keras_ssgd

    def build(dropout=0.0):
        inputs = keras.Input((3,))
        x = keras.layers.Dense(4)(inputs)
        if dropout:
            x = keras.layers.Dropout(dropout)(x)
        return keras.Model(inputs, keras.layers.Dense(2)(x))

    plain = build()
    assert METHODS["sgd"].build_model(plain, None, build) is plain
    wrapped = METHODS["ssgd-every"].build_model(
        plain, 0.3, build, wrap=keras_ssgd.wrap, every=4, seed=1)
    assert wrapped.noise_level == 0.3 and wrapped.every == 4
    dropped = METHODS["dropout"].build_model(plain, 0.5, build)
    assert any(isinstance(layer, keras.layers.Dropout)
               for layer in dropped.layers)
    for a, b in zip(plain.get_weights(), dropped.get_weights()):
        assert (a == b).all()


def test_levels_are_checked_by_range_with_the_same_messages():
    with pytest.raises(ValueError, match=r"`dropout rate` must be in \[0, 1\)"):
        METHODS["dropout"].check_level(1.0)
    with pytest.raises(ValueError, match=(
            r"Argument `ema ema_momentum` must be in \[0, 1\). "
            r"Received: ema_momentum=1.0")):
        METHODS["ema"].check_level(1.0)
    with pytest.raises(ValueError, match="ssgd noise_level"):
        METHODS["ssgd"].check_level(-0.1)
    assert METHODS["sam"].check_level(2) == 2.0
    with pytest.raises(ValueError, match="level_range='percent'"):
        methods.Method("x", level_range="percent")


def test_register_adds_a_method_and_refuses_a_taken_name(monkeypatch):
    import keras_ssgd

    monkeypatch.setattr(methods, "METHODS", dict(METHODS))
    noisy = methods.Method("noisy", baselines.WeightNoiseModel,
                           "noise_level", (0.1,), 1, "weight noise")
    assert methods.register(noisy) is noisy
    assert methods.METHODS["noisy"] is noisy
    base = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model = keras_ssgd.wrap(base, method="noisy", noise_level=0.1)
    assert isinstance(model, baselines.WeightNoiseModel)
    with pytest.raises(ValueError, match=(
            "names a method that exists: 'ssgd'.*replace=True")):
        methods.register(dataclasses.replace(noisy, name="ssgd"))
    methods.register(dataclasses.replace(noisy, name="ssgd"), replace=True)
    with pytest.raises(TypeError, match="Received: method='ssgd'"):
        methods.register("ssgd")
