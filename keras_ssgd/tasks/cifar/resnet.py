"""The CIFAR ResNets of He et al. (2016): ResNet-20, -32, -44, -56, -110."""

import keras
from keras import layers

from keras_ssgd.validation import check_rate


def apply_basic_block(x, filters, stride, name):
    """Two 3x3 convolutions with BatchNorm and a shortcut (1x1 when needed)."""
    shortcut = x
    x = layers.Conv2D(
        filters, 3, strides=stride, padding="same", use_bias=False,
        kernel_initializer="he_normal", name=f"{name}_conv1",
    )(x)
    x = layers.BatchNormalization(name=f"{name}_bn1")(x)
    x = layers.Activation("relu", name=f"{name}_relu1")(x)
    x = layers.Conv2D(
        filters, 3, padding="same", use_bias=False,
        kernel_initializer="he_normal", name=f"{name}_conv2",
    )(x)
    x = layers.BatchNormalization(name=f"{name}_bn2")(x)
    if stride != 1 or shortcut.shape[-1] != filters:
        shortcut = layers.Conv2D(
            filters, 1, strides=stride, use_bias=False,
            kernel_initializer="he_normal", name=f"{name}_proj",
        )(shortcut)
        shortcut = layers.BatchNormalization(name=f"{name}_proj_bn")(shortcut)
    x = layers.Add(name=f"{name}_add")([x, shortcut])
    return layers.Activation("relu", name=f"{name}_out")(x)


def cifar_resnet(
    depth=20, num_classes=10, input_shape=(32, 32, 3), dropout=0.0, name=None
):
    """A CIFAR ResNet: 3 stages of 16/32/64 filters, `(depth - 2) / 6` basic
    blocks each, global average pooling and a dense classifier (logits).

    Shortcuts that change shape use a 1x1 convolution (He et al.'s option B);
    ResNet-20 has 0.27M parameters.

    Args:
        depth: int, `6n + 2`: 20, 32, 44, 56 or 110. Defaults to `20`.
        num_classes: int. Defaults to `10`.
        input_shape: tuple. Defaults to `(32, 32, 3)`.
        dropout: float in `[0, 1)`. Rate of a `Dropout` layer before the
            dense classifier (the paper's "SGD+Dropout", Fig. 3); 0 adds
            none. Defaults to `0`.
        name: str. Defaults to `f"resnet{depth}"`.

    Example:

    >>> model = cifar_resnet(20, num_classes=100)

    Reference:
    - [He et al., Deep Residual Learning for Image Recognition](
      https://arxiv.org/abs/1512.03385), Section 4.2.
    """
    if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
        raise ValueError(
            "Argument `depth` must be an int of the form 6n + 2 (20, 32, 44, "
            f"56, 110). Received: depth={depth!r}"
        )
    blocks = (depth - 2) // 6
    inputs = keras.Input(input_shape)
    x = layers.Conv2D(
        16, 3, padding="same", use_bias=False,
        kernel_initializer="he_normal", name="stem_conv",
    )(inputs)
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.Activation("relu", name="stem_relu")(x)
    for stage, filters in enumerate((16, 32, 64)):
        for block in range(blocks):
            stride = 2 if stage > 0 and block == 0 else 1
            x = apply_basic_block(
                x, filters, stride, name=f"stage{stage + 1}_block{block + 1}"
            )
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    if dropout:
        x = layers.Dropout(check_rate(dropout, "dropout"), name="dropout")(x)
    outputs = layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name=name or f"resnet{depth}")
