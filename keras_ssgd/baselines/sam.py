"""Sharpness-Aware Minimization (Foret et al. 2021) as a Keras model."""

import keras

from keras_ssgd import backends
from keras_ssgd import filters
from keras_ssgd import noise as noise_lib
from keras_ssgd.perturbed import PerturbedModel
from keras_ssgd.points import flat_tensors


@keras.saving.register_keras_serializable(package="keras_ssgd")
class SharpnessAwareModel(PerturbedModel):
    """A Keras model trained with SAM, Sharpness-Aware Minimization.

    Each step measures the gradient `g` at `W`, moves to the worst point of
    a ball of radius `rho`, `W + e` with `e = rho * g / ||g||` (`||g||` over
    all selected variables), measures the gradient there, and updates `W`
    with it:

        W <- W - lr * grad L(W + rho * g / ||g||)

    Two passes per step, like S-SGD; S-SGD's second point is `W - n` for a
    random `n`, SAM's is chosen by the gradient. The reported loss and the
    compiled metrics are those at `W + e`, the point whose gradient is
    applied. Under `tf.distribute` each replica uses its own gradient
    (m-sharpness with m = the per-replica batch, as in the paper).

    Args:
        rho: float >= 0, the radius (0 trains plain SGD). Defaults to `0.05`,
            the paper's usual value.
        noise_filter: callable `variable -> bool` or registered name; `None`
            means every trainable variable
            (`keras_ssgd.filters.all_trainable`), as in the paper.
        batchnorm_update: `"both"` (each pass updates the BatchNorm moving
            statistics, as the old `tf.keras` SAM does) or `"first"` (only
            the pass at `W`, as davda54/sam recommends). Defaults to
            `"both"`.
        **kwargs: passed to `keras.Model`.

    Example:

    ```python
    base = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3)])
    model = keras_ssgd.wrap(base, method="sam", rho=0.05)
    model.compile(
        optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    x, y = np.random.rand(64, 8), np.random.randint(0, 3, size=64)
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    ```

    Reference:
    - Foret, Kleiner, Mobahi and Neyshabur, "Sharpness-Aware Minimization
      for Efficiently Improving Generalization", ICLR 2021, Algorithm 1.
    """

    default_noise_filter = staticmethod(filters.all_trainable)
    level_argument = "rho"
    passes = 2

    def __init__(
        self,
        *args,
        rho=0.05,
        noise_filter=None,
        batchnorm_update="both",
        **kwargs,
    ):
        self._refuse_noise_level(kwargs)
        kwargs.pop("seed", None)  # SAM draws nothing at random.
        super().__init__(
            *args,
            noise_level=rho,
            noise_filter=noise_filter,
            batchnorm_update=batchnorm_update,
            seed=0,
            **kwargs,
        )

    @property
    def rho(self):
        """The radius (the same number as `noise_level`)."""
        return self.noise_level

    @rho.setter
    def rho(self, value):
        self.noise_level = value

    def _perturbed_gradients(self, x, y, sample_weight, noise_variables):
        # 1. The gradient at W, for the ascent direction.
        weights = [v.value for v in noise_variables]
        _, gradients, _ = self._measure(
            x, y, sample_weight, noise_variables, weights,
            keep_statistics=True,
        )
        position = {id(v): i for i, v in enumerate(self.trainable_variables)}
        dense = backends.current().dense
        ascent = [
            None if g is None else dense(g)
            for g in (gradients[position[id(v)]] for v in noise_variables)
        ]
        steps = self._ascent_steps(ascent, weights)
        # 2. The gradient at W + e, applied to W by the base class.
        values = backends.current().after(
            flat_tensors(gradients),
            lambda weights, steps: [
                w if e is None else w + e for w, e in zip(weights, steps)
            ],
            weights, steps,
        )
        loss, gradients, y_pred = self._measure(
            x, y, sample_weight, noise_variables, values,
            keep_statistics=self.batchnorm_update == "both",
        )
        self._track(x, y, sample_weight, loss, [y_pred])
        return loss, gradients

    def _ascent_steps(self, ascent, weights):
        """The ascent step `e` of each selected variable (`None` where its
        gradient is `None`), from the gradients at `W` (`ascent`) and the
        values `W` (`weights`); SAM's is `rho * g / ||g||`."""
        return noise_lib.sharpness_aware_perturbation(
            ascent, self._noise.level
        )

    def get_config(self):
        config = super().get_config()
        config.pop("seed", None)
        return config
