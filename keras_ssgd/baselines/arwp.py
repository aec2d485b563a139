"""Adaptive random weight perturbation, plain (ARWP) and mixed (m-ARWP),
as Keras models (Li et al. 2024)."""

import keras
from keras import ops
from keras import random

from keras_ssgd import backends
from keras_ssgd import filters
from keras_ssgd.perturbed import PerturbedModel
from keras_ssgd.points import flat_tensors
from keras_ssgd.validation import check_noise_level
from keras_ssgd.validation import check_rate


@keras.saving.register_keras_serializable(package="keras_ssgd")
class AdaptiveRandomPerturbationModel(PerturbedModel):
    """A Keras model trained with adaptive random weight perturbation
    (ARWP): the gradient at `W + e`, `e` Gaussian, scaled per filter by
    the weights and damped by the gradient history.

    Each step draws `e` (`adaptive_random_perturbation`, below):
    each element of filter `f` has standard deviation
    `sigma * ||W_f|| / sqrt(1 + eta * F_f)`, where `F_f` sums the filter's
    gradient history `h` (for a bias or BatchNorm vector: its whole norm,
    elementwise history). It measures the gradient `g` at `W + e`, updates
    `W` with it, and then the history, `h <- beta * h + g**2` (a decayed
    sum, not an average, as in the authors' code). One pass per step.

    The history is part of the model's state (a non-trainable weight per
    perturbed variable, `arwp_history_<i>`, after the wrapped model's
    weights in `weights` and `get_weights()`): it is saved with the model
    and a resumed `fit()` continues it. Under `tf.distribute` each replica
    adds its own squared gradient and the replicas' histories are
    averaged.

    Args:
        sigma: float >= 0, the noise scale relative to each filter's norm
            (the authors' `std`; 0 trains plain SGD). Defaults to `0.01`,
            the authors' default.
        eta: float >= 0, how strongly the history damps the noise.
            Defaults to `1.0`, the authors' default.
        beta: float in [0, 1), the history's decay. Defaults to `0.9`, the
            authors' default.
        noise_filter: callable `variable -> bool` or registered name;
            `None` means every trainable variable
            (`keras_ssgd.filters.all_trainable`), as in the authors' code.
        seed: int or `None`, the seed of the noise.
        **kwargs: passed to `keras.Model` (and `every`, `batchnorm_update`
            to `keras_ssgd.PerturbedModel`).

    Example:

    ```python
    base = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3)])
    model = keras_ssgd.wrap(base, method="arwp", sigma=0.01, seed=0)
    model.compile(
        optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    x, y = np.random.rand(64, 8), np.random.randint(0, 3, size=64)
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    ```

    Guide: `docs/guides/baselines.md`.

    Reference:
    - Li, Yang, Huang and Liu, "Revisiting Random Weight Perturbation for
      Efficiently Improving Generalization", TMLR 2024; the authors' code,
      nblt/mARWP (its `ARWP` optimizer).
    """

    default_noise_filter = staticmethod(filters.all_trainable)
    level_argument = "sigma"
    passes = 1

    def __init__(self, *args, sigma=0.01, eta=1.0, beta=0.9,
                 noise_filter=None, **kwargs):
        self._refuse_noise_level(kwargs)
        self.eta = check_noise_level(eta, "eta")
        self.beta = check_rate(beta, "beta")
        self._histories = None
        super().__init__(*args, noise_level=sigma, noise_filter=noise_filter,
                         **kwargs)
        if self.built:
            self._make_histories()

    @property
    def sigma(self):
        """The noise scale (the same number as `noise_level`)."""
        return self.noise_level

    @sigma.setter
    def sigma(self, value):
        self.noise_level = value

    def build(self, *args, **kwargs):
        super().build(*args, **kwargs)
        if hasattr(self, "noise_filter"):  # (not while Keras's __init__
            self._make_histories()          # builds a functional model)

    @property
    def weights(self):
        # The histories last: `get_weights()` starts with the wrapped
        # model's own weights, in Keras's order, as for every other method.
        own = {id(h) for h in self._histories or ()}
        weights = super().weights
        return ([w for w in weights if id(w) not in own]
                + [w for w in weights if id(w) in own])

    def _make_histories(self):
        """One gradient history per perturbed variable, zeros, created with
        the model (so a saved model loads them back)."""
        if self._histories is not None:
            return
        self._histories = [
            self.add_weight(
                shape=tuple(v.shape), initializer="zeros", trainable=False,
                name=f"arwp_history_{i}", aggregation="mean",
            )
            for i, v in enumerate(self.noise_variables)
        ]

    def _perturbed_gradients(self, x, y, sample_weight, noise_variables):
        weights = [v.value for v in noise_variables]
        steps = adaptive_random_perturbation(
            weights, [h.value for h in self._histories], self._noise.level,
            self.eta, self._noise_seed(),
        )
        loss, gradients, predictions = self._points(
            x, y, sample_weight, noise_variables, weights, steps,
        )
        self._track(x, y, sample_weight, loss, predictions)
        self._remember(gradients, noise_variables)
        return loss, gradients

    def _points(self, x, y, sample_weight, noise_variables, weights, steps):
        """Loss, gradients and predictions of the step: at `W + e` only."""
        loss, gradients, y_pred = self._measure(
            x, y, sample_weight, noise_variables,
            [w + e for w, e in zip(weights, steps)], keep_statistics=True,
        )
        return loss, gradients, [y_pred]

    def _remember(self, gradients, noise_variables):
        """`h <- beta * h + g**2` with the applied gradients (kept as they
        were where a gradient is not finite)."""
        position = {id(v): i for i, v in enumerate(self.trainable_variables)}
        dense = backends.current().dense
        for history, variable in zip(self._histories, noise_variables):
            g = gradients[position[id(variable)]]
            if g is None:
                continue
            updated = self.beta * history.value + ops.square(
                ops.cast(dense(g), history.dtype))
            history.assign(ops.where(ops.isfinite(updated), updated,
                                     history.value))

    def get_config(self):
        config = super().get_config()
        config.update(eta=self.eta, beta=self.beta)
        return config


@keras.saving.register_keras_serializable(package="keras_ssgd")
class MixedAdaptiveRandomPerturbationModel(AdaptiveRandomPerturbationModel):
    """A Keras model trained with mixed adaptive random weight
    perturbation (m-ARWP): the gradient of the mixed loss
    `mix * L(W) + (1 - mix) * L(W + e)`, `e` ARWP's noise.

    Each step measures the gradient at `W` and at `W + e` on the whole
    batch and applies `mix * g(W) + (1 - mix) * g(W + e)`; the history is
    updated with that applied gradient. Two passes of FLOPs per step, as
    S-SGD: the authors compute the two gradients in parallel (on two
    devices), which saves time, not compute. The reported loss is the
    mixed loss; the compiled metrics see the predictions at both points.

    Args:
        sigma: float >= 0, the noise scale relative to each filter's norm.
            Defaults to `0.01`.
        mix: float in [0, 1], the weight of the clean gradient. Defaults
            to `0.5`, the authors' default.
        eta, beta, noise_filter, seed, **kwargs: as
            `AdaptiveRandomPerturbationModel`.

    Example:

    ```python
    base = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3)])
    model = keras_ssgd.wrap(base, method="marwp", sigma=0.01, seed=0)
    model.compile(
        optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    x, y = np.random.rand(64, 8), np.random.randint(0, 3, size=64)
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    ```

    Guide: `docs/guides/baselines.md`.

    Reference:
    - Li, Yang, Huang and Liu, "Revisiting Random Weight Perturbation for
      Efficiently Improving Generalization", TMLR 2024 (m-RWP, m-ARWP);
      the authors' code, nblt/mARWP.
    """

    passes = 2

    def __init__(self, *args, mix=0.5, **kwargs):
        mix = check_noise_level(mix, "mix")
        if mix > 1:
            raise ValueError(
                f"Argument `mix` must be in [0, 1]: the weight of the "
                f"gradient at W. Received: mix={mix}"
            )
        self.mix = mix
        super().__init__(*args, **kwargs)

    def _points(self, x, y, sample_weight, noise_variables, weights, steps):
        clean_loss, clean, clean_pred = self._measure(
            x, y, sample_weight, noise_variables, weights,
            keep_statistics=True,
        )
        # The second pass after the first (one pass's memory at a time).
        values = backends.current().after(
            flat_tensors(clean),
            lambda weights, steps: [w + e for w, e in zip(weights, steps)],
            weights, steps,
        )
        loss, noisy, y_pred = self._measure(
            x, y, sample_weight, noise_variables, values,
            keep_statistics=self.batchnorm_update == "both",
        )
        mix, dense = self.mix, backends.current().dense
        gradients = [
            None if a is None else mix * dense(a) + (1 - mix) * dense(b)
            for a, b in zip(clean, noisy)
        ]
        return (mix * clean_loss + (1 - mix) * loss, gradients,
                [clean_pred, y_pred])

    def get_config(self):
        config = super().get_config()
        config.update(mix=self.mix)
        return config


def filter_sums(x):
    """`x` summed per filter and broadcast back.

    Over every axis but the last for a tensor of 2 or more dimensions (a
    Keras Dense or Conv kernel keeps its output filters on the last axis);
    elementwise for a vector or scalar (a bias, a BatchNorm scale).

    Args:
        x: a tensor.

    Returns:
        A tensor that broadcasts against `x`.

    Example:

    >>> keras.ops.convert_to_numpy(filter_sums(keras.ops.ones((2, 3))))
    array([[2., 2., 2.]], dtype=float32)
    """
    if len(x.shape) < 2:
        return x
    return ops.sum(x, axis=tuple(range(len(x.shape) - 1)), keepdims=True)


def adaptive_random_perturbation(weights, histories, std, eta, seed):
    """ARWP's noise: Gaussian, its scale set per filter by the weights and
    damped where the gradient history is large.

    For a tensor of 2 or more dimensions each element of filter `f` (the
    last axis) gets the standard deviation `std * ||W_f||`; a vector (a
    bias, a BatchNorm scale) gets `std * ||W||` for every element. Each
    element is then divided by `sqrt(1 + eta * F)`, `F` the gradient
    history `histories` summed per filter (elementwise for a vector): a
    direction along which the loss has been steep gets less noise.
    Without history (`F = 0`) it is random weight perturbation with the
    filter-wise scale (RWP).

    Args:
        weights: list of tensors, the current values `W`.
        histories: list of tensors (the decayed sums of squared
            gradients, shaped as the weights), or `None` for none yet.
        std: float or scalar tensor >= 0, the noise scale relative to each
            filter's norm (the authors' `std`, this package's `sigma`).
        eta: float >= 0, how strongly the history damps the noise.
        seed: int or `keras.random.SeedGenerator`.

    Returns:
        A list of tensors `e`, one per weight.

    Example:

    >>> w = [keras.ops.ones((2, 3))]
    >>> e = adaptive_random_perturbation(w, None, 0.01, 1.0, seed=1)
    >>> tuple(e[0].shape)
    (2, 3)

    Guide: `docs/guides/baselines.md`.

    Reference:
    - Li, Yang, Huang and Liu, "Revisiting Random Weight Perturbation for
      Efficiently Improving Generalization", TMLR 2024, Section 4
      (adaptive RWP); the authors' code, nblt/mARWP.
    """
    if histories is None:
        histories = [None] * len(weights)
    std = ops.cast(std, "float32")
    out = []
    for w, history in zip(weights, histories):
        w32 = ops.cast(w, "float32")
        scale = ops.sqrt(filter_sums(ops.square(w32)))
        if len(w.shape) < 2:
            scale = ops.sqrt(ops.sum(ops.square(w32)))
        e = random.normal(ops.shape(w), seed=seed) * std * scale
        if history is not None:
            e = e / ops.sqrt(1.0 + eta * filter_sums(
                ops.cast(history, "float32")))
        out.append(ops.cast(e, w.dtype))
    return out
