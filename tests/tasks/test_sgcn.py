"""The SGCN acoustic model, CTC decoding and WER, the speech loaders and the
Table 4 script."""

import importlib.util
import json
import pathlib

import keras
import numpy as np
import pytest
from conftest import stop_once_after_an_epoch

import keras_ssgd
from keras_ssgd import filters
from keras_ssgd.tasks.speech import ctc as speech
from keras_ssgd.tasks.speech import data as speech_data
from keras_ssgd.tasks.speech.sgcn import sgcn
from keras_ssgd.tasks.speech.sgcn import sgcn_parameter_count

EXPERIMENTS = pathlib.Path(__file__).parents[2] / "experiments" / "paper"


def write_folder(root, splits=(("train", 6), ("test", 3)), features=5, seed=0):
    rng = np.random.default_rng(seed)
    texts = {}
    for split, count in splits:
        (root / split).mkdir(parents=True)
        lines = []
        for i in range(count):
            text = f"The Cat's {i} SAT on mat" if i % 2 else "a dog ran"
            np.save(root / split / f"u{i}.npy",
                    rng.normal(size=(4 + 3 * i, features)).astype("float32"))
            lines.append(f"u{i} {text}")
            texts[(split, f"u{i}")] = text
        (root / split / "transcripts.txt").write_text("\n".join(lines) + "\n")
    return texts


def small_batch():
    rng = np.random.default_rng(1)
    x = {"features": rng.normal(size=(3, 12, 6)).astype("float32"),
         "lengths": np.array([12, 7, 3], "int32")}
    y = speech.encode_text(["ab c", "ba", "c"])
    return x, y


# --- model -------------------------------------------------------------------


@pytest.mark.parametrize("units, built, paper", [(190, 885_259, 1.09e6), (300, 2_122_649, 2.24e6)])
def test_parameter_counts_are_the_documented_ones(units, built, paper):
    model = sgcn(units)
    assert model.count_params() == sgcn_parameter_count(units) == built
    # The docstring states 81% and 95% of the paper's counts.
    assert round(100 * built / paper) == {190: 81, 300: 95}[units]
    assert len([l for l in model.layers if isinstance(l, keras.layers.DepthwiseConv1D)]) == 12
    assert model.output_shape == (None, None, speech.NUM_CLASSES)


def test_padded_batch_gives_each_utterance_its_own_logits_and_loss():
    model = sgcn(8, depth=3, num_features=6, kernel_size=3)
    x, y = small_batch()
    batch = keras.ops.convert_to_numpy(model(x))
    for i, n in enumerate(x["lengths"]):
        alone = model({"features": x["features"][i:i + 1, :n], "lengths": np.array([n])})
        np.testing.assert_allclose(batch[i:i + 1, :n], alone, atol=1e-5)
        assert (batch[i, n:].argmax(-1) == speech.BLANK).all()
    # keras.losses.CTC over the padded batch = CTC with the true lengths.
    padded = keras.ops.convert_to_numpy(
        speech.ctc_loss()(y, batch) * len(y))
    exact = keras.ops.ctc_loss(
        y, batch[:, :12], np.count_nonzero(y, axis=1).astype("int32"), x["lengths"])
    np.testing.assert_allclose(padded, np.sum(exact), rtol=1e-4)


def test_model_saves_and_loads(tmp_path):
    model = sgcn(8, depth=2, num_features=6, kernel_size=3)
    model.save(tmp_path / "sgcn.keras")
    loaded = keras.saving.load_model(tmp_path / "sgcn.keras")
    x, _ = small_batch()
    np.testing.assert_allclose(model(x), loaded(x), atol=1e-6)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="units"):
        sgcn(0)
    with pytest.raises(ValueError, match="num_classes=1"):
        sgcn(8, num_classes=1)


def test_ssgd_noise_goes_on_every_conv_kernel_depthwise_included():
    model = keras_ssgd.wrap(sgcn(8, depth=2, num_features=6, kernel_size=3), noise_level=0.2)
    selected = {v.path for v in filters.select(model, filters.kernels)}
    conv = {v.path for v in filters.select(model, filters.conv_kernels)}
    assert selected == conv == {
        "block1_time/kernel", "block1_pointwise/kernel", "block2_time/kernel",
        "block2_pointwise/kernel", "logits/kernel"}  # no bias


@pytest.mark.slow
def test_ssgd_trains_the_ctc_model():
    base = sgcn(8, depth=2, num_features=6, kernel_size=3)
    model = keras_ssgd.wrap(base, noise_level=0.2, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=speech.ctc_loss())
    x, y = small_batch()
    before = [np.array(v) for v in base.trainable_variables]
    losses = model.fit(x, y, epochs=20, batch_size=3, verbose=0).history["loss"]
    assert np.isfinite(losses).all() and losses[-1] < losses[0]
    assert all(not np.allclose(b, np.array(v)) for b, v in zip(before, base.trainable_variables))


# --- text, decoding, WER -------------------------------------------------------


def test_text_encoding_round_trip():
    assert speech.normalize_text("  Hello, WORLD's  end! ") == "hello world's end"
    ids = speech.encode_text(["ab", "c a"])
    np.testing.assert_array_equal(ids, [[3, 4, 0], [5, 1, 3]])
    assert speech.decode_ids([5, 1, 3, 0, -1]) == "c a"


def test_greedy_decode_merges_repeats_and_drops_blanks():
    path = [[3, 3, 0, 3, 4, 1, 5, 5]]  # a a _ a b ' ' c c -> "aab c"
    logits = keras.ops.convert_to_numpy(keras.ops.one_hot(path, speech.NUM_CLASSES)) * 10
    assert speech.greedy_decode(logits, [8]) == ["aab c"]
    assert speech.greedy_decode(logits, [4]) == ["aa"]


@pytest.mark.parametrize("refs, hyps, wer", [
    (["the cat sat down"], ["the cat sat down"], 0.0),
    (["the cat sat down"], ["the cat sat up"], 0.25),
    (["the cat sat down"], ["the sat down"], 0.25),              # deletion
    (["the cat", "sat down"], ["the cat on", "sat down"], 0.25),  # insertion
    (["a b"], [""], 1.0),
    (["a"], ["b c d"], 3.0),
])
def test_word_error_rate_known_cases(refs, hyps, wer):
    assert speech.word_error_rate(refs, hyps) == pytest.approx(wer)


def test_character_error_rate_and_bad_inputs():
    assert speech.character_error_rate(["abcd"], ["abed"]) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="same length"):
        speech.word_error_rate(["a"], ["a", "b"])
    with pytest.raises(ValueError, match="at least one word"):
        speech.word_error_rate([""], ["a"])
    with pytest.raises(ValueError, match="must not be empty"):
        speech.word_error_rate([], [])


# --- loaders -------------------------------------------------------------------


def test_folder_loader_batches_features_and_labels(tmp_path):
    texts = write_folder(tmp_path)
    data = speech_data.load_speech_folder(tmp_path, batch_size=2, seed=0)
    assert data.train_size == 6 and data.input_shape == (None, 5)
    (x, y), = data.test.take(1).as_numpy_iterator()
    assert x["features"].shape == (2, 7, 5)
    np.testing.assert_array_equal(x["lengths"], [4, 7])
    assert (x["features"][0, 4:] == 0).all()
    got = [speech.decode_ids(row) for row in y]
    assert got == [speech.normalize_text(texts[("test", f"u{i}")]) for i in range(2)]
    assert got[1] == "the cat's sat on mat"
    orders = [[tuple(b[0]["lengths"]) for b in data.train.as_numpy_iterator()] for _ in range(3)]
    assert len(set(map(tuple, orders))) > 1  # reshuffled each epoch


def test_folder_loader_names_what_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such folder"):
        speech_data.load_speech_folder(tmp_path / "nowhere")
    (tmp_path / "train").mkdir()
    with pytest.raises(FileNotFoundError, match=r"folder 'train' with a transcripts.txt"):
        speech_data.load_speech_folder(tmp_path)
    write_folder(tmp_path / "d")
    (tmp_path / "d" / "test" / "u1.npy").unlink()
    with pytest.raises(FileNotFoundError, match=r"e.g. u1.npy"):
        speech_data.load_speech_folder(tmp_path / "d")
    np.save(tmp_path / "d" / "test" / "u1.npy", np.zeros((3, 4), "float32"))
    with pytest.raises(ValueError, match=r"same F as the others \(F=5\)"):
        speech_data.load_speech_folder(tmp_path / "d")
    (tmp_path / "d" / "train" / "transcripts.txt").write_text("u0\n")
    with pytest.raises(ValueError, match="Line 1 .* no transcript"):
        speech_data.load_speech_folder(tmp_path / "d")
    with pytest.raises(ValueError, match="batch_size"):
        speech_data.load_speech_folder(tmp_path / "d", batch_size=0)


def test_log_mel_shapes_and_normalisation():
    pcm = np.random.default_rng(0).integers(-3000, 3000, 16000).astype("int16")
    features = np.asarray(speech_data.log_mel(pcm))
    assert features.shape == (100, 120)  # 10 ms hop, 40 mels x 3
    np.testing.assert_allclose(features.mean(0), 0, atol=1e-3)
    assert np.asarray(speech_data.log_mel(pcm[:50])).shape[0] >= 1  # shorter than a window


def test_librispeech_loader_on_tfds_mock_data():
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=4):
        data = speech_data.load_librispeech(batch_size=2, seed=0)
        (x, y), = data.test.take(1).as_numpy_iterator()
    assert data.input_shape == (None, 120) and data.train_size == 4
    assert x["features"].shape[0] == 2 and x["features"].shape[2] == 120
    assert y.min() >= 0 and y.max() < speech.NUM_CLASSES and (y > 0).any()


# --- the Table 4 script --------------------------------------------------------


def load_script():
    spec = importlib.util.spec_from_file_location("table4_sgcn", EXPERIMENTS / "table4_sgcn.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_script_defaults_and_bad_data_dir(tmp_path, capsys):
    table4 = load_script()
    _, args = table4.parse([])
    assert args.units == [190, 300] and args.depth == 12 and args.methods == ["adam", "ssgd"]
    with pytest.raises(SystemExit) as exit_info:
        table4.main(["--data-dir", str(tmp_path / "nowhere"), "--output", str(tmp_path / "o")])
    assert exit_info.value.code == 2
    assert "no such folder" in capsys.readouterr().err
    assert not (tmp_path / "o" / "runs").exists()


def test_script_smoke_runs_the_whole_pipeline(tmp_path):
    # S-SGD only here (the Adam run is plain Keras); the full --smoke is slow.
    table4 = load_script()
    command = ["--smoke", "--quiet", "--methods", "ssgd", "--output", str(tmp_path)]
    assert table4.main(command) == 0
    results = json.loads((tmp_path / "table4.json").read_text())
    assert [(r["method"], r["units"]) for r in results["runs"]] == [("ssgd", 16)]
    for run in results["runs"]:
        assert np.isfinite(run["history"]["loss"]).all()
        assert len(run["history"]["val_wer"]) == 2 and run["test_wer"] >= 0
    assert "| 2x16 SGCN | S-SGD Adam |" in (tmp_path / "table4.md").read_text()
    # Running again resumes: nothing is retrained.
    stamp = (tmp_path / "runs" / "2x16-ssgd-seed0.json").stat().st_mtime
    assert table4.main(command) == 0
    assert (tmp_path / "runs" / "2x16-ssgd-seed0.json").stat().st_mtime == stamp


@pytest.mark.slow
def test_script_full_smoke_both_methods(tmp_path):
    table4 = load_script()
    assert table4.main(["--smoke", "--quiet", "--output", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "table4.json").read_text())
    assert [r["method"] for r in results["runs"]] == ["adam", "ssgd"]
    assert all(np.isfinite(r["history"]["loss"]).all() for r in results["runs"])


@pytest.mark.slow
def test_script_stopped_in_a_run_continues_it_from_its_checkpoint(
    tmp_path, monkeypatch
):
    """Slow tier: the smoke run stopped (Ctrl-C) at the end of the first
    run's first epoch, then run again: that run continues from its
    checkpoint (2 epochs in its history, `resumed` 1), and no checkpoint
    remains; about 10 s."""
    table4 = load_script()
    stop_once_after_an_epoch(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        table4.main(["--smoke", "--quiet", "--output", str(tmp_path)])
    held = list((tmp_path / "runs").glob("*.checkpoint.npz"))
    assert [p.name for p in held] == ["2x16-adam-seed0.checkpoint.npz"]
    assert table4.main(["--smoke", "--quiet", "--output", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "table4.json").read_text())
    first, second = results["runs"]
    assert first["resumed"] == 1 and "resumed" not in second
    assert len(first["history"]["loss"]) == 2 == len(second["history"]["loss"])
    assert not list((tmp_path / "runs").glob("*.checkpoint.npz"))
