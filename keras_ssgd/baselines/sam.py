"""Sharpness-Aware Minimization (Foret et al. 2021) as a Keras model."""

import keras
from keras import ops

from keras_ssgd import backends
from keras_ssgd import filters
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

    Guide: `docs/guides/baselines.md`.

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
        return sharpness_aware_perturbation(ascent, self._noise.level)

    def get_config(self):
        config = super().get_config()
        config.pop("seed", None)
        return config


def sharpness_aware_perturbation(gradients, rho):
    """SAM's ascent step: `e = rho * g / ||g||`, `||g||` over all tensors.

    The worst point of the ball of radius `rho` around `W`, to first order.

    Args:
        gradients: list of gradient tensors (or `None`, kept as zero steps).
        rho: float or scalar tensor >= 0, the radius.

    Returns:
        A list of tensors `e`, one per gradient (`None` stays `None`), with
        `||e|| = rho` over the whole list. A zero or non-finite gradient
        norm gives `e = 0`: the step then measures the plain gradient, so a
        mixed-precision loss scale that overflowed can still be lowered.

    Example:

    >>> g = [keras.ops.convert_to_tensor([3.0, 4.0]), None]
    >>> e = sharpness_aware_perturbation(g, rho=0.5)
    >>> keras.ops.convert_to_numpy(e[0]), e[1]  # 0.5 * g / 5
    (array([0.3, 0.4], dtype=float32), None)

    Guide: `docs/guides/baselines.md`.

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
