"""`wrap()`: S-SGD training for an existing Keras model."""

import keras
from keras.src.models.functional import Functional

from keras_ssgd.model import SymmetricSGDModel


def wrap(model, **kwargs):
    """Returns a `SymmetricSGDModel` that shares `model`'s layers and weights.

    Training the returned model trains `model` too (they hold the same
    variables). A functional or built `Sequential` model is rebuilt as a
    functional `SymmetricSGDModel` over the same layer graph, so `summary()`
    and `get_layer()` look the same. Any other model (a subclassed model, or
    a `Sequential` without an input shape yet) becomes the single inner layer
    of a `SymmetricSGDWrapper`.

    Args:
        model: a `keras.Model`.
        **kwargs: the `SymmetricSGDModel` arguments (`noise_level`,
            `noise_filter`, `batchnorm_update`, `seed`) and `name`.

    Returns:
        A `SymmetricSGDModel`, to be compiled and fitted.

    Example:

    ```python
    base = keras.applications.ResNet50(weights=None, classes=10)
    model = keras_ssgd.wrap(base, noise_level=0.25)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    model.fit(dataset, epochs=90)
    base.save("resnet50.keras")  # the trained weights, as a plain model
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
    kwargs.setdefault("name", model.name)
    graph = _functional_graph(model)
    if graph is not None:
        inputs, outputs = graph
        return SymmetricSGDModel(inputs=inputs, outputs=outputs, **kwargs)
    return SymmetricSGDWrapper(model, **kwargs)


@keras.saving.register_keras_serializable(package="keras_ssgd")
class SymmetricSGDWrapper(SymmetricSGDModel):
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


def _functional_graph(model):
    """`(inputs, outputs)` of a model defined by a layer graph, else None."""
    if not isinstance(model, (Functional, keras.Sequential)):
        return None
    try:
        return model.input, model.output
    except (AttributeError, ValueError):
        return None  # a Sequential model without an input shape yet
