"""The word-level PTB language models of Zaremba et al. (2014)."""

import keras
from keras import layers

from keras_ssgd.validation import check_positive_int
from keras_ssgd.validation import check_rate

# size -> (layers, units, dropout, init scale)
SIZES = {
    "small": (1, 300, 0.0, 0.1),     # the paper's small model (Hubara et al.)
    "medium": (2, 650, 0.5, 0.05),
    "large": (2, 1500, 0.65, 0.04),
}


def ptb_lstm(size="large", vocab_size=10000, batch_size=20, steps=35,
             dropout=None, init_scale=None, num_layers=None, units=None,
             name=None):
    """Embedding, stacked stateful LSTMs with dropout between layers (the
    forward path only, never the recurrent one), and a softmax layer.

    The states carry over from one 35-step window to the next (call
    `reset_states()` at each epoch start). All parameters,
    biases included (no forget-gate bias of 1), are uniform in
    `[-scale, scale]`, as in Zaremba et al.'s code. Parameters with 10k words:
    small 6.73M, medium 19.8M, large 66.0M. (The S-SGD paper gives "about
    6.7 million weights" for the 2 x 1500 model; that is the small model's
    count, the two 1500-unit LSTMs alone hold 36M.)

    Args:
        size: `"small"` (1 x 300), `"medium"` (2 x 650) or `"large"`
            (2 x 1500). Defaults to `"large"`.
        vocab_size: int. Defaults to `10000`.
        batch_size: int, fixed (stateful). Defaults to `20`.
        steps: int, the unrolled length. Defaults to `35`.
        dropout: float or None, the size's default (0.5 medium, 0.65
            large, none small).
        init_scale: float > 0 or None, the half-width of the uniform
            initialisation; None is the size's (0.1 small, 0.05 medium,
            0.04 large).
        num_layers: int or None, the number of LSTM layers; None is the
            size's.
        units: int or None, the units per LSTM layer (and the embedding
            width); None is the size's. With `num_layers`, a scaled-down
            model with the size's recipe (for smoke tests).
        name: str. Defaults to `f"ptb_lstm_{size}"`.

    Example:

    >>> model = ptb_lstm("small", batch_size=20)

    Reference:
    - Zaremba, Sutskever and Vinyals, "Recurrent Neural Network
      Regularization", arXiv:1409.2329; Sung et al., Table 5.
    """
    if size not in SIZES:
        raise ValueError(
            f"Argument `size` must be one of {list(SIZES)}. Received: size={size!r}"
        )
    default_depth, default_units, default_dropout, default_scale = SIZES[size]
    depth = default_depth if num_layers is None else check_positive_int(
        num_layers, "num_layers")
    units = default_units if units is None else check_positive_int(units, "units")
    scale = default_scale if init_scale is None else init_scale
    if not scale > 0:
        raise ValueError(
            f"Argument `init_scale` must be > 0. Received: init_scale={init_scale!r}"
        )
    rate = default_dropout if dropout is None else check_rate(dropout, "dropout")
    init = keras.initializers.RandomUniform(-scale, scale)
    inputs = keras.Input(batch_shape=(batch_size, steps), dtype="int32")
    x = layers.Embedding(vocab_size, units, embeddings_initializer=init, name="embedding")(inputs)
    if rate:
        x = layers.Dropout(rate, name="dropout_in")(x)
    for i in range(depth):
        x = layers.LSTM(
            units, return_sequences=True, stateful=True,
            kernel_initializer=init, recurrent_initializer=init,
            bias_initializer=init, unit_forget_bias=False,
            name=f"lstm{i + 1}",
        )(x)
        if rate:
            x = layers.Dropout(rate, name=f"dropout{i + 1}")(x)
    outputs = layers.Dense(
        vocab_size, kernel_initializer=init, bias_initializer=init, name="logits"
    )(x)
    return keras.Model(inputs, outputs, name=name or f"ptb_lstm_{size}")
