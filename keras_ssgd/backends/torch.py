"""The PyTorch part of the perturbed step: eager passes and autograd.

As in Keras's torch trainer the step runs eagerly: each pass is one forward
pass and one backward pass, and a conditional is a Python `if`.
"""

import math

import keras
import torch

from keras_ssgd import backends


# How the Rademacher noise takes its signs (`keras_ssgd.noise._signed`).
SIGNS = "sign-bit"


def bitcast(x, dtype):
    """The bits of `x` read as `dtype` of the same width."""
    return x.view(getattr(torch, dtype))


def rademacher(weights, level, drawn, layouts, bits_per_word):
    """`keras_ssgd.noise`'s Rademacher noise after the draw, in PyTorch's
    own ops.

    The same operations as the backend-neutral loop, with the same values
    bit for bit (`tests/core/test_noise.py`), without `keras.ops`'s per-call
    conversions: PyTorch runs eagerly, so each `keras.ops` call costs its
    dispatch on every step (on one CPU core, for the 784-512-512-10 MLP's
    kernels, the draw took 3.4 ms through `keras.ops` and 2.3 ms here).
    """
    shift = 31 - torch.arange(bits_per_word, dtype=torch.int32, device=drawn.device)
    noise = []
    offset = 0
    for w, (shape, rows, width, words, count) in zip(weights, layouts):
        row_words = drawn[offset : offset + count].reshape(rows + (words, 1))
        offset += count
        size = max(math.prod(shape), 1)
        w32 = w.to(torch.float32)
        a = level * torch.sqrt(torch.sum(torch.square(w32))) / math.sqrt(size)
        # `noise._signed_by_sign_bit`: bit b to the sign position, xor into -a.
        signs = torch.bitwise_and(torch.bitwise_left_shift(row_words, shift), -(2**31))
        n = torch.bitwise_xor(signs, (-a).view(torch.int32)).view(torch.float32)
        n = n.reshape(rows + (words * bits_per_word,))
        if words * bits_per_word != width:
            n = n[..., :width]
        noise.append(n.reshape(shape).to(w.dtype))
    return noise


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


def loss_and_gradients(loss_fn, variables):
    """`(loss, gradients)` of `loss_fn()` by autograd, the gradients Keras's
    guide to a custom `train_step` reads after `loss.backward()` (the
    level-0 path of `SymmetricSGDModel.symmetric_gradients`)."""
    loss = loss_fn()
    gradients = torch.autograd.grad(
        loss, [v.value for v in variables], allow_unused=True
    )
    return loss.detach(), list(gradients)


def loss_and_gradients_at(loss_fn, variables, noise_variables, values):
    """`loss_fn()` with `noise_variables` at `values`, then its backward
    pass: `(loss, gradients, new_value)` as the TensorFlow version
    returns them."""
    values = [v.detach().requires_grad_(True) for v in values]
    mapping = list(zip(noise_variables, values))
    perturbed = {id(v) for v in noise_variables}
    mapping += [
        (v, v.value.detach().requires_grad_(True)) for v in variables
        if id(v) not in perturbed and getattr(v, "regularizer", None)
    ]
    with keras.StatelessScope(
        state_mapping=mapping, collect_losses=True
    ) as scope:
        loss = loss_fn()
    targets_by_id = {id(v): value for v, value in mapping}
    targets = [targets_by_id.get(id(v), v.value) for v in variables]
    gradients = torch.autograd.grad(loss, targets, allow_unused=True)
    return loss.detach(), list(gradients), scope.get_current_value


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


# Steps run on the variables (no state threaded through a pure function).
STATELESS = False


def mesh_axis():
    """No `keras.distribution` batch axis: its per-device step is JAX's."""
    return None
