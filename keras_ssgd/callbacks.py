"""Callbacks that drive S-SGD during `fit()`."""

import keras

from keras_ssgd.phases import PhasePlan
from keras_ssgd.validation import check_noise_level


class NoiseSchedule(keras.callbacks.Callback):
    """Sets a `SymmetricSGDModel`'s `noise_level` at the start of each epoch.

    The schedule is either a function `epoch -> noise_level` (epochs counted
    from 0), or a phase plan in the paper's Table 1 notation such as
    `"75-25S-25S"`: `noise_level` in the `S` phases, 0 (plain SGD, one pass
    per step) elsewhere. Changing the level does not retrace the step. The
    level is logged as `noise_level` at the end of each epoch.

    Args:
        schedule: callable `epoch -> float`, a plan string, or a `PhasePlan`.
        noise_level: float > 0. The level of the S-SGD phases of a plan.
            Required with a plan, refused with a callable.
        verbose: int. 1 prints each change of level. Defaults to `0`.

    Example:

    ```python
    plan = keras_ssgd.phases.PhasePlan.parse("75-25S-25S")
    lr = plan.learning_rate_schedule(0.1, steps_per_epoch=391)  # /10 drops
    model.compile(optimizer=keras.optimizers.SGD(lr, momentum=0.9), ...)
    model.fit(
        train_ds, epochs=plan.epochs,
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
        epochs = (self.params or {}).get("epochs")
        if self.plan is not None and epochs and epochs > self.plan.epochs:
            raise ValueError(
                f"The phase plan '{self.plan}' covers {self.plan.epochs} "
                f"epochs, but fit() was asked for epochs={epochs}."
            )

    def on_epoch_begin(self, epoch, logs=None):
        level = self.level(epoch)
        if level != self._level and self.verbose:
            io = keras.utils.io_utils
            io.print_msg(f"\nEpoch {epoch + 1}: noise_level = {level:g}.")
        self._level = level
        self.model.noise_level = level

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["noise_level"] = self.model.noise_level
