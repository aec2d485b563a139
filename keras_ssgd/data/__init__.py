"""Datasets by name, ready for `fit()`.

MNIST-1D and the user's arrays come as NumPy batches (`Batches`, any
backend, no TensorFlow); CIFAR and ImageNet as `tf.data` pipelines (they
need TensorFlow and tensorflow-datasets, imported on first use).

Example:

```python
data = keras_ssgd.data.load("mnist1d", batch_size=100, seed=0)
model.fit(data.train, epochs=60, validation_data=data.test)
```
"""

import importlib

from keras_ssgd.data.mnist1d import load_mnist1d
from keras_ssgd.data.pipeline import Batches
from keras_ssgd.data.pipeline import Data
from keras_ssgd.data.pipeline import batches

# Loaders that import TensorFlow, loaded on first use.
_LAZY = {
    "load_cifar": "keras_ssgd.data.cifar",
    "load_imagenet": "keras_ssgd.data.imagenet",
    "load_ptb": "keras_ssgd.data.ptb",
}

# The registered datasets that need TensorFlow (and tensorflow-datasets).
TENSORFLOW_DATASETS = ("cifar10", "cifar100", "imagenet2012")


def _cifar(name):
    def load_named(**kwargs):
        return __getattr__("load_cifar")(name, **kwargs)

    return load_named


def _load_imagenet(**kwargs):
    return __getattr__("load_imagenet")(**kwargs)


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(
        f"module 'keras_ssgd.data' has no attribute {name!r}"
    )


DATASETS = {
    "mnist1d": load_mnist1d,
    "cifar10": _cifar("cifar10"),
    "cifar100": _cifar("cifar100"),
    "imagenet2012": _load_imagenet,
}


def require_tensorflow(name):
    """Raises `arrays.DataError` naming `name` if the dataset `name` needs
    TensorFlow and it cannot be imported (Keras on JAX or PyTorch without
    TensorFlow installed)."""
    from keras_ssgd.data import arrays

    if name not in TENSORFLOW_DATASETS:
        return
    try:
        import tensorflow  # noqa: F401
        import tensorflow_datasets  # noqa: F401
    except ImportError as error:
        raise arrays.DataError(
            f"--dataset {name} needs TensorFlow and tensorflow-datasets "
            f"(its pipeline is tf.data): {error}. Install them (pip install "
            "tensorflow tensorflow-datasets), or use mnist1d, a .npz or a "
            "package.module:function, which run on every backend. "
            f"Received: --dataset {name}"
        ) from None


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
        require_tensorflow(name)
        return DATASETS[name](**kwargs)
    if arrays.is_source(name):
        return arrays.load(name, **kwargs)
    raise ValueError(
        f"Argument `name` must be one of {sorted(DATASETS)}, a path to a "
        ".npz, package.module:function or tfds:NAME. "
        f"Received: name={name!r}"
    )


__all__ = [
    "DATASETS", "Batches", "Data", "TENSORFLOW_DATASETS", "batches", "load", "load_cifar", "load_imagenet", "load_mnist1d", "load_ptb",
]
