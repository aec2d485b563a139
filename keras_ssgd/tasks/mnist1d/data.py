"""MNIST-1D, generated offline by the `mnist1d` package."""

import functools

from keras_ssgd.data.pipeline import Data
from keras_ssgd.data.pipeline import batches


def load_mnist1d(batch_size=100, seed=None, data_seed=42, drop_remainder=False):
    """The standard MNIST-1D split: 4000 training and 1000 test signals.

    The signals are generated locally (no download) by
    `mnist1d.data.make_dataset` with the package's default arguments, whose
    seed is 42. Inputs have shape `(40, 1)`.

    Args:
        batch_size: int > 0. Defaults to `100`.
        seed: int or None. Seed of the per-epoch shuffling.
        data_seed: int. Seed of the generated signals. Defaults to `42`,
            the standard split.
        drop_remainder: bool. Drop the last, smaller training batch (for
            sharding global batches across workers). Defaults to `False`.

    Returns:
        A `keras_ssgd.data.Data`.

    Example:

    >>> data = load_mnist1d(batch_size=100, seed=0)
    >>> data.train_size, data.input_shape, data.num_classes
    (4000, (40, 1), 10)

    Reference:
    - [Greydanus & Kobak, Scaling Down Deep Learning with MNIST-1D](
      https://arxiv.org/abs/2011.14439)
    """
    x, y, x_test, y_test = _generate(data_seed)
    return Data(
        train=batches(
            x, y, batch_size, seed=seed, drop_remainder=drop_remainder
        ),
        test=batches(x_test, y_test, batch_size, shuffle=False),
        train_eval=batches(x, y, batch_size, shuffle=False),
        train_size=len(x),
        input_shape=tuple(x.shape[1:]),
        num_classes=int(y.max()) + 1,
    )


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
