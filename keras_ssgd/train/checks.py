"""Checks of the user's model against the data, before any training."""

import numpy as np


class ModelMismatch(ValueError):
    """The model cannot train on the data; the message says why."""


def check_model(builder, name, x_sample, input_shape, num_classes):
    """Builds the model once and runs it on a few examples.

    Args:
        builder: `build(input_shape, num_classes, dropout=0.0)`.
        name: str, the model as the user named it (for messages).
        x_sample: array, a few training examples.
        input_shape: tuple, the shape of one example.
        num_classes: int.

    Raises:
        ModelMismatch: the builder fails, returns something else than a
            `keras.Model`, fails on the examples, or does not give one
            logit per class. The message names `name` and the shapes.
    """
    import keras

    try:
        model = builder(tuple(input_shape), num_classes)
    except Exception as error:
        raise ModelMismatch(
            f"--model {name}: building it for inputs of shape "
            f"{tuple(input_shape)} and {num_classes} classes failed: "
            f"{type(error).__name__}: {error}"
        ) from error
    if not isinstance(model, keras.Model):
        raise ModelMismatch(
            f"--model {name}: the builder must return a keras.Model. "
            f"Received: {type(model).__name__}"
        )
    x_sample = np.asarray(x_sample)
    try:
        output = model(x_sample, training=False)
    except Exception as error:
        raise ModelMismatch(
            f"--model {name} does not take the data's inputs: examples of "
            f"shape {tuple(x_sample.shape[1:])} ({x_sample.dtype}) fail: "
            f"{type(error).__name__}: {_first_line(error)}"
        ) from error
    shape = tuple(keras.ops.shape(output)) if not isinstance(
        output, (list, tuple, dict)) else None
    expected = (len(x_sample), num_classes)
    if shape != expected:
        got = shape if shape is not None else f"a {type(output).__name__}"
        raise ModelMismatch(
            f"--model {name} does not match the data: {len(x_sample)} "
            f"examples of shape {tuple(x_sample.shape[1:])} give outputs of "
            f"shape {got}; the data has {num_classes} classes, so the model "
            f"must give one logit per class, shape {expected}"
        )
    return model


def _first_line(error):
    text = str(error).strip().splitlines()
    return text[0] if text else ""
