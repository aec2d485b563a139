"""`keras_ssgd.compare`, the Python form of `ssgd-train`."""

import json

import keras
import numpy as np
import pytest

import keras_ssgd


def build(input_shape, num_classes, dropout=0.0):
    inputs = keras.Input(input_shape)
    x = keras.layers.Dense(8, activation="relu")(inputs)
    return keras.Model(inputs, keras.layers.Dense(num_classes)(x))


def _data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(72, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int64") + 2 * (x[:, 1] > 0)
    return {"x_train": x[:48], "y_train": y[:48], "x_test": x[48:],
            "y_test": y[48:]}


def test_compare_a_python_builder_on_arrays(tmp_path):
    result = keras_ssgd.compare(
        build, _data(), methods=["sgd", ("ssgd", [0.2])], seeds="3-4",
        epochs=1, batch_size=16, hessian_iterations=0, output=tmp_path / "r",
    )
    assert result.folder == tmp_path / "r"
    assert "| ssgd | noise_level 0.2 |" in result.table
    (verdict,) = result.verdicts
    assert verdict["seeds"] == [3, 4] and verdict["n"] == 2
    assert verdict["text"] in str(result)
    on_disk = json.loads((tmp_path / "r" / "results.json").read_text())
    assert on_disk == result.results
    assert result.results["verdicts"][0]["text"] == verdict["text"]
    recipe = result.results["config"]["recipe"]
    assert recipe["model"] == f"{__name__}:build"
    assert recipe["dataset"] == "arrays" and recipe["data_digest"]
    assert result.plot_path.stat().st_size > 1000
    # The same again extends the folder: seed 5 is added, 3 and 4 kept.
    more = keras_ssgd.compare(
        build, _data(), methods=["sgd", "ssgd:0.2"], seeds=[5], epochs=1,
        batch_size=16, hessian_iterations=0, output=tmp_path / "r",
        resume=True,
    )
    assert more.verdicts[0]["seeds"] == [3, 4, 5]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"seeds": "x"}, "--seeds"),
        ({"epochs": 0}, "must be an int > 0. Received: 0"),
        ({"methods": ["adamw"]}, "unknown method 'adamw'"),
        ({"data": {"x_train": np.zeros((4, 2))}}, "missing y_train"),
        ({"build_model": "nosuch_mod:build"}, "no module named 'nosuch_mod'"),
    ],
)
def test_compare_bad_arguments_raise_value_error(kwargs, message, tmp_path):
    arguments = {"build_model": build, "data": _data(), "epochs": 1,
                 "output": tmp_path / "r", **kwargs}
    with pytest.raises(ValueError, match=None) as error:
        keras_ssgd.compare(**arguments)
    assert message in str(error.value)
    assert not (tmp_path / "r").exists()
