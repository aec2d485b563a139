"""MNIST-1D, generated offline by the `mnist1d` package."""

import functools

import numpy as np

from keras_ssgd.data.held_out import HeldOutData
from keras_ssgd.data.pipeline import batches

# The validation signals held out of the 4000 training signals.
VALIDATION_SIZE = 500


def load_mnist1d(batch_size=100, seed=None, data_seed=42, drop_remainder=False,
                 validation_size=VALIDATION_SIZE):
    """The standard MNIST-1D split, with a validation set held out of its
    training signals: 3500 training, 500 validation and 1000 test signals.

    The signals are generated locally (no download) by
    `mnist1d.data.make_dataset` with the package's default arguments, whose
    seed is 42. Inputs have shape `(40, 1)`. The validation signals are a
    fixed draw of `validation_size` of the 4000 training signals,
    `np.random.default_rng(data_seed).permutation(4000)[:validation_size]`:
    the same for every run seed and every method, so a configuration is
    chosen on them and the test set is read only to report.

    Args:
        batch_size: int > 0. Defaults to `100`.
        seed: int or None. Seed of the per-epoch shuffling.
        data_seed: int. Seed of the generated signals. Defaults to `42`,
            the standard split.
        drop_remainder: bool. Drop the last, smaller training batch (for
            sharding global batches across workers). Defaults to `False`.
        validation_size: int in [0, 4000). Training signals held out as
            the validation set. Defaults to `500`; `0` trains on all 4000
            (`validation` is then `None`).

    Returns:
        A `keras_ssgd.data.held_out.HeldOutData` (`validation`: the
        validation batches in order).

    Example:

    >>> data = load_mnist1d(batch_size=100, seed=0)
    >>> data.train_size, data.input_shape, data.num_classes
    (3500, (40, 1), 10)

    Reference:
    - [Greydanus & Kobak, Scaling Down Deep Learning with MNIST-1D](
      https://arxiv.org/abs/2011.14439)
    """
    x, y, x_test, y_test = _generate(data_seed)
    if isinstance(validation_size, bool) or not isinstance(
        validation_size, (int, np.integer)
    ) or not 0 <= validation_size < len(x):
        raise ValueError(
            f"Argument `validation_size` must be an int in [0, {len(x)}). "
            f"Received: validation_size={validation_size!r}"
        )
    held = np.zeros(len(x), dtype=bool)
    held[validation_indices(len(x), validation_size, data_seed)] = True
    x_val, y_val = x[held], y[held]
    x, y = x[~held], y[~held]
    return HeldOutData(
        train=batches(
            x, y, batch_size, seed=seed, drop_remainder=drop_remainder
        ),
        test=batches(x_test, y_test, batch_size, shuffle=False),
        train_eval=batches(x, y, batch_size, shuffle=False),
        train_size=len(x),
        input_shape=tuple(x.shape[1:]),
        num_classes=int(y.max()) + 1,
        validation=(batches(x_val, y_val, batch_size, shuffle=False)
                    if validation_size else None),
    )


def validation_indices(n, size=VALIDATION_SIZE, data_seed=42):
    """The indices (sorted) of the `size` training signals of `n` held out
    for validation: a draw from `data_seed`, independent of the run seed."""
    return np.sort(np.random.default_rng(data_seed).permutation(n)[:size])


@functools.lru_cache(maxsize=4)
def _generate(data_seed):
    from mnist1d.data import get_dataset_args
    from mnist1d.data import make_dataset

    args = get_dataset_args()
    args.seed = data_seed
    raw = make_dataset(args)
    x, x_test = (raw[k][..., None].astype("float32") for k in ("x", "x_test"))
    y, y_test = (raw[k].astype("int32") for k in ("y", "y_test"))
    return x, y, x_test, y_test
