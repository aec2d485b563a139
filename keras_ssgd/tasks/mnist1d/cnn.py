"""The 1-D CNN baseline of the MNIST-1D benchmark."""

import keras
from keras import layers

from keras_ssgd.validation import check_rate


def mnist1d_cnn(
    batchnorm=False, length=40, num_classes=10, dropout=0.0, name=None
):
    """Three stride-2 1-D convolutions of 25 channels and a linear classifier.

    The `ConvBase` model of the MNIST-1D paper (about 94% test accuracy on
    the standard 4000/1000 split), optionally with BatchNorm after each
    convolution. Outputs logits.

    Args:
        batchnorm: bool. Add BatchNorm after each convolution. Defaults to
            `False`.
        length: int. Signal length. Defaults to `40`.
        num_classes: int. Defaults to `10`.
        dropout: float in `[0, 1)`. Rate of a `Dropout` layer before the
            linear classifier (the dense head); 0 adds none. Defaults to `0`.
        name: str. Defaults to `"mnist1d_cnn"` or `"mnist1d_cnn_bn"`.

    Example:

    >>> model = mnist1d_cnn(batchnorm=True)

    Reference:
    - [Greydanus & Kobak, Scaling Down Deep Learning with MNIST-1D](
      https://arxiv.org/abs/2011.14439)
    """
    inputs = keras.Input((length, 1))
    x = inputs
    for i, kernel in enumerate((5, 3, 3)):
        x = layers.ZeroPadding1D(1, name=f"pad{i + 1}")(x)
        x = layers.Conv1D(25, kernel, strides=2, name=f"conv{i + 1}")(x)
        if batchnorm:
            x = layers.BatchNormalization(name=f"bn{i + 1}")(x)
        x = layers.Activation("relu", name=f"relu{i + 1}")(x)
    x = layers.Flatten(name="flatten")(x)
    if dropout:
        x = layers.Dropout(check_rate(dropout, "dropout"), name="dropout")(x)
    outputs = layers.Dense(num_classes, name="logits")(x)
    default = "mnist1d_cnn_bn" if batchnorm else "mnist1d_cnn"
    return keras.Model(inputs, outputs, name=name or default)
