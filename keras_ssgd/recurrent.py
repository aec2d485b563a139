"""Stateful RNNs across the passes of a perturbed step.

Every pass of a step starts from the state the previous batch left (the
variables are not written between passes); the batch's own final state,
averaged over the passes, is what the next batch starts from. For S-SGD
that mean matches the state of the clean weights to first order in the
noise.
"""

import keras
from keras import ops

from keras_ssgd import _keras_compat as compat


def stateful_layers(model):
    """The stateful RNN layers of `model` (not `model` itself)."""
    return [
        layer for layer in compat.flatten_layers(model, include_self=False)
        if getattr(layer, "stateful", False)
    ]


def states(model):
    """The state variables of `model`'s stateful RNN layers.

    Keras keeps them out of `non_trainable_variables`, so a functional
    pass records their new values in its scope and nowhere else.
    """
    found = []
    for layer in compat.flatten_layers(model):
        if getattr(layer, "stateful", False) and getattr(
            layer, "states", None
        ) is not None:
            found.extend(keras.tree.flatten(layer.states))
    return found


class Carry:
    """The stateful RNN states of the step in progress, and the values each
    pass left in them (a plain object: Keras must not track these)."""

    def __init__(self):
        self.variables = []
        self.passes = []

    def start(self, variables):
        """Starts a step whose passes leave values in `variables`."""
        self.variables, self.passes = variables, []

    def record(self, new_value):
        """Keeps the values one pass left (`new_value(variable)`)."""
        if self.variables:
            self.passes.append([new_value(v) for v in self.variables])

    def finish(self):
        """Sets each state to the mean of the passes' values, and ends the
        step."""
        variables, passes = self.variables, self.passes
        self.variables, self.passes = [], []
        for i, variable in enumerate(variables):
            values = [p[i] for p in passes if p[i] is not None]
            if values:
                variable.assign(ops.mean(ops.stack(values), axis=0))
