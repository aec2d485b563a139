"""Batching with a data order that changes every epoch, on every backend.

`batches` gives a `Batches`: a `keras.utils.PyDataset` of NumPy `(x, y)`
batches. Its training order for epoch `e` is
`np.random.default_rng([seed, e]).permutation(n)`, a function of the seed
and the epoch alone, so the same seed gives the same sequence of batches
under TensorFlow, JAX and PyTorch. No TensorFlow is imported, except by
`Batches.as_tf_dataset` (for the engines that need a `tf.data.Dataset`).
"""

import dataclasses
import math

import keras
import numpy as np

from keras_ssgd.validation import check_positive_int

# The name of the training order `batches` draws, stored in the recipe of
# `ssgd-train` runs (`runner.Config.data_order`): runs made with another
# order (tf.data's `shuffle`, before this) do not combine with these.
DATA_ORDER = "numpy-permutation-per-epoch"


@dataclasses.dataclass(frozen=True)
class Data:
    """A dataset ready for `fit()`.

    Args:
        train: training batches, reshuffled each epoch (and augmented,
            where the dataset is): a `Batches` (MNIST-1D, the user's
            arrays) or a `tf.data.Dataset` (CIFAR, ImageNet).
        test: test batches, in order (same kind as `train`).
        train_eval: the training set in order, without augmentation: for
            the training loss of the final weights.
        train_size: int, number of training examples.
        input_shape: tuple, shape of one example.
        num_classes: int.
    """

    train: object
    test: object
    train_eval: object
    train_size: int
    input_shape: tuple
    num_classes: int

    @property
    def steps_per_epoch(self):
        if hasattr(self.train, "cardinality"):  # tf.data
            return int(self.train.cardinality())
        return len(self.train)


class Batches(keras.utils.PyDataset):
    """`(x, y)` NumPy batches in an order drawn again every epoch.

    With `shuffle`, epoch `e` (counted from 0) visits the examples in the
    order `np.random.default_rng([seed, e]).permutation(len(x))` (seed
    `None` counts as 0), in batches of `batch_size`. The epoch advances
    with each iteration (`for x, y in batches`), and when Keras starts an
    epoch (`on_epoch_begin`) after the previous one was served to its last
    batch. Without `shuffle` the order is the arrays' own.
    (With one batch per epoch, the pass JAX and PyTorch make for the
    model's symbolic build serves the whole epoch, so there the orders
    come one epoch later than under TensorFlow.)

    Keras runs it on every backend (TensorFlow through
    `tf.data.Dataset.from_generator`); `as_tf_dataset` gives the same
    batches as a `tf.data.Dataset` for engines that need one (Horovod's
    and MultiWorkerMirroredStrategy's sharding).
    """

    def __init__(self, x, y, batch_size, seed=None, shuffle=True,
                 drop_remainder=False):
        super().__init__()
        self.x = x
        self.y = y
        self.batch_size = batch_size
        self.seed = 0 if seed is None else int(seed)
        self.shuffle = shuffle
        self.drop_remainder = drop_remainder
        self.epoch = -1  # before the first epoch
        self._order = None
        self._finished = False

    def __len__(self):
        if self.drop_remainder:
            return len(self.x) // self.batch_size
        return math.ceil(len(self.x) / self.batch_size)

    def order(self, epoch):
        """The example indices of `epoch` (0-based), in training order."""
        if not self.shuffle:
            return np.arange(len(self.x))
        return np.random.default_rng([self.seed, epoch]).permutation(
            len(self.x)
        )

    def start_at(self, epoch):
        """Makes `epoch` (0-based) the next epoch Keras starts: for a run
        that continues from a checkpoint (`fit(..., initial_epoch=epoch)`)
        with the order it would have had."""
        self.epoch = epoch - 1
        self._order = None
        self._finished = True

    def rest_of(self, epoch, start):
        """The batches `start`, `start + 1`, ... of epoch `epoch` (0-based),
        in its order, as a `PyDataset` of their own: for a run that
        continues from a checkpoint written within an epoch. It leaves
        this object's epochs as they are."""
        return _Rest(self, epoch, start)

    def rows(self, order, index):
        """Batch `index` of an epoch of order `order` (`self.order(e)`)."""
        rows = order[index * self.batch_size:(index + 1) * self.batch_size]
        return self.x[rows], self.y[rows]

    def on_epoch_begin(self):
        # The next epoch starts once the current one has been served to
        # its last batch: a pass Keras starts and drops after one batch
        # (the model's symbolic build, on some backends) does not count,
        # nor do the batches TensorFlow reads before the first epoch for
        # their shapes.
        if self.epoch < 0 or self._finished:
            self.epoch += 1
            self._order = None
        self._finished = False

    def __getitem__(self, index):
        if not 0 <= index < len(self):
            raise IndexError(
                f"Batch index {index} out of range for {len(self)} batches"
            )
        if self._order is None:
            self._order = self.order(max(self.epoch, 0))
        if index == len(self) - 1:
            self._finished = True
        return self.rows(self._order, index)

    def __iter__(self):
        # Each iteration is the next epoch, however far the last one went.
        self._finished = True
        self.on_epoch_begin()
        for index in range(len(self)):
            yield self[index]

    def as_tf_dataset(self):
        """The same batches as a `tf.data.Dataset`: each iteration of it is
        the next epoch (in this object's order)."""
        import tensorflow as tf

        rows = self.batch_size if self.drop_remainder else None
        signature = tuple(
            tf.TensorSpec((rows, *a.shape[1:]), tf.as_dtype(a.dtype))
            for a in (self.x, self.y)
        )
        return tf.data.Dataset.from_generator(
            lambda: iter(self), output_signature=signature
        ).prefetch(2)


class _Rest(keras.utils.PyDataset):
    """The batches `start`, `start + 1`, ... of one epoch of a `Batches`
    (`Batches.rest_of`)."""

    def __init__(self, batches, epoch, start):
        super().__init__()
        if not 0 <= start < len(batches):
            raise ValueError(
                f"Argument `start` must be a batch of the epoch, from 0 to "
                f"{len(batches) - 1}. Received: start={start}"
            )
        self.batches = batches
        self.start = start
        self.order = batches.order(epoch)

    def __len__(self):
        return len(self.batches) - self.start

    def __getitem__(self, index):
        if not 0 <= index < len(self):
            raise IndexError(
                f"Batch index {index} out of range for {len(self)} batches"
            )
        return self.batches.rows(self.order, self.start + index)


def batches(x, y, batch_size, seed=None, shuffle=True, drop_remainder=False):
    """`Batches` of `(x, y)`: NumPy batches for `fit()` on any backend.

    With `shuffle`, the order of epoch `e` is
    `np.random.default_rng([seed, e]).permutation(len(x))`: the same
    sequence of orders for every run with that seed, on every backend, and
    a new order each epoch.

    Args:
        x: array of inputs.
        y: array of labels.
        batch_size: int > 0.
        seed: int or None (0). Seed of the shuffling.
        shuffle: bool. Defaults to `True`.
        drop_remainder: bool. Drop a last, smaller batch. Defaults to `False`.

    Example:

    >>> x_train, y_train = np.arange(10.0).reshape(5, 2), np.arange(5)
    >>> train = batches(x_train, y_train, batch_size=2, seed=0)
    >>> len(train)  # batches per epoch, the last one smaller
    3
    >>> epoch_0 = np.concatenate([y for _, y in train])
    >>> epoch_1 = np.concatenate([y for _, y in train])
    >>> np.array_equal(epoch_0, np.random.default_rng([0, 0]).permutation(5))
    True
    >>> np.array_equal(epoch_1, np.random.default_rng([0, 1]).permutation(5))
    True

    `model.fit(train, epochs=10)` trains on it, on any backend.
    """
    check_positive_int(batch_size, "batch_size")
    if len(x) != len(y):
        raise ValueError(
            "Arguments `x` and `y` must have the same length. "
            f"Received: len(x)={len(x)}, len(y)={len(y)}"
        )
    return Batches(np.asarray(x), np.asarray(y), batch_size, seed=seed,
                   shuffle=shuffle, drop_remainder=drop_remainder)
