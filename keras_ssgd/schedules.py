"""Learning-rate schedules: SGDR in epochs, on top of Keras's own."""

import keras

from keras_ssgd.validation import check_positive_int


@keras.saving.register_keras_serializable(package="keras_ssgd")
class SGDR(keras.optimizers.schedules.CosineDecayRestarts):
    """SGDR (cosine annealing with warm restarts), with periods in epochs.

    A thin layer over `keras.optimizers.schedules.CosineDecayRestarts` that
    counts in epochs: the first cosine period lasts `first_period_epochs`
    epochs and each later one `t_mul` times the previous. The defaults are
    the paper's large-batch setting (Section 4.3): learning rate 0.1, a first
    period of 10 epochs, doubling at every restart, so restarts fall at
    epochs 10, 30, 70, 150 and 310.

    Args:
        initial_learning_rate: float. The learning rate at each restart (times
            `m_mul` per restart). Defaults to `0.1`.
        steps_per_epoch: int > 0. Optimizer steps in one epoch.
        first_period_epochs: float > 0. Length of the first period, in
            epochs. Defaults to `10`.
        t_mul: float. Factor applied to the period at each restart.
            Defaults to `2.0`.
        m_mul: float. Factor applied to the restart learning rate at each
            restart. Defaults to `1.0`.
        alpha: float. Minimum learning rate, as a fraction of the initial one.
            Defaults to `0.0`.
        name: str. Defaults to `"SGDR"`.

    Example:

    ```python
    # CIFAR's 50000 training images in batches of 128: 391 steps an epoch.
    schedule = keras_ssgd.schedules.SGDR(steps_per_epoch=391)
    optimizer = keras.optimizers.SGD(schedule, momentum=0.9)
    ```

    Reference:
    - [Loshchilov & Hutter, SGDR: Stochastic Gradient Descent with Warm
      Restarts](https://arxiv.org/abs/1608.03983)
    """

    def __init__(
        self,
        initial_learning_rate=0.1,
        steps_per_epoch=None,
        first_period_epochs=10,
        t_mul=2.0,
        m_mul=1.0,
        alpha=0.0,
        name="SGDR",
    ):
        check_positive_int(steps_per_epoch, "steps_per_epoch")
        if not first_period_epochs > 0:
            raise ValueError(
                "Argument `first_period_epochs` must be > 0. "
                f"Received: first_period_epochs={first_period_epochs!r}"
            )
        super().__init__(
            initial_learning_rate,
            first_decay_steps=first_period_epochs * steps_per_epoch,
            t_mul=t_mul,
            m_mul=m_mul,
            alpha=alpha,
            name=name,
        )
        self.steps_per_epoch = steps_per_epoch
        self.first_period_epochs = first_period_epochs

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "steps_per_epoch": self.steps_per_epoch,
            "first_period_epochs": self.first_period_epochs,
            "t_mul": self._t_mul,
            "m_mul": self._m_mul,
            "alpha": self.alpha,
            "name": self.name,
        }


@keras.saving.register_keras_serializable(package="keras_ssgd")
class WarmupScaled(keras.optimizers.schedules.LearningRateSchedule):
    """`base * scale * factor(step)`, ramped linearly from `base` over
    `warmup_steps` (the schedule's factor applies throughout)."""

    def __init__(self, base, scale, warmup_steps=0, schedule=None):
        self.base = float(base)
        self.scale = float(scale)
        self.warmup_steps = int(warmup_steps)
        if isinstance(schedule, dict):
            schedule = keras.saving.deserialize_keras_object(schedule)
        self.schedule = schedule

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        factor = 1.0 if self.schedule is None else keras.ops.cast(
            self.schedule(step), "float32"
        )
        if self.warmup_steps > 0:
            ramp = keras.ops.minimum(step / self.warmup_steps, 1.0)
            scale = 1.0 + (self.scale - 1.0) * ramp
        else:
            scale = self.scale
        return self.base * scale * factor

    def get_config(self):
        return {
            "base": self.base, "scale": self.scale,
            "warmup_steps": self.warmup_steps,
            "schedule": (
                None if self.schedule is None
                else keras.saving.serialize_keras_object(self.schedule)
            ),
        }
