"""S-SGD's noise, and weight noise's, as pure functions of tensors.

S-SGD (Sung et al., Eq. 3) perturbs each selected variable `W` by a random
vector `n` of fixed length, `||n||_2 = noise_level * ||W||_2`, and measures the
gradient at `W + n` and at `W - n`; weight noise (Eq. 2) measures it at
`W + n` only. The functions here know nothing about models or training
loops; they map tensors to tensors. The other baselines' perturbations
(SmoothOut, DropConnect, ARWP, SAM, ASAM) live with their models, in
`keras_ssgd.baselines`.

The norm is taken per variable: each tensor of `weights` gets its own
direction, scaled to its own norm. The paper takes it per layer (Section
3.1: "the L2 norm of the weights for each layer"). For a Dense or Conv
layer under the default filter (`keras_ssgd.filters.kernels`) the two are
the same, the kernel being the layer's one perturbed variable. They differ
for a layer with several perturbed variables: an LSTM's `kernel` and
`recurrent_kernel` each get noise of `noise_level` times their own norm,
where a per-layer rule would scale one vector over both to `noise_level`
times their joint norm. There is no per-layer option.

Guide: `docs/guides/concepts.md`; what the draw costs: `docs/measured.md`,
"What a step costs (recorded)".
"""

import math

from keras import ops
from keras import random

from keras_ssgd import backends


def split_like(flat, weights, sizes):
    """Yields `(w, part)`: the flat tensor `flat` cut into pieces of
    `sizes` elements, each shaped like its `w` of `weights`."""
    offset = 0
    for w, size in zip(weights, sizes):
        yield w, ops.reshape(flat[offset : offset + size], ops.shape(w))
        offset += size


def l2_norm(x):
    """The L2 (Frobenius) norm of a tensor of any rank, as a scalar.

    `||x|| = sqrt(sum(x ** 2))` over every element.

    Args:
        x: a tensor.

    Returns:
        A scalar tensor.

    Example:

    >>> float(l2_norm(keras.ops.convert_to_tensor([[3.0], [4.0]])))
    5.0
    """
    return ops.sqrt(ops.sum(ops.square(x)))


def scale_to_norm(direction, norm):
    """Rescales `direction` so that its L2 norm equals `norm`.

    `direction * norm / ||direction||`; a zero `direction` stays zero
    instead of becoming NaN.

    Args:
        direction: a tensor.
        norm: float or scalar tensor, the length wanted.

    Returns:
        A tensor of `direction`'s shape and dtype.

    Example:

    >>> d = scale_to_norm(keras.ops.convert_to_tensor([3.0, 4.0]), 10.0)
    >>> keras.ops.convert_to_numpy(d)
    array([6., 8.], dtype=float32)
    """
    length = l2_norm(direction)
    scale = ops.where(length > 0, norm / ops.maximum(length, 1e-30), 0.0)
    return direction * ops.cast(scale, direction.dtype)


# The distributions of the noise direction `symmetric_noise` can draw.
DISTRIBUTIONS = ("gaussian", "rademacher")
# Random bits taken from each drawn integer (`randint` in `[0, 2**16)`) by
# the Rademacher draw: a power-of-two range, so every bit is a fair coin on
# every backend.
_BITS_PER_WORD = 16


def symmetric_noise(weights, noise_level, seed, distribution="gaussian"):
    """Draws one S-SGD noise tensor per weight tensor.

    For each `W` in `weights`, a random direction of fixed length
    `||n|| = noise_level * ||W||` (up to float32 rounding), drawn with
    `distribution`:

    - `"gaussian"` (the default): `n = noise_level * ||W|| * u / ||u||`,
      `u` standard normal, a direction uniform on the sphere. One normal
      draw of the weights' total size serves all weights.
    - `"rademacher"`: `n = noise_level * ||W|| * s / sqrt(size(W))`, `s`
      independent random signs (`+1` or `-1`, each with probability 1/2),
      a uniformly chosen vertex of the cube. Its mean and covariance are
      the Gaussian direction's, but it is not rotation invariant: every
      element of `n` has the same magnitude. Each random 16-bit integer
      drawn gives 16 signs (one draw of about `size / 16` integers for all
      weights).

    The two distributions give different noise streams for the same seed.
    The maths runs in float32 and the result is cast back to each weight's
    dtype. A zero weight gets zero noise.

    Args:
        weights: list of tensors, the current values `W`.
        noise_level: float or scalar tensor, the noise length relative to each
            weight's L2 norm.
        seed: int or `keras.random.SeedGenerator`, passed to
            `keras.random.normal` (`"gaussian"`) or `keras.random.randint`
            (`"rademacher"`).
        distribution: `"gaussian"` or `"rademacher"`, the distribution of
            the direction (see above). Defaults to `"gaussian"`.

    Returns:
        A list of tensors `n`, one per weight, with the weights' shapes.

    Raises:
        ValueError: `distribution` is not one of `DISTRIBUTIONS`.

    Example:

    >>> w = [keras.ops.ones((3, 4))]
    >>> n = symmetric_noise(w, 0.5, seed=1)
    >>> float(l2_norm(n[0]))  # 0.5 * sqrt(12)
    1.732...
    >>> n = symmetric_noise(w, 0.5, seed=1, distribution="rademacher")
    >>> float(keras.ops.max(keras.ops.abs(n[0])))  # every element is +-0.5
    0.5

    Guide: `docs/guides/concepts.md` (`noise_distribution`); what each
    draw costs: `docs/measured.md`, "What a step costs (recorded)".

    Reference:
    - Sung et al., "S-SGD: Symmetrical Stochastic Gradient Descent for
      Reaching Flat Minima in Deep Neural Network Training", Section 3.1
      (the noise has "constant magnitude, but randomly generated"
      directions; the paper does not name the direction's distribution).
    """
    check_distribution(distribution)
    if not weights:
        return []
    level = ops.cast(noise_level, "float32")
    if distribution == "rademacher":
        return _rademacher(weights, level, seed)
    sizes = [math.prod(w.shape) for w in weights]
    backend = backends.current()
    with backend.scope("ssgd_draw"):
        # `keras.random.normal`'s numbers, drawn the backend's fastest way.
        flat = backend.normal(sum(sizes), seed)
    with backend.scope("ssgd_scale"):
        return [
            ops.cast(
                scale_to_norm(u, level * l2_norm(ops.cast(w, "float32"))),
                w.dtype,
            )
            for w, u in split_like(flat, weights, sizes)
        ]


def check_distribution(value, name="distribution"):
    """Checks that `value` names one of `DISTRIBUTIONS`.

    Args:
        value: the value given.
        name: str, the argument that gave it. Defaults to
            `"distribution"`.

    Returns:
        `value`.

    Raises:
        ValueError: `value` is not one of `DISTRIBUTIONS`; the message names
            the argument and the value.

    Example:

    >>> check_distribution("rademacher")
    'rademacher'
    """
    if not isinstance(value, str) or value not in DISTRIBUTIONS:
        raise ValueError(
            f"Argument `{name}` must be one of {list(DISTRIBUTIONS)}. "
            f"Received: {name}={value!r}"
        )
    return value


def _rademacher(weights, level, seed):
    """`symmetric_noise(..., distribution="rademacher")` in float32.

    One `keras.random.randint` draw of 16-bit integers serves all weights.
    A weight of shape `(..., d)` takes `ceil(d / 16)` integers per row,
    whose bits, lowest first, give the signs of that row (the bits past `d`
    are unused), so no tensor of the weight's size is sliced or copied
    before the signs are taken out.
    """
    layouts = []
    for w in weights:
        shape = tuple(w.shape)
        rows, width = (shape[:-1], shape[-1]) if shape else ((), 1)
        words = -(-width // _BITS_PER_WORD)
        layouts.append((shape, rows, width, words, math.prod(rows) * words))
    drawn = random.randint(
        (sum(layout[-1] for layout in layouts),),
        0, 2**_BITS_PER_WORD, dtype="int32", seed=seed,
    )
    # PyTorch: the same values in its own ops; elsewhere `None`.
    own = backends.current().rademacher(
        weights, level, drawn, layouts, _BITS_PER_WORD
    )
    if own is not None:
        return own
    bit = ops.arange(_BITS_PER_WORD, dtype="int32")
    noise = []
    offset = 0
    for w, (shape, rows, width, words, count) in zip(weights, layouts):
        row_words = ops.reshape(drawn[offset : offset + count], rows + (words, 1))
        offset += count
        size = max(math.prod(shape), 1)
        # Every element is +-a, so ||n|| = a * sqrt(size) exactly.
        a = level * l2_norm(ops.cast(w, "float32")) / math.sqrt(size)
        n = ops.reshape(_signed(row_words, bit, a), rows + (words * _BITS_PER_WORD,))
        if words * _BITS_PER_WORD != width:
            n = n[..., :width]
        noise.append(ops.cast(ops.reshape(n, shape), w.dtype))
    return noise


def _signed(words, bit, a):
    """`+a` where bit `bit` of `words` is set, else `-a` (broadcast), float32.

    `words` has shape `(..., k, 1)` and `bit` is `arange(16)`; the result has
    shape `(..., k, 16)`, bit `b` of word `j` at `[..., j, b]`. The two
    forms below give the same values exactly; each backend takes the one
    that is cheaper there (`SIGNS`, `keras_ssgd.backends.base.Backend`;
    `experiments/benchmarks/noise_cost.py`):

    - `"arithmetic"`: `bit * 2a - a`, which XLA fuses into one loop over
      the elements (JAX).
    - `"sign-bit"`: `_signed_by_sign_bit`, three integer ops per element
      and no select, for backends that run one kernel per op, each a full
      pass over the noise (TensorFlow, PyTorch).
    """
    if backends.current().SIGNS == "arithmetic":
        bits = ops.bitwise_and(ops.right_shift(words, bit), 1)
        return ops.cast(bits, "float32") * (2.0 * a) - a
    return _signed_by_sign_bit(words, bit, a)


def _signed_by_sign_bit(words, bit, a):
    """`_signed` in IEEE-754 bits: bit `b` of each word is shifted into the
    sign position (bit 31) and kept alone, then flips the sign of `-a`
    where it is set (`xor`), so a set bit gives `+a` and a clear one `-a`."""
    sign_bit = ops.convert_to_tensor(-(2**31), dtype="int32")
    signs = ops.bitwise_and(ops.left_shift(words, 31 - bit), sign_bit)
    bitcast = backends.current().bitcast
    minus_a = bitcast(ops.convert_to_tensor(-a, dtype="float32"), "int32")
    return bitcast(ops.bitwise_xor(signs, minus_a), "float32")


def gaussian_noise(weights, noise_level, seed):
    """One-sided weight noise of fixed length (weight noise injection, Eq. 2).

    The same draw as `symmetric_noise` (Gaussian direction):
    `n = noise_level * ||W|| * u / ||u||` per weight, `u` standard normal.
    Weight noise measures the gradient at `W + n` only; S-SGD also measures
    it at `W - n`.

    Args:
        weights: list of tensors, the current values `W`.
        noise_level: float or scalar tensor, `||n|| / ||W||` per weight.
        seed: int or `keras.random.SeedGenerator`.

    Returns:
        A list of tensors `n`, one per weight.

    Example:

    >>> n = gaussian_noise([keras.ops.ones((3, 4))], 0.5, seed=1)
    >>> float(l2_norm(n[0]))  # 0.5 * sqrt(12)
    1.732...

    Guide: `docs/guides/baselines.md`.

    Reference:
    - Sung et al., Section 3.1, Eq. 2.
    """
    return symmetric_noise(weights, noise_level, seed)
