"""The ImageNet ResNets of He et al. (2016), ResNet-18 and ResNet-50, from
keras-cv's ResNet (v1) backbone."""

import keras

from keras_ssgd.validation import check_rate

# depth -> (blocks per stage, keras-cv block type). Filters and strides are
# the same for every depth: 64/128/256/512, the first stage not strided.
ARCHITECTURES = {
    18: ((2, 2, 2, 2), "basic_block"),
    34: ((3, 4, 6, 3), "basic_block"),
    50: ((3, 4, 6, 3), "block"),
    101: ((3, 4, 23, 3), "block"),
    152: ((3, 8, 36, 3), "block"),
}


def imagenet_resnet(
    depth=50, classes=1000, input_shape=(224, 224, 3), weight_decay=0.0,
    dropout=0.0, classifier_activation=None, name=None,
):
    """A ResNet v1 for ImageNet: keras-cv's `ResNetBackbone` (7x7 stem, max
    pooling, four stages of basic or bottleneck blocks), global average
    pooling and a dense classifier.

    The backbone is built from its constructor arguments, randomly
    initialised (keras-cv's presets download weights, which is not wanted
    here), without input rescaling: the data pipeline normalises the images.
    The model is one flat functional graph, so `keras_ssgd.wrap` and the
    layer-type noise filters see every `Conv2D` and the `Dense` head. With
    1000 classes ResNet-18 has 11,689,512 trainable parameters and ResNet-50
    25,557,032, the numbers of the reference implementations.

    Where it differs from the Cloud TPU reference recipe (Ying et al.) the
    paper's ImageNet runs follow: keras-cv's backbone keeps Keras's
    BatchNorm defaults (momentum 0.99, epsilon 1.001e-5; the reference uses
    0.9 and 1e-5), Glorot initialisation (the reference: variance scaling,
    and a normal(0.01) head), and does not zero-initialise the last
    BatchNorm scale of each block. Its constructor takes none of these.

    Args:
        depth: int, one of 18, 34, 50, 101, 152. Defaults to `50`.
        classes: int > 0. Number of classes. Defaults to `1000`.
        input_shape: tuple `(height, width, 3)`. Defaults to
            `(224, 224, 3)`; any size from 32 works (the parameter count
            does not depend on it).
        weight_decay: float >= 0. L2 penalty on every convolution and dense
            kernel (not on BatchNorm, nor on the dense bias), scaled so
            that its gradient is `weight_decay * w`, as in the reference
            `weight_decay * tf.nn.l2_loss(w)`. Defaults to `0` (none).
        dropout: float in `[0, 1)`. Rate of a `Dropout` layer before the
            dense classifier (the paper's "SGD+Dropout" baseline); 0 adds
            none. Defaults to `0`.
        classifier_activation: str or None. Activation of the dense head;
            `None` gives logits (pair with `from_logits=True`), `"softmax"`
            probabilities. Defaults to `None`.
        name: str. Defaults to `f"resnet{depth}"`.

    Returns:
        A `keras.Model` from images to class scores.

    Example:

    >>> model = imagenet_resnet(18, weight_decay=1e-4)  # or 50
    >>> model = keras_ssgd.wrap(model, noise_level=0.25)

    Reference:
    - [He et al., Deep Residual Learning for Image Recognition](
      https://arxiv.org/abs/1512.03385), Table 1.
    - keras-cv `keras_cv.models.ResNetBackbone`.
    """
    import keras_cv

    if isinstance(depth, bool) or not isinstance(depth, int) or depth not in ARCHITECTURES:
        raise ValueError(
            f"Argument `depth` must be one of {sorted(ARCHITECTURES)}. "
            f"Received: depth={depth!r}"
        )
    if not isinstance(classes, int) or isinstance(classes, bool) or classes < 1:
        raise ValueError(
            f"Argument `classes` must be an int > 0. Received: classes={classes!r}"
        )
    input_shape = tuple(input_shape)
    if len(input_shape) != 3 or input_shape[-1] != 3:
        raise ValueError(
            "Argument `input_shape` must be (height, width, 3). "
            f"Received: input_shape={input_shape!r}"
        )
    if not isinstance(weight_decay, (int, float)) or not weight_decay >= 0:
        raise ValueError(
            "Argument `weight_decay` must be a number >= 0. "
            f"Received: weight_decay={weight_decay!r}"
        )
    dropout = check_rate(dropout, "dropout")
    blocks, block_type = ARCHITECTURES[depth]
    backbone = keras_cv.models.ResNetBackbone(
        stackwise_filters=[64, 128, 256, 512],
        stackwise_blocks=list(blocks),
        stackwise_strides=[1, 2, 2, 2],
        block_type=block_type,
        include_rescaling=False,
        input_shape=input_shape,
    )
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(backbone.output)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    outputs = keras.layers.Dense(
        classes, activation=classifier_activation, name="predictions"
    )(x)
    # A flat graph over the backbone's layers (no nested model).
    model = keras.Model(backbone.input, outputs, name=name or f"resnet{depth}")
    if weight_decay:
        _add_weight_decay(model, weight_decay)
    return model


def _add_weight_decay(model, weight_decay):
    """Sets an L2 regularizer on the kernels of `model`.

    keras-cv's backbone takes no regularizer argument, so the regularizer
    is set on the built layers: on the variable, for the loss, and as the
    layer attribute, so that `get_config` (saving) carries it. Only kernels:
    they are the variables S-SGD perturbs by default, and its passes
    evaluate the penalty at the perturbed values (whose mean gradient,
    `weight_decay * ((W + n) + (W - n)) / 2`, is the plain one).
    """
    l2 = keras.regularizers.L2(weight_decay / 2.0)
    for layer in model.layers:
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            layer.kernel_regularizer = l2
            layer.kernel.regularizer = l2
