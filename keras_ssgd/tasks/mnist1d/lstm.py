"""An LSTM classifier of MNIST-1D read as a sequence."""

import keras
from keras import layers

from keras_ssgd.validation import check_rate


def mnist1d_lstm(units=64, length=40, features=1, num_classes=10, dropout=0.0,
                 name="mnist1d_lstm"):
    """One LSTM layer reads the signal step by step; a linear classifier
    reads its last output. Outputs logits.

    The CPU-scale stand-in for the paper's recurrent experiments (Section
    5.3): S-SGD's default `kernels` filter perturbs the LSTM's `kernel` and
    `recurrent_kernel` (and the classifier's kernel), never a bias.

    Args:
        units: int. LSTM units. Defaults to `64`.
        length: int. Sequence length (MNIST-1D: 40). Defaults to `40`.
        features: int. Features per step (MNIST-1D: 1). Defaults to `1`.
        num_classes: int. Defaults to `10`.
        dropout: float in `[0, 1)`. Rate of a `Dropout` layer before the
            linear classifier (the dense head); 0 adds none. Defaults to `0`.
        name: str. Defaults to `"mnist1d_lstm"`.

    Example:

    >>> model = mnist1d_lstm(units=64)
    >>> model.output_shape
    (None, 10)

    Reference:
    - Hochreiter & Schmidhuber, "Long Short-Term Memory", Neural
      Computation 1997; Greydanus & Kobak, "Scaling Down Deep Learning with
      MNIST-1D", arXiv:2011.14439; Sung et al., Section 5.3.
    """
    for argument, value in (("units", units), ("length", length),
                            ("features", features), ("num_classes", num_classes)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(
                f"Argument `{argument}` must be a positive int. "
                f"Received: {argument}={value!r}"
            )
    inputs = keras.Input((length, features))
    x = layers.LSTM(units, name="lstm")(inputs)
    if dropout:
        x = layers.Dropout(check_rate(dropout, "dropout"), name="dropout")(x)
    outputs = layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name=name)
