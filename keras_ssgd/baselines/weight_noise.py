"""Weight noise injection (paper Eq. 2): one pass at `W + n`."""

import keras

from keras_ssgd import noise as noise_lib
from keras_ssgd.perturbed import PerturbedModel


@keras.saving.register_keras_serializable(package="keras_ssgd")
class WeightNoiseModel(PerturbedModel):
    """A Keras model trained with weight noise injection.

    At every step a fresh Gaussian direction of fixed length,
    `n = noise_level * ||W|| * u / ||u||` per selected variable (the S-SGD
    rule), is added to the weights; the loss and gradient are measured at
    `W + n` and the optimizer updates the clean weights `W`:

        W <- W - lr * grad L(W + n)

    This is S-SGD without the `W - n` pass: one pass per step, the cost of
    plain SGD. Everything else (filters, seeds, schedules, saving) is as in
    `SymmetricSGDModel`.

    Args:
        noise_level: float >= 0, `||n|| / ||W||` per variable. Defaults to
            `0.5`.
        noise_filter: callable `variable -> bool` or registered name; `None`
            means `keras_ssgd.filters.kernels`.
        batchnorm_update: accepted for a uniform interface; with one pass the
            two choices are the same. Defaults to `"both"`.
        seed: int or `None`, the seed of the noise. Defaults to `None`.
        **kwargs: passed to `keras.Model`.

    Example:

    ```python
    base = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3)])
    model = keras_ssgd.wrap(base, method="weight-noise", noise_level=0.2)
    model.compile(
        optimizer="sgd",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    ```

    Guide: `docs/guides/baselines.md`.

    Reference:
    - Sung et al., "S-SGD: Symmetrical Stochastic Gradient Descent for
      Reaching Flat Minima in Deep Neural Network Training", Section 3.1,
      Eq. 2.
    - Murray and Edwards, "Synaptic weight noise during multilayer
      perceptron training", IEEE TNN 1993.
    """

    def _perturbed_gradients(self, x, y, sample_weight, noise_variables):
        weights = [v.value for v in noise_variables]
        noise = self._sample(weights)
        loss, gradients, y_pred = self._measure(
            x, y, sample_weight, noise_variables,
            [w + n for w, n in zip(weights, noise)],
            keep_statistics=True,
        )
        self._track(x, y, sample_weight, loss, [y_pred])
        return loss, gradients

    def _sample(self, weights):
        """The noise `n` of this step, one tensor per weight."""
        return noise_lib.gaussian_noise(
            weights, self._noise.level, self._noise_seed()
        )
