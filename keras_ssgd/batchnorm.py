"""BatchNorm statistics for new weights: one pass over training batches.

At a point in weight space the model was not trained at (an average of
weights, SWA's or EMA's; a point of a loss picture) the moving statistics
of its BatchNormalization layers belong to other weights. SWA recomputes
them (Izmailov et al. 2018, as `torch.optim.swa_utils.update_bn` does);
`keras_ssgd.callbacks.StochasticWeightAveraging`, `ssgd-train`'s `ema` and
the loss pictures of `keras_ssgd.landscape` do it with `recompute_batchnorm`.
"""

import contextlib

import keras

from keras_ssgd import _keras_compat as compat


def batchnorm_layers(model):
    """The model's trainable `BatchNormalization` layers (a frozen one runs
    in inference mode and keeps its statistics)."""
    return [
        layer for layer in compat.flatten_layers(model, include_self=False)
        if isinstance(layer, keras.layers.BatchNormalization)
        and layer.trainable
    ]


def recompute_batchnorm(model, data, max_batches=None):
    """Sets the moving statistics of every trainable BatchNormalization
    layer to the equal-weight average of its batch statistics over `data`.

    The statistics are reset (mean 0, variance 1), then the model runs in
    training mode on each batch with each layer's `momentum` set so that
    the moving statistics become the cumulative average: Keras updates
    `moving = moving * momentum + batch * (1 - momentum)`, so batch `i`
    (from 1) uses `momentum = (i - 1) / i`. The layers' momentum is
    restored afterwards, and so is every other non-trainable variable the
    pass would change (a Dropout's seed, an RNN's state); trainable weights
    are not changed. It runs eagerly, on any backend.

    Args:
        model: a `keras.Model`.
        data: an iterable of batches, `x` or `(x, y[, sample_weight])`: a
            `keras.utils.PyDataset`, a `tf.data.Dataset` (read as NumPy
            outside TensorFlow), or a list.
        max_batches: int or `None`, how many batches to use (all by
            default).

    Returns:
        The number of batches used (0 if the model has no trainable
        BatchNorm layer; `data` is then not read).

    Raises:
        ValueError: `data` yields no batch, or a layer has `renorm=True`.

    Example:

    >>> model = keras.Sequential([keras.Input((2,)),
    ...                           keras.layers.BatchNormalization()])
    >>> x = np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0], [6.0, 7.0]])
    >>> recompute_batchnorm(model, [x[:2], x[2:]])
    2
    >>> np.asarray(model.layers[0].moving_mean).tolist()
    [3.0, 4.0]

    Reference:
    - Izmailov, Podoprikhin, Garipov, Vetrov and Wilson, "Averaging
      Weights Leads to Wider Optima and Better Generalization", UAI 2018,
      Section 3.2 (batch normalization).
    """
    layers = batchnorm_layers(model)
    if not layers:
        return 0
    renorm = [layer.name for layer in layers if layer.renorm]
    if renorm:
        raise ValueError(
            "The statistics of a BatchNormalization layer with "
            f"`renorm=True` are not recomputed here. Received: model "
            f"'{model.name}' with renorm layers {renorm}"
        )
    statistics = {
        id(v) for layer in layers
        for v in (layer.moving_mean, layer.moving_variance)
    }
    others = [
        v for v in model.non_trainable_variables if id(v) not in statistics
    ]
    saved = [keras.ops.convert_to_numpy(v) for v in others]
    momenta = [layer.momentum for layer in layers]
    used = 0
    try:
        with _no_grad():
            for batch in _batches(data):
                if max_batches is not None and used >= max_batches:
                    break
                x, _, _ = keras.utils.unpack_x_y_sample_weight(batch)
                used += 1
                for layer in layers:
                    if used == 1:
                        mean, variance = layer.moving_mean, layer.moving_variance
                        mean.assign(keras.ops.zeros(mean.shape, mean.dtype))
                        variance.assign(
                            keras.ops.ones(variance.shape, variance.dtype)
                        )
                    layer.momentum = (used - 1) / used
                model(x, training=True)
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
        for variable, value in zip(others, saved):
            variable.assign(value)
    if not used:
        raise ValueError(
            "Argument `data` yields no batch, so the BatchNorm statistics "
            "cannot be recomputed (a one-shot iterator used up already?). "
            f"Received: data={data!r}"
        )
    return used


def _batches(data):
    """An iterator over `data`; a `tf.data.Dataset`'s as NumPy arrays
    outside TensorFlow."""
    if keras.backend.backend() != "tensorflow" and hasattr(
        data, "as_numpy_iterator"
    ):
        return data.as_numpy_iterator()
    return iter(data)


def _no_grad():
    """PyTorch: no autograd graph for the statistics pass."""
    if keras.backend.backend() == "torch":
        import torch

        return torch.no_grad()
    return contextlib.nullcontext()
