"""`SymmetricSGDModel`: a `keras.Model` whose `fit()` runs S-SGD."""

import keras

from keras_ssgd import backends
from keras_ssgd import custom_step
from keras_ssgd import forms
from keras_ssgd import noise as noise_lib
from keras_ssgd import points as points_lib
from keras_ssgd import recurrent
from keras_ssgd.perturbed import PerturbedModel


@keras.saving.register_keras_serializable(package="keras_ssgd")
class SymmetricSGDModel(PerturbedModel):
    """A Keras model trained with Symmetrical SGD (S-SGD).

    At every training step, for each selected variable `W` (the kernels by
    default) a fresh random direction `u` is drawn and scaled to a fixed
    length, `n = noise_level * ||W|| * u / ||u||`. The loss and gradients
    are measured at `W + n` and at `W - n`, and the compiled optimizer
    updates the master weights `W` with their mean (paper Eq. 3):

        W <- W - lr * (grad L(W + n) + grad L(W - n)) / 2

    The passes are functional (`keras.StatelessScope` maps each variable
    to `W +- n` while the variables keep holding `W`), so nothing is
    restored and `W` never drifts by rounding. Biases and other rank-1
    variables are not perturbed unless a `noise_filter` selects them.

    Use it like `keras.Model` (functional, subclassed, or through
    `keras_ssgd.wrap(model)`). A `train_step` of your own takes S-SGD's
    gradient from `symmetric_gradients` (TensorFlow, PyTorch) or
    `symmetric_value_and_grad` (JAX). `evaluate()` and `predict()` use the
    clean master weights. In one step:
    - `noise_level == 0` is Keras's own `train_step`, whatever the form;
      changing the level (`NoiseSchedule`) never retraces.
    - The reported `loss` is the mean of the two losses; compiled metrics
      see the predictions of both passes.
    - Mixed precision: each pass's loss is scaled, the two scaled gradients
      are averaged, and `LossScaleOptimizer` unscales once.
    - A loss that is not finite leaves the trainable variables and the
      optimizer untouched, and is reported (`TerminateOnNaN` stops).
    - The directions are a function of `seed` and the optimizer's step
      counter, so a restored checkpoint continues the same noise sequence.

    The split form (`split_batch=True`) costs one pass, as SGD: the same
    `n`, the first half of the batch at `W + n` and the second at `W - n`,
    each weighted by its share of the batch (`m1 = ceil(m / 2)`):

        W <- W - lr * (m1 * grad L1(W + n) + m2 * grad L2(W - n)) / m

    Its reduction rules, BatchNorm and batch-of-one cases, and the pair
    form across workers are in the split guide (`docs/guides/split.md`).
    The form the next step runs is `step_form`.

    Args:
        noise_level: float >= 0. Length of the noise relative to each
            variable's L2 norm. The paper's best levels are 0.4 to 0.5 for
            CIFAR ResNets. Defaults to `0.5`.
        noise_filter: callable `variable -> bool` choosing the perturbed
            trainable variables, or the registered name of one (see
            `keras_ssgd.filters`). Defaults to `None`,
            `keras_ssgd.filters.kernels` (every variable of rank >= 2).
        batchnorm_update: `"both"` (each pass updates the BatchNorm moving
            statistics in turn, as two towers of plain training would) or
            `"first"` (only the `W + n` pass's update is kept). Both passes
            normalise with their own batch statistics; the paper does not
            say which. Defaults to `"both"`.
        seed: int or `None`. Seed of the noise directions; `None` draws one
            from Python's `random` (which `keras.utils.set_random_seed`
            seeds). Defaults to `None`.
        noise_distribution: `"gaussian"` (`u` standard normal: a direction
            uniform on the sphere) or `"rademacher"` (`u` random signs:
            every element of `n` of the same magnitude). `||n||` is exact
            with either; each is a function of `(seed, step)`, and they
            give different streams. Their costs are in `docs/measured.md`.
            Read-only after construction. Defaults to `"gaussian"`.
        split_batch: bool, the split form (one pass per step) instead of
            full S-SGD (two). Assignable between steps; each form's step is
            traced once. Defaults to `False`.
        every: int >= 1 or `math.inf`: perturb one step in `every` (see
            `PerturbedModel`). Defaults to `1`.
        **kwargs: passed to `keras.Model` (`inputs`, `outputs`, `name`, ...).

    Raises:
        TypeError: `split_batch` is not a bool.
        ValueError: `noise_distribution` is not `"gaussian"` or
            `"rademacher"`; `split_batch=True` for a model with a stateful
            RNN, or with a batch of one at the model's first split step.

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
    x_train = np.random.rand(64, 32, 32, 3)  # stand-ins for real images
    y_train = np.random.randint(0, 10, size=64)
    model.fit(x_train, y_train, epochs=2, verbose=0)

    # The split form, at the cost of plain SGD (same layers, so the same
    # weights; `keras_ssgd.wrap(model, split_batch=True)` does the same):
    split = keras_ssgd.SymmetricSGDModel(
        inputs, outputs, noise_level=0.4, split_batch=True
    )
    ```

    Reference:
    - Sung, Choi, Park, Choi and Shin, "S-SGD: Symmetrical Stochastic
      Gradient Descent for Reaching Flat Minima in Deep Neural Network
      Training", Section 3, Eq. 3 (the step), Section 4.3 (per-device
      BatchNorm statistics in data-parallel training).
    """

    runs_per_device = True

    def __init__(
        self, *args, split_batch=False, noise_distribution="gaussian", **kwargs
    ):
        split_batch = forms.check_split_batch(split_batch)
        noise_lib.check_distribution(noise_distribution, "noise_distribution")
        super().__init__(*args, **kwargs)
        self._split_batch = split_batch
        self._noise_distribution = noise_distribution
        self._phase_split = False
        self._split_traced = False  # a split step was traced (`_points`)
        if split_batch:
            self._refuse_stateful(split_batch)

    @property
    def split_batch(self):
        """Whether the model runs the split form (a bool, assignable
        between steps)."""
        return self._split_batch

    @split_batch.setter
    def split_batch(self, value):
        value = forms.check_split_batch(value)
        if value:
            self._refuse_stateful(value)
        self._split_batch = value

    @property
    def phase_split(self):
        """Whether an `H` phase of a `NoiseSchedule` plan runs now: the
        split form whatever `split_batch` says (a bool; `NoiseSchedule`
        sets it, and clears it for the model's own form)."""
        return self._phase_split

    @phase_split.setter
    def phase_split(self, value):
        value = bool(value)
        if value:
            self._refuse_stateful(value, phase=True)
        self._phase_split = value

    @property
    def step_form(self):
        """The form of the next perturbed step, one of `forms.FORMS`:
        `"full"`, `"split"`, or `"pairs"` (the split form across the
        workers of `sharing.pairs`)."""
        if not (self._split_batch or self._phase_split):
            return "full"
        return "split" if self.sharing.pairs is None else "pairs"

    @property
    def trace_key(self):
        # A `train_step` of the user's own on JAX reads the level when it
        # is traced (`symmetric_value_and_grad`): the level is part of it.
        if self.runs_own_step and backends.current().STATELESS:
            return (self.step_form, self.noise_level)
        return self.step_form

    @property
    def noise_distribution(self):
        """`"gaussian"` or `"rademacher"` (read-only: it is part of the
        traced step)."""
        return self._noise_distribution

    @property
    def passes(self):
        """Forward and backward passes over the batch per perturbed step:
        2 for S-SGD, 1 for its split form (plain SGD's cost)."""
        return 2 if self.step_form == "full" else 1

    # S-SGD inside a `train_step` of your own: `model.symmetric_gradients(
    # loss_fn)` (TensorFlow, PyTorch), `model.symmetric_value_and_grad(fun)`
    # (JAX).
    symmetric_gradients = custom_step.symmetric_gradients
    symmetric_value_and_grad = custom_step.symmetric_value_and_grad

    def _refuse_stateful(self, value, phase=False):
        """A `ValueError` naming `split_batch` if the model has a stateful
        RNN (`phase`: asked by an `H` phase of a `NoiseSchedule` plan)."""
        layers = recurrent.stateful_layers(self)
        if not layers:
            return
        asked = "an `H` phase of the plan" if phase else "the model"
        raise ValueError(
            "Argument `split_batch=True` cannot be used with a stateful "
            "RNN: its state runs along the batch dimension from one batch "
            "to the next, so half a batch cannot carry it. Use full S-SGD "
            "(`split_batch=False`, `S` phases). Received: "
            f"split_batch={value!r} (from {asked}) for model '{self.name}' "
            f"with stateful layers {[layer.name for layer in layers]}"
        )

    def _perturbed_gradients(self, x, y, sample_weight, noise_variables):
        """S-SGD's loss and gradients: perturb, measure, restore."""
        points, merge = self._points((x, y, sample_weight))
        # Perturb: a fresh direction per variable, ||n|| = level * ||W||.
        weights = [v.value for v in noise_variables]
        noise = noise_lib.symmetric_noise(
            weights, self._noise.level, self._noise_seed(),
            distribution=self._noise_distribution,
        )

        # Measure each point functionally (W is never written, so there is
        # nothing to restore); the base class updates W with the result.
        def measure(point, values):
            return self._measure(
                *point.data, noise_variables, values,
                keep_statistics=point.keep_statistics,
            )

        backend = backends.current()
        loss, gradients, predictions = points_lib.measure_points(
            points, weights, noise, measure, backend.after, backend.scope
        )
        with backend.scope("ssgd_metrics"):
            self._track(x, y, sample_weight, loss, merge(predictions))
        return loss, gradients

    def _points(self, data):
        """The points of this step's form, and how their predictions feed
        the compiled metrics (`keras_ssgd.forms`)."""
        both = self.batchnorm_update == "both"
        if self.step_form == "full":
            return forms.full_points(data, both)
        pairs = self._pairs()
        if pairs is not None:
            return forms.pair_points(data, pairs, both)
        self._refuse_stateful(True)
        # A batch of one is refused at the first split step only: later it
        # is a last partial batch, measured at both points.
        points = forms.split_points(
            data, both, refuse_one=not self._split_traced
        )
        self._split_traced = True
        return points

    def get_config(self):
        config = super().get_config()
        config["split_batch"] = self.split_batch
        config["noise_distribution"] = self.noise_distribution
        return config
