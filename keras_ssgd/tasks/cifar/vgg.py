"""VGG networks with BatchNorm for 32x32 images."""

import keras
from keras import layers

from keras_ssgd.validation import check_rate

# Convolution widths per stage ("M" = 2x2 max pooling).
CONFIGS = {
    # Four convolutions and two dense layers: the paper does not give VGG6's
    # layout; this is this project's reading of the name (6 weight layers).
    6: (64, "M", 128, "M", 256, "M", 512, "M"),
    # Simonyan & Zisserman's configuration D, 13 convolutions.
    16: (64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
         512, 512, 512, "M", 512, 512, 512, "M"),
}


def cifar_vgg(depth=16, num_classes=10, input_shape=(32, 32, 3), dropout=0.0,
              name=None):
    """VGG-`depth` with BatchNorm after every convolution, for CIFAR.

    The convolution stages of `CONFIGS[depth]`, each conv 3x3 + BN + ReLU,
    then a 512-unit dense layer with BN + ReLU and the classifier (logits):
    VGG-16 has 15.0M parameters, VGG-6 2.6M (10 classes).

    Args:
        depth: 6 or 16. Defaults to `16`.
        num_classes: int. Defaults to `10`.
        input_shape: tuple. Defaults to `(32, 32, 3)`.
        dropout: float in `[0, 1)`, before the classifier. Defaults to `0`.
        name: str. Defaults to `f"vgg{depth}"`.

    Example:

    >>> model = cifar_vgg(16, num_classes=100)

    Reference:
    - [Simonyan & Zisserman, Very Deep Convolutional Networks](
      https://arxiv.org/abs/1409.1556); Sung et al., Table 2.
    """
    if depth not in CONFIGS:
        raise ValueError(
            f"Argument `depth` must be one of {sorted(CONFIGS)}. Received: depth={depth!r}"
        )
    inputs = keras.Input(input_shape)
    x = inputs
    conv = 0
    for item in CONFIGS[depth]:
        if item == "M":
            x = layers.MaxPooling2D(2, name=f"pool{conv}")(x)
            continue
        conv += 1
        x = layers.Conv2D(item, 3, padding="same", use_bias=False,
                          kernel_initializer="he_normal", name=f"conv{conv}")(x)
        x = layers.BatchNormalization(name=f"bn{conv}")(x)
        x = layers.Activation("relu", name=f"relu{conv}")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(512, use_bias=False, name="fc")(x)
    x = layers.BatchNormalization(name="fc_bn")(x)
    x = layers.Activation("relu", name="fc_relu")(x)
    if dropout:
        x = layers.Dropout(check_rate(dropout, "dropout"), name="dropout")(x)
    outputs = layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name=name or f"vgg{depth}")
