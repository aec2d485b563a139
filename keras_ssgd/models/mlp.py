"""A multilayer perceptron for vector or flattened inputs."""

import keras
from keras import layers

from keras_ssgd.validation import check_positive_int
from keras_ssgd.validation import check_rate


def mlp(
    input_shape,
    num_classes=10,
    units=(100, 100),
    dropout=0.0,
    name="mlp",
):
    """Dense ReLU layers on the flattened input, then a linear classifier.

    The MNIST-1D benchmark's MLP baseline has two hidden layers of 100.

    Args:
        input_shape: tuple, shape of one example (flattened first).
        num_classes: int. Defaults to `10`.
        units: tuple of ints, the hidden layer widths. Defaults to
            `(100, 100)`.
        dropout: float in `[0, 1)`. Rate of a `Dropout` layer after each
            hidden layer; 0 adds none. Defaults to `0`.
        name: str. Defaults to `"mlp"`.

    Example:

    >>> model = mlp((40, 1), num_classes=10)

    Reference:
    - [Greydanus & Kobak, Scaling Down Deep Learning with MNIST-1D](
      https://arxiv.org/abs/2011.14439)
    """
    units = [check_positive_int(u, "units") for u in units]
    inputs = keras.Input(tuple(input_shape))
    x = layers.Flatten(name="flatten")(inputs)
    for i, width in enumerate(units):
        x = layers.Dense(width, activation="relu", name=f"dense{i + 1}")(x)
        if dropout:
            x = layers.Dropout(
                check_rate(dropout, "dropout"), name=f"dropout{i + 1}"
            )(x)
    outputs = layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name=name)
