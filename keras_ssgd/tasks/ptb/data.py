"""Penn Treebank word-level language modelling data (Mikolov's files)."""

import collections
import pathlib

import numpy as np
import tensorflow as tf

from keras_ssgd.validation import check_positive_int

FILES = {"train": "ptb.train.txt", "valid": "ptb.valid.txt", "test": "ptb.test.txt"}


def read_words(path):
    """The words of a PTB file, with `<eos>` at the end of every line."""
    text = pathlib.Path(path).read_text(encoding="utf-8")
    return [w for line in text.splitlines() for w in (*line.split(), "<eos>")]


def build_vocabulary(words):
    """Word -> id, most frequent first (ties alphabetical), as Zaremba et
    al.'s reader does; the standard files already map rare words to
    `<unk>`, giving 10,000 entries."""
    counts = collections.Counter(words)
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return {word: i for i, (word, _) in enumerate(ordered)}


def batchify(ids, batch_size, steps):
    """Zaremba et al.'s layout for truncated backpropagation through time.

    The id stream is cut into `batch_size` contiguous rows; window `i`
    holds columns `[i * steps, (i + 1) * steps)` of every row as inputs and
    the same shifted by one as targets. Consecutive windows continue each
    row, so a stateful RNN carries its state from one window to the next.

    Returns:
        `(x, y)`, int32 arrays of shape `(windows, batch_size, steps)`.
    """
    ids = np.asarray(ids, np.int32)
    length = (len(ids) - 1) // batch_size
    if length < steps:
        raise ValueError(
            f"Too little data for batch_size={batch_size} and steps={steps}: "
            f"{len(ids)} tokens give rows of {length}."
        )
    rows = ids[: batch_size * length + 1]
    x = rows[:-1].reshape(batch_size, length)
    y = rows[1:].reshape(batch_size, length)
    windows = length // steps
    x = x[:, : windows * steps].reshape(batch_size, windows, steps)
    y = y[:, : windows * steps].reshape(batch_size, windows, steps)
    return x.transpose(1, 0, 2), y.transpose(1, 0, 2)


def ptb_ids(data_dir):
    """The word ids of the three PTB splits, and the vocabulary.

    Args:
        data_dir: folder holding `ptb.train.txt`, `ptb.valid.txt` and
            `ptb.test.txt`.

    Returns:
        `(ids, vocabulary)`: `ids` maps `train`, `valid` and `test` to int32
        arrays of word ids (one stream per split, `<eos>` ending each line);
        `vocabulary` maps word -> id, built from the training split. Words
        of the other splits that it lacks become `<unk>`.

    Raises:
        FileNotFoundError: a file is missing (the message names it).
        ValueError: a word is out of vocabulary and there is no `<unk>`.

    Example:

    <!-- example: skip needs Mikolov's PTB files in `simple-examples/data`. -->

    >>> ids, vocabulary = ptb_ids("simple-examples/data")
    """
    folder = pathlib.Path(data_dir)
    missing = [name for name in FILES.values() if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"Argument `data_dir` must hold {', '.join(FILES.values())}. "
            f"Received: data_dir={str(data_dir)!r}, missing: {', '.join(missing)}"
        )
    words = {split: read_words(folder / name) for split, name in FILES.items()}
    vocabulary = build_vocabulary(words["train"])
    unknown = vocabulary.get("<unk>")
    ids = {}
    for split, split_words in words.items():
        out = []
        for word in split_words:
            if word in vocabulary:
                out.append(vocabulary[word])
            elif unknown is not None:
                out.append(unknown)
            else:
                raise ValueError(
                    f"Word {word!r} of {FILES[split]} is not in the training "
                    "vocabulary and there is no <unk> token."
                )
        ids[split] = np.asarray(out, np.int32)
    return ids, vocabulary


def windows(ids, batch_size, steps):
    """`batchify(ids, batch_size, steps)` as a `tf.data.Dataset` of
    `(x, y)` windows in order (for a stateful model of that batch size)."""
    return tf.data.Dataset.from_tensor_slices(batchify(ids, batch_size, steps))


def load_ptb(data_dir, batch_size=20, steps=35):
    """PTB from the standard `ptb.{train,valid,test}.txt` files in `data_dir`.

    Args:
        data_dir: folder holding the three files (for example the `data/`
            folder of Mikolov's `simple-examples.tgz`).
        batch_size: int > 0, rows per batch. Defaults to `20`.
        steps: int > 0, unrolled time steps per window. Defaults to `35`.

    Returns:
        A dict with `train`, `valid` and `test` (`tf.data.Dataset`s of
        `(x, y)` windows in order, for a stateful model with this
        `batch_size`), `vocabulary` (word -> id) and `vocab_size`.

    Example:

    <!-- example: skip needs Mikolov's PTB files in `simple-examples/data`. -->

    >>> ptb = load_ptb("simple-examples/data", batch_size=20, steps=35)

    Reference:
    - Marcus et al. 1993; Mikolov et al. 2010; Zaremba, Sutskever and
      Vinyals, "Recurrent Neural Network Regularization", 2014.
    """
    check_positive_int(batch_size, "batch_size")
    check_positive_int(steps, "steps")
    ids, vocabulary = ptb_ids(data_dir)
    result = {"vocabulary": vocabulary, "vocab_size": len(vocabulary)}
    for split, split_ids in ids.items():
        result[split] = windows(split_ids, batch_size, steps)
    return result
