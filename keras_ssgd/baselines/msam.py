"""Momentum-SAM (Becker, Altrock and Risse 2024) as a Keras model."""

import keras

from keras_ssgd import _keras_compat as compat
from keras_ssgd import filters
from keras_ssgd.baselines.sam import sharpness_aware_perturbation
from keras_ssgd.perturbed import PerturbedModel


@keras.saving.register_keras_serializable(package="keras_ssgd")
class MomentumSAMModel(PerturbedModel):
    """A Keras model trained with Momentum-SAM (MSAM): SAM's perturbation
    taken along the optimizer's momentum, at the cost of one pass.

    Each step measures the gradient once, at `W + rho * d / ||d||`, where
    `d` is the direction the optimizer has been moving the weights, read
    from its own momentum state (`||d||` over all selected variables), and
    updates `W` with that gradient:

        W <- W - lr * grad L(W + rho * d / ||d||)

    In the authors' terms (PyTorch's momentum buffer `v = mu * v + g`, the
    weights moved by `-lr * v`), the point is `W - rho * v / ||v||`: the
    "negative momentum" direction. Keras's `SGD` keeps
    `m = mu * m - lr * g` instead, which points the other way and weighs
    each gradient by its learning rate, so here `d = m`; at a constant
    learning rate `m = -lr * v` and the two rules are the same. Under a
    schedule the directions differ slightly: Keras's momentum weighs the
    recent gradients by their (smaller) learning rates. With `Adam` or
    `AdamW`, `d` is minus the first moment.

    Before the optimizer has moved (the first step, `d = 0`) the step is
    the plain one. An optimizer that keeps no momentum (`SGD` with
    `momentum=0`, `RMSprop`, ...) is refused when `fit()` starts.

    One forward/backward pass per step, like SGD: the momentum is already
    there. The reported loss and the compiled metrics are those at the
    perturbed point, whose gradient is applied.

    Args:
        rho: float >= 0, the radius (0 trains plain SGD). Defaults to
            `0.3`, the authors' default for SGD.
        noise_filter: callable `variable -> bool` or registered name; `None`
            means every trainable variable
            (`keras_ssgd.filters.all_trainable`), as in the authors' code.
        **kwargs: passed to `keras.Model` (and `every`, `batchnorm_update`
            to `keras_ssgd.PerturbedModel`).

    Example:

    ```python
    base = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3)])
    model = keras_ssgd.wrap(base, method="msam", rho=0.3)
    model.compile(
        optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    x, y = np.random.rand(64, 8), np.random.randint(0, 3, size=64)
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    ```

    Guide: `docs/guides/baselines.md`.

    Reference:
    - Becker, Altrock and Risse, "Momentum-SAM: Sharpness Aware
      Minimization without Computational Overhead", arXiv:2401.12033
      (2024), Algorithm 1; the authors' code, MarlonBecker/MSAM.
    """

    default_noise_filter = staticmethod(filters.all_trainable)
    level_argument = "rho"
    passes = 1

    def __init__(self, *args, rho=0.3, noise_filter=None, **kwargs):
        self._refuse_noise_level(kwargs)
        kwargs.pop("seed", None)  # MSAM draws nothing at random.
        super().__init__(
            *args, noise_level=rho, noise_filter=noise_filter, seed=0,
            **kwargs,
        )

    @property
    def rho(self):
        """The radius (the same number as `noise_level`)."""
        return self.noise_level

    @rho.setter
    def rho(self, value):
        self.noise_level = value

    def make_train_function(self, force=False):
        # Checked here, when `fit()` starts, not in `compile()`: overriding
        # that would stop Keras from compiling a loaded model.
        if not compat.keeps_first_moment(self.optimizer):
            inner = getattr(self.optimizer, "inner_optimizer", self.optimizer)
            described = type(inner).__name__
            if isinstance(inner, keras.optimizers.SGD):
                described += f"(momentum={inner.momentum})"
            raise ValueError(
                "Argument `optimizer` must keep a momentum for "
                f"{type(self).__name__}, which perturbs along it: "
                "keras.optimizers.SGD with momentum > 0, Adam or AdamW. "
                f"Received: optimizer={described}"
            )
        if not self.optimizer.built:  # the step reads its momentum
            self.optimizer.build(self.trainable_variables)
        return super().make_train_function(force)

    def _perturbed_gradients(self, x, y, sample_weight, noise_variables):
        weights = [v.value for v in noise_variables]
        steps = sharpness_aware_perturbation(
            [self._descent_direction(v) for v in noise_variables],
            self._noise.level,
        )
        values = [w + e for w, e in zip(weights, steps)]
        loss, gradients, y_pred = self._measure(
            x, y, sample_weight, noise_variables, values, keep_statistics=True,
        )
        self._track(x, y, sample_weight, loss, [y_pred])
        return loss, gradients

    def _descent_direction(self, variable):
        """Where the optimizer has been moving `variable`: its momentum,
        oriented downhill (`keras_ssgd._keras_compat.first_moment`)."""
        moment, sign = compat.first_moment(self.optimizer, variable)
        return keras.ops.cast(sign * moment.value, variable.dtype)

    def get_config(self):
        config = super().get_config()
        config.pop("seed", None)
        return config
