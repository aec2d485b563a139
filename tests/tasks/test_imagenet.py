"""ImageNet: the keras-cv ResNets, the imagenet2012 loader (on tfds mock
data and generated JPEGs), and Table 3's script end to end."""

import importlib.util
import json
import pathlib

import keras
import numpy as np
import pytest
from conftest import stop_once_after_an_epoch
import tensorflow as tf

import keras_ssgd
from keras_ssgd import data as data_lib
from keras_ssgd.tasks.imagenet import data as imagenet
from keras_ssgd.models import imagenet_resnet

tfds = pytest.importorskip("tensorflow_datasets")

EXPERIMENTS = pathlib.Path(__file__).parents[2] / "experiments" / "paper"


def load_script(name):
    spec = importlib.util.spec_from_file_location(name, EXPERIMENTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def manual_dir(tmp_path):
    """A manual download folder with the two (empty) ImageNet archives:
    enough for tfds mock data, which never opens them."""
    folder = tmp_path / "manual"
    folder.mkdir()
    for name in imagenet.MANUAL_FILES:
        (folder / name).touch()
    return folder


def mock_imagenet(num_examples=12):
    return tfds.testing.mock_data(
        num_examples=num_examples, policy=tfds.testing.MockPolicy.USE_CODE
    )


# Models.


@pytest.mark.parametrize("depth, params", [(18, 11_689_512), (50, 25_557_032)])
def test_parameter_counts_match_the_reference_resnets(depth, params):
    # The trainable parameters of torchvision's resnet18 / resnet50 (1000
    # classes); the count does not depend on the image size.
    model = imagenet_resnet(depth, input_shape=(32, 32, 3))
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == params
    assert model.output_shape == (None, 1000)


def test_ssgd_perturbs_every_conv_and_dense_kernel_and_nothing_else():
    base = imagenet_resnet(18, classes=10, input_shape=(32, 32, 3))
    model = keras_ssgd.wrap(base, noise_level=0.25)
    kernels = [
        layer.kernel for layer in base.layers
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense))
    ]
    assert len(kernels) == 21  # 20 convolutions (3 projections) + the head
    assert [v.path for v in model.noise_variables] == [v.path for v in kernels]
    batchnorm = [l for l in base.layers if isinstance(l, keras.layers.BatchNormalization)]
    assert batchnorm and not any(
        v is w for l in batchnorm for w in l.weights for v in model.noise_variables
    )


def test_weight_decay_is_the_reference_l2_on_kernels():
    model = imagenet_resnet(18, classes=10, input_shape=(32, 32, 3), weight_decay=1e-4)
    kernels = [l.kernel for l in model.layers
               if isinstance(l, (keras.layers.Conv2D, keras.layers.Dense))]
    expected = sum(1e-4 * 0.5 * float(np.sum(np.square(k.numpy()))) for k in kernels)
    assert len(model.losses) == len(kernels)
    assert float(sum(model.losses)) == pytest.approx(expected, rel=1e-5)
    assert imagenet_resnet(18, classes=10, input_shape=(32, 32, 3)).losses == []


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"depth": 19}, r"`depth` must be one of \[18, 34, 50, 101, 152\]"),
        ({"classes": 0}, "`classes` must be an int > 0"),
        ({"input_shape": (32, 32)}, r"`input_shape` must be \(height, width, 3\)"),
        ({"weight_decay": -1.0}, "`weight_decay` must be a number >= 0"),
        ({"dropout": 1.0}, r"`dropout` must be in \[0, 1\)"),
    ],
)
def test_model_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        imagenet_resnet(**{"input_shape": (32, 32, 3), **kwargs})


# Loader.


def test_loader_on_mock_data_gives_normalised_batches(tmp_path, manual_dir):
    with mock_imagenet(12):
        data = data_lib.load(
            "imagenet2012", batch_size=4, seed=0, data_dir=str(tmp_path),
            manual_dir=str(manual_dir), image_size=32,
        )
        train_x, train_y = next(iter(data.train))
        test_x, test_y = next(iter(data.test))
    assert (data.train_size, data.steps_per_epoch) == (12, 3)
    assert data.input_shape == (32, 32, 3) and data.num_classes == 1000
    for x, y in ((train_x, train_y), (test_x, test_y)):
        assert x.shape == (4, 32, 32, 3) and x.dtype == tf.float32
        assert y.dtype == tf.int32 and np.all((y >= 0) & (y < 1000))
        # Pixels in [0, 1], normalised per channel with ImageNet's statistics.
        mean, std = np.array(imagenet.MEAN_RGB), np.array(imagenet.STDDEV_RGB)
        channels = np.asarray(x).reshape(-1, 3)
        assert np.all(channels >= -mean / std - 1e-5)
        assert np.all(channels <= (1 - mean) / std + 1e-5)


def test_loader_holds_out_the_last_percent_of_training(tmp_path, manual_dir,
                                                       monkeypatch):
    import tensorflow_datasets as tfds

    asked = []
    as_dataset = tfds.core.DatasetBuilder.as_dataset

    def record(self, split, **kwargs):
        asked.append(split)
        return as_dataset(self, split=split, **kwargs)

    monkeypatch.setattr(tfds.core.DatasetBuilder, "as_dataset", record)
    with mock_imagenet(12):
        data = data_lib.load(
            "imagenet2012", batch_size=4, seed=0, data_dir=str(tmp_path),
            manual_dir=str(manual_dir), image_size=32,
        )
        x, y = next(iter(data.validation))
        plain = data_lib.load(
            "imagenet2012", batch_size=4, seed=0, data_dir=str(tmp_path),
            manual_dir=str(manual_dir), image_size=32, validation_percent=0,
        )
    assert sorted(set(asked)) == ["train", "train[99%:]", "train[:99%]",
                                  "validation"]
    assert x.shape == (4, 32, 32, 3) and plain.validation is None


def encode(image):
    return tf.io.encode_jpeg(tf.constant(image, tf.uint8), quality=100)


def test_eval_crop_resizes_the_shorter_side_then_takes_the_centre():
    # 512 rows x 256 columns: the shorter side is already 256, so the crop is
    # rows 144..367 and columns 16..239; each row's value is row // 2.
    rows = np.repeat((np.arange(512) // 2)[:, None], 256, axis=1)
    image = np.stack([rows] * 3, axis=-1)
    out = imagenet.eval_crop(224)(encode(image)).numpy()
    assert out.shape == (224, 224, 3)
    np.testing.assert_allclose(out[:, 0, 0] * 255, np.arange(144, 368) // 2, atol=2)
    # A 300 x 600 image: shorter side to 256 (x 0.853), then the centre.
    small = imagenet.eval_crop(224)(encode(np.zeros((300, 600, 3))))
    assert small.shape == (224, 224, 3)


def test_train_crop_is_random_and_in_range():
    rng = np.random.default_rng(0)
    jpeg = encode(rng.integers(0, 256, (64, 96, 3)))
    crop = imagenet.train_crop(24, seed=1)
    a, b = crop(jpeg).numpy(), crop(jpeg).numpy()
    assert a.shape == (24, 24, 3) and a.dtype == np.float32
    assert a.min() >= 0.0 and a.max() <= 1.0
    assert not np.array_equal(a, b)


def test_missing_manual_folder_says_what_is_expected_where(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError) as info:
        imagenet.load_imagenet(data_dir=str(tmp_path), manual_dir=str(missing))
    message = str(info.value)
    assert "ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar" in message
    assert "does not exist" in message and f"manual_dir={str(missing)!r}" in message
    assert str(tmp_path / "imagenet2012") in message  # where prepared data would be


def test_folder_without_the_archives_names_the_missing_one(tmp_path):
    folder = tmp_path / "manual"
    folder.mkdir()
    (folder / "ILSVRC2012_img_train.tar").touch()
    with pytest.raises(FileNotFoundError, match=r"lacks ILSVRC2012_img_val\.tar\. "
                       r"Received: manual_dir="):
        imagenet.load_imagenet(data_dir=str(tmp_path), manual_dir=str(folder))


def test_missing_data_dir_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="Argument `data_dir` must be an "
                       "existing folder.*Received: data_dir="):
        imagenet.load_imagenet(data_dir=str(tmp_path / "nope"))


def test_loader_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="`image_size` must be an int > 0"):
        imagenet.load_imagenet(data_dir=str(tmp_path), image_size=0)


# ssgd-train and Table 3's script.


def test_ssgd_train_knows_the_imagenet_recipe():
    from keras_ssgd.train import cli

    config, specs, _ = cli.parse(["--dataset", "imagenet2012", "--model", "resnet18",
                                  "--method", "ssgd:0.25", "--seeds", "1"])
    assert (config.epochs, config.batch_size, config.lr) == (90, 1024, 0.4)
    assert config.lr_schedule == "step" and config.lr_drops == (30, 60, 80)
    assert [s.key for s in specs] == ["ssgd-0.25-seed0"]


def test_table3_schedule_warms_up_then_drops():
    table3 = load_script("table3_imagenet")
    schedule = table3.WarmupStepDecay(0.4, warmup_steps=10, boundaries=[30, 60, 80])
    # Keras's PiecewiseConstantDecay switches after each boundary step.
    rates = [float(schedule(step)) for step in (0, 5, 10, 30, 31, 61, 81, 100)]
    np.testing.assert_allclose(rates, [0.0, 0.2, 0.4, 0.4, 0.04, 0.004, 4e-4, 4e-4],
                               rtol=1e-6)


def test_table3_refuses_unknown_models(capsys):
    table3 = load_script("table3_imagenet")
    with pytest.raises(SystemExit) as info:
        table3.parse(["--models", "resnet34"])
    assert info.value.code == 2
    assert "'resnet18', 'resnet50'" in capsys.readouterr().err


def test_table3_reports_a_missing_folder_without_a_traceback(tmp_path, capsys):
    table3 = load_script("table3_imagenet")
    code = table3.main(["--data-dir", str(tmp_path), "--manual-dir",
                        str(tmp_path / "nowhere"), "--output", str(tmp_path / "out")])
    assert code == 2
    assert "ILSVRC2012_img_train.tar" in capsys.readouterr().err


@pytest.mark.slow  # its pipeline runs in CI through `make smoke`
def test_table3_smoke_runs_end_to_end(tmp_path):
    table3 = load_script("table3_imagenet")
    assert table3.main(["--smoke", "--quiet", "--output", str(tmp_path)]) == 0
    table = (tmp_path / "table3.md").read_text()
    assert "| resnet18 | SGD |" in table and "| 70.24 | 89.43 |" in table
    assert "| resnet18 | S-SGD (0.25) |" in table and "| 70.42 | 89.57 |" in table
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["smoke"] is True
    assert [r["key"] for r in results["runs"]] == [
        "resnet18-sgd-seed0", "resnet18-ssgd-0.25-seed0"]
    for run in results["runs"]:
        assert run["status"] == "ok" and 0 <= run["top1"] <= run["top5"] <= 100
    assert results["recipe"]["lr_per_256_images"] == 0.1
    # A second call resumes: nothing is trained again.
    assert table3.main(["--smoke", "--quiet", "--output", str(tmp_path)]) == 0
    assert json.loads((tmp_path / "results.json").read_text())["runs"] == results["runs"]
    # Another recipe in the same folder is refused before any training.
    assert table3.main(["--smoke", "--quiet", "--epochs", "2",
                        "--output", str(tmp_path)]) == 2


@pytest.mark.slow
def test_table3_stopped_in_a_run_continues_it_from_its_checkpoint(
    tmp_path, monkeypatch
):
    """Slow tier: the 2-epoch smoke run stopped (Ctrl-C) at the end of the
    first run's first epoch, then run again: that run continues from its
    checkpoint (both epochs in its history, `resumed` 1) and no checkpoint
    remains; about 20 s."""
    table3 = load_script("table3_imagenet")
    stop_once_after_an_epoch(monkeypatch)
    argv = ["--smoke", "--quiet", "--epochs", "2", "--output", str(tmp_path)]
    with pytest.raises(KeyboardInterrupt):
        table3.main(argv)
    held = sorted(p.name for p in (tmp_path / "runs").glob("*.checkpoint.npz"))
    assert held == ["resnet18-sgd-seed0.checkpoint.npz"]
    assert table3.main(argv) == 0
    first, second = json.loads((tmp_path / "results.json").read_text())["runs"]
    assert first["resumed"] == 1 and "resumed" not in second
    assert len(first["history"]["loss"]) == 2 == len(second["history"]["loss"])
    assert not list(tmp_path.rglob("*.checkpoint.npz"))
