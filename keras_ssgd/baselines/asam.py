"""Adaptive Sharpness-Aware Minimization (Kwon et al. 2021) as a Keras
model."""

import keras
from keras import ops

from keras_ssgd.baselines.sam import SharpnessAwareModel
from keras_ssgd.validation import check_noise_level


@keras.saving.register_keras_serializable(package="keras_ssgd")
class AdaptiveSharpnessAwareModel(SharpnessAwareModel):
    """A Keras model trained with ASAM, Adaptive Sharpness-Aware
    Minimization.

    SAM's step (`keras_ssgd.SharpnessAwareModel`) with the ball rescaled
    elementwise by the weights: each step measures the gradient `g` at `W`,
    moves to

        W + e,  e = rho * T^2 g / ||T g||,  T = |W| + eta (elementwise),

    (`||T g||` over all selected variables), measures the gradient there,
    and updates `W` with it. `e` is the worst point of the ball
    `||T^{-1} e|| <= rho` to first order. Under a rescaling that leaves
    the network's function unchanged (a ReLU layer's weights times `c`, the
    next layer's divided by `c`) each layer's step scales with its weights
    (for `eta = 0`), so the sharpness minimized does not change. `eta`
    keeps a zero weight movable; with `eta = 0` the step is davda54/sam's
    `adaptive=True`.

    Everything else is SAM's: two passes per step, the reported loss and
    metrics are those at `W + e`, `batchnorm_update`, and every trainable
    variable is selected by default, each with its own `T`, biases
    included, as in davda54/sam (the authors' code, SamsungLabs/ASAM,
    scales the PyTorch parameters named `weight` and leaves `T = 1` on the
    biases and BatchNorm offsets).

    Args:
        rho: float >= 0, the radius in the rescaled coordinates (0 trains
            plain SGD); it is not on SAM's scale. Defaults to `0.5`, the
            authors' value for CIFAR-10 (1.0 for CIFAR-100).
        eta: float >= 0, added to `|W|` in `T`. Defaults to `0.01`, the
            default of the authors' code.
        noise_filter: callable `variable -> bool` or registered name; `None`
            means every trainable variable
            (`keras_ssgd.filters.all_trainable`).
        batchnorm_update: `"both"` or `"first"`, as for SAM. Defaults to
            `"both"`.
        **kwargs: passed to `keras.Model`.

    Example:

    ```python
    base = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3)])
    model = keras_ssgd.wrap(base, method="asam", rho=0.5, eta=0.01)
    model.compile(
        optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    x, y = np.random.rand(64, 8), np.random.randint(0, 3, size=64)
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    ```

    Guide: `docs/guides/baselines.md`.

    Reference:
    - Kwon, Kim, Park and Choi, "ASAM: Adaptive Sharpness-Aware
      Minimization for Scale-Invariant Learning of Deep Neural Networks",
      ICML 2021, Algorithm 1.
    - davda54/sam (`SAM(..., adaptive=True)`), the `eta = 0` case.
    """

    def __init__(
        self,
        *args,
        rho=0.5,
        eta=0.01,
        noise_filter=None,
        batchnorm_update="both",
        **kwargs,
    ):
        eta = check_noise_level(eta, "eta")
        super().__init__(
            *args,
            rho=rho,
            noise_filter=noise_filter,
            batchnorm_update=batchnorm_update,
            **kwargs,
        )
        self._eta = eta

    @property
    def eta(self):
        """The `eta` of `T = |W| + eta`, a float (fixed at construction)."""
        return self._eta

    def _ascent_steps(self, ascent, weights):
        return adaptive_sharpness_aware_perturbation(
            ascent, weights, self._noise.level, self._eta
        )

    def get_config(self):
        config = super().get_config()
        config["eta"] = self._eta
        return config


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
    >>> round(float(keras.ops.sqrt(keras.ops.sum((e[0] / t) ** 2))), 4)
    0.5
    >>> e = adaptive_sharpness_aware_perturbation(g, w, rho=0.5, eta=0.0)
    >>> np.round(keras.ops.convert_to_numpy(e[0]), 4)  # 0.5 * W^2 / ||W||
    array([[0.1325, 0.5298],
           [0.0331, 1.1921]], dtype=float32)

    Guide: `docs/guides/baselines.md`.

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
