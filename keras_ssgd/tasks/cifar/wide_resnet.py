"""Wide residual networks for CIFAR (Zagoruyko & Komodakis 2016)."""

import keras
from keras import layers


def _block(x, filters, stride, name):
    """Pre-activation basic block: BN-ReLU-conv3x3-BN-ReLU-conv3x3 + shortcut."""
    y = layers.BatchNormalization(name=f"{name}_bn1")(x)
    y = layers.Activation("relu", name=f"{name}_relu1")(y)
    shortcut = x
    if stride != 1 or x.shape[-1] != filters:
        # The projection reads the pre-activated input, as in the paper's code.
        shortcut = layers.Conv2D(
            filters, 1, strides=stride, use_bias=False,
            kernel_initializer="he_normal", name=f"{name}_proj",
        )(y)
    y = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False,
                      kernel_initializer="he_normal", name=f"{name}_conv1")(y)
    y = layers.BatchNormalization(name=f"{name}_bn2")(y)
    y = layers.Activation("relu", name=f"{name}_relu2")(y)
    y = layers.Conv2D(filters, 3, padding="same", use_bias=False,
                      kernel_initializer="he_normal", name=f"{name}_conv2")(y)
    return layers.Add(name=f"{name}_add")([y, shortcut])


def wide_resnet(depth=28, width=2, num_classes=10, input_shape=(32, 32, 3),
                dropout=0.0, name=None):
    """WRN-`depth`-`width`: 3 groups of `(depth - 4) / 6` pre-activation
    blocks with 16k, 32k and 64k filters, then BN-ReLU, global average
    pooling and a dense classifier (logits).

    WRN-28-2 has 1.47M parameters and WRN-28-4 5.85M (10 classes), as in
    the paper's Table 1.

    Args:
        depth: int, `6n + 4`. Defaults to `28`.
        width: int >= 1, the widening factor k. Defaults to `2`.
        num_classes: int. Defaults to `10`.
        input_shape: tuple. Defaults to `(32, 32, 3)`.
        dropout: float in `[0, 1)`, before the classifier. Defaults to `0`.
        name: str. Defaults to `f"wrn{depth}_{width}"`.

    Example:

    >>> model = wide_resnet(28, 4, num_classes=100)

    Reference:
    - [Zagoruyko & Komodakis, Wide Residual Networks](
      https://arxiv.org/abs/1605.07146); Sung et al., Table 2.
    """
    if not isinstance(depth, int) or depth < 10 or (depth - 4) % 6:
        raise ValueError(
            "Argument `depth` must be an int of the form 6n + 4 (16, 22, 28, "
            f"40). Received: depth={depth!r}"
        )
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ValueError(f"Argument `width` must be an int >= 1. Received: width={width!r}")
    blocks = (depth - 4) // 6
    inputs = keras.Input(input_shape)
    x = layers.Conv2D(16, 3, padding="same", use_bias=False,
                      kernel_initializer="he_normal", name="stem_conv")(inputs)
    for group, filters in enumerate((16 * width, 32 * width, 64 * width)):
        for block in range(blocks):
            stride = 2 if group > 0 and block == 0 else 1
            x = _block(x, filters, stride, name=f"group{group + 1}_block{block + 1}")
    x = layers.BatchNormalization(name="final_bn")(x)
    x = layers.Activation("relu", name="final_relu")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    if dropout:
        from keras_ssgd.validation import check_rate

        x = layers.Dropout(check_rate(dropout, "dropout"), name="dropout")(x)
    outputs = layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name=name or f"wrn{depth}_{width}")
