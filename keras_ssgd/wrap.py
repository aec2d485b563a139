"""`wrap()`: S-SGD (or a baseline) training for an existing Keras model."""

import keras

from keras_ssgd import _keras_compat as compat
from keras_ssgd import methods
from keras_ssgd.model import SymmetricSGDModel
from keras_ssgd.perturbed import PerturbedModel

# The methods `wrap()` builds by name, as the `ssgd-train` command names
# them (from the one table, `keras_ssgd.methods`).
METHODS = {
    name: method.model_class
    for name, method in methods.METHODS.items() if method.wrappable
}


def wrap(model, method="ssgd", **kwargs):
    """Returns a `SymmetricSGDModel` that shares `model`'s layers and weights.

    Training the returned model trains `model` too (they hold the same
    variables). A functional or built `Sequential` model is rebuilt as a
    functional `SymmetricSGDModel` over the same layer graph, so `summary()`
    and `get_layer()` look the same. Any other model (a subclassed model, or
    a `Sequential` without an input shape yet) becomes the single inner layer
    of a `SymmetricSGDWrapper`.

    Args:
        model: a `keras.Model`.
        method: the training method: `"ssgd"` (the default), a baseline
            (`"weight-noise"`, `"smoothout"`, `"dropconnect"`, `"sam"`), or a
            `keras_ssgd.PerturbedModel` subclass.
        **kwargs: the method's arguments (for S-SGD `noise_level`,
            `noise_filter`, `batchnorm_update`, `seed`, `split_batch`;
            `rate` for DropConnect, `rho` for SAM) and `name`.

    Returns:
        A model of the method's class, to be compiled and fitted.

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
    kwargs.setdefault("name", model.name)
    graph = _functional_graph(model)
    if graph is not None:
        inputs, outputs = graph
        return cls(inputs=inputs, outputs=outputs, **kwargs)
    return wrapper_class(cls)(model, **kwargs)


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


def wrapper_class(cls):
    """The registered wrapper of `PerturbedModel` subclass `cls`.

    `SymmetricSGDWrapper` for S-SGD; for the baselines
    `WeightNoiseModelWrapper` and so on, created and registered here.
    """
    if cls not in _WRAPPERS:
        name = f"{cls.__name__}Wrapper"
        wrapper = type(
            name,
            (_InnerModel, cls),
            {"__module__": __name__, "__qualname__": name,
             "__doc__": f"A `{cls.__name__}` that calls one inner model."},
        )
        _WRAPPERS[cls] = keras.saving.register_keras_serializable(
            package="keras_ssgd"
        )(wrapper)
    return _WRAPPERS[cls]


_WRAPPERS = {SymmetricSGDModel: SymmetricSGDWrapper}
for _cls in METHODS.values():
    wrapper_class(_cls)


def _method_class(method):
    if isinstance(method, type) and issubclass(method, PerturbedModel):
        return method
    if isinstance(method, str) and method in METHODS:
        return METHODS[method]
    raise ValueError(
        f"Argument `method` must be one of {list(METHODS)} or a "
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
