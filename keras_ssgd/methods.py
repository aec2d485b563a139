"""The training methods by name: the one table that `keras_ssgd.wrap`,
`ssgd-train`, the docs and the tests read.

Each entry says what the method is (`Method`): its model class (a
`PerturbedModel` subclass, or `None` where plain Keras runs it: SGD, and
Dropout, which lives in the model), what its level is and its range, its
defaults, its cost in passes, and the constructor options that make it
(`ssgd-split`). A method that needs more than a model class carries it as
hooks (`build_model`, `optimizer_options`, `callbacks`, `after_fit`), so
`ssgd-train` runs every method the same way and never asks for one by
name. `register` adds a method of your own.

Example:

>>> from keras_ssgd.methods import METHODS
>>> METHODS["ssgd"].level_name, METHODS["ssgd"].passes
('noise_level', 2)
>>> sorted(name for name, m in METHODS.items() if m.wrappable)
['arwp', 'asam', 'dropconnect', 'marwp', 'msam', 'sam', 'smoothout', 'ssgd', 'weight-noise']
"""

import dataclasses

import keras

from keras_ssgd import baselines
from keras_ssgd.batchnorm import recompute_batchnorm
from keras_ssgd.callbacks import StochasticWeightAveraging
from keras_ssgd.model import SymmetricSGDModel
from keras_ssgd.validation import check_noise_level
from keras_ssgd.validation import check_rate

# The method every other is compared with.
REFERENCE = "sgd"
# The methods `ssgd-train` and `compare` run when none are named.
DEFAULT_METHODS = (REFERENCE, "ssgd")
# What a level may be: a number >= 0 (a noise level, rho), a drop
# probability in [0, 1), or a fraction in [0, 1) (an EMA momentum, the
# share of the epochs before averaging starts).
LEVEL_RANGES = ("nonnegative", "probability", "fraction")


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
        level_range: what a level may be, one of `LEVEL_RANGES`:
            `"nonnegative"` (default), `"probability"` or `"fraction"`.
        uses_dropout: whether the method builds its model with the
            builder's `dropout` argument (`dropout`): a user's builder
            must take one.
        needs_momentum: whether the method reads the optimizer's momentum
            (`msam`): SGD without momentum is refused for it.

    Subclasses override the hooks (`build_model`, `optimizer_options`,
    `callbacks`, `after_fit`) where a model class is not all the method
    is; the defaults do nothing beyond wrapping the model.

    Example:

    >>> m = Method("noisy", baselines.WeightNoiseModel, "noise_level",
    ...            (0.1,), 1, "weight noise at 0.1 by default")
    >>> m.check_level(0.3)
    0.3
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
    level_range: str = "nonnegative"
    uses_dropout: bool = False
    needs_momentum: bool = False

    def __post_init__(self):
        if self.level_range not in LEVEL_RANGES:
            raise ValueError(
                f"Argument `level_range` must be one of "
                f"{list(LEVEL_RANGES)}. Received: "
                f"level_range={self.level_range!r}"
            )

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
        """`value` as a float if it is in the method's level range, else
        a `ValueError` (or `TypeError`) naming the method and its level."""
        name = f"{self.name} {self.level_name}"
        if self.level_range == "probability":
            return check_rate(value, name)
        value = check_noise_level(value, name)
        if self.level_range == "fraction" and value >= 1:
            raise ValueError(
                f"Argument `{name}` must be in [0, 1). "
                f"Received: {self.level_name}={value}"
            )
        return value

    # Hooks: what a run of the method does beyond compiling and fitting.

    def build_model(self, plain, level, rebuild=None, *, wrap=None, every=1,
                    **options):
        """The method's model, from the plain model built from the seed.

        Args:
            plain: the plain `keras.Model` (every method of a seed starts
                from its weights).
            level: the method's level.
            rebuild: `rebuild(dropout)` builds the plain model again with
                a dropout rate (the builder's third argument), or None.
            wrap: the function that wraps a model in a method class,
                `keras_ssgd.wrap` (passed in: this table sits below it).
            every: the recipe's `every`, for an every-k method.
            **options: `keras_ssgd.wrap` arguments of the run (`seed`,
                `noise_filter`).

        Returns:
            `plain` itself for a method without a model class, else `plain`
            wrapped in it.
        """
        if self.model_class is None:
            return plain
        kwargs = {self.level_name: level, **self.options}
        if self.every:
            kwargs["every"] = every
        return wrap(plain, method=self.model_class, **kwargs, **options)

    def optimizer_options(self, level):
        """Keyword arguments the method adds to the Keras optimizer."""
        return {}

    def callbacks(self, level, data, epoch_eval=False):
        """Callbacks the method adds to `fit()` (`data`: the run's
        `keras_ssgd.data.Data`; `epoch_eval`: whether each epoch is
        evaluated)."""
        return []

    def after_fit(self, model, data):
        """Work on the trained model before it is evaluated."""


@dataclasses.dataclass(frozen=True)
class DropoutMethod(Method):
    """Dropout: the builder's model with a Dropout layer of rate `level`
    before its head, from the plain model's weights."""

    def build_model(self, plain, level, rebuild=None, *, wrap=None, every=1,
                    **options):
        with_dropout = rebuild(level)
        with_dropout.set_weights(plain.get_weights())
        return with_dropout


@dataclasses.dataclass(frozen=True)
class EmaMethod(Method):
    """SGD evaluated on Keras's optimizer EMA of its weights (its level the
    EMA momentum), BatchNorm statistics recomputed for the average."""

    def optimizer_options(self, level):
        return {"use_ema": True, "ema_momentum": level}

    def callbacks(self, level, data, epoch_eval=False):
        # Each epoch's evaluation on the averages too, as the final one.
        return ([keras.callbacks.SwapEMAWeights(swap_on_epoch=True)]
                if epoch_eval else [])

    def after_fit(self, model, data):
        # Keras's `fit()` ends by assigning the optimizer's averages to the
        # weights; on JAX a weight then shares its buffer with the average,
        # and `evaluate()` frees that buffer (the save after it fails:
        # "Array has been deleted"). A copy of its own for each weight.
        for variable in model.trainable_variables:
            variable.assign(keras.ops.copy(variable.value))
        # Keras averages the trainable weights only: the BatchNorm
        # statistics are recomputed for the average, as SWA's are.
        recompute_batchnorm(model, data.train_eval)


@dataclasses.dataclass(frozen=True)
class SwaMethod(Method):
    """SGD evaluated on the average of its end-of-epoch weights from the
    fraction `level` of the epochs on (`StochasticWeightAveraging`)."""

    def callbacks(self, level, data, epoch_eval=False):
        return [StochasticWeightAveraging(
            start=level, batchnorm_data=data.train_eval,
        )]


def register(method, *, replace=False):
    """Adds `method` to `METHODS`, so `ssgd-train`, `compare` and
    `keras_ssgd.wrap` (where it is wrappable: a model class and no options)
    know it by its name.

    Args:
        method: a `Method` (or a subclass with its hooks).
        replace: allow replacing a method of the same name. Defaults to
            `False`.

    Returns:
        `method`.

    Raises:
        TypeError: `method` is not a `Method`.
        ValueError: its name is taken and `replace` is `False`.

    Example:

    >>> import dataclasses
    >>> rademacher = dataclasses.replace(
    ...     METHODS["ssgd-split"], name="ssgd-split-rademacher",
    ...     options={"split_batch": True, "noise_distribution": "rademacher"})
    >>> register(rademacher).passes
    1
    >>> del METHODS["ssgd-split-rademacher"]  # (only to undo the example)
    """
    if not isinstance(method, Method):
        raise TypeError(
            f"Argument `method` must be a keras_ssgd.methods.Method. "
            f"Received: method={method!r} (of type {type(method).__name__})"
        )
    if method.name in METHODS and not replace:
        raise ValueError(
            f"Argument `method` names a method that exists: "
            f"{method.name!r} (pass replace=True to replace it). "
            f"Received: method.name={method.name!r}"
        )
    METHODS[method.name] = method
    return method

METHODS = {
    m.name: m
    for m in (
        Method(REFERENCE, description="plain training, the reference"),
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
            level_range="probability",
        ),
        DropoutMethod(
            "dropout", None, "rate", (0.3,), 1,
            "Dropout layer with this rate before the dense head",
            hint="a keras.layers.Dropout layer in the model",
            level_range="probability", uses_dropout=True,
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
            "msam", baselines.MomentumSAMModel, "rho", (0.3,), 1,
            "Momentum-SAM: gradient at W - rho * v / ||v||, v the "
            "optimizer's momentum (one pass)",
            needs_momentum=True,
        ),
        Method(
            "arwp", baselines.AdaptiveRandomPerturbationModel, "sigma",
            (0.01,), 1,
            "adaptive random weight perturbation: gradient at W + e, e "
            "Gaussian, std sigma * ||W_f|| per filter, damped by the "
            "gradient history",
        ),
        Method(
            "marwp", baselines.MixedAdaptiveRandomPerturbationModel,
            "sigma", (0.01,), 2,
            "mixed ARWP: mean of the gradients at W and at W + e (ARWP's "
            "e), weights mix and 1 - mix",
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
            "SAM on one step in k (--every), plain steps between (the "
            "naive interval baseline, not LookSAM): 1 + 1/k passes",
            every=True, hint="keras_ssgd.wrap(model, 'sam', every=k)",
        ),
        EmaMethod(
            "ema", None, "ema_momentum", (0.99,), 1,
            "SGD evaluated on the exponential moving average of its "
            "weights (Keras's optimizer EMA, use_ema=True), BatchNorm "
            "statistics recomputed",
            hint="Keras's optimizer setting: compile(optimizer=keras."
            "optimizers.SGD(..., use_ema=True, ema_momentum=0.99))",
            level_range="fraction",
        ),
        SwaMethod(
            "swa", None, "start", (0.75,), 1,
            "SGD evaluated on the average of its end-of-epoch weights from "
            "this fraction of the epochs on, BatchNorm statistics "
            "recomputed (SWA)",
            hint="a callback: fit(..., callbacks=[keras_ssgd.callbacks."
            "StochasticWeightAveraging(start=0.75, batchnorm_data=...)])",
            level_range="fraction",
        ),
    )
}
