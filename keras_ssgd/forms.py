"""The forms of S-SGD's step, and the points each one measures.

- `"full"`: the batch at `W + n` and at `W - n`, weights 1/2 (two passes);
- `"split"`: the first half of the batch at `W + n`, the second at
  `W - n`, each weighted by its share of the batch (one pass);
- `"pairs"`: the split form across workers, the whole batch at this
  worker's point (`+1` on even workers, `-1` on odd ones), weight 1; the
  engine's gradient average does the rest.

The split form's reduction rules, its BatchNorm and batch-of-one cases are
in the split guide (`docs/guides/split.md`).
"""

import keras
import numpy as np
from keras import ops

from keras_ssgd import backends
from keras_ssgd.points import Point

FORMS = ("full", "split", "pairs")


def check_split_batch(value):
    """`value` as a bool; a `TypeError` naming `split_batch` otherwise."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(
            "Argument `split_batch` must be a bool. Received: "
            f"split_batch={value!r} (of type {type(value).__name__})"
        )
    return bool(value)


def full_points(data, keep_second):
    """Full S-SGD: the batch at both points. Returns `(points, merge)`,
    `merge` turning the passes' predictions into those the compiled metrics
    see."""
    return [
        Point(data, 1.0, 0.5, True), Point(data, -1.0, 0.5, keep_second),
    ], list


def pair_points(data, pairs, keep_second):
    """The pair form: the whole batch at this worker's point of `pairs` (a
    `WorkerPairs`)."""
    pairs.check()
    sign = pairs.sign()
    # A Python float where each worker traces its own step, a traced +-1
    # where one step is traced for every device (which keeps every
    # device's statistics: the per-device step combines them,
    # `keras_ssgd.backends.jax_devices`).
    keep = not isinstance(sign, float) or sign > 0 or keep_second
    return [Point(data, sign, 1.0, keep)], list


def split_points(data, keep_second, refuse_one):
    """The split form: the first half of the batch at `W + n`, the second
    at `W - n`, each weighted by its share of the batch (the batch mean).

    Raises:
        ValueError: a batch of one with `refuse_one`.
    """
    x, y, sample_weight = data
    first, second, size_first, size_second, size = halves(
        x, y, sample_weight, refuse_one=refuse_one
    )
    total = size_first + size_second
    if isinstance(total, int):
        shares = size_first / total, size_second / total
    else:
        total = ops.cast(total, "float32")
        shares = (
            ops.cast(size_first, "float32") / total,
            ops.cast(size_second, "float32") / total,
        )

    def merge(predictions):
        # One prediction per example of the batch (a batch of one with an
        # unknown batch size measured its example twice: the first is
        # kept).
        return [keras.tree.map_structure(
            lambda a, b: ops.concatenate([a, b], axis=0)[:size],
            *predictions,
        )]

    return [
        Point(first, 1.0, shares[0], True),
        Point(second, -1.0, shares[1], keep_second),
    ], merge


def halves(x, y, sample_weight, refuse_one):
    """The two halves of a batch, and their sizes.

    Returns `(first, second, size_first, size_second, size)`: `first` and
    `second` are `(x, y, sample_weight)` triples sliced along the batch
    dimension, the first holding `ceil(size / 2)` examples. Sizes are
    Python ints where the batch size is known when tracing, else scalar
    tensors. A batch of one raises with `refuse_one` (the model's first
    split step) and is otherwise its own second half too: its example is
    measured at both points.
    """
    # From the targets if every input is None: the model's own call then
    # raises Keras's error for a required input.
    size = backends.batch_size(x, y, sample_weight)
    if isinstance(size, (int, np.integer)):
        size = int(size)
        if size < 2 and refuse_one:
            raise ValueError(
                "Argument `split_batch=True` needs batches of 2 examples or "
                "more: the first half of a batch is measured at W + n and "
                "the second at W - n, and one half of a batch of one would "
                "be empty. Use a batch size >= 2, or `split_batch=False` "
                "(full S-SGD). Received: split_batch=True with a batch of "
                f"{size} example(s) (batch size {size})"
            )
        size_first = (size + 1) // 2
        size_second = max(size - size_first, 1)
    else:
        size_first = (size + 1) // 2
        size_second = ops.maximum(size - size_first, 1)
    start_second = size - size_second

    def cut(start, stop):
        return keras.tree.map_structure(
            lambda t: backends.rows(t, start, size if stop is None else stop),
            (x, y, sample_weight),
        )

    return (
        cut(0, size_first), cut(start_second, None),
        size_first, size_second, size,
    )
