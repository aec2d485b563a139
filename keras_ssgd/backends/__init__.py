"""The backend-specific part of the training step, one module per backend.

`PerturbedModel` writes its step once, in `keras.ops`; the few operations
that differ between backends live here, each module offering the same
functions:

- `run_step(model, args, step)`: calls the shared step the way the backend's
  trainer calls `train_step` (TensorFlow and PyTorch: `step(data)`; JAX: a
  stateless `train_step(state, data)` that maps the state onto the model's
  variables and returns the updated state).
- `keras_step(model, args, step)`: Keras's own `train_step` (`step`), as
  the trainer calls it (level 0, or nothing to perturb).
- `measure(model, x, y, sample_weight, noise_variables, values)`: one
  forward and backward pass with `noise_variables` at `values`.
- `plain_gradients(model, x, y, sample_weight)`: the plain Keras pass (used
  at level 0 with a gradient reducer, TensorFlow only; otherwise level 0 is
  Keras's own `train_step`).
- `apply_if_finite(model, gradients, finite)`: the optimizer update,
  skipped when `finite` is false.
- `after(dependencies, fn, *args)`: `fn(*args)`, computed once the
  `dependencies` exist.
- `make_train_function(model, make, force)`: one compiled step per branch
  (`per_branch`), or Keras's own where the step runs eagerly.
- `dense(gradient)`, `num_replicas()`.
- `mesh_axis()`: the `keras.distribution.DataParallel` batch axis the
  per-device step runs on (JAX: `jax_devices`), else `None`; JAX adds
  `device_plan(...)`, that step's plan.
- `STATELESS`: whether a train step is a pure function of the state Keras
  threads (JAX), so a variable it does not carry is a constant of the trace.
- A `train_step` of the user's own: `loss_and_gradients(loss_fn,
  variables)` and `loss_and_gradients_at(loss_fn, variables,
  noise_variables, values)` (TensorFlow, PyTorch: `symmetric_gradients`),
  `value_and_grad(fun, has_aux)` (JAX: `symmetric_value_and_grad`).
- `bitcast(x, dtype)` and `SIGNS` (`"arithmetic"` or `"sign-bit"`): how
  `keras_ssgd.noise` takes the Rademacher signs out of the drawn bits;
  `rademacher(weights, level, drawn, layouts, bits_per_word)` only where
  the backend draws them in its own ops (PyTorch).

Reference:
- Keras's own trainers, `keras/src/backend/{tensorflow,jax,torch}/trainer.py`.
"""

import functools
import importlib

import keras

from keras_ssgd import _keras_compat as compat

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
    compute them: `training=True` only where `call` takes it, and
    `compute_loss` through Keras's wrapper, which also accepts overrides
    without a `training` argument. Losses that layers add during the pass
    (`add_loss`, activity regularizers) are part of `loss` when the pass runs
    in a `keras.StatelessScope` opened with `collect_losses=True`."""
    if compat.call_has_training_arg(model):
        y_pred = model(x, training=True)
    else:
        y_pred = model(x)
    loss = compat.compute_loss(
        model, x=x, y=y, y_pred=y_pred, sample_weight=sample_weight,
        training=True,
    )
    return y_pred, loss


def batch_size(x, *others):
    """The number of examples in batch `x`, read from its first input that
    is not `None` (an optional input may be), as Keras's trainers do, else
    from the first tensor of `others` (targets, sample weights).

    Raises:
        ValueError: the batch holds no tensor at all.
    """
    for structure in (x, *others):
        for tensor in keras.tree.flatten(structure):
            if tensor is not None:
                return keras.ops.shape(tensor)[0]
    # Not `next()` on an empty generator: its StopIteration would end
    # `fit()` silently, as if the data had run out.
    raise ValueError(
        "A training batch holds no tensor: every input, target and sample "
        "weight is None. Received: x=None"
    )


def rows(tensor, start, stop):
    """Rows `[start, stop)` of a batch tensor (`None` stays `None`);
    TensorFlow's sparse tensors too (`tf.sparse.slice`)."""
    if tensor is None:
        return None
    if type(tensor).__name__ == "SparseTensor":
        import tensorflow as tf

        shape = tf.shape(tensor, out_type="int64")
        start = tf.cast(start, "int64")
        begin = tf.concat([[start], tf.zeros_like(shape[1:])], axis=0)
        size = tf.concat(
            [[tf.cast(stop, "int64") - start], shape[1:]], axis=0
        )
        return tf.sparse.slice(tensor, begin, size)
    return tensor[start:stop]


def regularized_rest(model, noise_variables):
    """The trainable variables outside `noise_variables` that have a
    regularizer. In a stateless scope Keras reads a regularized variable
    from the scope only, so each pass maps these to their own value."""
    perturbed = {id(v) for v in noise_variables}
    return [
        v for v in model.trainable_variables
        if id(v) not in perturbed and getattr(v, "regularizer", None)
    ]


def per_branch(model, make, force, call=None, make_branch=None):
    """A train function holding one compiled step per branch of the step.

    The plain branch (noise level 0: Keras's own `train_step`) and the
    perturbed branch are traced as two functions, each at most once, and
    `model.next_step_perturbs()` (the level is not 0, and the step is one
    in `every`) picks one before each call (the perturbed branch is
    compiled once per `model.trace_key`: S-SGD's `step_form`). So the plain
    branch is the very graph Keras compiles, and
    XLA and TensorFlow's graph rewrites see no conditional around either
    branch. Inside the perturbed
    branch the level is read from a variable: changing it (`NoiseSchedule`)
    never retraces.

    Args:
        model: the `PerturbedModel`.
        make: Keras's `make_train_function`, bound to the model.
        force: rebuild even if the model has a train function.
        call: `None`, or `call(function, noisy, *args)` running the compiled
            `function` of branch `noisy` on the trainer's `args` (JAX threads
            extra state this way).
        make_branch: `None`, or `make_branch(noisy)` used instead of
            `make(force=True)` to build branch `noisy`'s train function
            (JAX under `keras.distribution` gives it its state shardings).

    Returns:
        The train function, also set as `model.train_function`.
    """
    if model.train_function is not None and not force:
        return model.train_function
    compiled = {}

    def train_function(*args):
        noisy = model.next_step_perturbs()
        key = (noisy, model.trace_key if noisy else None)
        if key not in compiled:
            # A step function of its own, so that the trace is new; it calls
            # `model.train_step` as it is (an instance may override it).
            own = model.__dict__.get("train_step")
            model.train_step = _branch_step(model, noisy, model.train_step)
            try:
                if make_branch is None:
                    make(force=True)
                else:
                    make_branch(noisy)
            finally:
                del model.train_step
                if own is not None:
                    model.train_step = own
            compiled[key] = model.train_function
            model.train_function = train_function
        if call is None:
            return compiled[key](*args)
        return call(compiled[key], noisy, *args)

    model.train_function = train_function
    return train_function


def _branch_step(model, noisy, step):
    """`step` (the model's `train_step`) with the branch fixed to `noisy`."""

    def train_step(*args):
        with model.tracing_branch(noisy):
            return step(*args)

    return train_step
