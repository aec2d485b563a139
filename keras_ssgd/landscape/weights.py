"""Points in weight space: flatten, compare, combine, evaluate."""

import keras
import numpy as np

from keras_ssgd.batchnorm import recompute_batchnorm


def weights_of(source):
    """`source`'s weights as a list of arrays (`get_weights()` order).

    `source` is a `keras.Model` or a list of arrays (returned as is).
    """
    if isinstance(source, keras.Model):
        return [np.asarray(w) for w in source.get_weights()]
    if isinstance(source, (list, tuple)):
        return [np.asarray(w) for w in source]
    raise TypeError(
        "Weights must be a keras.Model or a list of arrays. Received: "
        f"{type(source).__name__}"
    )


def check_compatible(model, *weight_lists, names=None):
    """Raises ValueError naming the first variable whose shape differs."""
    variables = model.weights
    for index, weights in enumerate(weight_lists):
        label = names[index] if names else f"weights #{index + 1}"
        if len(weights) != len(variables):
            raise ValueError(
                f"{label} has {len(weights)} arrays but model '{model.name}' "
                f"has {len(variables)} weights: the architectures differ."
            )
        for variable, array in zip(variables, weights):
            if tuple(variable.shape) != tuple(np.shape(array)):
                raise ValueError(
                    f"{label} does not fit model '{model.name}': the first "
                    f"mismatching variable is '{variable.path}', shape "
                    f"{tuple(variable.shape)} in the model, "
                    f"{tuple(np.shape(array))} in {label}."
                )


def trainable_mask(model):
    """For each weight in `get_weights()` order: is it trainable?"""
    trainable = {id(v) for v in model.trainable_weights}
    return [id(v) in trainable for v in model.weights]


def flatten(weights, mask):
    """The selected arrays of `weights`, concatenated (float64)."""
    return np.concatenate([
        np.asarray(w, np.float64).reshape(-1)
        for w, keep in zip(weights, mask) if keep
    ])


def unflatten(flat, like, mask):
    """Puts `flat` back into the selected arrays of a copy of `like`."""
    out, offset = [], 0
    for w, keep in zip(like, mask):
        w = np.asarray(w)
        if keep:
            out.append(flat[offset:offset + w.size].reshape(w.shape).astype(w.dtype))
            offset += w.size
        else:
            out.append(w.copy())
    return out


def evaluate_at(model, weights, data, bn_data=None, bn_batches=None):
    """Loads `weights`, optionally recomputes BatchNorm, evaluates.

    Returns a dict with `loss` and, when the model is compiled with
    `"accuracy"`, `accuracy` and `error` (= 1 - accuracy).
    """
    model.set_weights(weights)
    if bn_data is not None:
        recompute_batchnorm(model, bn_data, bn_batches)
    logs = model.evaluate(data, verbose=0, return_dict=True)
    result = {"loss": float(logs["loss"])}
    accuracy = logs.get("accuracy", logs.get("compile_metrics"))
    if isinstance(accuracy, (int, float)):
        result["accuracy"] = float(accuracy)
        result["error"] = 1.0 - float(accuracy)
    return result
