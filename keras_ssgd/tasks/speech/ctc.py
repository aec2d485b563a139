"""CTC speech recognition pieces: characters, loss, greedy decoding, WER.

Transcripts are written with `ALPHABET`: id 0 is the CTC blank (the
`mask_index` that `keras.losses.CTC` and `keras.ops.ctc_decode` assume) and
ids 1..28 are `' '`, `"'"` and `a`-`z`. Text is lower-cased and every other
character is dropped (`normalize_text`); label sequences are padded with 0,
which `keras.losses.CTC` reads as "no label".

Example:

```python
labels = encode_text(["hello world"])            # (1, 11) int32, 0-padded
assert decode_ids(labels[0]) == "hello world"

# With a model giving per-frame logits over ALPHABET (e.g. `sgcn`):
#   model.compile(optimizer="adam", loss=ctc_loss())
#   texts = greedy_decode(model.predict(features), lengths)
assert word_error_rate(["hello world"], ["hello word"]) == 0.5
```

Reference:
- Graves et al., "Connectionist Temporal Classification: Labelling
  Unsegmented Sequence Data with Recurrent Neural Networks", ICML 2006.
"""

import re

import keras
import numpy as np
import tensorflow as tf

BLANK = 0
ALPHABET = ("<blank>", " ", "'") + tuple("abcdefghijklmnopqrstuvwxyz")
NUM_CLASSES = len(ALPHABET)  # 29: the blank and 28 characters
_IDS = {c: i for i, c in enumerate(ALPHABET) if i != BLANK}
_DROPPED = re.compile(r"[^a-z' ]")


def normalize_text(text):
    """Lower-cases `text`, drops characters outside `ALPHABET` and collapses
    runs of spaces (so words are what `str.split` gives)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    return " ".join(_DROPPED.sub("", text.lower()).split())


def encode_text(texts):
    """Label ids of `texts` (a str or a list of str), 0-padded to the longest.

    Returns:
        An int32 array of shape `(len(texts), max_length)` (or `(length,)`
        for a single str).
    """
    if isinstance(texts, (str, bytes)):
        return np.asarray([_IDS[c] for c in normalize_text(texts)], np.int32)
    rows = [encode_text(t) for t in texts]
    out = np.zeros((len(rows), max([len(r) for r in rows], default=0)), np.int32)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def decode_ids(ids):
    """The text of one label sequence; ids <= 0 (blank, -1 padding) are
    skipped."""
    return "".join(ALPHABET[int(i)] for i in np.asarray(ids).ravel() if i > 0)


def ctc_loss():
    """The CTC loss for `compile`: `keras.losses.CTC` (blank id 0).

    It reads every time step of `y_pred` as real. `keras_ssgd.tasks.speech.sgcn`
    therefore makes the padded frames of a batch emit the blank with
    probability ~1, which leaves the loss of each utterance unchanged.
    """
    return keras.losses.CTC()


def greedy_decode(logits, lengths):
    """Greedy (best path) CTC decoding with `keras.ops.ctc_decode`.

    Args:
        logits: array `(batch, time, NUM_CLASSES)`, unnormalised.
        lengths: int array `(batch,)`, the valid frames of each row.

    Returns:
        A list of `batch` strings.
    """
    decoded, _ = keras.ops.ctc_decode(
        logits, lengths, strategy="greedy", mask_index=BLANK
    )
    return [decode_ids(row) for row in keras.ops.convert_to_numpy(decoded[0])]


def _edit_counts(references, hypotheses, split):
    references = [normalize_text(t) for t in references]
    hypotheses = [normalize_text(t) for t in hypotheses]
    if len(references) != len(hypotheses):
        raise ValueError(
            "Arguments `references` and `hypotheses` must have the same "
            f"length. Received: {len(references)} and {len(hypotheses)}"
        )
    truth = split(tf.constant(references, tf.string))
    hypothesis = split(tf.constant(hypotheses, tf.string))
    errors = tf.edit_distance(
        hypothesis.to_sparse(), truth.to_sparse(), normalize=False
    )
    return float(tf.reduce_sum(errors)), int(tf.reduce_sum(truth.row_lengths()))


def _rate(references, hypotheses, split, unit):
    if len(references) == 0:
        raise ValueError("Argument `references` must not be empty. Received: []")
    errors, total = _edit_counts(references, hypotheses, split)
    if total == 0:
        raise ValueError(
            f"Argument `references` must hold at least one {unit}. "
            f"Received: references={list(references)!r}"
        )
    return errors / total


def word_error_rate(references, hypotheses):
    """Corpus word error rate: word-level Levenshtein distance summed over
    utterances (`tf.edit_distance`), divided by the number of reference
    words. Text is normalised with `normalize_text` first.

    Args:
        references: list of str, the true transcripts.
        hypotheses: list of str, the recognised ones (same length).

    Returns:
        A float (0.25 for one substituted word out of four; it can exceed
        1 with many insertions).

    Example:

    >>> word_error_rate(["the cat sat down"], ["the cat sat up"])
    0.25
    """
    return _rate(references, hypotheses, tf.strings.split, "word")


def character_error_rate(references, hypotheses):
    """Corpus character error rate (spaces count as characters), as
    `word_error_rate` with characters for words."""
    return _rate(
        references, hypotheses,
        lambda t: tf.strings.unicode_split(t, "UTF-8"), "character",
    )


def evaluate(model, dataset):
    """Greedy-decoding WER and CER of `model` over a dataset of
    `({"features", "lengths"}, labels)` batches (`keras_ssgd.tasks.speech.data`).

    Returns:
        `{"wer": float, "cer": float, "utterances": int}`.

    Example:

    <!-- example: skip needs a trained speech model and a speech dataset. -->

    >>> evaluate(model, data.test)["wer"]
    """
    references, hypotheses = [], []
    for inputs, labels in dataset:
        logits = model(inputs, training=False)
        hypotheses += greedy_decode(logits, inputs["lengths"])
        references += [decode_ids(row) for row in keras.ops.convert_to_numpy(labels)]
    return {
        "wer": word_error_rate(references, hypotheses),
        "cer": character_error_rate(references, hypotheses),
        "utterances": len(references),
    }


class GreedyWER(keras.callbacks.Callback):
    """Adds the greedy-decoding `val_wer` and `val_cer` of `dataset` to the
    logs at the end of every `every`-th epoch (and the last one).

    Args:
        dataset: `tf.data.Dataset` of `({"features", "lengths"}, labels)`.
        every: int. Evaluate every `every` epochs. Defaults to `1`.
        epochs: int or None. The last epoch, always evaluated.

    Example:

    <!-- example: skip needs a speech dataset and 50 epochs of training. -->

    >>> model.fit(data.train, epochs=50, callbacks=[GreedyWER(data.test)])
    """

    def __init__(self, dataset, every=1, epochs=None):
        super().__init__()
        self.dataset = dataset
        self.every = every
        self.epochs = epochs

    def on_epoch_end(self, epoch, logs=None):
        last = self.epochs is not None and epoch + 1 == self.epochs
        if logs is None or not ((epoch + 1) % self.every == 0 or last):
            return
        result = evaluate(self.model, self.dataset)
        logs["val_wer"] = result["wer"]
        logs["val_cer"] = result["cer"]
