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


def make_train_function(model, make, force):
    """Keras's own (`make`): one step holds both branches."""
    return make(force=force)


def noisy(model):
    """Whether this step perturbs, from the Python level (no device sync)."""
    return model.noise_level > 0


def extra_state(model):
    """Variables the trainer must thread besides the model's: none here."""
    return []


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
    with keras.StatelessScope(state_mapping=mapping) as scope:
        y_pred, loss = backends.forward(model, x, y, sample_weight)
    scaled_loss = model.optimizer.scale_loss(loss)
    perturbed = {id(v): value for v, value in mapping}
    targets = [perturbed.get(id(v), v.value) for v in model.trainable_variables]
    gradients = list(
        torch.autograd.grad(scaled_loss, targets, allow_unused=True)
    )
    return loss.detach(), gradients, y_pred.detach(), scope.get_current_value


def plain_gradients(model, x, y, sample_weight):
    """The plain Keras pass, as Keras's torch trainer computes it."""
    y_pred = model(x, training=True)
    model.zero_grad()
    loss = model.compute_loss(
        x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True
    )
    scaled_loss = model.optimizer.scale_loss(loss)
    variables = model.trainable_variables
    if variables:
        scaled_loss.backward()
    gradients = [v.value.grad for v in variables]
    return loss.detach(), gradients, y_pred.detach()


def cond(pred, true_fn, false_fn, model=None):
    """A Python `if` (the step runs eagerly)."""
    return true_fn() if bool(pred) else false_fn()


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
