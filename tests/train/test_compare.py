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
    # Without resume, a folder that holds results is refused, in the
    # function's words (not the command's flags).
    with pytest.raises(ValueError, match="Pass resume=True to continue") as error:
        keras_ssgd.compare(
            build, _data(), methods=["sgd"], seeds=[6], epochs=1,
            batch_size=16, hessian_iterations=0, output=tmp_path / "r",
        )
    assert "--" not in str(error.value)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"seeds": "x"}, "Argument `seeds` must be an int > 0 (seeds 0 .. "
         "N-1), a string 'N', 'A-B' or 'A,B,...'"),
        ({"seeds": [1, -1]}, "Argument `seeds` must be an int > 0"),
        ({"epochs": 0}, "Argument `epochs` must be an int > 0. Received: "
         "epochs=0"),
        ({"epochs": 2.5}, "Argument `epochs` must be an int > 0. Received: "
         "epochs=2.5"),
        ({"methods": ["adamw"]}, "Argument `methods` has an unknown method "
         "'adamw'; valid methods: sgd, ssgd"),
        ({"methods": ["sgd:0.1"]}, "Argument `methods` has levels for "
         "'sgd', which takes none"),
        ({"methods": [("ssgd", [float("nan")])]}, "Argument `methods` must "
         "hold levels >= 0 (finite numbers); nan of ssgd is not"),
        ({"methods": ["dropout:1.5"]}, "Argument `methods` has a level "
         "dropout cannot take"),
        ({"noise_levels": [-0.1]}, "Argument `noise_levels` must hold "
         "levels >= 0 (finite numbers); -0.1 is not. Received: "
         "noise_levels=[-0.1]"),
        ({"lr": -1.0}, "Argument `lr` must be a finite number > 0. "
         "Received: lr=-1.0"),
        ({"momentum": 1.0}, "Argument `momentum` must be in [0, 1). "
         "Received: momentum=1.0"),
        ({"optimizer": "rmsprop"}, "Argument `optimizer` must be one of "
         "['sgd', 'adam']. Received: optimizer='rmsprop'"),
        ({"lr_drops": [5]}, "Argument `lr_drops` must hold epochs before "
         "the end of training (1 epochs): epoch 5 is not before the end. "
         "Received: lr_drops=[5]"),
        ({"phases": "2-1S"}, "Argument `epochs` must be left out or match "
         "the phases: the plan 2-1S sets 3 epochs. Received: epochs=1"),
        ({"phases": "2-x"}, "Argument `phases` must be a phase plan"),
        ({"data": "mnist1d", "validation_split": 0.2}, "Argument "
         "`validation_split` needs your own data"),
        ({"hessian_iterations": -1}, "Argument `hessian_iterations` must be "
         ">= 0. Received: hessian_iterations=-1"),
        ({"verbose": 3}, "Argument `verbose` must be 0, 1 or 2. Received: "
         "verbose=3"),
        ({"resume": True, "output": None}, "Argument `resume` needs "
         "`output`, the folder of the run to continue"),
        ({"build_model": 3}, "Argument `build_model` must be a builder "
         "function, one of"),
        ({"data": {"x_train": np.zeros((4, 2))}}, "missing y_train"),
        ({"build_model": "nosuch_mod:build"}, "no module named 'nosuch_mod'"),
    ],
)
def test_compare_bad_arguments_raise_value_error(kwargs, message, tmp_path):
    arguments = {"build_model": build, "data": _data(), "epochs": 1,
                 "output": tmp_path / "r", **kwargs}
    with pytest.raises(ValueError) as error:
        keras_ssgd.compare(**arguments)
    assert message in str(error.value)
    assert not (tmp_path / "r").exists()


def test_compare_takes_no_unknown_argument(tmp_path):
    with pytest.raises(TypeError, match="learning_rate"):
        keras_ssgd.compare(build, _data(), learning_rate=0.1,
                           output=tmp_path / "r")


def test_command_and_compare_make_the_same_plan(monkeypatch):
    from keras_ssgd.train import cli
    from keras_ssgd.train import plan

    config, specs, _ = cli.parse([
        "--model", "mlp", "--method", "sgd", "--method", "ssgd:0.1,0.3",
        "--seeds", "4-5", "--epochs", "3", "--lr", "0.1", "--lr-schedule",
        "step", "--lr-drops", "2", "--hessian-iterations", "5",
    ])
    made = plan.make_plan(
        "mlp", "mnist1d", methods=["sgd", ("ssgd", [0.1, 0.3])],
        seeds=[4, 5], epochs=3, lr=0.1, lr_schedule="step", lr_drops=[2],
        hessian_iterations=5,
    )
    assert made[:2] == (config, specs)
    assert len(specs) == 6
    # The command checks through the same function as compare().
    calls = []

    def spy(**kwargs):
        calls.append(kwargs)
        raise plan.ArgumentError("epochs", "is refused here", 7,
                                 cli_message="is refused here")

    monkeypatch.setattr(plan, "make_plan", spy)
    with pytest.raises(SystemExit):
        cli.parse(["--epochs", "7"])
    assert calls and calls[0]["epochs"] == 7
