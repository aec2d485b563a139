"""SmoothOut (Wen et al. 2018): one pass at `W + u`, `u` uniform."""

import keras

from keras_ssgd import noise as noise_lib
from keras_ssgd.baselines.weight_noise import WeightNoiseModel


@keras.saving.register_keras_serializable(package="keras_ssgd")
class SmoothOutModel(WeightNoiseModel):
    """A Keras model trained with SmoothOut (uniform weight noise).

    At every step each element of each selected variable gets independent
    noise from `U(-a, a)`, `a = noise_level * ||W|| / sqrt(size(W))`: the
    bound is relative to the layer's L2 norm (the paper's sigma), and the
    largest allowed noise vector has the S-SGD length `noise_level * ||W||`.
    The gradient at `W + u` updates the clean weights `W` (SmoothOut's
    "denoising": the noise is never kept). One pass per step.

    At the same level the expected noise length is `||W|| * level / sqrt(3)`,
    weaker than S-SGD's fixed `level * ||W||` (paper Section 4.1).

    Args:
        noise_level: float >= 0, the noise bound relative to each variable's
            L2 norm. Defaults to `0.5`.
        noise_filter: callable `variable -> bool` or registered name; `None`
            means `keras_ssgd.filters.kernels`.
        batchnorm_update: accepted for a uniform interface (one pass).
        seed: int or `None`, the seed of the noise. Defaults to `None`.
        **kwargs: passed to `keras.Model`.

    Example:

    ```python
    base = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3)])
    model = keras_ssgd.wrap(base, method="smoothout", noise_level=0.4)
    ```

    Reference:
    - Wen, Wang, Yan, Xu, Wu, Chen and Li, "SmoothOut: Smoothing Out Sharp
      Minima to Improve Generalization in Deep Learning", arXiv:1805.07898.
      Their adaptive variant scales the bound per filter; this one per
      layer, as the S-SGD paper compares them (Fig. 3).
    """

    def _sample(self, weights):
        return noise_lib.uniform_noise(
            weights, self._noise.level, self._noise_seed()
        )
