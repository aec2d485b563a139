"""Datasets by name, as `tf.data` pipelines ready for `fit()`.

Example:

```python
data = keras_ssgd.data.load("mnist1d", batch_size=100, seed=0)
model.fit(data.train, epochs=60, validation_data=data.test)
```
"""

import functools

from keras_ssgd.data.cifar import load_cifar
from keras_ssgd.data.imagenet import load_imagenet
from keras_ssgd.data.mnist1d import load_mnist1d
from keras_ssgd.data.pipeline import Data
from keras_ssgd.data.pipeline import batches
from keras_ssgd.data.ptb import load_ptb

DATASETS = {
    "mnist1d": load_mnist1d,
    "cifar10": functools.partial(load_cifar, "cifar10"),
    "cifar100": functools.partial(load_cifar, "cifar100"),
    "imagenet2012": load_imagenet,
}


def load(name, **kwargs):
    """Loads a registered dataset or the user's data; `kwargs` go to its
    loader.

    `name` is a registered dataset (`DATASETS`), or the user's data (see
    `keras_ssgd.data.arrays`): `path/to/data.npz`,
    `package.module:function` or `tfds:NAME` (these take `batch_size`,
    `seed`, `drop_remainder`, `data_dir` and `validation_split`).

    Raises:
        ValueError: `name` is neither (`arrays.DataError`, a `ValueError`,
            when the user's data cannot be used).
    """
    from keras_ssgd.data import arrays

    if name in DATASETS:
        return DATASETS[name](**kwargs)
    if arrays.is_source(name):
        return arrays.load(name, **kwargs)
    raise ValueError(
        f"Argument `name` must be one of {sorted(DATASETS)}, a path to a "
        ".npz, package.module:function or tfds:NAME. "
        f"Received: name={name!r}"
    )


__all__ = [
    "DATASETS", "Data", "batches", "load", "load_cifar", "load_imagenet", "load_mnist1d", "load_ptb",
]
