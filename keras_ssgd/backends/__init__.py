"""The backend-specific part of the training step.

`PerturbedModel` writes its step once, in `keras.ops`; the few operations
that differ between backends are the methods of one class,
`keras_ssgd.backends.base.Backend`, which documents each and holds the
defaults. Each backend module subclasses it and overrides only what differs:
`tensorflow.TensorFlowBackend`, `jax.JAXBackend`, `torch.TorchBackend`.
`current()` returns the instance for the Keras backend in use, created once.

The helpers here are shared by the backends: the training-mode pass
(`forward`), the batch (`batch_size`, `rows`), the variables a pass maps
(`regularized_rest`) and the train function of one compiled step per
branch (`per_branch`).

Reference:
- Keras's own trainers, `keras/src/backend/{tensorflow,jax,torch}/trainer.py`.
"""

import functools
import importlib

import keras

from keras_ssgd import _keras_compat as compat

BACKENDS = ("tensorflow", "jax", "torch")
# The module and class of each backend's step.
_CLASSES = {
    "tensorflow": ("keras_ssgd.backends.tensorflow", "TensorFlowBackend"),
    "jax": ("keras_ssgd.backends.jax", "JAXBackend"),
    "torch": ("keras_ssgd.backends.torch", "TorchBackend"),
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
    """The `keras_ssgd.backends.base.Backend` of the Keras backend in use.

    Example:

    >>> current().num_replicas()
    1
    """
    return _instance(name())


@functools.cache
def _instance(backend):
    module, cls = _CLASSES[backend]
    return getattr(importlib.import_module(module), cls)()


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
    return regularized_among(model.trainable_variables, noise_variables)


def regularized_among(variables, noise_variables):
    """The variables of `variables` outside `noise_variables` that have a
    regularizer (`regularized_rest` of any list of variables)."""
    perturbed = {id(v) for v in noise_variables}
    return [
        v for v in variables
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
