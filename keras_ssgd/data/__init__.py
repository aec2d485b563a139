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
    """Loads a registered dataset; `kwargs` go to its loader.

    Raises:
        ValueError: `name` is not a registered dataset.
    """
    if name not in DATASETS:
        raise ValueError(
            f"Argument `name` must be one of {sorted(DATASETS)}. "
            f"Received: name={name!r}"
        )
    return DATASETS[name](**kwargs)


__all__ = [
    "DATASETS", "Data", "batches", "load", "load_cifar", "load_imagenet", "load_mnist1d", "load_ptb",
]
