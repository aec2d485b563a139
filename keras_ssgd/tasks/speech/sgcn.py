"""The Simple Gated ConvNet (SGCN) CTC acoustic model of Lee et al. (2019)."""

import keras
from keras import layers
from keras import ops

from keras_ssgd.validation import check_positive_int


@keras.saving.register_keras_serializable(package="keras_ssgd")
class LengthMask(layers.Layer):
    """Zeroes the frames of `x` at or after each row's length.

    With zeros in the padded frames, a `"same"` convolution of a padded batch
    gives each utterance exactly what it would get alone.
    """

    def call(self, x, lengths):
        valid = ops.arange(ops.shape(x)[1])[None, :] < ops.cast(lengths, "int32")[:, None]
        return x * ops.cast(valid, x.dtype)[:, :, None]

    def compute_output_shape(self, x_shape, lengths_shape):
        return x_shape


@keras.saving.register_keras_serializable(package="keras_ssgd")
class GLU(layers.Layer):
    """Gated linear unit over the last axis: `a * sigmoid(b)` for the two
    halves `a`, `b` (`keras.ops.glu`). `Activation("glu")` would infer the
    wrong (unhalved) output shape in a functional model."""

    def call(self, x):
        return ops.glu(x, axis=-1)

    def compute_output_shape(self, x_shape):
        return (*x_shape[:-1], None if x_shape[-1] is None else x_shape[-1] // 2)


@keras.saving.register_keras_serializable(package="keras_ssgd")
class BlankPadding(layers.Layer):
    """Replaces the logits of padded frames by a near-certain CTC blank.

    `keras.losses.CTC` takes every frame of the batch as real. A padded frame
    whose logits are `margin` for the blank and 0 elsewhere adds at most
    `log(1 + (C - 1) * exp(-margin))` (about 1e-12 for the default) to an
    utterance's loss, so the loss is that of the unpadded utterance.

    Args:
        blank: int. The blank id. Defaults to `0`.
        margin: float. Defaults to `30.0`.
    """

    def __init__(self, blank=0, margin=30.0, **kwargs):
        super().__init__(**kwargs)
        self.blank = blank
        self.margin = margin

    def call(self, logits, lengths):
        valid = ops.arange(ops.shape(logits)[1])[None, :] < ops.cast(lengths, "int32")[:, None]
        blank = ops.one_hot(self.blank, ops.shape(logits)[-1], dtype=logits.dtype) * self.margin
        return ops.where(valid[:, :, None], logits, blank[None, None, :])

    def compute_output_shape(self, logits_shape, lengths_shape):
        return logits_shape

    def get_config(self):
        config = super().get_config()
        config.update({"blank": self.blank, "margin": self.margin})
        return config


def apply_sgcn_block(x, lengths, units, kernel_size, name):
    """One SGCN layer: a 1-D depthwise ("time-depth") convolution along time,
    a pointwise convolution to `2 * units` channels, and a gated linear unit
    (`a * sigmoid(b)`), padded frames set to zero."""
    x = layers.DepthwiseConv1D(kernel_size, padding="same", name=f"{name}_time")(x)
    x = layers.Conv1D(2 * units, 1, name=f"{name}_pointwise")(x)
    x = GLU(name=f"{name}_glu")(x)
    return LengthMask(name=f"{name}_mask")(x, lengths)


def sgcn(units=190, depth=12, num_features=120, num_classes=29, kernel_size=15,
         name=None):
    """The Simple Gated ConvNet for character CTC (the S-SGD paper's Table 4).

    `depth` layers, each a 1-D depthwise convolution along time (one filter
    of width `kernel_size` per channel: the "time-depth" convolution), a
    pointwise (width-1) convolution to `2 * units` channels and a gated
    linear unit that halves them to `units`; then a pointwise layer to
    `num_classes` logits per frame (id 0 is the CTC blank, see
    `keras_ssgd.tasks.speech.ctc`). There is no striding: one output frame per input
    frame. The model takes `{"features": (batch, time, num_features),
    "lengths": (batch,)}`; padded frames are zeroed after every layer, so
    an utterance gets the same logits alone or in a padded batch, and their
    logits are set to a near-certain blank so that `keras.losses.CTC` over
    the whole padded batch equals the per-utterance CTC loss.

    Parameter counts. S-SGD's Table 4 gives 1.09M (12 x 190) and 2.24M
    (12 x 300). This reading of the layer (120 input features, 29 classes,
    width 15) has 0.885M and 2.12M: 81% and 95% of the stated counts. No
    model with 12 layers of `2 N^2` gated pointwise weights plus terms that
    grow with `N` fits both stated counts: going from 190 to 300 units adds
    1.29M weights in those layers alone, the stated counts differ by 1.15M.
    The stated counts fit about `16 N^2 + 2700 N`, so the published model
    differs from this reading in a way the S-SGD paper's text does not give
    (nor does it give the width of the time convolution or the input
    features). The difference is reported here, not hidden by resizing the
    model.

    Args:
        units: int. Units per layer (190 or 300 in the paper). Defaults
            to `190`.
        depth: int. Number of gated layers. Defaults to `12`.
        num_features: int. Features per input frame (40 log-mel and their
            first and second differences by default). Defaults to `120`.
        num_classes: int. Output classes, blank included. Defaults to `29`
            (`keras_ssgd.tasks.speech.ctc.NUM_CLASSES`).
        kernel_size: int. Width (frames) of the time convolutions; not
            stated in the S-SGD paper. Defaults to `15`.
        name: str. Defaults to `f"sgcn_{depth}x{units}"`.

    Returns:
        A functional `keras.Model` from `{"features", "lengths"}` to logits
        `(batch, time, num_classes)`.

    Example:

    >>> from keras_ssgd.tasks.speech import ctc as speech
    >>> model = keras_ssgd.wrap(sgcn(190), noise_level=0.25)
    >>> model.compile(optimizer="adam", loss=speech.ctc_loss())

    Reference:
    - Lee, Park and Sung, "Simple Gated ConvNet for Small Footprint Acoustic
      Modeling", ASRU 2019; Sung et al., "S-SGD", Section 5.2 and Table 4.
    """
    for value, arg in ((units, "units"), (depth, "depth"), (num_features, "num_features"),
                       (num_classes, "num_classes"), (kernel_size, "kernel_size")):
        check_positive_int(value, arg)
    if num_classes < 2:
        raise ValueError(
            "Argument `num_classes` must be >= 2 (the blank and a character). "
            f"Received: num_classes={num_classes}"
        )
    features = keras.Input((None, num_features), name="features")
    lengths = keras.Input((), dtype="int32", name="lengths")
    x = LengthMask(name="input_mask")(features, lengths)
    for i in range(depth):
        x = apply_sgcn_block(x, lengths, units, kernel_size, name=f"block{i + 1}")
    logits = layers.Conv1D(num_classes, 1, name="logits")(x)
    logits = BlankPadding(name="blank_padding")(logits, lengths)
    return keras.Model(
        {"features": features, "lengths": lengths}, logits,
        name=name or f"sgcn_{depth}x{units}",
    )


def sgcn_parameter_count(units=190, depth=12, num_features=120, num_classes=29,
                         kernel_size=15):
    """The parameter count of `sgcn(...)` in closed form."""
    def block(channels):
        return channels * kernel_size + channels + channels * 2 * units + 2 * units
    return (block(num_features) + (depth - 1) * block(units)
            + units * num_classes + num_classes)
