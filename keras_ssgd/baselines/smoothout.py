"""SmoothOut (Wen et al. 2018): one pass at `W + u`, `u` uniform."""

import math

import keras
from keras import ops
from keras import random

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

    Guide: `docs/guides/baselines.md`.

    Reference:
    - Wen, Wang, Yan, Xu, Wu, Chen and Li, "SmoothOut: Smoothing Out Sharp
      Minima to Improve Generalization in Deep Learning", arXiv:1805.07898.
      Their adaptive variant scales the bound per filter; this one per
      layer, as the S-SGD paper compares them (Fig. 3).
    """

    def _sample(self, weights):
        return uniform_noise(
            weights, self._noise.level, self._noise_seed()
        )


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
        ops.cast(
            u * (level * noise_lib.l2_norm(ops.cast(w, "float32"))
                 / math.sqrt(size)),
            w.dtype,
        )
        for (w, u), size in zip(
            noise_lib.split_like(flat, weights, sizes), sizes
        )
    ]
