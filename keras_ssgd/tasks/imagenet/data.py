"""ImageNet (ILSVRC 2012) through tensorflow-datasets, with the standard
ResNet preprocessing."""

import os

import keras
import tensorflow as tf

from keras_ssgd.data.held_out import HeldOutData
from keras_ssgd.data.held_out import check_not_empty
from keras_ssgd.data.held_out import train_splits
from keras_ssgd.validation import check_positive_int
from keras_ssgd.validation import check_seed

# The files image-net.org hands out, which tfds's `imagenet2012` reads from
# its manual download folder.
MANUAL_FILES = ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar")
NUM_CLASSES = 1000
# Per-channel mean and standard deviation of the ImageNet training images,
# pixels in [0, 1] (the values of the reference ResNet pipelines).
MEAN_RGB = (0.485, 0.456, 0.406)
STDDEV_RGB = (0.229, 0.224, 0.225)
# Evaluation resizes the shorter side to 256 for a 224 crop.
CROP_FRACTION = 224 / 256
# The percent of the training images held out for validation (12,812 of
# 1,281,167): ImageNet's own validation set is the papers' test set.
VALIDATION_PERCENT = 1


def load_imagenet(
    batch_size=1024, seed=None, data_dir=None, manual_dir=None,
    image_size=224, augment=True, drop_remainder=False, shuffle_buffer=10_000,
    validation_percent=VALIDATION_PERCENT,
):
    """ImageNet from tensorflow-datasets' `imagenet2012`, preprocessed as for
    the ResNets.

    ImageNet cannot be downloaded automatically. Put the two files from
    image-net.org, `ILSVRC2012_img_train.tar` and `ILSVRC2012_img_val.tar`,
    in `manual_dir`; the first call converts them into `data_dir` (several
    hours, about 150 GB) and later calls read the converted data. If
    `data_dir` already holds a prepared `imagenet2012`, `manual_dir` is not
    needed.

    Training images: an Inception-style random crop (a box covering 8% to
    100% of the image, aspect ratio 3/4 to 4/3, by
    `tf.image.sample_distorted_bounding_box`, decoded with
    `tf.image.decode_and_crop_jpeg`), resized to `image_size` and randomly
    flipped left-right (`keras.layers.RandomFlip`). Evaluation images: the
    shorter side resized to `image_size * 256 / 224` (256 for 224), then a
    central `image_size` crop (`keras.layers.CenterCrop`). Both are scaled
    to [0, 1] and normalised per channel with the ImageNet mean and
    standard deviation (`keras.layers.Normalization`). The test split is
    ImageNet's validation set (50,000 images), as in the papers. The
    validation set, on which a configuration is chosen, is held out of the
    training split instead: its last `validation_percent` % (`train[99%:]`,
    12,812 images; tensorflow-datasets shuffled the split when it wrote
    it), the same for every seed, preprocessed as for evaluation. The
    training order is reshuffled every epoch: the files are shuffled and
    the examples go through a shuffle buffer of `shuffle_buffer`.

    Args:
        batch_size: int > 0. Defaults to `1024`.
        seed: int or None. Seed of the shuffling and of the augmentation.
        data_dir: str or None. tensorflow-datasets' data folder. Defaults
            to tensorflow-datasets' own (`$TFDS_DATA_DIR` or
            `~/tensorflow_datasets`).
        manual_dir: str or None. The folder holding the two `.tar` files.
            Defaults to `<data_dir>/downloads/manual`, tensorflow-datasets'
            own.
        image_size: int > 0. Side of the square images given to the model.
            Defaults to `224`.
        augment: bool. Random crop and flip for training; `False` gives the
            training images the evaluation preprocessing. Defaults to `True`.
        drop_remainder: bool. Drop the last, smaller training batch (for
            sharding global batches across workers). Defaults to `False`.
        shuffle_buffer: int > 0. Examples in the shuffle buffer. Defaults
            to `10_000`.
        validation_percent: int in [0, 100). The percent of the training
            split held out for validation. Defaults to `1`; `0` trains on
            every training image (`validation` is then `None`).

    Returns:
        A `keras_ssgd.data.held_out.HeldOutData` (`validation`: the
        held-out training images, in order).

    Raises:
        FileNotFoundError: `data_dir` holds no prepared `imagenet2012` and
            `manual_dir` is missing or lacks one of the two `.tar` files.

    Example:

    <!-- example: skip
    needs the ImageNet archives in `manual_dir` and 90 epochs on GPUs.
    -->

    >>> data = load_imagenet(batch_size=1024, seed=0,
    ...                      manual_dir="/data/imagenet")
    >>> model.fit(data.train, epochs=90, validation_data=data.validation)

    Reference:
    - [Russakovsky et al., ImageNet Large Scale Visual Recognition
      Challenge](https://arxiv.org/abs/1409.0575).
    - Szegedy et al. 2015, Section 6 (the random crop); He et al. 2016,
      Section 3.4; the Cloud TPU ResNet pipeline
      (`tensorflow/tpu`, `resnet_preprocessing.py`).
    """
    import tensorflow_datasets as tfds

    check_positive_int(batch_size, "batch_size")
    check_positive_int(image_size, "image_size")
    check_positive_int(shuffle_buffer, "shuffle_buffer")
    seed = check_seed(seed)
    train_split, validation_split = train_splits(validation_percent)
    builder = prepared_builder(data_dir=data_dir, manual_dir=manual_dir)

    def read(split, shuffle):
        return builder.as_dataset(
            split=split, as_supervised=True, shuffle_files=shuffle,
            decoders={"image": tfds.decode.SkipDecoding()},
            read_config=tfds.ReadConfig(
                shuffle_seed=seed, shuffle_reshuffle_each_iteration=True
            ),
        )

    raw_train = read(train_split, shuffle=True)
    train_size = int(raw_train.cardinality())
    held = read(validation_split, shuffle=False) if validation_split else None
    if held is not None:
        check_not_empty(int(held.cardinality()), validation_percent,
                        train_size)
    crop = train_crop(image_size, seed=seed)
    central = eval_crop(image_size)
    flip = keras.layers.RandomFlip("horizontal", seed=seed)
    normalize = normalization()

    def prepare_train(jpeg, label):
        image = crop(jpeg) if augment else central(jpeg)
        return image, tf.cast(label, "int32")

    def prepare_eval(jpeg, label):
        return central(jpeg), tf.cast(label, "int32")

    def finish_train(images, labels):
        if augment:
            images = flip(images, training=True)
        return normalize(images), labels

    train = (
        raw_train.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
        .map(prepare_train, num_parallel_calls=tf.data.AUTOTUNE)
        .batch(batch_size, drop_remainder=drop_remainder)
        .map(finish_train, num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )

    def in_order(split):
        return (
            split.map(prepare_eval, num_parallel_calls=tf.data.AUTOTUNE)
            .batch(batch_size)
            .map(lambda images, labels: (normalize(images), labels))
            .prefetch(tf.data.AUTOTUNE)
        )

    return HeldOutData(
        train=train,
        test=in_order(read("validation", shuffle=False)),
        train_eval=in_order(read(train_split, shuffle=False)),
        train_size=train_size,
        input_shape=(image_size, image_size, 3),
        num_classes=NUM_CLASSES,
        validation=in_order(held) if held is not None else None,
    )


def prepared_builder(data_dir=None, manual_dir=None):
    """The tfds `imagenet2012` builder, prepared from `manual_dir` if needed.

    Checks the folders before tensorflow-datasets is asked anything, so a
    missing file gets a message that says what was expected where.

    Args:
        data_dir: str or None. tensorflow-datasets' data folder.
        manual_dir: str or None. The folder of the two `.tar` files
            (default `<data_dir>/downloads/manual`).

    Returns:
        A prepared `tfds.core.DatasetBuilder`.

    Raises:
        FileNotFoundError: neither a prepared dataset nor the files to
            prepare it from.
    """
    import tensorflow_datasets as tfds

    if data_dir is not None and not os.path.isdir(data_dir):
        raise FileNotFoundError(
            "Argument `data_dir` must be an existing folder (tensorflow-"
            "datasets' data folder, where the prepared imagenet2012 is or "
            f"will be written). Received: data_dir={str(data_dir)!r}"
        )
    builder = tfds.builder("imagenet2012", data_dir=data_dir)
    if builder.is_prepared():
        return builder
    if manual_dir is None:
        manual_dir = os.path.join(builder.data_dir_root, "downloads", "manual")
    manual_dir = str(manual_dir)
    expected = (
        f"ImageNet is not prepared in {builder.data_path}, so it must be "
        f"built from the two files of image-net.org, {MANUAL_FILES[0]} and "
        f"{MANUAL_FILES[1]}, in `manual_dir`"
    )
    if not os.path.isdir(manual_dir):
        raise FileNotFoundError(
            f"{expected}; that folder does not exist. "
            f"Received: manual_dir={manual_dir!r}"
        )
    missing = [
        f for f in MANUAL_FILES if not os.path.isfile(os.path.join(manual_dir, f))
    ]
    if missing:
        raise FileNotFoundError(
            f"{expected}; it lacks {', '.join(missing)}. "
            f"Received: manual_dir={manual_dir!r}"
        )
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(
            manual_dir=manual_dir, try_download_gcs=False
        )
    )
    return builder


def train_crop(image_size, seed=None):
    """`jpeg bytes -> float32 image in [0, 1]`: Inception-style random crop.

    A box covering 8% to 100% of the image with an aspect ratio between 3/4
    and 4/3 (`tf.image.sample_distorted_bounding_box`, the whole image when
    10 draws fail), decoded directly (`tf.image.decode_and_crop_jpeg`) and
    resized to `image_size` x `image_size`.
    """

    def crop(jpeg):
        begin, size, _ = tf.image.sample_distorted_bounding_box(
            tf.image.extract_jpeg_shape(jpeg),
            bounding_boxes=tf.constant([0.0, 0.0, 1.0, 1.0], shape=(1, 1, 4)),
            min_object_covered=0.1,
            aspect_ratio_range=(3 / 4, 4 / 3),
            area_range=(0.08, 1.0),
            max_attempts=10,
            use_image_if_no_bounding_boxes=True,
            seed=seed,
        )
        window = tf.stack([begin[0], begin[1], size[0], size[1]])
        image = tf.image.decode_and_crop_jpeg(jpeg, window, channels=3)
        return _resize(image, (image_size, image_size))

    return crop


def eval_crop(image_size):
    """`jpeg bytes -> float32 image in [0, 1]`: resize, then central crop.

    The shorter side is resized to `image_size / 0.875` (256 for 224), then
    the central `image_size` x `image_size` square is kept.
    """
    center = keras.layers.CenterCrop(image_size, image_size)
    resized_side = round(image_size / CROP_FRACTION)

    def crop(jpeg):
        image = tf.image.decode_jpeg(jpeg, channels=3)
        shape = tf.cast(tf.shape(image)[:2], "float32")
        scale = resized_side / tf.reduce_min(shape)
        size = tf.cast(tf.round(shape * scale), "int32")
        return center(_resize(image, size))

    return crop


def normalization():
    """A `keras.layers.Normalization` with the ImageNet mean and std."""
    layer = keras.layers.Normalization(
        axis=-1, mean=list(MEAN_RGB), variance=[s * s for s in STDDEV_RGB]
    )
    layer.build((None, None, None, 3))  # eagerly, not inside a tf.data map
    return layer


def _resize(image, size):
    """uint8 image -> float32 in [0, 1], bilinear resize to `size`."""
    image = tf.image.resize(image, size, method="bilinear", antialias=False)
    return tf.clip_by_value(image / 255.0, 0.0, 1.0)
