"""The language-model loss and perplexity (exp of the mean token
cross-entropy)."""

import math

import keras
from keras import ops

from keras_ssgd.tasks.ptb.callbacks import reset_states


@keras.saving.register_keras_serializable(package="keras_ssgd")
def sequence_cross_entropy(y_true, logits):
    """Cross-entropy summed over the time steps of each sequence.

    Keras averages what this returns over the batch: the loss is Zaremba et
    al.'s, whose learning rate of 1 and norm clipping were tuned for a loss
    summed over the 35 unrolled steps (35 times the mean token loss).

    Args:
        y_true: int tensor `(batch, steps)`, the next words.
        logits: float tensor `(batch, steps, vocab)`.

    Returns:
        A `(batch,)` tensor.
    """
    token = keras.losses.sparse_categorical_crossentropy(
        y_true, logits, from_logits=True
    )
    return ops.sum(token, axis=-1)


def token_cross_entropy(name="cross_entropy"):
    """The mean cross-entropy per word, as a Keras metric (its exp is the
    perplexity)."""
    return keras.metrics.SparseCategoricalCrossentropy(
        name=name, from_logits=True
    )


def perplexity(model, windows):
    """Perplexity of `model` on `windows`, read in order from zero states.

    Args:
        model: a stateful language model compiled with a
            `token_cross_entropy()` metric named `cross_entropy`, whose
            batch size is the windows'.
        windows: a `tf.data.Dataset` of `(x, y)` windows in order (see
            `keras_ssgd.tasks.ptb.data.windows`).

    Returns:
        `exp(mean cross-entropy per word)`, a float (inf if it overflows).

    Example:

    <!-- example: skip needs a trained PTB model and the PTB files (`ids`). -->

    >>> perplexity(model, keras_ssgd.tasks.ptb.data.windows(ids["test"], 1, 35))
    """
    reset_states(model)
    results = model.evaluate(windows, verbose=0, return_dict=True)
    reset_states(model)
    if "cross_entropy" not in results:
        raise ValueError(
            "Argument `model` must be compiled with the metric "
            "`token_cross_entropy()` (named 'cross_entropy'). Received a model "
            f"reporting {sorted(results)}"
        )
    return from_cross_entropy(results["cross_entropy"])


def from_cross_entropy(value):
    """`exp(value)`, inf on overflow, None for None or NaN."""
    if value is None or math.isnan(value):
        return None
    try:
        return math.exp(value)
    except OverflowError:
        return math.inf
