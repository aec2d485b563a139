"""Noise maths of S-SGD, as pure functions of tensors.

S-SGD (Sung et al., Eq. 3) perturbs each selected variable `W` by a random
vector `n` of fixed length, `||n||_2 = noise_level * ||W||_2`, and measures the
gradient at `W + n` and at `W - n`. The functions here know nothing about
models or training loops; they map tensors to tensors.
"""

import math

from keras import ops
from keras import random


def l2_norm(x):
    """The L2 (Frobenius) norm of a tensor of any rank, as a scalar."""
    return ops.sqrt(ops.sum(ops.square(x)))


def scale_to_norm(direction, norm):
    """Rescales `direction` so that its L2 norm equals `norm`.

    A zero `direction` stays zero instead of becoming NaN.
    """
    length = l2_norm(direction)
    scale = ops.where(length > 0, norm / ops.maximum(length, 1e-30), 0.0)
    return direction * ops.cast(scale, direction.dtype)


def symmetric_noise(weights, noise_level, seed):
    """Draws one S-SGD noise tensor per weight tensor.

    For each `W` in `weights` the noise is `n = noise_level * ||W|| * u / ||u||`
    with `u` standard normal, so its direction is uniform on the sphere and
    its length is fixed. All directions come from a single draw of a normal
    vector, split per weight (one random-number op per step). The maths runs in
    float32 and the result is cast back to each weight's dtype.

    Args:
        weights: list of tensors, the current values `W`.
        noise_level: float or scalar tensor, the noise length relative to each
            weight's L2 norm.
        seed: int or `keras.random.SeedGenerator`, passed to
            `keras.random.normal`.

    Returns:
        A list of tensors `n`, one per weight, with the weights' shapes.

    Example:

    >>> w = [keras.ops.ones((3, 4))]
    >>> n = symmetric_noise(w, 0.5, seed=1)
    >>> float(l2_norm(n[0]))  # 0.5 * sqrt(12)
    1.732...

    Reference:
    - Sung et al., "S-SGD: Symmetrical Stochastic Gradient Descent for
      Reaching Flat Minima in Deep Neural Network Training", Section 3.1.
    """
    if not weights:
        return []
    sizes = [math.prod(w.shape) for w in weights]
    flat = random.normal((sum(sizes),), dtype="float32", seed=seed)
    level = ops.cast(noise_level, "float32")
    noise = []
    offset = 0
    for w, size in zip(weights, sizes):
        u = ops.reshape(flat[offset : offset + size], ops.shape(w))
        offset += size
        n = scale_to_norm(u, level * l2_norm(ops.cast(w, "float32")))
        noise.append(ops.cast(n, w.dtype))
    return noise

