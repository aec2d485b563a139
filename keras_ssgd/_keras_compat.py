"""Every private Keras name keras_ssgd relies on, in one module.

Keras 3 keeps these out of its public API; the package uses each for the
reason written beside it, and nowhere else imports `keras.src` or reads a
private member of a Keras object. `MEMBERS` lists them; the test suite
checks each against the installed Keras
(`tests/behaviour/test_keras_compat.py`), and a missing one fails with the
Keras version and the member's name.

Reference:
- `keras/src/models/model.py`, `keras/src/models/functional.py`,
  `keras/src/trainers/trainer.py`, `keras/src/saving/object_registration.py`,
  `keras/src/backend/jax/trainer.py` and
  `keras/src/backend/jax/distribution_lib.py` (Keras 3.15).
"""

import contextlib

# A model built from a layer graph (`Model(inputs, outputs)`) is a
# `Functional`: the methods' classes mix it in as `keras.Model` does.
from keras.src.models.functional import Functional
from keras.src.models import model as _model
from keras.src.models.model import functional_init_arguments
from keras.src.saving import object_registration

# The backend's trainer class, whose `__init__` a Functional variant runs.
Trainer = _model.Trainer

# The names saved models are written with; the Functional variants register
# under their base class's name, so a saved model loads as that class.
GLOBAL_CUSTOM_NAMES = object_registration.GLOBAL_CUSTOM_NAMES


def call_has_training_arg(model):
    """Whether `model.call` takes `training` (Keras's trainers pass it only
    then)."""
    return model._call_has_training_arg


def flatten_layers(layer, include_self=True, recursive=True):
    """The layers of `layer`, parents before their sub-layers (Keras's
    own walk, which tracks every sub-layer however it is held)."""
    return layer._flatten_layers(include_self=include_self,
                                 recursive=recursive)


def own_variables(layer):
    """The variables `layer` created itself (not its sub-layers')."""
    return layer._trainable_variables + layer._non_trainable_variables


def unpickle_model():
    """The loader `keras.Model.__reduce__` names: a model's saved bytes
    back to a model."""
    import keras

    return keras.Model._unpickle_model


def functional_variant(cls):
    """`cls` with `Functional` mixed in, for construction from a layer graph.

    Keras would otherwise rewrite the bases of `cls` (and of every parent
    up to `keras.Model`) in place the first time it is built from `inputs`
    and `outputs`, which breaks later subclassed use of the same class. The
    variant keeps the name and registered name of `cls`, so saved models
    name `cls` and load through it.
    """
    if issubclass(cls, Functional):
        return cls
    if cls not in _FUNCTIONAL_VARIANTS:
        from keras.saving import get_registered_name

        variant = type(
            cls.__name__,
            (cls, Functional),
            {"__module__": cls.__module__, "__qualname__": cls.__qualname__},
        )
        GLOBAL_CUSTOM_NAMES[variant] = get_registered_name(cls)
        _FUNCTIONAL_VARIANTS[cls] = variant
    return _FUNCTIONAL_VARIANTS[cls]


_FUNCTIONAL_VARIANTS = {}


def compute_loss(model, **kwargs):
    """Keras's wrapper around `model.compute_loss`, which accepts overrides
    without a `training` argument (as Keras's trainers call it)."""
    return model._compute_loss(**kwargs)


def compile_arguments(model):
    """The arguments `keras.Model.compile` last received for `model` (a
    dict: `optimizer`, `loss`, `metrics`, ...), as a `compile()` override
    resolved them (KerasHub tasks' `"auto"`); `None` before any
    `compile()`."""
    config = getattr(model, "_compile_config", None)
    return None if config is None else dict(config.config)


def build_metrics(model, batch):
    """Creates the variables of `model`'s compiled loss and metrics from
    one `(x, y)` batch, as `fit()` does before its first step on JAX and
    PyTorch (on TensorFlow, without a strategy, Keras defers this to the
    tracing of the first step)."""
    model._symbolic_build(data_batch=batch)


def tensorboard_writers(callback):
    """The summary writers a `keras.callbacks.TensorBoard` has opened."""
    return list(callback._writers.values())


def loss_tracker(model):
    """The mean metric behind the `loss` that `fit()` reports."""
    return model._loss_tracker


def state_sharding_spec(model):
    """JAX: the shardings of the trainable, non-trainable, optimizer and
    metric variables that Keras compiles the train step with."""
    return model._get_state_sharding_spec()


@contextlib.contextmanager
def state_sharding_spec_as(model, spec):
    """JAX: Keras compiles the train step with `spec` as the shardings of
    its state while this is open."""
    model._get_state_sharding_spec = lambda: spec
    try:
        yield
    finally:
        del model._get_state_sharding_spec


@contextlib.contextmanager
def batchnorm_moments_as(layers, wrap):
    """Each `BatchNormalization` of `layers` computes its batch moments
    with `wrap(moments)` (its own method, wrapped) while this is open."""
    for layer in layers:
        layer._moments = wrap(layer._moments)
    try:
        yield
    finally:
        for layer in layers:
            del layer._moments


def tf_strategy_supports_no_merge_call():
    """TensorFlow: whether the current `tf.distribute` strategy applies
    gradients without a merge call (as Keras's TensorFlow optimizer asks)."""
    import tensorflow as tf

    return tf.__internal__.distribute.strategy_supports_no_merge_call()


def tf_strategy_reduce_to_as(strategy, wrap):
    """TensorFlow: `strategy`'s cross-replica reduction (its extended
    `_reduce_to`, which `strategy.reduce` calls) becomes
    `wrap(reduce_to)`, for good."""
    extended = strategy.extended
    extended._reduce_to = wrap(extended._reduce_to)


def jax_distribute_data(data):
    """JAX: a batch laid out over the devices of `keras.distribution`, as
    Keras's JAX trainer lays it out."""
    from keras.src.backend.jax.trainer import _distribute_data

    return _distribute_data(data)


def jax_initialize_rng():
    """JAX: the random state every process of a distribution shares."""
    from keras.src.backend.jax.distribution_lib import initialize_rng

    return initialize_rng()


def first_moment(optimizer, variable):
    """The optimizer's first-moment (momentum) variable of `variable`, and
    its orientation: `(moment, sign)` with `sign * moment` pointing where
    the optimizer has been moving the weights (a descent direction), or
    `None` for an optimizer that keeps no momentum.

    Keras's `SGD` keeps `m = momentum * m - lr * g` in its public
    `momentums` (a descent direction: sign +1); `Adam` and `AdamW` keep
    `m = beta_1 * m + (1 - beta_1) * g` in the private `_momentums`, the
    gradient's direction (sign -1). Each is found by the optimizer's
    private `_get_variable_index`. A `LossScaleOptimizer` (mixed precision)
    is read through its inner optimizer.
    """
    import keras

    inner = getattr(optimizer, "inner_optimizer", optimizer)
    if isinstance(inner, keras.optimizers.SGD):
        if not inner.momentum:
            return None
        return inner.momentums[inner._get_variable_index(variable)], 1.0
    if isinstance(inner, keras.optimizers.Adam):  # AdamW is an Adam
        return inner._momentums[inner._get_variable_index(variable)], -1.0
    return None


def keeps_first_moment(optimizer):
    """Whether `first_moment` can read `optimizer`'s momentum."""
    import keras

    inner = getattr(optimizer, "inner_optimizer", optimizer)
    if isinstance(inner, keras.optimizers.SGD):
        return bool(inner.momentum)
    return isinstance(inner, keras.optimizers.Adam)


# (name, kind, how to find it): what tests/behaviour/test_keras_compat.py
# checks. The kind says where: this module ("module"), a compiled model
# ("model"; on JAX only, "jax-model"), a BatchNormalization layer, a built SGD
# optimizer ("optimizer") or Adam ("adam"), or "module:attribute" of JAX or
# TensorFlow, looked up when that library is installed.
MEMBERS = (
    ("keras.src.models.functional.Functional", "module",
     lambda: Functional),
    ("keras.src.models.model.functional_init_arguments", "module",
     lambda: functional_init_arguments),
    ("keras.src.models.model.Trainer", "module", lambda: Trainer),
    ("keras.src.saving.object_registration.GLOBAL_CUSTOM_NAMES", "module",
     lambda: GLOBAL_CUSTOM_NAMES),
    ("Model._call_has_training_arg", "model", "_call_has_training_arg"),
    ("Layer._flatten_layers", "model", "_flatten_layers"),
    ("Layer._trainable_variables", "batchnorm", "_trainable_variables"),
    ("Layer._non_trainable_variables", "batchnorm",
     "_non_trainable_variables"),
    ("Model._unpickle_model", "model", "_unpickle_model"),
    ("Model._compute_loss", "model", "_compute_loss"),
    ("Model._loss_tracker", "model", "_loss_tracker"),
    ("Model._compile_config", "model", "_compile_config"),
    ("Model._symbolic_build", "model", "_symbolic_build"),
    ("TensorBoard._writers", "tensorboard", "_writers"),
    ("Model._get_state_sharding_spec", "jax-model", "_get_state_sharding_spec"),
    ("BatchNormalization._moments", "batchnorm", "_moments"),
    ("Optimizer._get_variable_index", "optimizer", "_get_variable_index"),
    ("Adam._momentums", "adam", "_momentums"),
    ("keras.src.backend.jax.trainer._distribute_data", "jax",
     "keras.src.backend.jax.trainer:_distribute_data"),
    ("keras.src.backend.jax.distribution_lib.initialize_rng", "jax",
     "keras.src.backend.jax.distribution_lib:initialize_rng"),
    ("tf.distribute.StrategyExtended._reduce_to", "tensorflow",
     "tensorflow:distribute.StrategyExtended._reduce_to"),
    ("tf.__internal__.distribute.strategy_supports_no_merge_call",
     "tensorflow", "tensorflow:__internal__.distribute."
     "strategy_supports_no_merge_call"),
)

__all__ = [
    "Functional", "GLOBAL_CUSTOM_NAMES", "MEMBERS", "Trainer",
    "batchnorm_moments_as", "build_metrics", "call_has_training_arg",
    "compile_arguments",
    "compute_loss",
    "first_moment", "flatten_layers", "functional_variant",
    "keeps_first_moment", "own_variables", "unpickle_model",
    "functional_init_arguments", "jax_distribute_data", "jax_initialize_rng",
    "loss_tracker", "state_sharding_spec", "state_sharding_spec_as",
    "tensorboard_writers",
    "tf_strategy_reduce_to_as", "tf_strategy_supports_no_merge_call",
]
