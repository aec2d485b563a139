"""S-SGD's noise, and weight noise's, as pure functions of tensors.

S-SGD (Sung et al., Eq. 3) perturbs each selected variable `W` by a random
vector `n` of fixed length, `||n||_2 = noise_level * ||W||_2`, and measures the
gradient at `W + n` and at `W - n`; weight noise (Eq. 2) measures it at
`W + n` only. The functions here know nothing about models or training
loops; they map tensors to tensors. The noise of the other baselines is
drawn here too (SmoothOut, DropConnect, ARWP); SAM's and ASAM's ascent
steps live with their models (`keras_ssgd.baselines.sam`, `.asam`).

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


def _split(flat, weights, sizes):
    """Yields `(w, part)`: `flat` cut into pieces shaped like `weights`."""
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
    flat = random.normal((sum(sizes),), dtype="float32", seed=seed)
    return [
        ops.cast(scale_to_norm(u, level * l2_norm(ops.cast(w, "float32"))), w.dtype)
        for w, u in _split(flat, weights, sizes)
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


def uniform_noise(weights, noise_level, seed):
    """SmoothOut noise: independent uniform noise, bounded per layer.

    Each element of `n` is drawn from `U(-a, a)`, with
    `a = noise_level * ||W|| / sqrt(size(W))`: the largest noise vector the
    rule allows (every element at `+-a`) has the S-SGD length
    `noise_level * ||W||`, and the expected length is
    `noise_level * ||W|| / sqrt(3)` (weaker than S-SGD's at the same level,
    as the paper notes, Section 4.1).

    Args:
        weights: list of tensors, the current values `W`.
        noise_level: float or scalar tensor, the bound relative to each
            weight's L2 norm.
        seed: int or `keras.random.SeedGenerator`.

    Returns:
        A list of tensors `n`, one per weight.

    Example:

    >>> n = uniform_noise([keras.ops.ones((4, 4))], 0.5, seed=1)
    >>> float(keras.ops.max(keras.ops.abs(n[0]))) <= 0.5  # a = 0.5 * 4 / 4
    True

    Guide: `docs/guides/baselines.md`.

    Reference:
    - Wen et al., "SmoothOut: Smoothing Out Sharp Minima to Improve
      Generalization in Deep Learning", 2018 (adaptive SmoothOut scales the
      bound by the weights' norm; here per layer, the paper's sigma).
    - Sung et al., Section 4.1 and Fig. 3.
    """
    if not weights:
        return []
    sizes = [math.prod(w.shape) for w in weights]
    flat = random.uniform(
        (sum(sizes),), minval=-1.0, maxval=1.0, dtype="float32", seed=seed
    )
    level = ops.cast(noise_level, "float32")
    return [
        ops.cast(u * (level * l2_norm(ops.cast(w, "float32")) / math.sqrt(size)), w.dtype)
        for (w, u), size in zip(_split(flat, weights, sizes), sizes)
    ]


def dropconnect_scales(weights, rate, seed):
    """DropConnect masks: each weight is kept with probability `1 - rate`.

    `scale = mask / (1 - rate)`: 0 for a dropped weight, `1 / (1 - rate)`
    for a kept one. The dropped weights `W * scale` have expectation `W`,
    so evaluation uses `W` itself (inverted scaling, as Keras's `Dropout`
    does for units), and the gradient with respect to `W` is the gradient
    at `W * scale` times `scale`. The perturbation `W * scale - W` has
    expected squared length `rate / (1 - rate) * ||W||^2`.

    Args:
        weights: list of tensors, the current values `W` (for the shapes and
            dtypes).
        rate: float or scalar tensor in `[0, 1)`, the drop probability.
        seed: int or `keras.random.SeedGenerator`.

    Returns:
        A list of tensors of the weights' shapes and dtypes.

    Example:

    >>> s = dropconnect_scales([keras.ops.ones((2, 3))], 0.5, seed=1)
    >>> bool(np.isin(keras.ops.convert_to_numpy(s[0]), [0.0, 2.0]).all())
    True

    Guide: `docs/guides/baselines.md`.

    Reference:
    - Wan et al., "Regularization of Neural Networks using DropConnect",
      ICML 2013.
    """
    if not weights:
        return []
    sizes = [math.prod(w.shape) for w in weights]
    flat = random.uniform((sum(sizes),), dtype="float32", seed=seed)
    rate = ops.cast(rate, "float32")
    kept = ops.where(flat >= rate, 1.0 / (1.0 - rate), 0.0)
    return [ops.cast(s, w.dtype) for w, s in _split(kept, weights, sizes)]


def filter_sums(x):
    """`x` summed per filter and broadcast back.

    Over every axis but the last for a tensor of 2 or more dimensions (a
    Keras Dense or Conv kernel keeps its output filters on the last axis);
    elementwise for a vector or scalar (a bias, a BatchNorm scale).

    Args:
        x: a tensor.

    Returns:
        A tensor that broadcasts against `x`.

    Example:

    >>> keras.ops.convert_to_numpy(filter_sums(keras.ops.ones((2, 3))))
    array([[2., 2., 2.]], dtype=float32)
    """
    if len(x.shape) < 2:
        return x
    return ops.sum(x, axis=tuple(range(len(x.shape) - 1)), keepdims=True)


def adaptive_random_perturbation(weights, histories, std, eta, seed):
    """ARWP's noise: Gaussian, its scale set per filter by the weights and
    damped where the gradient history is large.

    For a tensor of 2 or more dimensions each element of filter `f` (the
    last axis) gets the standard deviation `std * ||W_f||`; a vector (a
    bias, a BatchNorm scale) gets `std * ||W||` for every element. Each
    element is then divided by `sqrt(1 + eta * F)`, `F` the gradient
    history `histories` summed per filter (elementwise for a vector): a
    direction along which the loss has been steep gets less noise.
    Without history (`F = 0`) it is random weight perturbation with the
    filter-wise scale (RWP).

    Args:
        weights: list of tensors, the current values `W`.
        histories: list of tensors (the decayed sums of squared
            gradients, shaped as the weights), or `None` for none yet.
        std: float or scalar tensor >= 0, the noise scale relative to each
            filter's norm (the authors' `std`, this package's `sigma`).
        eta: float >= 0, how strongly the history damps the noise.
        seed: int or `keras.random.SeedGenerator`.

    Returns:
        A list of tensors `e`, one per weight.

    Example:

    >>> w = [keras.ops.ones((2, 3))]
    >>> e = adaptive_random_perturbation(w, None, 0.01, 1.0, seed=1)
    >>> tuple(e[0].shape)
    (2, 3)

    Guide: `docs/guides/baselines.md`.

    Reference:
    - Li, Yang, Huang and Liu, "Revisiting Random Weight Perturbation for
      Efficiently Improving Generalization", TMLR 2024, Section 4
      (adaptive RWP); the authors' code, nblt/mARWP.
    """
    if histories is None:
        histories = [None] * len(weights)
    std = ops.cast(std, "float32")
    out = []
    for w, history in zip(weights, histories):
        w32 = ops.cast(w, "float32")
        scale = ops.sqrt(filter_sums(ops.square(w32)))
        if len(w.shape) < 2:
            scale = ops.sqrt(ops.sum(ops.square(w32)))
        e = random.normal(ops.shape(w), seed=seed) * std * scale
        if history is not None:
            e = e / ops.sqrt(1.0 + eta * filter_sums(
                ops.cast(history, "float32")))
        out.append(ops.cast(e, w.dtype))
    return out
