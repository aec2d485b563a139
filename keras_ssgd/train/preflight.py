"""The user's data read and the user's model built on it, before any run.

`preflight` runs once a comparison's arguments are checked
(`plan.make_plan`), so that bad data, or a model that does not fit them,
stop a comparison before any run. The built-in models and datasets are
known to fit and are not loaded.
"""

import dataclasses

import numpy as np

from keras_ssgd.train.checks import ArgumentError


def preflight(config, arrays=None, builder=None):
    """Reads the user's data and builds the user's model, before training.

    For the user's data: reads and checks the arrays (once; the runs reuse
    them) and returns `config` with their digest. For the user's model:
    builds it once on the data's shapes and runs it on two examples. The
    built-in models and datasets are known to fit and are not loaded.
    `arrays` and `builder`, if given, are the data and model (the Python
    API's objects) in place of the ones `config` names.

    Raises:
        ValueError: `arrays.DataError` or `ModelMismatch`; the
            message names the value.
    """
    from keras_ssgd import data as data_lib
    from keras_ssgd.data import arrays as arrays_lib
    from keras_ssgd.data import objects
    from keras_ssgd.train.registry import MODELS

    if arrays is None:  # CIFAR, ImageNet: TensorFlow, or a clear error
        data_lib.require_tensorflow(config.dataset)
    if arrays is None and arrays_lib.is_source(config.dataset):
        arrays = arrays_lib.read(config.dataset, config.data_dir)
    if isinstance(arrays, objects.UserDatasets):
        # The user's own batches, in the user's order.
        if config.validation_split:
            raise arrays_lib.DataError(
                f"--validation-split needs arrays: --dataset "
                f"{config.dataset} returns {arrays.kind} objects (return a "
                "validation set of your own as test, or arrays). Received: "
                f"--validation-split {config.validation_split}"
            )
        config = dataclasses.replace(config, batch_size=arrays.batch_size,
                                     data_order=objects.USER_ORDER)
        _check_model(config, builder, arrays.x_sample, arrays.input_shape,
                     arrays.num_classes)
        return config
    if arrays is not None:
        arrays.split(config.validation_split)  # enough left on both sides
        config = dataclasses.replace(config, data_digest=arrays.digest)
    if builder is None and config.model in MODELS and arrays is None:
        return config
    if arrays is not None:
        x_sample = arrays.x_train[:2]
        input_shape, num_classes = arrays.input_shape, arrays.num_classes
    else:
        data = data_lib.load(config.dataset, batch_size=config.batch_size,
                             seed=0)
        x_sample = next(iter(data.train_eval))[0][:2]
        input_shape, num_classes = data.input_shape, data.num_classes
    _check_model(config, builder, x_sample, input_shape, num_classes)
    return config


def _check_model(config, builder, x_sample, input_shape, num_classes):
    """`check_model`, its message naming the dataset too."""
    from keras_ssgd.train.registry import model_builder

    try:
        model = check_model(builder or model_builder(config.model),
                            config.model, x_sample, input_shape, num_classes)
    except ModelMismatch as error:
        raise ModelMismatch(
            f"{error} (--dataset {config.dataset})"
        ) from error
    if config.weight_decay and regularized(model):
        raise ArgumentError(
            "weight_decay", f"must be 0 for the model {config.model}, which "
            "adds its own penalty to the loss (a weight regularizer or "
            "add_loss): the two would add up", config.weight_decay,
            cli_message=f"must be 0 for --model {config.model}, which adds "
            "its own penalty to the loss (a weight regularizer or "
            "add_loss): the two would add up",
        )


def regularized(model):
    """Whether `model` adds a penalty of its own to the loss (a weight
    regularizer, or `add_loss`): Keras's `model.losses` after a call."""
    return bool(model.losses)


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
