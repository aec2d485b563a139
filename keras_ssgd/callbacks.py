"""Callbacks that drive S-SGD during `fit()`."""

import keras

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
            self.model._set_phase_split(False)

    def split_batch(self, epoch):
        """Whether `epoch` (0-based) is an `H` (split S-SGD) epoch."""
        return self.plan is not None and self.plan.split_batch(epoch)

    def on_epoch_begin(self, epoch, logs=None):
        level = self.level(epoch)
        split = self.split_batch(epoch)
        if (level, split) != (self._level, self._split) and self.verbose:
            form = " (split S-SGD)" if split else ""
            io = keras.utils.io_utils
            io.print_msg(f"\nEpoch {epoch + 1}: noise_level = {level:g}{form}.")
        self._level, self._split = level, split
        if self.plan is not None and self.plan.has_split and level > 0:
            # Between two noisy phases the form may change; a plain phase
            # runs Keras's step whatever the form, so it keeps the last one.
            self.model._set_phase_split(split)
        self.model.noise_level = level

    def on_train_end(self, logs=None):
        if self.plan is not None and self.plan.has_split:
            self.model._set_phase_split(False)  # the model's own form

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["noise_level"] = self.model.noise_level
