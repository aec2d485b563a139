"""The training methods by name: the one table that `keras_ssgd.wrap`,
`ssgd-train`, the docs and the tests read.

Each entry says what the method is (`Method`): its model class (a
`PerturbedModel` subclass, or `None` where plain Keras runs it: SGD, and
Dropout, which lives in the model), what its level is, its defaults, its
cost in passes, and the constructor options that make it (`ssgd-split`).

Example:

>>> from keras_ssgd.methods import METHODS
>>> METHODS["ssgd"].level_name, METHODS["ssgd"].passes
('noise_level', 2)
>>> sorted(name for name, m in METHODS.items() if m.wrappable)
['asam', 'dropconnect', 'sam', 'smoothout', 'ssgd', 'weight-noise']
"""

import dataclasses

from keras_ssgd import baselines
from keras_ssgd.model import SymmetricSGDModel
from keras_ssgd.validation import check_noise_level
from keras_ssgd.validation import check_rate


@dataclasses.dataclass(frozen=True)
class Method:
    """A training method as the command runs it.

    Args:
        name: the command-line name.
        model_class: the `PerturbedModel` subclass, or `None` for a plain
            `keras.Model` (SGD, and Dropout, which lives in the model).
        level_name: what the method's level is (`noise_level`, `rate`,
            `rho`), or `None` for SGD.
        default_levels: the levels used when none are given.
        passes: forward/backward passes per step (cost relative to SGD).
        description: one line for `--help`.
        options: constructor arguments of `model_class` that make the
            method (`split_batch=True` for `ssgd-split`).
        every: whether the method runs on one step in `k` only, plain
            steps between (`ssgd-every`, `sam-every`), `k` being the
            recipe's `every`; its cost is then `passes_at(k)`.
        hint: for a method `keras_ssgd.wrap` does not build, how to get it
            in Keras (its error message says it).
    """

    name: str
    model_class: type = None
    level_name: str = None
    default_levels: tuple = ()
    passes: int = 1
    description: str = ""
    options: dict = dataclasses.field(default_factory=dict)
    every: bool = False
    hint: str = ""

    def passes_at(self, every=1):
        """Passes per step on average when one step in `every` runs the
        method (for an every-k method; the others ignore `every`)."""
        if not self.every:
            return self.passes
        return 1 + (self.passes - 1) / every

    @property
    def wrappable(self):
        """Whether `keras_ssgd.wrap(model, method=name)` builds it: a
        `PerturbedModel` subclass with no options of its own."""
        return (
            self.model_class is not None and not self.options
            and not self.every
        )

    @property
    def has_split_form(self):
        """Whether the method can run `H` (split S-SGD) phases."""
        return isinstance(self.model_class, type) and issubclass(
            self.model_class, SymmetricSGDModel
        )

    def check_level(self, value):
        if self.level_name == "rate":
            return check_rate(value, f"{self.name} {self.level_name}")
        if self.level_name in ("ema_momentum", "start"):  # fractions
            value = check_noise_level(value, f"{self.name} {self.level_name}")
            if value >= 1:
                raise ValueError(
                    f"Argument `{self.name} {self.level_name}` must be in "
                    f"[0, 1). Received: {self.level_name}={value}"
                )
            return value
        return check_noise_level(value, f"{self.name} {self.level_name}")


METHODS = {
    m.name: m
    for m in (
        Method("sgd", description="plain training, the reference"),
        Method(
            "ssgd", SymmetricSGDModel, "noise_level", (0.2,), 2,
            "S-SGD: mean gradient at W + n and W - n, ||n|| = level * ||W||",
        ),
        Method(
            "weight-noise", baselines.WeightNoiseModel, "noise_level",
            (0.2,), 1, "gradient at W + n, the S-SGD noise rule (Eq. 2)",
        ),
        Method(
            "smoothout", baselines.SmoothOutModel, "noise_level", (0.4,), 1,
            "gradient at W + u, u uniform, bound level * ||W|| / sqrt(size)",
        ),
        Method(
            "dropconnect", baselines.DropConnectModel, "rate", (0.3,), 1,
            "dense kernels' weights dropped with probability rate",
        ),
        Method(
            "dropout", None, "rate", (0.3,), 1,
            "Dropout layer with this rate before the dense head",
            hint="a keras.layers.Dropout layer in the model",
        ),
        Method(
            "sam", baselines.SharpnessAwareModel, "rho", (0.05,), 2,
            "SAM: gradient at W + rho * g / ||g||",
        ),
        Method(
            "asam", baselines.AdaptiveSharpnessAwareModel, "rho", (0.5,), 2,
            "ASAM: gradient at W + rho * T^2 g / ||T g||, T = |W| + eta",
        ),
        Method(
            "ssgd-split",
            SymmetricSGDModel, "noise_level", (0.2,), 1,
            "S-SGD split form: first half of the batch at W + n, second at "
            "W - n (the cost of SGD)",
            options={"split_batch": True},
            hint="keras_ssgd.wrap(model, 'ssgd', split_batch=True)",
        ),
        Method(
            "ssgd-every", SymmetricSGDModel, "noise_level", (0.2,), 2,
            "S-SGD on one step in k (--every), plain steps between: "
            "1 + 1/k passes",
            every=True, hint="keras_ssgd.wrap(model, 'ssgd', every=k)",
        ),
        Method(
            "sam-every", baselines.SharpnessAwareModel, "rho", (0.05,), 2,
            "SAM on one step in k (--every), plain steps between (as "
            "LookSAM): 1 + 1/k passes",
            every=True, hint="keras_ssgd.wrap(model, 'sam', every=k)",
        ),
        Method(
            "ema", None, "ema_momentum", (0.99,), 1,
            "SGD evaluated on the exponential moving average of its "
            "weights (Keras's optimizer EMA, use_ema=True), BatchNorm "
            "statistics recomputed",
            hint="Keras's optimizer setting: compile(optimizer=keras."
            "optimizers.SGD(..., use_ema=True, ema_momentum=0.99))",
        ),
        Method(
            "swa", None, "start", (0.75,), 1,
            "SGD evaluated on the average of its end-of-epoch weights from "
            "this fraction of the epochs on, BatchNorm statistics "
            "recomputed (SWA)",
            hint="a callback: fit(..., callbacks=[keras_ssgd.callbacks."
            "StochasticWeightAveraging(start=0.75, batchnorm_data=...)])",
        ),
    )
}
