"""The backend-specific part of the training step, one module per backend.

`PerturbedModel` writes its step once, in `keras.ops`; the few operations
that differ between backends live here, each module offering the same
functions:

- `run_step(model, args, step)`: calls the shared step the way the backend's
  trainer calls `train_step` (TensorFlow and PyTorch: `step(data)`; JAX: a
  stateless `train_step(state, data)` that maps the state onto the model's
  variables and returns the updated state).
- `measure(model, x, y, sample_weight, noise_variables, values)`: one
  forward and backward pass with `noise_variables` at `values`.
- `plain_gradients(model, x, y, sample_weight)`: the plain Keras pass.
- `cond(pred, true_fn, false_fn)`: a conditional whose branches may assign
  variables.
- `apply_if_finite(model, gradients, finite)`: the optimizer update,
  skipped when `finite` is false.
- `after(dependencies, fn, *args)`: `fn(*args)`, computed once the
  `dependencies` exist.
- `noisy(model)`: True or False where the backend picks the step's branch
  before the step, None where the step tests the level itself.
- `make_train_function(model, make, force)`: Keras's, or one per branch.
- `dense(gradient)`, `num_replicas()`, `extra_state(model)`.

Reference:
- Keras's own trainers, `keras/src/backend/{tensorflow,jax,torch}/trainer.py`.
"""

import functools
import importlib

import keras

BACKENDS = ("tensorflow", "jax", "torch")
_MODULES = {
    "tensorflow": "keras_ssgd.backends.tensorflow",
    "jax": "keras_ssgd.backends.jax",
    "torch": "keras_ssgd.backends.torch",
}


def name():
    """The Keras backend in use, checked to be one keras_ssgd trains on."""
    backend = keras.backend.backend()
    if backend not in BACKENDS:
        raise ValueError(
            "keras_ssgd trains with the TensorFlow, JAX or PyTorch backend. "
            f"Received: backend={backend!r} (set KERAS_BACKEND to one of "
            f"{', '.join(BACKENDS)})."
        )
    return backend


def current():
    """The step module of the Keras backend in use."""
    return _module(name())


@functools.cache
def _module(backend):
    return importlib.import_module(_MODULES[backend])


def require(feature, setting, backends=("tensorflow",)):
    """Raises a clear error if `feature` is used on an unsupported backend.

    Args:
        feature: str, what the user asked for, in words ("Horovod").
        setting: str, the argument that asked for it
            (`"distributed='horovod'"`).
        backends: the backends that support it.

    Example:

    >>> require("Horovod", "distributed='horovod'")  # ValueError on JAX
    """
    backend = keras.backend.backend()
    if backend not in backends:
        raise ValueError(
            f"{feature} is supported on the {' and '.join(backends)} Keras "
            f"backend only. Received: {setting} with backend={backend!r}."
        )


def forward(model, x, y, sample_weight):
    """`(y_pred, loss)` of one training-mode pass, as Keras's trainers
    compute them."""
    y_pred = model(x, training=True)
    loss = model.compute_loss(
        x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True
    )
    return y_pred, loss


def regularized_rest(model, noise_variables):
    """The trainable variables outside `noise_variables` that have a
    regularizer. In a stateless scope Keras reads a regularized variable
    from the scope only, so each pass maps these to their own value."""
    perturbed = {id(v) for v in noise_variables}
    return [
        v for v in model.trainable_variables
        if id(v) not in perturbed and getattr(v, "regularizer", None)
    ]
