"""`wrap()`: S-SGD (or a baseline) training for an existing Keras model.

`wrap` builds the model class of a method of `keras_ssgd.methods.METHODS`
(its `model_class`) around the user's model; `SymmetricSGDWrapper` and
`wrapper_class` are the classes it builds for a model that is not a layer
graph, or that computes its own loss, or preprocesses its own data (a
KerasHub task).
"""

import inspect
import warnings

import keras

from keras_ssgd import _keras_compat as compat
from keras_ssgd import methods
from keras_ssgd.model import SymmetricSGDModel
from keras_ssgd.perturbed import PerturbedModel


def wrap(model, method="ssgd", **kwargs):
    """Returns a `SymmetricSGDModel` that shares `model`'s layers and weights.

    Training the returned model trains `model` too (they hold the same
    variables). A functional or built `Sequential` model is rebuilt as a
    functional `SymmetricSGDModel` over the same layer graph, so `summary()`
    and `get_layer()` look the same. Any other model (a subclassed model, or
    a `Sequential` without an input shape yet) becomes the single inner layer
    of a `SymmetricSGDWrapper`.

    What of `model`'s own training logic is honoured:

    - `call`: every pass is `model(x, training=True)`.
    - `compute_loss` (and `compile`, when the model overrides it to take
      arguments its `compute_loss` reads, as keras-io's knowledge
      distillation `Distiller` does): each pass's loss is the model's own
      `compute_loss`, at every level, on every backend; at level 0 `fit()`
      is the model's own `fit()`. The wrapped model's `compile()` takes
      the model's `compile()` arguments: it compiles `model` with them,
      then itself with what the model's `compile()` passed on to
      `keras.Model.compile`, defaults resolved: `compile()` with no
      arguments on a KerasHub task model trains with the optimizer, loss
      and metrics the task picks, as `task.compile()` would.
    - `train_step` and `test_step` are refused (a `ValueError`): `wrap()`
      trains through `call` and `compute_loss`, so an override of either
      step would be skipped without a word. Put the loss in
      `compute_loss`, or subclass `keras_ssgd.SymmetricSGDModel` and take
      the step's gradient from `symmetric_gradients` (TensorFlow,
      PyTorch) or `symmetric_value_and_grad` (JAX): S-SGD then runs
      inside the step (the guide "S-SGD in a train_step of your own").
    - `predict_step` is not called: `predict()` runs `call`.
    - The preprocessing of a KerasHub task (KerasHub's `PipelineModel`,
      whose `fit`, `evaluate` and `predict` run its `preprocess_samples`
      over raw data): the wrapper's `fit`, `evaluate` and `predict` do too,
      so `wrapped.fit(texts, labels)` trains on what `task.fit(texts,
      labels)` would (the guide "Fine-tuning a KerasHub model with
      S-SGD"). Any other override of `fit`, `evaluate` or `predict` is
      not run.

    Args:
        model: a `keras.Model`.
        method: the training method: `"ssgd"` (the default), a baseline
            (`"weight-noise"`, `"smoothout"`, `"dropconnect"`, `"sam"`,
            `"asam"`), or a `keras_ssgd.PerturbedModel` subclass. The other
            names of `ssgd-train` are not model classes, and the error says
            how to get each (`"ema"`: Keras's optimizer `use_ema=True`;
            `"swa"`: `keras_ssgd.callbacks.StochasticWeightAveraging`;
            `"ssgd-every"`: `every=k`).
        **kwargs: the method's arguments (for S-SGD `noise_level`,
            `noise_filter`, `batchnorm_update`, `seed`, `split_batch`;
            `rate` for DropConnect, `rho` for SAM, `rho` and `eta` for
            ASAM; `every` for every method: its step on one step in `k`)
            and `name`.

    Returns:
        A model of the method's class, to be compiled and fitted.

    Raises:
        TypeError: `model` is not a `keras.Model`.
        ValueError: `method` is unknown, or `model` overrides `train_step`
            or `test_step`.

    Example:

    ```python
    base = keras.Sequential([              # any Keras model
        keras.Input((28, 28, 1)),
        keras.layers.Conv2D(8, 3, activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(10),
    ])
    model = keras_ssgd.wrap(base, noise_level=0.25)
    model.compile(
        optimizer="sgd",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    x, y = np.random.rand(32, 28, 28, 1), np.random.randint(0, 10, size=32)
    model.fit(x, y, epochs=1, verbose=0)
    base.save("base.keras")  # the trained weights, as a plain model
    ```

    Reference:
    - Sung et al., "S-SGD: Symmetrical Stochastic Gradient Descent for
      Reaching Flat Minima in Deep Neural Network Training".
    """
    if not isinstance(model, keras.Model):
        raise TypeError(
            "Argument `model` must be a `keras.Model`. "
            f"Received: model={model!r} (of type {type(model).__name__})"
        )
    cls = _method_class(method)
    _refuse_own_steps(model)
    kwargs.setdefault("name", model.name)
    own_loss, preprocessing = _computes_own_loss(model), preprocesses(model)
    if own_loss or preprocessing:
        return wrapper_class(cls, own_loss, preprocessing)(model, **kwargs)
    graph = _functional_graph(model)
    if graph is not None:
        inputs, outputs = graph
        return cls(inputs=inputs, outputs=outputs, **kwargs)
    return wrapper_class(cls)(model, **kwargs)


# The steps `wrap()` cannot honour: it trains through `call` and
# `compute_loss`, which a model's own step may not use at all.
OWN_STEPS = ("train_step", "test_step")


def _overrides(model, method):
    """Whether `model`'s class overrides `keras.Model`'s `method`."""
    return getattr(type(model), method) is not getattr(keras.Model, method)


def _computes_own_loss(model):
    return _overrides(model, "compute_loss") or _overrides(model, "compile")


def _refuse_own_steps(model):
    if isinstance(model, PerturbedModel):
        raise ValueError(
            "Argument `model` is already a keras_ssgd "
            f"{type(model).__name__}: it trains with its own method (in "
            "its own `train_step` too, through `symmetric_gradients` or "
            "`symmetric_value_and_grad`), and wrapping it would perturb its "
            "weights twice per step. Train it as it is, or wrap the plain "
            "Keras model. Received: model="
            f"{model.name!r} of type {type(model).__name__}"
        )
    for method in OWN_STEPS:
        if _overrides(model, method):
            owner = next(
                c for c in type(model).__mro__ if method in vars(c)
            )
            raise ValueError(
                f"Argument `model` overrides `{method}` "
                f"({owner.__qualname__}.{method}), which `wrap()` cannot "
                "honour: the wrapped model trains through `call` and "
                f"`compute_loss`, so `{owner.__qualname__}.{method}` would "
                "be skipped without a word. Put the loss in "
                "`compute_loss` (which `wrap()` honours), or keep the step: "
                "subclass `keras_ssgd.SymmetricSGDModel` instead of "
                "`keras.Model` and take the step's gradient from "
                "`self.symmetric_gradients(loss_fn)` (TensorFlow, PyTorch) "
                "or `self.symmetric_value_and_grad(fun)` (JAX), as the "
                "guide \"S-SGD in a train_step of your own\" shows "
                "(docs/guides/custom-steps.md). Received: model="
                f"{model.name!r} of type {type(model).__name__}"
            )


class _InnerModel:
    """Mixin: a `PerturbedModel` whose `call` is one inner model."""

    def __init__(self, model, **kwargs):
        if isinstance(model, dict):
            model = keras.saving.deserialize_keras_object(model)
        super().__init__(**kwargs)
        self.model = model

    def call(self, inputs, training=None):
        return self.model(inputs, training=training)

    def build(self, input_shape):
        if not self.model.built:
            # A symbolic call creates the inner model's variables.
            self.model(
                keras.tree.map_shape_structure(keras.KerasTensor, input_shape)
            )
        self.built = True

    def get_config(self):
        config = super().get_config()
        config["model"] = keras.saving.serialize_keras_object(self.model)
        return config


class _Preprocessing:
    """Mixin of a wrapper whose inner model preprocesses raw data in its own
    `fit`, `evaluate` and `predict` (a KerasHub task: strings become token
    ids through its attached `preprocessor`).

    The wrapper's `fit`, `evaluate` and `predict` batch the data as
    KerasHub's do (`tf.data`, `batch_size` or 32 a batch, in order: a
    dataset is not shuffled by `fit`) and map the inner model's
    `preprocess_samples` over the batches, so `wrapped.fit(texts, labels)`
    trains on what `task.fit(texts, labels)` would. A `tf.data.Dataset`
    is taken as it is, batched, and preprocessed the same way.
    """

    def fit(self, x=None, y=None, batch_size=None, sample_weight=None,
            validation_data=None, **kwargs):
        if kwargs.get("validation_split"):
            raise ValueError(
                f"Argument `validation_split` is not supported by model "
                f"'{self.name}', which preprocesses its data as the "
                f"{type(self.model).__name__} it wraps: pass "
                "`validation_data` instead. Received: validation_split="
                f"{kwargs['validation_split']!r}"
            )
        x = self._preprocessed(x, y, sample_weight, batch_size)
        if validation_data is not None:
            validation_data = self._preprocessed(
                *_unpacked(validation_data), batch_size
            )
        return super().fit(x, validation_data=validation_data, **kwargs)

    def evaluate(self, x=None, y=None, batch_size=None, sample_weight=None,
                 **kwargs):
        if kwargs.get("_use_cached_eval_dataset"):  # fit's validation data
            return super().evaluate(x, y, batch_size=batch_size,
                                    sample_weight=sample_weight, **kwargs)
        x = self._preprocessed(x, y, sample_weight, batch_size)
        return super().evaluate(x, **kwargs)

    def predict(self, x, batch_size=None, **kwargs):
        return super().predict(
            self._preprocessed(x, None, None, batch_size), **kwargs
        )

    def _preprocessed(self, x, y, sample_weight, batch_size):
        try:
            import tensorflow as tf
        except ImportError as error:
            raise ImportError(
                f"Model '{self.name}' preprocesses its data with `tf.data`, "
                f"as the {type(self.model).__name__} it wraps does: install "
                "TensorFlow (KerasHub's text preprocessing needs it on "
                "every backend)."
            ) from error
        if isinstance(x, tf.data.Dataset):
            given = {"y": y, "sample_weight": sample_weight,
                     "batch_size": batch_size}
            for name, value in given.items():
                if value is not None:
                    raise ValueError(
                        f"Argument `{name}` must be None when `x` is a "
                        f"`tf.data.Dataset` (it holds them). Received: "
                        f"{name}={value!r}"
                    )
            dataset = x
        else:
            samples = keras.tree.map_structure(
                lambda a: a if isinstance(a, (tf.Tensor, str, list))
                else keras.ops.convert_to_numpy(a),
                keras.utils.pack_x_y_sample_weight(x, y, sample_weight),
            )
            dataset = tf.data.Dataset.from_tensor_slices(samples).batch(
                batch_size or 32
            )
        return dataset.map(
            self.model.preprocess_samples,
            num_parallel_calls=tf.data.AUTOTUNE,
        ).prefetch(tf.data.AUTOTUNE)


def _unpacked(data):
    """`(x, y, sample_weight)` of validation data: a dataset, or a tuple."""
    if isinstance(data, tuple):
        return keras.utils.unpack_x_y_sample_weight(data)
    return data, None, None


class _OwnLoss:
    """Mixin of a wrapper whose inner model computes its own loss: it
    overrides `compute_loss`, `compile`, or both (keras-io's `Distiller`).

    `compile()` compiles the inner model with the arguments it is given
    (so its `compute_loss` finds what its `compile` stored, its compiled
    loss included), then the wrapper with what the inner model's `compile`
    passed on to `keras.Model.compile`: its defaults resolved (a KerasHub
    task's `compile()` picks its optimizer, loss and metrics), its own
    arguments (a `Distiller`'s `alpha`) left to it, and the same optimizer
    object. Every pass's loss is the inner model's `compute_loss`.
    """

    def compile(self, *args, **kwargs):
        self.model.compile(*args, **kwargs)
        if _overrides(self.model, "compile"):
            args, kwargs = (), _resolved_compile_arguments(
                self.model, args, kwargs
            )
        super().compile(*args, **kwargs)

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        return compat.compute_loss(
            self.model, x=x, y=y, y_pred=y_pred,
            sample_weight=sample_weight, training=training,
        )

    def compile_from_config(self, config):
        # A loaded model is compiled again from its compile config, as
        # Keras does, unless the inner model's `compile` takes arguments
        # that config does not hold.
        if _overrides(self.model, "compile"):
            warnings.warn(
                f"Model '{self.name}' was not compiled on loading: the "
                f"{type(self.model).__name__} it wraps has its own "
                "`compile()`, whose arguments the saved config does not "
                "hold. Call `compile()` after loading.",
                stacklevel=2,
            )
            return
        self.compile(**keras.saving.deserialize_keras_object(config))
        if getattr(self, "optimizer", None) is not None and self.built:
            self.optimizer.build(self.trainable_variables)


def _resolved_compile_arguments(model, args, kwargs):
    """What `model.compile(*args, **kwargs)` (an override) passed on to
    `keras.Model.compile`, with `model`'s optimizer object; the arguments of
    the override that `keras.Model.compile` takes, where it recorded none."""
    resolved = compat.compile_arguments(model)
    if resolved is None:
        return _keras_compile_arguments(model, args, kwargs)
    if getattr(model, "optimizer", None) is not None:
        resolved["optimizer"] = model.optimizer
    return resolved


def _keras_compile_arguments(model, args, kwargs):
    """The arguments of `model.compile(*args, **kwargs)` (an override)
    that `keras.Model.compile` takes, by name."""
    bound = inspect.signature(type(model).compile).bind(
        model, *args, **kwargs
    )
    named = {}
    for name, value in bound.arguments.items():
        kind = bound.signature.parameters[name].kind
        if kind is inspect.Parameter.VAR_KEYWORD:
            named.update(value)
        elif kind is not inspect.Parameter.VAR_POSITIONAL:
            named[name] = value
    known = inspect.signature(keras.Model.compile).parameters
    return {
        name: value for name, value in named.items()
        if name in known and name != "self"
    }


@keras.saving.register_keras_serializable(package="keras_ssgd")
class SymmetricSGDWrapper(_InnerModel, SymmetricSGDModel):
    """A `SymmetricSGDModel` that calls one inner model.

    What `wrap()` returns for subclassed models. Saving it needs the inner
    model to be serializable (registered, with a complete `get_config`), as
    for any Keras model.

    Args:
        model: the inner `keras.Model`.
        **kwargs: the `SymmetricSGDModel` arguments.

    Example:

    ```python
    class Net(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.dense = keras.layers.Dense(10)

        def call(self, x):
            return self.dense(x)

    model = keras_ssgd.wrap(Net(), noise_level=0.5)  # a SymmetricSGDWrapper
    ```
    """


def wrapper_class(cls, own_loss=False, preprocessing=False):
    """The registered wrapper of `PerturbedModel` subclass `cls`.

    `SymmetricSGDWrapper` for S-SGD; for the baselines
    `WeightNoiseModelWrapper` and so on, created and registered here. With
    `own_loss`, the wrapper of a model that computes its own loss
    (`SymmetricSGDModelOwnLossWrapper`, ...): its `compile` and
    `compute_loss` are the inner model's (see `wrap`). With
    `preprocessing`, the wrapper of a KerasHub task, which preprocesses raw
    data in its own `fit`, `evaluate` and `predict`
    (`SymmetricSGDModelOwnLossPreprocessingWrapper`, ...): the wrapper's do
    too, with the task's `preprocess_samples`.
    """
    key = (cls, own_loss, preprocessing)
    if key not in _WRAPPERS:
        name = cls.__name__ + ("OwnLoss" if own_loss else "")
        name += ("Preprocessing" if preprocessing else "") + "Wrapper"
        bases = (_InnerModel, cls)
        doc = f"A `{cls.__name__}` that calls one inner model"
        if preprocessing:
            bases = (_Preprocessing, *bases)
            doc += ", preprocessing raw data as the inner model does"
        if own_loss:
            bases = (_OwnLoss, *bases)
            doc += (", and trains it with the inner model's own "
                    "`compute_loss`")
        wrapper = type(
            name, bases,
            {"__module__": __name__, "__qualname__": name,
             "__doc__": doc + "."},
        )
        _WRAPPERS[key] = keras.saving.register_keras_serializable(
            package="keras_ssgd"
        )(wrapper)
    return _WRAPPERS[key]


def preprocesses(model):
    """Whether `model` preprocesses raw data in its own `fit`, `evaluate`
    and `predict` with a `preprocess_samples` method: KerasHub's
    `PipelineModel`, the base of every KerasHub task. Read from the model's
    class hierarchy, so KerasHub is never imported here."""
    return any(
        klass.__name__ == "PipelineModel"
        and "preprocess_samples" in vars(klass)
        for klass in type(model).__mro__
    )


_WRAPPERS = {(SymmetricSGDModel, False, False): SymmetricSGDWrapper}


def _wrappable():
    """The names of the methods `wrap()` builds: those of
    `keras_ssgd.methods.METHODS` with a model class and no options."""
    return [name for name, method in methods.METHODS.items()
            if method.wrappable]


# The wrappers of every method of the table, registered for saving, so a
# saved wrapped model loads. (A method added later by
# `keras_ssgd.methods.register` gets its wrappers when `wrap()` first
# builds it.)
for _name in _wrappable():
    for _own_loss in (False, True):
        for _preprocessing in (False, True):
            wrapper_class(methods.METHODS[_name].model_class, _own_loss,
                          _preprocessing)


def _method_class(method):
    """The model class of `method`: a `PerturbedModel` subclass, or the
    `model_class` of its entry in `keras_ssgd.methods.METHODS`."""
    if isinstance(method, type) and issubclass(method, PerturbedModel):
        return method
    found = methods.METHODS.get(method) if isinstance(method, str) else None
    if found is not None and found.wrappable:
        return found.model_class
    if found is not None:
        how = found.hint or "a plain keras.Model"
        raise ValueError(
            f"Argument `method`: {method!r} is not a model class `wrap()` "
            f"builds; get it with {how}. `wrap()` builds one of "
            f"{_wrappable()} or a `keras_ssgd.PerturbedModel` subclass. "
            f"Received: method={method!r}"
        )
    raise ValueError(
        f"Argument `method` must be one of {_wrappable()} or a "
        f"`keras_ssgd.PerturbedModel` subclass. Received: method={method!r}"
    )


def _functional_graph(model):
    """`(inputs, outputs)` of a model defined by a layer graph, else None."""
    if not isinstance(model, (compat.Functional, keras.Sequential)):
        return None
    try:
        if isinstance(model, keras.Sequential):
            # Keras 3 gives a built Sequential `inputs`/`outputs` lists but
            # no `input`/`output` until it has been called.
            (inputs,), (outputs,) = model.inputs, model.outputs
            return inputs, outputs
        return model.input, model.output
    except (AttributeError, ValueError, TypeError):
        return None  # a Sequential model without an input shape yet
