"""CIFAR-10 and CIFAR-100 through tensorflow-datasets, with the paper's
augmentation."""

import keras
import tensorflow as tf

from keras_ssgd.data.held_out import HeldOutData
from keras_ssgd.data.held_out import check_not_empty
from keras_ssgd.data.held_out import train_splits
from keras_ssgd.validation import check_positive_int

NUM_CLASSES = {"cifar10": 10, "cifar100": 100}
# The percent of the 50,000 training images held out for validation: the
# usual last 5000.
VALIDATION_PERCENT = 10


def load_cifar(
    name="cifar10", batch_size=128, seed=None, augment=True, data_dir=None,
    drop_remainder=False, validation_percent=VALIDATION_PERCENT,
):
    """CIFAR from `tfds.load`, normalised per channel, augmented for
    training, with the last 5000 training images held out for validation.

    Training images are zero-padded by 4 pixels, randomly cropped back to
    32x32 and randomly flipped left-right (Keras's `ZeroPadding2D`,
    `RandomCrop` and `RandomFlip`), then normalised per channel by a Keras
    `Normalization` layer adapted to the training images (pixels scaled to
    [0, 1]). Validation and test images are only normalised. The training
    order is reshuffled every epoch.

    The validation set is the last `validation_percent` % of tfds's
    `train` split (`train[90%:]`, the usual last 5000 of the 50,000
    images): the same for every seed, so a configuration is chosen on it
    and the test set is read only to report. The models train on the
    other 45,000.

    `tfds.load` downloads the data on first use (about 160 MB) into
    `data_dir` (default `~/tensorflow_datasets`); later runs read it offline.

    Args:
        name: `"cifar10"` or `"cifar100"`. Defaults to `"cifar10"`.
        batch_size: int > 0. Defaults to `128`.
        seed: int or None. Seed of the shuffling and of the augmentation.
        augment: bool. Pad-crop-flip the training images. Defaults to `True`.
        data_dir: str or None. Where tensorflow-datasets keeps its data.
        drop_remainder: bool. Drop the last, smaller training batch (for
            sharding global batches across workers). Defaults to `False`.
        validation_percent: int in [0, 100). The percent of the training
            split held out for validation. Defaults to `10`; `0` trains on
            all 50,000 (`validation` is then `None`).

    Returns:
        A `keras_ssgd.data.held_out.HeldOutData` (`validation`: the
        validation batches in order).

    Example:

    <!-- example: skip
    downloads CIFAR-100 through tensorflow-datasets; `model` is a CIFAR model
    to train for 175 epochs.
    -->

    >>> data = load_cifar("cifar100", batch_size=128, seed=0)
    >>> model.fit(data.train, epochs=175, validation_data=data.validation)

    Reference:
    - Sung et al., "S-SGD", Section 4 (data pipeline); He et al. 2016,
      Section 4.2.
    """
    import tensorflow_datasets as tfds

    if name not in NUM_CLASSES:
        raise ValueError(
            f"Argument `name` must be one of {sorted(NUM_CLASSES)}. "
            f"Received: name={name!r}"
        )
    check_positive_int(batch_size, "batch_size")
    train_split, validation_split = train_splits(validation_percent)
    splits = [train_split, "test"] + (
        [validation_split] if validation_split else [])
    (raw_train, test, *held), info = tfds.load(
        name, split=splits, as_supervised=True, with_info=True,
        data_dir=data_dir,
    )
    train_size = int(raw_train.cardinality())
    if held:
        check_not_empty(int(held[0].cardinality()), validation_percent,
                        train_size)

    def to_float(image, label):
        return tf.cast(image, "float32") / 255.0, tf.cast(label, "int32")

    normalize = keras.layers.Normalization(axis=-1)
    normalize.adapt(raw_train.map(lambda image, _: tf.cast(image, "float32") / 255.0).batch(1024))
    augmentation = keras.Sequential(
        [
            keras.layers.ZeroPadding2D(4),
            keras.layers.RandomCrop(32, 32, seed=seed),
            keras.layers.RandomFlip("horizontal", seed=seed),
        ],
        name="cifar_augmentation",
    )

    def prepare_train(images, labels):
        if augment:
            images = augmentation(images, training=True)
        return normalize(images), labels

    train = (
        raw_train.shuffle(train_size, seed=seed, reshuffle_each_iteration=True)
        .map(to_float, num_parallel_calls=tf.data.AUTOTUNE)
        .batch(batch_size, drop_remainder=drop_remainder)
        .map(prepare_train, num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )

    def in_order(split):
        return (
            split.map(to_float, num_parallel_calls=tf.data.AUTOTUNE)
            .batch(batch_size)
            .map(lambda images, labels: (normalize(images), labels))
            .prefetch(tf.data.AUTOTUNE)
        )

    return HeldOutData(
        train=train,
        test=in_order(test),
        train_eval=in_order(raw_train),
        train_size=train_size,
        input_shape=tuple(info.features["image"].shape),
        num_classes=NUM_CLASSES[name],
        validation=in_order(held[0]) if held else None,
    )
