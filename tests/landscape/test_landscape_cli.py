"""`ssgd-landscape` end to end on three tiny saved MNIST-1D models."""

import json

import keras
import pytest

from keras_ssgd.landscape import cli


@pytest.fixture
def saved_models(tmp_path):
    paths = []
    for seed in (1, 2, 3):
        keras.utils.set_random_seed(seed)
        model = keras.Sequential([
            keras.Input((40, 1)), keras.layers.Flatten(),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.BatchNormalization(), keras.layers.Dense(10),
        ])
        model.compile(
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        path = tmp_path / f"m{seed}.keras"
        model.save(path)
        paths.append(str(path))
    return paths


def test_writes_line_plane_and_eigenvalues(saved_models, tmp_path):
    out = tmp_path / "out"
    code = cli.main([*saved_models, "--output", str(out), "--points", "3",
                     "--grid", "3", "--eigenvalues", "2", "--bn-batches", "2"])
    assert code == 0
    line = json.loads((out / "interpolation.json").read_text())
    assert line["train"]["alpha"] == [-0.5, 0.5, 1.5]
    assert len(line["test"]["error"]) == 3
    surface = json.loads((out / "plane.json").read_text())
    assert len(surface["loss"]) == 3 and len(surface["points"]) == 3
    eigen = json.loads((out / "eigenvalues.json").read_text())
    assert set(eigen) == {"m1", "m2", "m3"}
    assert all(len(v) == 2 and v[0] >= v[1] for v in eigen.values())
    for name in ("interpolation.png", "plane.png", "eigenvalues.md"):
        assert (out / name).stat().st_size > 0


@pytest.mark.parametrize(
    "args, message",
    [
        (lambda m: m[:1], "give two or three models"),
        (lambda m: [m[0], "nope.keras"], "no such model file: nope.keras"),
        (lambda m: [*m[:2], "--points", "1"], "--points: must be >= 2"),
    ],
)
def test_bad_input_exits_2(args, message, saved_models, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(args(saved_models))
    assert info.value.code == 2
    assert message in capsys.readouterr().err
