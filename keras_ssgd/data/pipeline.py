"""Batching with a data order that changes every epoch."""

import dataclasses

import tensorflow as tf

from keras_ssgd.validation import check_positive_int


@dataclasses.dataclass(frozen=True)
class Data:
    """A dataset ready for `fit()`.

    Args:
        train: `tf.data.Dataset` of training batches, reshuffled each epoch
            (and augmented, where the dataset is).
        test: `tf.data.Dataset` of test batches, in order.
        train_eval: `tf.data.Dataset` of the training set in order, without
            augmentation: for the training loss of the final weights.
        train_size: int, number of training examples.
        input_shape: tuple, shape of one example.
        num_classes: int.
    """

    train: tf.data.Dataset
    test: tf.data.Dataset
    train_eval: tf.data.Dataset
    train_size: int
    input_shape: tuple
    num_classes: int

    @property
    def steps_per_epoch(self):
        return int(self.train.cardinality())


def batches(x, y, batch_size, seed=None, shuffle=True, drop_remainder=False):
    """A `tf.data.Dataset` of `(x, y)` batches.

    With `shuffle`, the order is drawn again at every epoch from `seed` and
    TensorFlow's global seed (which `keras.utils.set_random_seed` sets) at
    the time of the call: the same sequence of orders for every run with
    those seeds, and a new order each epoch. (`model.fit(x, y, shuffle=True)` on arrays after
    `keras.utils.set_random_seed` replays one order in Keras 3.15.)

    Args:
        x: array of inputs.
        y: array of labels.
        batch_size: int > 0.
        seed: int or None. Seed of the shuffling.
        shuffle: bool. Defaults to `True`.
        drop_remainder: bool. Drop a last, smaller batch. Defaults to `False`.

    Example:

    >>> train = batches(x_train, y_train, batch_size=128, seed=0)

    Reference:
    - `tf.data.Dataset.shuffle(..., reshuffle_each_iteration=True)`.
    """
    check_positive_int(batch_size, "batch_size")
    if len(x) != len(y):
        raise ValueError(
            "Arguments `x` and `y` must have the same length. "
            f"Received: len(x)={len(x)}, len(y)={len(y)}"
        )
    data = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle:
        data = data.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    return data.batch(batch_size, drop_remainder=drop_remainder).prefetch(
        tf.data.AUTOTUNE
    )
