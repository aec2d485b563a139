"""PTB loader on small generated files, and the Zaremba LSTM builders."""

import numpy as np
import pytest

from keras_ssgd import models
from keras_ssgd.tasks.ptb import data as ptb


@pytest.fixture
def ptb_dir(tmp_path):
    rng = np.random.default_rng(0)
    words = ["the", "a", "cat", "dog", "<unk>", "sat", "ran"]
    for name, lines in (("train", 60), ("valid", 12), ("test", 12)):
        text = "\n".join(
            " ".join(rng.choice(words, size=rng.integers(3, 9))) for _ in range(lines)
        )
        if name == "valid":
            text += "\nthe zebra sat"  # out of vocabulary: becomes <unk>
        (tmp_path / f"ptb.{name}.txt").write_text(text + "\n")
    return tmp_path


def test_loader_builds_vocabulary_eos_and_stateful_windows(ptb_dir):
    data = ptb.load_ptb(ptb_dir, batch_size=4, steps=5)
    vocab = data["vocabulary"]
    assert "<eos>" in vocab and "<unk>" in vocab and data["vocab_size"] == len(vocab) == 8
    ids = [vocab[w] for w in ptb.read_words(ptb_dir / "ptb.train.txt")]
    windows = list(data["train"].as_numpy_iterator())
    x0, y0 = windows[0]
    x1, _ = windows[1]
    assert x0.shape == y0.shape == (4, 5)
    rows = (len(ids) - 1) // 4
    for r in range(4):  # each row is a contiguous piece of the stream
        np.testing.assert_array_equal(x0[r], ids[r * rows: r * rows + 5])
        np.testing.assert_array_equal(y0[r], ids[r * rows + 1: r * rows + 6])
        np.testing.assert_array_equal(x1[r], ids[r * rows + 5: r * rows + 10])
    valid_ids = np.concatenate([x.ravel() for x, _ in data["valid"].as_numpy_iterator()])
    assert vocab["<unk>"] in valid_ids


def test_missing_files_and_too_little_data_are_clear_errors(ptb_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="missing: ptb.train.txt"):
        ptb.load_ptb(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="Too little data"):
        ptb.load_ptb(ptb_dir, batch_size=4, steps=10_000)


@pytest.mark.parametrize("size, params", [("small", 6.73e6), ("medium", 19.8e6), ("large", 66.0e6)])
def test_zaremba_sizes(size, params):
    model = models.ptb_lstm(size, batch_size=2, steps=3)
    assert model.count_params() == pytest.approx(params, rel=0.02)
    assert model.output_shape == (2, 3, 10000)


def test_small_model_runs_statefully(ptb_dir):
    data = ptb.load_ptb(ptb_dir, batch_size=4, steps=5)
    model = models.ptb_lstm("small", vocab_size=data["vocab_size"], batch_size=4, steps=5)
    x, _ = next(data["train"].as_numpy_iterator())
    first = model.predict_on_batch(x)
    second = model.predict_on_batch(x)  # the state carried over
    assert not np.allclose(first, second)
    with pytest.raises(ValueError, match="`size` must be one of"):
        models.ptb_lstm("huge")


def test_ids_and_windows_match_the_loader(ptb_dir):
    ids, vocab = ptb.ptb_ids(ptb_dir)
    assert set(ids) == {"train", "valid", "test"} and ids["train"].dtype == np.int32
    data = ptb.load_ptb(ptb_dir, batch_size=4, steps=5)
    assert vocab == data["vocabulary"]
    for split in ids:
        got = list(ptb.windows(ids[split], 4, 5).as_numpy_iterator())
        expected = list(data[split].as_numpy_iterator())
        assert len(got) == len(expected)
        for (gx, gy), (ex, ey) in zip(got, expected):
            np.testing.assert_array_equal(gx, ex)
            np.testing.assert_array_equal(gy, ey)
    # batch 1 reads the split as one stream, in order
    (x0, y0), (x1, _) = list(ptb.windows(ids["test"], 1, 5).as_numpy_iterator())[:2]
    np.testing.assert_array_equal(np.concatenate([x0[0], x1[0]]), ids["test"][:10])
    np.testing.assert_array_equal(y0[0], ids["test"][1:6])


def test_builder_overrides():
    model = models.ptb_lstm("large", vocab_size=50, batch_size=2, steps=3, num_layers=3,
                           units=8, init_scale=0.01, dropout=0.1)
    assert [layer.name for layer in model.layers if "lstm" in layer.name] == [
        "lstm1", "lstm2", "lstm3"]
    assert model.get_layer("lstm1").units == 8
    assert model.get_layer("dropout1").rate == 0.1
    assert max(np.abs(w).max() for w in model.get_weights()) <= 0.01
    with pytest.raises(ValueError, match="`init_scale` must be > 0"):
        models.ptb_lstm("small", init_scale=0)
    with pytest.raises(ValueError, match="`units` must be an int > 0"):
        models.ptb_lstm("small", units=0)
    with pytest.raises(ValueError, match="`dropout` must be in"):
        models.ptb_lstm("small", dropout=1.5)
