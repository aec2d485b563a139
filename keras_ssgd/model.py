"""`SymmetricSGDModel`: a `keras.Model` whose `fit()` runs S-SGD."""

import keras

from keras_ssgd import backends
from keras_ssgd import noise as noise_lib
from keras_ssgd.gradients import mean_gradients
from keras_ssgd.perturbed import PerturbedModel
from keras_ssgd.perturbed import _flat_tensors


@keras.saving.register_keras_serializable(package="keras_ssgd")
class SymmetricSGDModel(PerturbedModel):
    """A Keras model trained with Symmetrical SGD (S-SGD).

    At every training step, for each selected variable `W` (the kernels by
    default) a fresh random direction is drawn and scaled to a fixed length,
    `n = noise_level * ||W|| * u / ||u||`. The loss and gradients are measured
    at `W + n` and at `W - n`, the two gradients are averaged, and the
    compiled optimizer updates the master weights `W` (paper Eq. 3):

        W <- W - lr * (grad L(W + n) + grad L(W - n)) / 2

    The two perturbed passes are computed functionally (`keras.StatelessScope`
    maps each variable to `W +- n` while the variables keep holding `W`), so
    nothing has to be restored and `W` never drifts by rounding. Biases,
    BatchNorm parameters and all other rank-1 variables are not perturbed
    unless a custom `noise_filter` selects them.

    Use it like `keras.Model`: with the functional API, by subclassing, or
    through `keras_ssgd.wrap(model)` for an existing model. `evaluate()` and
    `predict()` are Keras's own and use the clean master weights.

    What happens in one step:
    - `noise_level == 0`: Keras's own `train_step`, so the model trains
      exactly as `keras.Model` (see `PerturbedModel`). Changing the level
      (`NoiseSchedule`) never retraces the perturbed step.
    - The reported `loss` is the mean of the two perturbed losses; compiled
      metrics are updated with the predictions of both passes.
    - Mixed precision: each pass's loss is scaled by the optimizer, the two
      scaled gradients are averaged, and `LossScaleOptimizer` unscales once.
    - A perturbed step whose loss is not finite (on either pass) leaves every
      trainable variable and the optimizer state untouched; BatchNorm
      statistics are still updated by the passes. The non-finite loss is
      reported, so `keras.callbacks.TerminateOnNaN` stops training.
    - Noise directions are a function of `seed` and the optimizer's step
      counter, so a run restored from a checkpoint (e.g. by
      `keras.callbacks.BackupAndRestore`) continues the same noise sequence.

    Args:
        noise_level: float >= 0. Length of the noise relative to each
            variable's L2 norm. The paper's best levels are 0.4 to 0.5 for
            CIFAR ResNets. Defaults to `0.5`.
        noise_filter: callable `variable -> bool` choosing the perturbed
            trainable variables, or the registered name of one. See
            `keras_ssgd.filters`. Defaults to `None`, meaning
            `keras_ssgd.filters.kernels` (every variable of rank >= 2).
        batchnorm_update: `"both"` or `"first"`. How the model's
            non-trainable weights (BatchNorm moving statistics) are updated
            across the two passes: `"both"` lets each pass update them in
            turn, as two towers of plain TensorFlow training would (the
            paper's setting); `"first"` keeps only the update of the `W + n`
            pass. Both passes normalise with their own batch statistics
            either way. Defaults to `"both"`.
        seed: int or `None`. Seed of the noise directions. With `None` a seed
            is drawn from Python's `random` module (which
            `keras.utils.set_random_seed` seeds). Defaults to `None`.
        **kwargs: passed to `keras.Model` (`inputs`, `outputs`, `name`, ...).

    Example:

    ```python
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(16, 3, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(10)(x)
    model = keras_ssgd.SymmetricSGDModel(inputs, outputs, noise_level=0.4)
    model.compile(
        optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(x_train, y_train, epochs=10)
    ```

    Reference:
    - Sung, Choi, Park, Choi and Shin, "S-SGD: Symmetrical Stochastic
      Gradient Descent for Reaching Flat Minima in Deep Neural Network
      Training", Section 3, Eq. 3.
    """

    passes = 2

    def _perturbed_gradients(self, x, y, sample_weight, noise_variables):
        """Loss and gradients of S-SGD: perturb, measure, restore."""
        # 1. Perturb: a fresh direction per variable, ||n|| = level * ||W||.
        weights = [v.value for v in noise_variables]
        noise = noise_lib.symmetric_noise(
            weights, self._noise.level, self._noise_seed()
        )
        # 2. Measure at W + n, then at W - n (functional: W is not written).
        loss_plus, grads_plus, y_plus = self._measure(
            x, y, sample_weight, noise_variables,
            [w + n for w, n in zip(weights, noise)],
            keep_statistics=True,
        )
        # The W - n pass starts once the W + n gradients exist, so the two
        # passes never hold their activations in memory at the same time.
        weights_minus = backends.current().after(
            _flat_tensors(grads_plus),
            lambda weights, noise: [w - n for w, n in zip(weights, noise)],
            weights, noise,
        )
        loss_minus, grads_minus, y_minus = self._measure(
            x, y, sample_weight, noise_variables, weights_minus,
            keep_statistics=self.batchnorm_update == "both",
        )
        # 3. Restore: nothing to do, the variables still hold W.
        loss = (loss_plus + loss_minus) * 0.5
        self._track(x, y, sample_weight, loss, [y_plus, y_minus])
        # 4. Update (done by the base class): W <- W - lr * mean gradient.
        return loss, mean_gradients(grads_plus, grads_minus)
