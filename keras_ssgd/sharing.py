"""`StepSharing`: how a model's training step is shared across workers.

A model trains on one worker unless an engine says otherwise. An engine
(Horovod, `tf.distribute`, `keras.distribution`) says it by setting
`model.sharing` to a `StepSharing`; the step reads it, and the engine
touches nothing else of the model but its public attributes
(`gradient_reducer`, `noise_seed`):

- how the batch is shared: `pairs`, a `WorkerPairs` numbering the workers,
  makes S-SGD's split form the pair form (worker `2k` measures its shard at
  `W + n`, worker `2k + 1` at `W - n`);
- how the noise is shared and which BatchNorm moments are averaged, where
  one step is traced for every device (`keras.distribution` on JAX, whose
  step then runs per device: `keras_ssgd.backends.jax_devices`; the step
  picks its plan with `device_plan`, below).

Engines that run one process per worker (Horovod, `tf.distribute`'s
workers) trace their step on each worker: per-worker noise is their
`noise_seed`, offset by the worker's index, and each worker's BatchNorm
normalises its own shard.

Reference:
- Sung et al., "S-SGD", Eq. 3 and Section 4.3 (data-parallel runs).
"""

import keras

from keras_ssgd import _keras_compat as compat
from keras_ssgd import backends
from keras_ssgd import recurrent
from keras_ssgd.validation import check_choice

NOISE = ("shared", "per_device", "per_pair")
BATCHNORM = ("global", "local")
MEAN_REDUCTIONS = ("sum_over_batch_size", "mean")


class WorkerPairs:
    """How an engine numbers its workers for the pair form (base class).

    `index()` and `size()` are read when the step is traced: Python ints
    where each worker traces its own step, a traced index where one step
    is traced for every device.

    Example:

    ```python
    class TwoWorkers(keras_ssgd.sharing.WorkerPairs):
        engine = "my two workers"

        def __init__(self, index):
            self._index = index

        def index(self):
            return self._index

        def size(self):
            return 2
    ```
    """

    engine = None

    def index(self):
        raise NotImplementedError

    def size(self):
        raise NotImplementedError

    def sign(self):
        """`+1.0` on even workers (`W + n`), `-1.0` on odd ones (`W - n`)."""
        return 1.0 if self.index() % 2 == 0 else -1.0

    def check(self):
        """Raises the `ValueError` of an odd number of workers."""
        size = self.size()
        if size < 2 or size % 2:
            raise ValueError(
                "Argument `pairs=True` needs an even number of workers "
                f"({self.engine}): workers 2k and 2k + 1 measure at W + n "
                "and W - n. With an odd number, keep `pairs=False`: each "
                "worker then splits its own batch (`split_batch=True`). "
                f"Received: pairs=True with {size} worker(s)"
            )


class StepSharing:
    """How a model's training step is shared across workers or devices.

    Every `PerturbedModel` owns one, `model.sharing`: the default is the step
    of one worker (under `keras.distribution.DataParallel` on JAX, the step
    of one device on the global batch). Engines set another.

    Args:
        pairs: `None` or a `WorkerPairs`. With one, S-SGD's split form is
            the pair form over those workers: the even worker of a pair
            measures its whole shard at `W + n`, the odd one at `W - n`, and
            the engine's gradient average is the split step on the pair's
            combined batch. Defaults to `None`.
        noise: where one step is traced for every device (the per-device
            step under `keras.distribution.DataParallel`): `"shared"` (one
            `n` per step for the global batch), `"per_device"` (device `i`
            draws with seed `noise_seed + i`) or `"per_pair"` (seed
            `noise_seed + i // 2`). Defaults to `"shared"`.
        batchnorm: where one step is traced for every device: `"global"`
            (each BatchNorm normalises with the moments of every example
            measured at the same point, as on one device) or `"local"`
            (each device with its own shard's, as the paper's multi-GPU
            runs). Defaults to `"global"`.

    Anything but the default asks for the per-device step under
    `keras.distribution` (see `keras_ssgd.backends.jax_devices`); the
    model must then be one it can run (`per_device_obstacles`).

    Example:

    ```python
    inputs = keras.Input((4,))
    model = keras_ssgd.SymmetricSGDModel(
        inputs, keras.layers.Dense(1)(inputs), noise_level=0.2, seed=0
    )
    assert not model.sharing.per_device  # one worker's step
    # What `keras_distribution.distribute(model)` sets: a noise per device
    # and each device's own BatchNorm statistics.
    model.sharing = keras_ssgd.sharing.StepSharing(
        noise="per_device", batchnorm="local"
    )
    print(model.sharing)
    # StepSharing(pairs=None, noise='per_device', batchnorm='local')
    ```

    Reference:
    - Sung et al., "S-SGD", Section 4.3.
    """

    def __init__(self, pairs=None, noise="shared", batchnorm="global"):
        if pairs is not None and not isinstance(pairs, WorkerPairs):
            raise TypeError(
                "Argument `pairs` must be None or a "
                "keras_ssgd.sharing.WorkerPairs. Received: "
                f"pairs={pairs!r} (of type {type(pairs).__name__})"
            )
        check_choice(noise, "noise", NOISE)
        check_choice(batchnorm, "batchnorm", BATCHNORM)
        self.pairs = pairs
        self.noise = noise
        self.batchnorm = batchnorm

    @property
    def per_device(self):
        """Whether this asks for the per-device step (anything but the
        one-worker default)."""
        return (
            self.pairs is not None
            or self.noise != "shared"
            or self.batchnorm != "global"
        )

    def __repr__(self):
        return (
            f"StepSharing(pairs={self.pairs!r}, noise={self.noise!r}, "
            f"batchnorm={self.batchnorm!r})"
        )


def per_device_obstacles(model):
    """Why the per-device step would not compute `model`'s step: a list of
    reasons, empty where it does.

    The per-device step is S-SGD's (`runs_per_device`), without a gradient
    reducer, with Keras's compiled loss (`compute_loss` not overridden)
    where every loss is a mean over the batch (so that the mean of the
    devices' losses is the global batch's), and with no non-trainable state
    but the moving statistics of `BatchNormalization` layers without
    `renorm` (a `Dropout` mask over the global batch cannot be drawn shard
    by shard; a stateful RNN's state runs along the batch).
    """
    if not getattr(model, "runs_per_device", False):
        return [f"a {type(model).__name__} (the per-device step is S-SGD's)"]
    reasons = []
    if model.gradient_reducer is not None:
        reasons.append("a gradient reducer")
    if not _mean_loss(model):
        reasons.append(
            "a loss that is not Keras's compiled loss with every loss a "
            f"mean over the batch (reduction in {list(MEAN_REDUCTIONS)})"
        )
    statistics = batchnorm_momentum(model)
    others = [
        v.path for v in model.non_trainable_variables
        if id(v) not in statistics
    ]
    if others:
        reasons.append(
            "non-trainable state other than BatchNormalization's moving "
            f"statistics: {others[:4]}"
        )
    if recurrent.states(model):
        reasons.append("a stateful RNN")
    return reasons


def check_per_device(model, mesh):
    """Raises the `ValueError` of a model the per-device step cannot run,
    or of no `DataParallel` distribution (`mesh` is `None`)."""
    if mesh is None:
        raise ValueError(
            "Per-device noise and pairs run under "
            "keras.distribution.DataParallel: set it first with "
            "keras.distribution.set_distribution(DataParallel(...)). "
            f"Received: distribution={keras.distribution.distribution()!r}"
        )
    reasons = per_device_obstacles(model)
    if reasons:
        raise ValueError(
            "Per-device noise and pairs under keras.distribution run "
            "S-SGD's step per device, which model "
            f"'{model.name}' cannot: it has {'; '.join(reasons)}. Received: "
            f"model of type {type(model).__name__}"
        )


def batchnorms(model):
    """The model's `BatchNormalization` layers without `renorm`."""
    return [
        layer for layer in compat.flatten_layers(model, include_self=False)
        if isinstance(layer, keras.layers.BatchNormalization)
        and not layer.renorm
    ]


def batchnorm_momentum(model):
    """`{id(moving statistic): momentum}` of the model's BatchNorms."""
    return {
        id(v): layer.momentum
        for layer in batchnorms(model)
        for v in (layer.moving_mean, layer.moving_variance)
    }


def _mean_loss(model):
    if type(model).compute_loss is not keras.Model.compute_loss:
        return False
    return _is_mean(getattr(model, "loss", None))


def _is_mean(loss):
    """Whether a compiled loss is a mean over the batch (functions and
    names are wrapped by Keras with `"sum_over_batch_size"`)."""
    if isinstance(loss, (list, tuple)):
        return all(_is_mean(item) for item in loss if item is not None)
    if isinstance(loss, dict):
        return all(
            _is_mean(item) for item in loss.values() if item is not None
        )
    if isinstance(loss, keras.losses.Loss):
        return loss.reduction in MEAN_REDUCTIONS
    return isinstance(loss, str) or callable(loss)


def device_plan(model, split):
    """The per-device plan of `model`'s step
    (`keras_ssgd.backends.jax_devices.Plan`), or `None` for the step on the
    global batch.

    Under `keras.distribution.DataParallel` on JAX with 2 devices or more,
    the default sharing runs the step per device where that computes the
    step of one device on the global batch (one gradient all-reduce
    instead of one per pass); any other sharing asks for the per-device
    step and raises where the model cannot run it.

    Args:
        model: the `PerturbedModel`.
        split: whether the step being traced is S-SGD's split form.

    Raises:
        ValueError: `model.sharing` asks for the per-device step and the
            model cannot run it, or there is no `DataParallel`
            distribution.
    """
    if keras.distribution.distribution() is None:
        return None
    step = backends.current()
    mesh = step.mesh_axis()
    sharing = model.sharing
    if not sharing.per_device:
        # The single-device step, where the per-device step computes it.
        if mesh is None or mesh[2] < 2:
            return None
        if per_device_obstacles(model):
            return None
        if split and mesh[2] % 2:
            return None
        return step.device_plan(
            *mesh, noise=None, signs="halves" if split else None,
            sync="sign" if split else "all",
        )
    check_per_device(model, mesh)
    signs = "pairs" if sharing.pairs is not None and split else None
    if sharing.batchnorm == "local":
        sync = None
    else:
        sync = "all" if signs is None else "sign"
    return step.device_plan(
        *mesh, noise=_PLAN_NOISE[sharing.noise], signs=signs, sync=sync,
    )


_PLAN_NOISE = {"shared": None, "per_device": "device", "per_pair": "pair"}


class DeviceTrace:
    """The device whose passes are being traced
    (`keras_ssgd.backends.jax_devices.Device`), and the predictions they
    made, kept for the global metrics (a plain object: Keras must not
    track these)."""

    def __init__(self, device, predictions):
        self.device = device
        self.predictions = predictions


__all__ = [
    "BATCHNORM", "NOISE", "DeviceTrace", "StepSharing", "WorkerPairs",
    "batchnorm_momentum", "batchnorms", "check_per_device", "device_plan",
    "per_device_obstacles",
]
