"""Hessian-vector products of a model's loss, one module per backend.

Each module offers `BatchHVP(model, loss, variables, method)`, with

- `hvp(x, y, vectors)`: `H v` of the mean loss over the batch `(x, y)`,
  one array per variable (`vectors` are NumPy arrays shaped like the
  variables);
- `gradient(x, y)`: the gradient of that mean loss, one array per
  variable.

The loss is the model's in inference mode (`training=False`). The
backends differ only in how they differentiate twice:

- TensorFlow: nested `tf.GradientTape`s (double backpropagation) or a
  `tf.autodiff.ForwardAccumulator` over a tape (forward over reverse);
- JAX: `jax.grad` of the gradient's dot product with `v`, or `jax.jvp` of
  `jax.grad`, over `model.stateless_call`;
- PyTorch: `torch.autograd.grad(..., create_graph=True)` then a second
  `torch.autograd.grad`, or `torch.func.jvp` of `torch.func.grad`, over
  `model.stateless_call`.

Reference:
- Pearlmutter, "Fast Exact Multiplication by the Hessian", Neural
  Computation, 1994.
"""

import importlib

import keras

HVP_METHODS = ("double-backprop", "forward-over-reverse")

_MODULES = {
    "tensorflow": "keras_ssgd.landscape.hvp.tensorflow",
    "jax": "keras_ssgd.landscape.hvp.jax",
    "torch": "keras_ssgd.landscape.hvp.torch",
}


def batch_hvp(model, loss, variables, method="double-backprop"):
    """The `BatchHVP` of the Keras backend in use.

    Args:
        model: a built `keras.Model`.
        loss: a callable `(y_true, y_pred) -> loss` (per example or mean).
        variables: list of the model's variables the Hessian is over.
        method: one of `HVP_METHODS`.

    Raises:
        ValueError: the backend is not TensorFlow, JAX or PyTorch, or a
            variable is not one of the model's.
    """
    backend = keras.backend.backend()
    if backend not in _MODULES:
        raise ValueError(
            "Hessian-vector products need the TensorFlow, JAX or PyTorch "
            f"backend. Received: backend={backend!r}"
        )
    module = importlib.import_module(_MODULES[backend])
    return module.BatchHVP(model, loss, variables, method)


def mean_loss(loss, y, y_pred):
    """The mean of `loss(y, y_pred)` (a scalar already for a reducing
    Keras loss)."""
    return keras.ops.mean(loss(y, y_pred))


def positions(model, variables):
    """Where each of `variables` sits in the model's state.

    Returns:
        A list of `(is_trainable, index)`: the index into
        `model.trainable_variables` or `model.non_trainable_variables`.

    Raises:
        ValueError: a variable is not one of the model's.
    """
    where = {id(v): (True, i) for i, v in enumerate(model.trainable_variables)}
    for i, v in enumerate(model.non_trainable_variables):
        where.setdefault(id(v), (False, i))
    found = []
    for v in variables:
        if id(v) not in where:
            raise ValueError(
                "Argument `variables` must hold variables of the model "
                f"'{model.name}'. Received: a variable {v.path!r} that is "
                "not one of its variables"
            )
        found.append(where[id(v)])
    return found


def state_with(places, values, trainable, non_trainable):
    """`(trainable, non_trainable)` lists with `values` put at `places`."""
    trainable, non_trainable = list(trainable), list(non_trainable)
    for (is_trainable, index), value in zip(places, values):
        (trainable if is_trainable else non_trainable)[index] = value
    return trainable, non_trainable
