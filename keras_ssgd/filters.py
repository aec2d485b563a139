"""Which variables S-SGD perturbs.

A noise filter is a function `noise_filter(variable) -> bool`, called once per
trainable variable of the model when the training step is traced. The default,
`kernels`, selects every trainable variable of rank >= 2 that is not a bias:
Dense, EinsumDense and Conv kernels, the query, key, value and output kernels
of `MultiHeadAttention`, LSTM/GRU `kernel` and `recurrent_kernel`,
embeddings. Biases (every variable Keras names `bias`, whatever its rank:
`MultiHeadAttention`'s per-head biases and a `GRU`'s `reset_after` bias are
rank 2), LayerNormalization and BatchNorm gamma/beta and every other rank-1
variable are never selected by it, so by default they are not perturbed;
`all_trainable` selects them too.

The layer-type filters (`conv_kernels`, `dense_kernels`, `recurrent_kernels`)
ask `owning_layer(variable)` which layer created the variable. While a model
selects its noise variables it answers from a map built once; called on its
own, a filter (or `owning_layer`) finds the layer among the live layers of
the process. Custom filters may call it too.

Example:

```python
# Noise on the convolutions only (the paper's "S-SGD Conv only", Fig. 3).
cnn = keras_ssgd.models.mnist1d_cnn()
model = keras_ssgd.wrap(cnn, noise_filter=keras_ssgd.filters.conv_kernels)
assert len(model.noise_variables) == 3  # the three Conv1D kernels

# Noise on every weight but the biases (the paper's PTB LSTMs, Table 5).
lstm = keras.Sequential([keras.Input((5, 2)), keras.layers.LSTM(4)])
model = keras_ssgd.wrap(lstm, noise_filter=lambda v: "bias" not in v.name)
```
"""

import contextvars
import gc

import keras

from keras_ssgd import _keras_compat as compat

_OWNERS = contextvars.ContextVar("keras_ssgd_owners", default=None)

_CONV_LAYERS = (
    keras.layers.Conv1D,
    keras.layers.Conv2D,
    keras.layers.Conv3D,
    keras.layers.Conv1DTranspose,
    keras.layers.Conv2DTranspose,
    keras.layers.Conv3DTranspose,
    keras.layers.DepthwiseConv1D,
    keras.layers.DepthwiseConv2D,
    keras.layers.SeparableConv1D,
    keras.layers.SeparableConv2D,
)
_DENSE_LAYERS = (keras.layers.Dense, keras.layers.EinsumDense)


@keras.saving.register_keras_serializable(package="keras_ssgd")
def kernels(variable):
    """Selects every variable of rank >= 2 but biases (the default noise
    filter): a bias (a variable named `bias`) is not perturbed whatever its
    rank."""
    return len(variable.shape) >= 2 and variable.name != "bias"


@keras.saving.register_keras_serializable(package="keras_ssgd")
def all_trainable(variable):
    """Selects every trainable variable, biases included (SAM's default)."""
    del variable
    return True


@keras.saving.register_keras_serializable(package="keras_ssgd")
def conv_kernels(variable):
    """Selects the kernels (rank >= 2) of convolution layers."""
    return kernels(variable) and isinstance(
        owning_layer(variable), _CONV_LAYERS
    )


@keras.saving.register_keras_serializable(package="keras_ssgd")
def dense_kernels(variable):
    """Selects the kernels (rank >= 2) of `Dense` and `EinsumDense` layers."""
    return kernels(variable) and isinstance(
        owning_layer(variable), _DENSE_LAYERS
    )


@keras.saving.register_keras_serializable(package="keras_ssgd")
def recurrent_kernels(variable):
    """Selects the kernels (rank >= 2) of recurrent cells.

    Both the input `kernel` and the `recurrent_kernel` of `SimpleRNN`,
    `LSTM`, `GRU` and any other cell (a layer with a `state_size`).
    """
    return kernels(variable) and hasattr(owning_layer(variable), "state_size")


# The filters shipped here, by short name (also accepted as `noise_filter`).
SHIPPED = {
    f.__name__: f
    for f in (kernels, all_trainable, conv_kernels, dense_kernels, recurrent_kernels)
}


def owning_layer(variable):
    """The innermost layer that holds `variable` as its own weight.

    Inside a noise filter while a `PerturbedModel` selects its noise
    variables, the answer comes from a map of the model's layers. Anywhere
    else, the layer is looked up among the live Keras layers of the process
    (a scan of Python's objects, slower: filters are meant to run at
    selection). Returns `None` for a variable no layer owns.

    Example:

    ```python
    dense = keras.layers.Dense(3)
    model = keras.Sequential([keras.Input((2,)), dense])
    assert keras_ssgd.filters.owning_layer(dense.kernel) is dense
    assert keras_ssgd.filters.dense_kernels(dense.kernel)
    ```
    """
    owners = _OWNERS.get()
    if owners is not None:
        return owners.get(id(variable))
    for obj in gc.get_objects():
        if issubclass(type(obj), keras.layers.Layer) and any(
            w is variable for w in compat.own_variables(obj)
        ):
            return obj
    return None


def select(model, noise_filter):
    """The trainable variables of `model` for which `noise_filter` is true."""
    owners = {}
    # Parents come before their sub-layers: the innermost owner is kept.
    for layer in compat.flatten_layers(model):
        for v in layer.weights:
            owners[id(v)] = layer
    token = _OWNERS.set(owners)
    try:
        return [v for v in model.trainable_variables if noise_filter(v)]
    finally:
        _OWNERS.reset(token)




def resolve(noise_filter):
    """`noise_filter` as a callable (or `None`): a shipped filter's short
    name (`"conv_kernels"`) or a registered name becomes its function.

    Raises:
        TypeError: `noise_filter` is none of those.
    """
    if noise_filter is None or callable(noise_filter):
        return noise_filter
    if isinstance(noise_filter, str) and noise_filter in SHIPPED:
        return SHIPPED[noise_filter]
    if isinstance(noise_filter, (str, dict)):
        resolved = keras.saving.deserialize_keras_object(noise_filter)
        if callable(resolved):
            return resolved
    raise TypeError(
        "Argument `noise_filter` must be None, a callable "
        "`variable -> bool`, or the registered name of one. "
        f"Received: noise_filter={noise_filter!r}"
    )


def name_of(noise_filter):
    """A filter's name, for messages."""
    return getattr(noise_filter, "__name__", repr(noise_filter))


def of_model(model):
    """The trainable variables a `PerturbedModel` perturbs: its
    `noise_filter`'s selection, or its class's `default_noise_filter`'s.

    Raises:
        ValueError: the model is not built yet, or an explicit
            `noise_filter` selects no variable.
    """
    if not model.built:
        raise ValueError(
            f"Model '{model.name}' is not built yet, so it has no "
            "variables to choose from. Call it on a batch of data first."
        )
    selected = select(model, model.noise_filter or model.default_noise_filter)
    if not selected and model.noise_filter is not None:
        raise ValueError(
            "Argument `noise_filter` selects no trainable variable of "
            f"model '{model.name}'. Received: noise_filter="
            f"{name_of(model.noise_filter)}; trainable variables: "
            f"{[v.path for v in model.trainable_variables]}"
        )
    return selected
