"""What the engines set on a model, and the step's passes per device.

The members of `PerturbedModel` that share its step, defined here and
bound in its class body: the public attributes an engine (Horovod,
`tf.distribute`, `keras.distribution`) sets (`sharing`,
`gradient_reducer`, `noise_seed`), and the step's passes on one device of
the per-device step (`keras_ssgd.sharing.device_plan`). The engines touch
nothing else of the model.
"""

import warnings

from keras_ssgd import _keras_compat as compat
from keras_ssgd import backends
from keras_ssgd import sharing as sharing_lib
from keras_ssgd.validation import check_seed


def init_sharing(self):
    """Sets the members' initial values (from `PerturbedModel.__init__`)."""
    self._gradient_reducer = None
    self._sharing = sharing_lib.StepSharing()
    self._trace = None  # a `sharing.DeviceTrace` while one is traced

@property
def noise_seed(self):
    """The seed the noise stream uses (set it before training).

    Defaults to `seed` (or the drawn seed); Horovod training offsets it by
    the rank so that ranks draw different directions.
    """
    return self._noise.seed

@noise_seed.setter
def noise_seed(self, value):
    self._noise.seed = check_seed(value, "noise_seed")

@property
def sharing(self):
    """How the step is shared across workers or devices, a
    `keras_ssgd.sharing.StepSharing` that the engines set. The default
    is one worker's step; assigning another retraces the step."""
    return self._sharing

@sharing.setter
def sharing(self, value):
    if not isinstance(value, sharing_lib.StepSharing):
        raise TypeError(
            "`sharing` must be a keras_ssgd.sharing.StepSharing. "
            f"Received: sharing={value!r} (of type "
            f"{type(value).__name__})"
        )
    self._sharing = value
    self.train_function = None  # the next fit() traces the new step

@property
def gradient_reducer(self):
    """`None`, or a callable `(gradients, finite) -> (gradients,
    finite)` run once per step before the update, on the already
    combined gradient (the passes add no communication): Horovod's
    `distribute()` sets it."""
    return self._gradient_reducer

@gradient_reducer.setter
def gradient_reducer(self, reducer):
    if reducer is not None:
        backends.require(
            "A gradient reducer (Horovod)", f"gradient_reducer={reducer!r}"
        )
    if reducer is not None and not callable(reducer):
        raise TypeError(
            "`gradient_reducer` must be None or a callable "
            "`(gradients, finite) -> (gradients, finite)`. Received: "
            f"{reducer!r}"
        )
    self._gradient_reducer = reducer
    if reducer is not None and getattr(self, "compiled", False):
        self._refuse_xla()

def refuse_xla(self):
    """Turns XLA off, with a warning: Horovod's ops have no XLA kernel."""
    if self.jit_compile:
        warnings.warn(
            f"Model '{self.name}': the gradient reducer's collective ops "
            "(Horovod) have no XLA kernel, so jit_compile is set to "
            "False.",
            stacklevel=3,
        )
        self.jit_compile = False
        self.train_function = None  # retrace without XLA

def device_passes(self, noise_variables, x, y, sample_weight, device):
    """The subclass's passes on one device's shard
    (`keras_ssgd.backends.jax_devices.Device`): its noise seed offset,
    its point of the pair form, its BatchNorm moments; the predictions
    are kept for the global metrics. Returns `(loss, gradients,
    predictions)`."""
    predictions = []
    self._trace = sharing_lib.DeviceTrace(device, predictions)
    layers = [] if device.moments is None else sharing_lib.batchnorms(self)
    try:
        with compat.batchnorm_moments_as(layers, device.moments):
            loss, gradients = self._perturbed_gradients(
                x, y, sample_weight, noise_variables
            )
    finally:
        self._trace = None
    return loss, gradients, predictions

def pairs(self):
    """The pair form's numbering of the step being traced (a
    `WorkerPairs`), or `None`: the device's under the per-device step,
    else `sharing.pairs`."""
    if self._trace is not None and self._trace.device.pairs is not None:
        return self._trace.device.pairs
    return self._sharing.pairs

def noise_generator(self):
    """The seed generator of this step, at `[seed, optimizer.iterations]`
    (the seed offset by the device's index under per-device noise)."""
    offset = None
    if self._trace is not None:
        offset = self._trace.device.noise_offset()
    return self._noise.generator(self.optimizer, offset)
