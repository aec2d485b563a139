"""Adaptive Sharpness-Aware Minimization (Kwon et al. 2021) as a Keras
model."""

import keras

from keras_ssgd import noise as noise_lib
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
        return noise_lib.adaptive_sharpness_aware_perturbation(
            ascent, weights, self._noise.level, self._eta
        )

    def get_config(self):
        config = super().get_config()
        config["eta"] = self._eta
        return config
