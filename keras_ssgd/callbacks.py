"""Callbacks that drive S-SGD during `fit()`, and stochastic weight
averaging for any Keras model."""

import math
import numbers
import warnings

import keras
import numpy as np

from keras_ssgd import batchnorm
from keras_ssgd.model import SymmetricSGDModel
from keras_ssgd.phases import PhasePlan
from keras_ssgd.validation import check_noise_level


class NoiseSchedule(keras.callbacks.Callback):
    """Sets a `SymmetricSGDModel`'s `noise_level` at the start of each epoch.

    The schedule is either a function `epoch -> noise_level` (epochs counted
    from 0), or a phase plan in the paper's Table 1 notation such as
    `"75-25S-25S"`: `noise_level` in the `S` phases, 0 (plain SGD, one pass
    per step) elsewhere. Changing the level does not retrace the step. The
    level is logged as `noise_level` at the end of each epoch.

    A plan may also have `H` phases, such as `"75-25S-25H"`: S-SGD in its
    split form (`SymmetricSGDModel(split_batch=True)`: half of each batch
    at `W + n`, half at `W - n`, one pass per step). In an `H` phase the
    model runs the split form; in an `S` phase it runs its own form (full
    S-SGD unless it was built with `split_batch=True`); the model's
    `split_batch` itself is left as it was built. Switching between the two
    forms retraces the perturbed step once per switch. A plan with `H`
    phases needs a `SymmetricSGDModel` (the baselines have no split form).

    Args:
        schedule: callable `epoch -> float`, a plan string, or a `PhasePlan`.
        noise_level: float > 0. The level of the S-SGD phases of a plan.
            Required with a plan, refused with a callable.
        verbose: int. 1 prints each change of level. Defaults to `0`.

    Example:

    ```python
    base = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3)])
    model = keras_ssgd.wrap(base, noise_level=0.5, seed=0)
    x, y = np.random.rand(64, 8), np.random.randint(0, 3, size=64)

    # The paper's "75-25S-25S" in miniature: 2 epochs of SGD, then 1 and 1
    # of S-SGD, the learning rate /10 at each phase boundary.
    plan = keras_ssgd.phases.PhasePlan.parse("2-1S-1S")
    lr = plan.learning_rate_schedule(0.1, steps_per_epoch=2)
    model.compile(
        optimizer=keras.optimizers.SGD(lr, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(
        x, y, batch_size=32, epochs=plan.epochs, verbose=0,
        callbacks=[keras_ssgd.callbacks.NoiseSchedule(plan, noise_level=0.5)],
    )
    ```

    Guide: `docs/guides/noise-level.md`.

    Reference:
    - Sung et al., "S-SGD: Symmetrical Stochastic Gradient Descent for
      Reaching Flat Minima in Deep Neural Network Training", Table 1.
    """

    def __init__(self, schedule, noise_level=None, verbose=0):
        super().__init__()
        if callable(schedule) and not isinstance(schedule, PhasePlan):
            if noise_level is not None:
                raise ValueError(
                    "Argument `noise_level` is only used with a phase plan; "
                    "a callable schedule returns the level itself. Received: "
                    f"noise_level={noise_level!r}"
                )
            self.plan = None
        else:
            self.plan = PhasePlan.parse(schedule)
            if noise_level is None:
                raise ValueError(
                    "Argument `noise_level` is required with a phase plan. "
                    f"Received: noise_level=None for plan '{self.plan}'"
                )
            noise_level = check_noise_level(noise_level)
        self.schedule = schedule
        self.noise_level = noise_level
        self.verbose = verbose
        self._level = None
        self._split = None

    def level(self, epoch):
        """The noise level of `epoch` (0-based)."""
        if self.plan is not None:
            return self.noise_level if self.plan.noisy(epoch) else 0.0
        return check_noise_level(
            self.schedule(epoch), name=f"schedule({epoch})"
        )

    def on_train_begin(self, logs=None):
        if not hasattr(self.model, "noise_level"):
            raise TypeError(
                "NoiseSchedule needs a SymmetricSGDModel (see "
                "`keras_ssgd.wrap`). Received a model of type "
                f"{type(self.model).__name__}."
            )
        if self.plan is not None and self.plan.has_split and not isinstance(
            self.model, SymmetricSGDModel
        ):
            raise TypeError(
                f"The phase plan '{self.plan}' has `H` (split S-SGD) phases, "
                "which need a SymmetricSGDModel (see `keras_ssgd.wrap`). "
                f"Received a model of type {type(self.model).__name__}."
            )
        epochs = (self.params or {}).get("epochs")
        if self.plan is not None and epochs and epochs > self.plan.epochs:
            raise ValueError(
                f"The phase plan '{self.plan}' covers {self.plan.epochs} "
                f"epochs, but fit() was asked for epochs={epochs}."
            )
        self._split = None
        if self.plan is not None and self.plan.has_split:
            # The model's own form, even after a fit stopped in an H phase.
            self.model.phase_split = False

    def splits(self, epoch):
        """Whether `epoch` (0-based) is an `H` (split S-SGD) epoch."""
        return self.plan is not None and self.plan.splits(epoch)

    def on_epoch_begin(self, epoch, logs=None):
        level = self.level(epoch)
        split = self.splits(epoch)
        if (level, split) != (self._level, self._split) and self.verbose:
            form = " (split S-SGD)" if split else ""
            io = keras.utils.io_utils
            io.print_msg(f"\nEpoch {epoch + 1}: noise_level = {level:g}{form}.")
        self._level, self._split = level, split
        if self.plan is not None and self.plan.has_split and level > 0:
            # Between two noisy phases the form may change; a plain phase
            # runs Keras's step whatever the form, so it keeps the last one.
            self.model.phase_split = split
        self.model.noise_level = level

    def on_train_end(self, logs=None):
        if self.plan is not None and self.plan.has_split:
            self.model.phase_split = False  # the model's own form

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["noise_level"] = self.model.noise_level


class StochasticWeightAveraging(keras.callbacks.Callback):
    """Ends `fit()` at the average of the model's end-of-epoch weights (SWA).

    From epoch `start` on, the trainable weights (all of
    `model.trainable_variables`) at the end of each epoch join an
    equal-weight running average, kept in float64 NumPy arrays outside the
    model; the learning rate is whatever the model trains with (the paper
    holds it high, constant or cyclical, while averaging). At the end of
    training the model's trainable variables are set to the average, and the
    moving statistics of its `BatchNormalization` layers, stale for the
    averaged weights, are recomputed: the moving mean and variance are reset
    to 0 and 1, then one pass over `batchnorm_data` calls
    `model(x, training=True)` with each layer's `momentum` at `(i - 1) / i`
    for the `i`-th batch, so that they become the equal-weight average of
    the batches' means and (biased, as Keras computes them) variances, as
    `torch.optim.swa_utils.update_bn` does. The layers' momentum and the
    model's other non-trainable variables (a `Dropout`'s seed, an RNN's
    state) are restored after the pass. A `BatchNormalization` layer that is
    not trainable keeps its statistics (Keras runs it in inference mode).

    `start` is an int or a float:

    - an int `>= 0` is the epoch (0-based, as Keras counts them, with
      `initial_epoch` included) whose end is the first one averaged;
      `start=0` averages every epoch;
    - a float in `[0, 1)` is a fraction of the epochs of `fit()`
      (`epochs`): averaging begins after `start * epochs` epochs, at epoch
      `floor(start * epochs)`. The default `0.75` averages the last
      quarter; `start=0.5` with `epochs=4` is `start=2`.

    Each `fit()` starts a new average. If training stops (an
    `EarlyStopping`, `model.stop_training`) before epoch `start` ends, the
    model keeps its last weights, with a warning. Callbacks run in the order
    of the list: one that also sets the weights when training ends
    (`EarlyStopping(restore_best_weights=True)`, an optimizer's
    `use_ema=True`) is overridden by this callback placed after it.

    Args:
        start: int epoch `>= 0`, or float fraction of the epochs in
            `[0, 1)`: where averaging begins. Defaults to `0.75`.
        batchnorm_data: the batches over which the BatchNorm statistics of
            the averaged weights are computed, typically the training data:
            a finite `keras.utils.PyDataset`, a `tf.data.Dataset`, or any
            iterable (a list, a `torch.utils.data.DataLoader`) of batches
            `x` or tuples `(x, y)` / `(x, y, sample_weight)` (`y` and the
            weights are not used). Iterated once per `fit()`, so a one-shot
            iterator serves one `fit()` only. Required for a model with
            trainable `BatchNormalization` layers (checked when training
            begins), unused otherwise. Defaults to `None`.

    Attributes:
        averaged_epochs: how many end-of-epoch weights the last `fit()`
            averaged (0 before training, or if it stopped before `start`).
        start_epoch: the first averaged epoch of the last `fit()` (`start`
            as an epoch), or `None` before training.

    Example:

    ```python
    inputs = keras.Input((8,))
    h = keras.layers.Dense(16, activation="relu")(inputs)
    h = keras.layers.BatchNormalization()(h)
    model = keras.Model(inputs, keras.layers.Dense(3)(h))
    model.compile(
        optimizer=keras.optimizers.SGD(0.05),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    x, y = np.random.rand(64, 8), np.random.randint(0, 3, size=64)

    # The averaged weights' BatchNorm statistics, over the training batches.
    batches = [x[i:i + 16] for i in range(0, 64, 16)]
    swa = keras_ssgd.callbacks.StochasticWeightAveraging(
        start=0.5, batchnorm_data=batches
    )
    model.fit(x, y, batch_size=16, epochs=4, verbose=0, callbacks=[swa])
    assert swa.averaged_epochs == 2  # the ends of epochs 2 and 3 (0-based)
    ```

    Guide: `docs/guides/baselines.md`.

    Reference:
    - Izmailov, Podoprikhin, Garipov, Vetrov and Wilson, "Averaging Weights
      Leads to Wider Optima and Better Generalization", UAI 2018.
    """

    def __init__(self, start=0.75, batchnorm_data=None):
        super().__init__()
        self.start = _check_start(start)
        self.batchnorm_data = _check_batchnorm_data(batchnorm_data)
        self.averaged_epochs = 0
        self.start_epoch = None
        self._variables = None
        self._sums = None
        self._last_epoch = None

    def on_train_begin(self, logs=None):
        self.averaged_epochs = 0
        self._variables = None
        self._sums = None
        self._last_epoch = None
        self.start_epoch = self._first_epoch((self.params or {}).get("epochs"))
        layers = batchnorm.batchnorm_layers(self.model)
        renorm = [layer.name for layer in layers if layer.renorm]
        if renorm:
            raise ValueError(
                "StochasticWeightAveraging cannot recompute the statistics "
                "of a BatchNormalization layer with `renorm=True`. Received: "
                f"model '{self.model.name}' with renorm layers {renorm}"
            )
        if layers and self.batchnorm_data is None:
            raise ValueError(
                "Argument `batchnorm_data` is required: model "
                f"'{self.model.name}' has BatchNormalization layers "
                f"({', '.join(layer.name for layer in layers[:4])}), whose "
                "moving statistics must be recomputed for the averaged "
                "weights over batches of training data. Received: "
                "batchnorm_data=None"
            )

    def _first_epoch(self, epochs):
        """`start` as the (0-based) first averaged epoch of a `fit()` of
        `epochs` epochs."""
        if isinstance(self.start, int):
            if epochs is not None and self.start >= epochs:
                raise ValueError(
                    f"Argument `start` is epoch {self.start} (0-based), but "
                    f"fit() runs epochs={epochs}: no epoch would be "
                    f"averaged. Received: start={self.start}"
                )
            return self.start
        if epochs is None:
            raise ValueError(
                "Argument `start` is a fraction of the epochs, but the "
                "training loop gives no `epochs` in the callback's params; "
                f"pass an int epoch instead. Received: start={self.start}"
            )
        # Rounded first: 0.57 * 100 is 56.99999999999999 in binary.
        return math.floor(round(self.start * epochs, 9))

    def on_epoch_end(self, epoch, logs=None):
        # The model's variables hold the epoch's weights here on every
        # backend (JAX's trainer syncs its state before `on_epoch_end`).
        self._last_epoch = epoch
        if epoch < self.start_epoch:
            return
        if self._variables is None:
            self._variables = list(self.model.trainable_variables)
            self._sums = [
                np.zeros(v.shape, "float64") for v in self._variables
            ]
        for total, variable in zip(self._sums, self._variables):
            total += keras.ops.convert_to_numpy(variable)
        self.averaged_epochs += 1

    def get_checkpoint_state(self):
        """The average so far, for a checkpoint of the run in progress:
        `(info, arrays)`, a JSON-ready dict and the running sums."""
        info = {"averaged_epochs": self.averaged_epochs,
                "last_epoch": self._last_epoch}
        return info, [] if self._sums is None else list(self._sums)

    def set_checkpoint_state(self, info, arrays):
        """Continues the average of `get_checkpoint_state()` (after this
        callback's `on_train_begin`)."""
        self.averaged_epochs = int(info["averaged_epochs"])
        self._last_epoch = info["last_epoch"]
        if arrays:
            self._variables = list(self.model.trainable_variables)
            self._sums = [np.array(a, "float64") for a in arrays]

    def on_train_end(self, logs=None):
        if not self.averaged_epochs:
            ran = (
                "before its first epoch ended" if self._last_epoch is None
                else f"after epoch {self._last_epoch} (0-based)"
            )
            warnings.warn(
                f"StochasticWeightAveraging: training stopped {ran}, before "
                f"averaging began at epoch {self.start_epoch} "
                f"(start={self.start!r}); the model keeps its last weights.",
                stacklevel=2,
            )
            return
        for total, variable in zip(self._sums, self._variables):
            variable.assign(
                keras.ops.cast(total / self.averaged_epochs, variable.dtype)
            )
        self._variables = self._sums = None
        if batchnorm.batchnorm_layers(self.model):
            self._recompute_batchnorm()

    def _recompute_batchnorm(self):
        try:
            batchnorm.recompute_batchnorm(self.model, self.batchnorm_data)
        except ValueError:
            raise ValueError(
                "Argument `batchnorm_data` yields no batch (a one-shot "
                "iterator used up by an earlier fit()?): the model has the "
                "averaged weights, but its BatchNormalization layers keep "
                "the statistics of the last weights of training. Received: "
                f"batchnorm_data={self.batchnorm_data!r}"
            ) from None


def _check_start(start):
    """`start` as an int epoch `>= 0` or a float fraction in `[0, 1)`."""
    if isinstance(start, bool) or not isinstance(start, numbers.Real):
        raise TypeError(
            "Argument `start` must be an int epoch >= 0 or a float fraction "
            f"of the epochs in [0, 1). Received: start={start!r} (of type "
            f"{type(start).__name__})"
        )
    if isinstance(start, numbers.Integral):
        if start < 0:
            raise ValueError(
                "Argument `start` must be >= 0 as an int (an epoch). "
                f"Received: start={start!r}"
            )
        return int(start)
    if not 0 <= start < 1:  # NaN too
        raise ValueError(
            "Argument `start` must be in [0, 1) as a float (a fraction of "
            "the epochs; an int is an epoch). Received: "
            f"start={float(start)!r}"
        )
    return float(start)


def _check_batchnorm_data(data):
    """`data` if it is `None` or a finite iterable of batches."""
    if data is None:
        return None
    if hasattr(data, "shape") or isinstance(data, dict) or not hasattr(
        data, "__iter__"
    ):
        raise TypeError(
            "Argument `batchnorm_data` must be an iterable of batches (a "
            "PyDataset, a tf.data.Dataset, a list of arrays); an array or a "
            "dict is one batch, whose rows or keys it would iterate. "
            "Received: "
            f"batchnorm_data of type {type(data).__name__}"
        )
    if isinstance(data, keras.utils.PyDataset):
        try:
            batches = data.num_batches
        except NotImplementedError:
            batches = None
        if batches is None:
            raise ValueError(
                "Argument `batchnorm_data` must be finite: a PyDataset "
                "whose `num_batches` is None never ends. Received: "
                f"batchnorm_data={data!r}"
            )
    return data
