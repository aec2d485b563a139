"""Noise maths of S-SGD, as pure functions of tensors.

S-SGD (Sung et al., Eq. 3) perturbs each selected variable `W` by a random
vector `n` of fixed length, `||n||_2 = noise_level * ||W||_2`, and measures the
gradient at `W + n` and at `W - n`. The functions here know nothing about
models or training loops; they map tensors to tensors.

The norm is taken per variable: each tensor of `weights` gets its own
direction, scaled to its own norm. The paper takes it per layer (Section
3.1: "the L2 norm of the weights for each layer"). For a Dense or Conv
layer under the default filter (`keras_ssgd.filters.kernels`) the two are
the same, the kernel being the layer's one perturbed variable. They differ
for a layer with several perturbed variables: an LSTM's `kernel` and
`recurrent_kernel` each get noise of `noise_level` times their own norm,
where a per-layer rule would scale one vector over both to `noise_level`
times their joint norm. There is no per-layer option.
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
    """The L2 (Frobenius) norm of a tensor of any rank, as a scalar."""
    return ops.sqrt(ops.sum(ops.square(x)))


def scale_to_norm(direction, norm):
    """Rescales `direction` so that its L2 norm equals `norm`.

    A zero `direction` stays zero instead of becoming NaN.
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

    For each `W` in `weights` the noise has the fixed length
    `||n|| = noise_level * ||W||` (up to float32 rounding) and a random
    direction, drawn with `distribution`:

    - `"gaussian"` (the default): `n = noise_level * ||W|| * u / ||u||`
      with `u` standard normal, so the direction is uniform on the sphere
      (rotation invariant). All directions come from a single draw of a
      normal vector of the weights' total size, split per weight. On a CPU
      this draw costs about as much per number as a forward and backward
      pass of a dense layer (see `experiments/benchmarks/noise_cost.py`).
    - `"rademacher"`: `n = noise_level * ||W|| * s / sqrt(size(W))` with
      `s` independent random signs (`+1` or `-1`, each with probability
      1/2), so the direction is a uniformly chosen vertex of the cube, whose
      length is known without computing `||s||`. Its mean is 0 and its
      covariance is `(noise_level * ||W||)**2 / size(W)` times the
      identity, as for the Gaussian direction, but it is not rotation
      invariant: every element of `n` has the same magnitude. It takes 16
      signs from each random 16-bit integer drawn (one draw of about
      `size / 16` integers for all weights), and is cheaper to draw than
      the Gaussian direction on TensorFlow and JAX. The measured figures,
      per backend, are in the measured figures page (`docs/measured.md`,
      "Step time and memory"), written by
      `experiments/benchmarks/noise_cost.py`.

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
    """Returns `value` if it is one of `DISTRIBUTIONS`, else a `ValueError`
    naming the argument `name` and the value."""
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
    own = getattr(backends.current(), "rademacher", None)
    if own is not None:  # PyTorch: the same values in its own ops
        return own(weights, level, drawn, layouts, _BITS_PER_WORD)
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
    forms below give the same values exactly; each is the cheaper where it
    is used (`experiments/benchmarks/noise_cost.py`):

    - JAX: `bit * 2a - a`; XLA fuses the shift, mask and arithmetic into one
      loop over the elements.
    - TensorFlow and PyTorch run one kernel per op, each a full pass over the
      noise, so fewer full-size ops win: `_signed_by_sign_bit` writes each
      element with three integer ops and no select (on one CPU core, for the
      0.67M signs of a 784-512-512-10 MLP: 1.4 ms against 2.0 ms for a mask,
      comparison and select on TensorFlow, 0.5 ms against 5.0 ms on PyTorch).

    Each backend module says which (`SIGNS`, in `keras_ssgd.backends`).
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

    The same draw as `symmetric_noise`: `n = noise_level * ||W|| * u / ||u||`
    per weight, `u` standard normal. Weight noise measures the gradient at
    `W + n` only; S-SGD also measures it at `W - n`.

    Args:
        weights: list of tensors, the current values `W`.
        noise_level: float or scalar tensor, `||n|| / ||W||` per weight.
        seed: int or `keras.random.SeedGenerator`.

    Returns:
        A list of tensors `n`, one per weight.

    Reference:
    - Sung et al., Section 3.1, Eq. 2.
    """
    return symmetric_noise(weights, noise_level, seed)


def uniform_noise(weights, noise_level, seed):
    """SmoothOut noise: independent uniform noise, bounded per layer.

    Each element of `n` is drawn from `U(-a, a)` with
    `a = noise_level * ||W|| / sqrt(size(W))`, so the largest noise vector the
    rule allows (every element at `+-a`) has length `noise_level * ||W||`,
    the S-SGD length, and each element's size is uniform between 0 and the
    bound. The expected length is `noise_level * ||W|| / sqrt(3)`: at the
    same level, SmoothOut's noise is weaker than S-SGD's, as the paper notes
    (Section 4.1).

    Args:
        weights: list of tensors, the current values `W`.
        noise_level: float or scalar tensor, the bound relative to each
            weight's L2 norm.
        seed: int or `keras.random.SeedGenerator`.

    Returns:
        A list of tensors `n`, one per weight.

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

    Returns one tensor per weight holding `mask / (1 - rate)`: 0 for a
    dropped weight, `1 / (1 - rate)` for a kept one. The dropped weights are
    `W * scale`, whose expectation is `W`, so evaluation uses `W` itself
    (inverted scaling, as Keras's `Dropout` does for units), and the
    gradient with respect to `W` is the gradient at `W * scale` times
    `scale`. The perturbation `W * scale - W` has expected squared length
    `rate / (1 - rate) * ||W||^2`.

    Args:
        weights: list of tensors, the current values `W` (for the shapes and
            dtypes).
        rate: float or scalar tensor in `[0, 1)`, the drop probability.
        seed: int or `keras.random.SeedGenerator`.

    Returns:
        A list of tensors of the weights' shapes and dtypes.

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


def sharpness_aware_perturbation(gradients, rho):
    """SAM's ascent step: `e = rho * g / ||g||`, `||g||` over all tensors.

    Args:
        gradients: list of gradient tensors (or `None`, kept as zero steps).
        rho: float or scalar tensor >= 0, the radius.

    Returns:
        A list of tensors `e`, one per gradient (`None` stays `None`), with
        `||e|| = rho` over the whole list. A zero or non-finite gradient
        norm gives `e = 0`: the step then measures the plain gradient, so a
        mixed-precision loss scale that overflowed can still be lowered.

    Reference:
    - Foret, Kleiner, Mobahi and Neyshabur, "Sharpness-Aware Minimization
      for Efficiently Improving Generalization", ICLR 2021, Eq. 2.
    """
    present = [ops.cast(g, "float32") for g in gradients if g is not None]
    if not present:
        return [None for _ in gradients]
    norm = ops.sqrt(sum(ops.sum(ops.square(g)) for g in present))
    rho = ops.cast(rho, "float32")
    usable = ops.logical_and(norm > 0, ops.isfinite(norm))
    scale = ops.where(usable, rho / ops.maximum(norm, 1e-30), 0.0)
    steps = []
    for g in gradients:
        if g is None:
            steps.append(None)
            continue
        e = ops.where(usable, ops.cast(g, "float32") * scale, 0.0)
        steps.append(ops.cast(e, g.dtype))
    return steps


def adaptive_sharpness_aware_perturbation(gradients, weights, rho, eta=0.01):
    """ASAM's ascent step: `e = rho * T^2 g / ||T g||`, `T = |W| + eta`.

    `T` is the elementwise normalization operator of ASAM (the paper's
    `T_w`), so the step is taken in a ball of radius `rho` in the
    coordinates `T^{-1} W`, where the sharpness does not change when a
    layer's weights are rescaled: `||T^{-1} e|| = rho`. `||T g||` is taken
    over all tensors together. With `eta = 0` this is the adaptive SAM of
    davda54/sam, `e = rho * W^2 g / ||(|W| g)||`.

    Args:
        gradients: list of gradient tensors (or `None`, kept as zero steps).
        weights: list of tensors, the current values `W`, one per gradient
            (the entry of a `None` gradient is not read).
        rho: float or scalar tensor >= 0, the radius.
        eta: float or scalar tensor >= 0, added to `|W|` so that a zero
            weight can still move. Defaults to `0.01`, the default of the
            authors' code.

    Returns:
        A list of tensors `e`, one per gradient (`None` stays `None`), of
        the gradients' dtypes. A zero or non-finite norm `||T g||` gives
        `e = 0`: the step then measures the plain gradient, as
        `sharpness_aware_perturbation` does.

    Raises:
        ValueError: `gradients` and `weights` differ in length.

    Example:

    >>> w = [keras.ops.convert_to_tensor([[1.0, -2.0], [0.5, 3.0]])]
    >>> g = [keras.ops.ones((2, 2))]
    >>> e = adaptive_sharpness_aware_perturbation(g, w, rho=0.5)
    >>> t = keras.ops.abs(w[0]) + 0.01
    >>> round(float(l2_norm(e[0] / t)), 4)  # radius rho in T's coordinates
    0.5
    >>> e = adaptive_sharpness_aware_perturbation(g, w, rho=0.5, eta=0.0)
    >>> np.round(keras.ops.convert_to_numpy(e[0]), 4)  # 0.5 * W^2 / ||W||
    array([[0.1325, 0.5298],
           [0.0331, 1.1921]], dtype=float32)

    Reference:
    - Kwon, Kim, Park and Choi, "ASAM: Adaptive Sharpness-Aware
      Minimization for Scale-Invariant Learning of Deep Neural Networks",
      ICML 2021, Algorithm 1, with the elementwise `T_w = |w| + eta`.
    """
    if len(gradients) != len(weights):
        raise ValueError(
            "Arguments `gradients` and `weights` must have the same length. "
            f"Received: {len(gradients)} gradients and {len(weights)} weights"
        )
    eta = ops.cast(eta, "float32")
    # Per gradient: `(T, T g)` in float32, `None` for a `None` gradient.
    scaled = []
    for g, w in zip(gradients, weights):
        if g is None:
            scaled.append(None)
            continue
        t = ops.abs(ops.cast(w, "float32")) + eta
        scaled.append((t, t * ops.cast(g, "float32")))
    present = [s for s in scaled if s is not None]
    if not present:
        return [None for _ in gradients]
    norm = ops.sqrt(sum(ops.sum(ops.square(tg)) for _, tg in present))
    rho = ops.cast(rho, "float32")
    usable = ops.logical_and(norm > 0, ops.isfinite(norm))
    scale = ops.where(usable, rho / ops.maximum(norm, 1e-30), 0.0)
    steps = []
    for g, s in zip(gradients, scaled):
        if s is None:
            steps.append(None)
            continue
        t, tg = s
        e = ops.where(usable, t * tg * scale, 0.0)
        steps.append(ops.cast(e, g.dtype))
    return steps


def filter_sums(x):
    """`x` summed per filter and broadcast back: over every axis but the
    last for a tensor of 2 or more dimensions (a Keras Dense or Conv
    kernel keeps its output filters on the last axis), elementwise for a
    vector or scalar (a bias, a BatchNorm scale)."""
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
