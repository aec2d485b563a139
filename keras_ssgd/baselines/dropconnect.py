"""DropConnect (Wan et al. 2013): one pass with randomly dropped weights."""

import math

import keras
from keras import ops
from keras import random

from keras_ssgd import backends
from keras_ssgd import filters
from keras_ssgd import noise as noise_lib
from keras_ssgd.perturbed import PerturbedModel
from keras_ssgd.validation import check_rate


@keras.saving.register_keras_serializable(package="keras_ssgd")
class DropConnectModel(PerturbedModel):
    """A Keras model trained with DropConnect on its dense kernels.

    At every step each weight of each selected variable is zeroed with
    probability `rate`, and the kept ones are scaled by `1 / (1 - rate)`.
    The gradient at the masked weights updates the full weights `W`;
    evaluation and prediction use `W` (the inverted-scaling form of
    DropConnect, as Keras's `Dropout` is for units).

    DropConnect was made for fully connected layers; the default filter is
    `keras_ssgd.filters.dense_kernels` (the paper found it fails on
    convolutions, Section 5).

    Args:
        rate: float in `[0, 1)`, the probability of dropping each weight.
            Its perturbation has expected length
            `sqrt(rate / (1 - rate)) * ||W||`. Defaults to `0.5`.
        noise_filter: callable `variable -> bool` or registered name; `None`
            means `keras_ssgd.filters.dense_kernels`.
        batchnorm_update: accepted for a uniform interface (one pass).
        seed: int or `None`, the seed of the masks. Defaults to `None`.
        **kwargs: passed to `keras.Model`.

    Example:

    ```python
    base = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3)])
    model = keras_ssgd.wrap(base, method="dropconnect", rate=0.3)
    ```

    Guide: `docs/guides/baselines.md`.

    Reference:
    - Wan, Zeiler, Zhang, LeCun and Fergus, "Regularization of Neural
      Networks using DropConnect", ICML 2013.
    """

    default_noise_filter = staticmethod(filters.dense_kernels)
    level_argument = "rate"

    def __init__(
        self,
        *args,
        rate=0.5,
        noise_filter=None,
        batchnorm_update="both",
        seed=None,
        **kwargs,
    ):
        self._refuse_noise_level(kwargs)
        super().__init__(
            *args,
            noise_level=rate,
            noise_filter=noise_filter,
            batchnorm_update=batchnorm_update,
            seed=seed,
            **kwargs,
        )

    @classmethod
    def check_level(cls, value, name="rate"):
        return check_rate(value, name)

    @property
    def rate(self):
        """The drop probability (the same number as `noise_level`)."""
        return self.noise_level

    @rate.setter
    def rate(self, value):
        self.noise_level = value

    def _perturbed_gradients(self, x, y, sample_weight, noise_variables):
        weights = [v.value for v in noise_variables]
        scales = dropconnect_scales(
            weights, self._noise.level, self._noise_seed()
        )
        loss, gradients, y_pred = self._measure(
            x, y, sample_weight, noise_variables,
            [w * s for w, s in zip(weights, scales)],
            keep_statistics=True,
        )
        # Chain rule through W * scale: dropped weights get no gradient.
        scale_of = {id(v): s for v, s in zip(noise_variables, scales)}
        dense = backends.current().dense
        gradients = [
            g if g is None or id(v) not in scale_of
            else dense(g) * scale_of[id(v)]
            for v, g in zip(self.trainable_variables, gradients)
        ]
        self._track(x, y, sample_weight, loss, [y_pred])
        return loss, gradients


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
    return [
        ops.cast(s, w.dtype)
        for w, s in noise_lib.split_like(kept, weights, sizes)
    ]
