"""The PyTorch part of the perturbed step: eager passes and autograd.

As in Keras's torch trainer the step runs eagerly: each pass is one forward
pass and one backward pass, and a conditional is a Python `if`.
"""

import keras
import torch

from keras_ssgd import backends


def run_step(model, args, step):
    """`train_step(data)`, run eagerly."""
    return step(*args)


def keras_step(model, args, step):
    """Keras's own `train_step` (`step`) on the trainer's arguments."""
    return step(*args)


def make_train_function(model, make, force):
    """Keras's own (`make`): the step runs eagerly, so `train_step` picks its
    branch from the Python value of the level at every call."""
    return make(force=force)


def measure(model, x, y, sample_weight, noise_variables, values):
    """One pass with `noise_variables` at `values`, then its backward pass.

    Returns `(loss, gradients, y_pred, new_value)` as the TensorFlow
    version does: gradients with respect to `values` for the perturbed
    variables and to the variables for the others.
    """
    # Leaves of their own: the gradient is the one at the perturbed point.
    values = [v.detach().requires_grad_(True) for v in values]
    mapping = list(zip(noise_variables, values))
    # Keras reads a regularized variable from the scope only: the
    # unperturbed ones are mapped to leaves holding their own value.
    mapping += [
        (v, v.value.detach().requires_grad_(True))
        for v in backends.regularized_rest(model, noise_variables)
    ]
    with keras.StatelessScope(
        state_mapping=mapping, collect_losses=True
    ) as scope:
        y_pred, loss = backends.forward(model, x, y, sample_weight)
    scaled_loss = model.optimizer.scale_loss(loss)
    perturbed = {id(v): value for v, value in mapping}
    targets = [perturbed.get(id(v), v.value) for v in model.trainable_variables]
    gradients = list(
        torch.autograd.grad(scaled_loss, targets, allow_unused=True)
    )
    return loss.detach(), gradients, _detach(y_pred), scope.get_current_value


def _detach(y_pred):
    """The predictions, out of the autograd graph (any structure: a model
    may have several outputs)."""
    return keras.tree.map_structure(
        lambda t: t.detach() if isinstance(t, torch.Tensor) else t, y_pred
    )


def after(dependencies, fn, *args):
    """`fn(*args)`: eager execution already runs in program order."""
    return fn(*args)


def dense(gradient):
    return gradient


def num_replicas():
    return 1


def apply_if_finite(model, gradients, finite):
    """Updates the trainable variables, unless `finite` is false."""
    if bool(finite):
        with torch.no_grad():
            model.optimizer.apply(gradients, model.trainable_variables)
