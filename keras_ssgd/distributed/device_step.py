"""S-SGD's step written per device under `keras.distribution.DataParallel`
(JAX): one gradient all-reduce per step.

Compiled for the whole mesh, the step on the global batch lets XLA reduce
each pass's gradient across devices on its own, so S-SGD and its split
form send two gradients per step. Here the step runs per device
(`jax.shard_map` over the mesh's batch axis): each device measures its
shard of the global batch, combines its passes' gradients locally, and one
`pmean` over the devices reduces the combined gradient and the loss. The
optimizer update, the loss tracker and the compiled metrics then run on
the global batch, outside the per-device part (the metrics see every
prediction of the global batch, in order).

With the default shared noise (one `n` per step for the whole global
batch) the per-device step computes the step of one device on the global
batch (tested to 1e-6 on 2 devices):

- full S-SGD: every device measures its shard at `W + n` and at `W - n`;
- the split form (`split_batch=True`) on an even number `D` of devices:
  devices `[0, D/2)` measure their shards at `W + n`, the others at
  `W - n`: the first and second halves of the global batch, one pass per
  device;
- BatchNorm normalises with the statistics of all the examples measured at
  the same point, as on one device: each device's moments are averaged
  over the devices of its point (all of them for full S-SGD, its half for
  the split form; the law of total variance, equal shards), a small
  all-reduce per layer. The moving statistics are updated as one device
  updates them (the split form's `W - n` half after the `W + n` half with
  `batchnorm_update="both"`).

`keras_distribution.distribute(model, shared_noise=..., pairs=...)` gives
the semantics of the other engines' data-parallel runs instead (Horovod's
`distribute`): a noise per device (seed `seed + i` on device `i`) or per
pair of devices (`seed + i // 2`), the pair form (device `2k` at `W + n`,
`2k + 1` at `W - n`), and BatchNorm statistics per device (the paper's
multi-GPU runs); the moving statistics are the mean of the devices' (with
pairs, the `W + n` devices' then the `W - n` devices', as the split step
updates them).

The shared-noise step is written per device only where it computes the
step on the global batch; elsewhere the step on the global batch is kept
(two gradients per step, exact), and `distribute()` refuses the model:

- a `SymmetricSGDModel` without a gradient reducer (the baselines keep the
  global step: SAM's ascent direction needs the global gradient);
- Keras's compiled loss (`compute_loss` not overridden), every loss a mean
  over the batch (`"sum_over_batch_size"`, Keras's default, or `"mean"`),
  so that the mean of the devices' losses is the global batch's;
- no non-trainable state other than the moving statistics of
  `BatchNormalization` layers without `renorm`: layers that draw random
  numbers in training (`Dropout`: its mask over the global batch cannot be
  drawn shard by shard) and stateful RNNs keep the global step;
- the split form: an even number of devices.

Reference:
- JAX, "Manual parallelism with shard_map".
- Sung et al., "S-SGD", Eq. 3 and Section 4.3.
"""

import contextlib

import jax
import keras
from jax.sharding import PartitionSpec
from keras import ops

from keras_ssgd import _keras_compat as compat
from keras_ssgd.backends import jax as jax_backend
from keras_ssgd.distributed.pairs import DevicePairs
from keras_ssgd.distributed.pairs import WorkerPairs

MEAN_REDUCTIONS = ("sum_over_batch_size", "mean")


class Options:
    """What `keras_distribution.distribute` asked for (a plain record).

    Args:
        shared_noise: bool, one noise for every device (or pair).
        pairs: bool, the pair form of the split step.
    """

    def __init__(self, shared_noise, pairs):
        self.shared_noise = shared_noise
        self.pairs = pairs


def mesh_axis():
    """`(jax_mesh, axis_name, size)` of the `DataParallel` distribution's
    batch axis, or `None` under no or another distribution."""
    distribution = keras.distribution.distribution()
    if not isinstance(distribution, keras.distribution.DataParallel):
        return None
    mesh = distribution.device_mesh
    axis = distribution.batch_dim_name
    size = mesh.shape[list(mesh.axis_names).index(axis)]
    return mesh.backend_mesh, axis, int(size)


def unsupported(model):
    """Why the per-device step would not compute `model`'s step: a list of
    reasons, empty where it does (see the module's docstring)."""
    from keras_ssgd.model import SymmetricSGDModel

    reasons = []
    if not isinstance(model, SymmetricSGDModel):
        reasons.append(
            f"a {type(model).__name__} (the per-device step is S-SGD's)"
        )
        return reasons
    if model.gradient_reducer is not None:
        reasons.append("a gradient reducer")
    if not _mean_loss(model):
        reasons.append(
            "a loss that is not Keras's compiled loss with every loss a "
            f"mean over the batch (reduction in {list(MEAN_REDUCTIONS)})"
        )
    statistics = _batchnorm_momentum(model)
    others = [
        v.path for v in model.non_trainable_variables
        if id(v) not in statistics
    ]
    if others:
        reasons.append(
            "non-trainable state other than BatchNormalization's moving "
            f"statistics: {others[:4]}"
        )
    if model._recurrent_states():
        reasons.append("a stateful RNN")
    return reasons


def for_model(model):
    """The per-device step of `model` in the current distribution, a
    callable `(x, y, sample_weight, noise_variables) -> (loss,
    gradients)`, or `None` to keep the step on the global batch.

    Raises:
        ValueError: `distribute()` asked for per-device noise or pairs and
            the model cannot run them (see `unsupported`), or there is no
            `DataParallel` distribution.
    """
    options = getattr(model, "_device_options", None)
    found = mesh_axis()
    split = model._split_now if hasattr(model, "_split_now") else False
    if options is None:
        # The single-device step, where the per-device step computes it.
        if found is None or found[2] < 2 or unsupported(model):
            return None
        if split and (found[2] % 2 or model._pairing is not None):
            return None
        plan = _Plan(
            *found, noise=None, signs="halves" if split else None,
            sync="halves" if split else "all",
        )
    else:
        # `distribute()`: the engines' semantics, per-device BatchNorm.
        check(model, found)
        if options.shared_noise:
            noise = None
        else:
            noise = "pair" if options.pairs else "device"
        plan = _Plan(
            *found, noise=noise,
            signs="pairs" if options.pairs and split else None, sync=None,
        )
    return lambda *args: _step(model, plan, *args)


def check(model, found=None):
    """Raises the `ValueError` of `distribute()` for a model the per-device
    step cannot run (a built, compiled model), or without `DataParallel`."""
    found = found if found is not None else mesh_axis()
    if found is None:
        raise ValueError(
            "Per-device noise and pairs run under "
            "keras.distribution.DataParallel: set it first with "
            "keras.distribution.set_distribution(DataParallel(...)). "
            f"Received: distribution={keras.distribution.distribution()!r}"
        )
    reasons = unsupported(model)
    if reasons:
        raise ValueError(
            "Per-device noise and pairs under keras.distribution run "
            "S-SGD's step per device, which model "
            f"'{model.name}' cannot: it has {'; '.join(reasons)}. Received: "
            f"model of type {type(model).__name__}"
        )


class _Plan:
    """How the per-device step runs on the mesh's batch axis.

    `noise`: `None` (the model's seed on every device), `"device"` (seed +
    device index) or `"pair"` (seed + index // 2). `signs`: `None` (the
    model's own form on each shard), `"halves"` (devices `[0, D/2)` at
    `W + n`, the rest at `W - n`) or `"pairs"` (even devices at `W + n`).
    `sync`: the devices whose BatchNorm moments are averaged: `"all"`,
    `"halves"` (the devices of the same sign) or `None` (each its own).
    """

    def __init__(self, mesh, axis, size, noise, signs, sync):
        self.mesh, self.axis, self.size = mesh, axis, size
        self.noise, self.signs, self.sync = noise, signs, sync

    def index(self):
        return jax.lax.axis_index(self.axis)

    def plus(self):
        """Whether this device measures at `W + n` (signed plans)."""
        if self.signs == "halves":
            return self.index() < self.size // 2
        return self.index() % 2 == 0

    def group_mean(self, value):
        """The mean of `value` over the devices of this device's group."""
        if self.sync == "all":
            return jax.lax.pmean(value, self.axis)
        if self.sync == "halves":
            plus, minus = self.sign_means(value)
            return ops.where(self.plus(), plus, minus)
        return value

    def sign_means(self, value):
        """The means of `value` over the `W + n` devices and over the
        `W - n` devices (one all-reduce)."""
        plus = self.plus()
        zero = ops.zeros_like(value)
        sums = jax.lax.psum(
            ops.stack([ops.where(plus, value, zero),
                       ops.where(plus, zero, value)]),
            self.axis,
        )
        return sums[0] / (self.size // 2), sums[1] / (self.size // 2)


class _Halves(WorkerPairs):
    """The shared-noise split form on `D` devices: devices `[0, D/2)`
    measure at `W + n`, the others at `W - n` (traced sign)."""

    engine = "keras.distribution devices"

    def __init__(self, plan):
        self.plan = plan

    def index(self):
        return self.plan.index()

    def size(self):
        return self.plan.size

    def sign(self):
        return ops.where(self.plan.plus(), 1.0, -1.0)


def _shard_map(body, mesh, in_specs, out_specs):
    if hasattr(jax, "shard_map"):
        return jax.shard_map(body, mesh=mesh, in_specs=in_specs,
                             out_specs=out_specs, check_vma=False)
    from jax.experimental.shard_map import shard_map

    return shard_map(body, mesh=mesh, in_specs=in_specs,
                     out_specs=out_specs, check_rep=False)


def _step(model, plan, x, y, sample_weight, noise_variables):
    """The per-device passes, one reduction, then the global bookkeeping."""
    variables = jax_backend._all_variables(model)
    non_trainable = model.non_trainable_variables
    momentum = _batchnorm_momentum(model)

    def body(values, data):
        local_x, local_y, local_weight = data
        predictions = []
        mapping = list(zip(variables, values))
        with keras.StatelessScope(state_mapping=mapping) as scope:
            with _on_device(model, plan, predictions):
                loss, gradients = model._perturbed_gradients(
                    local_x, local_y, local_weight, noise_variables
                )
        start = {id(v): value for v, value in mapping}
        old = [start[id(v)] for v in non_trainable]
        new = [scope.get_current_value(v) for v in non_trainable]
        new = [
            _combine(model, plan, momentum[id(v)], before, after)
            for v, before, after in zip(non_trainable, old, new)
        ]
        # The one reduction of the step: the passes are combined already.
        gradients = [
            None if g is None else jax.lax.pmean(g, plan.axis)
            for g in gradients
        ]
        return jax.lax.pmean(loss, plan.axis), gradients, new, predictions

    replicated, sharded = PartitionSpec(), PartitionSpec(plan.axis)
    loss, gradients, new, predictions = _shard_map(
        body, plan.mesh, in_specs=(replicated, sharded),
        out_specs=(replicated, replicated, replicated, sharded),
    )([v.value for v in variables], (x, y, sample_weight))
    for variable, value in zip(non_trainable, new):
        variable.assign(value)
    model._track(x, y, sample_weight, loss, predictions)
    return loss, list(gradients)


def _combine(model, plan, momentum, before, after):
    """One device's new moving statistic -> the value every device keeps.

    `before` is the value at the start of the step (the same on every
    device), `after` this device's. Signed plans follow the split step on
    one device: the `W - n` devices' update applied after the `W + n`
    devices' (`"both"`; `"first"` keeps the `W + n` devices' only).
    """
    if plan.signs is not None:
        plus, minus = plan.sign_means(after)
        if model.batchnorm_update == "first":
            return plus
        # m+ = a m + (1 - a) mu+,  m- = a m + (1 - a) mu-:
        # a m+ + (1 - a) mu- = a m+ + m- - a m.
        return momentum * plus + minus - momentum * before
    if plan.sync == "all":
        return after  # every device computed the same value
    return jax.lax.pmean(after, plan.axis)


@contextlib.contextmanager
def _on_device(model, plan, predictions):
    """While the per-device passes are traced: the noise seed offset, the
    traced sign of signed plans, BatchNorm moments averaged over the
    device's group, and the predictions kept for the global metrics."""
    noise = model._noise
    pairing = model._pairing
    layers = _batchnorms(model) if plan.sync is not None else []
    if plan.noise == "device":
        noise.offset = plan.index()
    elif plan.noise == "pair":
        noise.offset = plan.index() // 2
    if plan.signs == "halves":
        model._pairing = _Halves(plan)
    model._track = lambda x, y, weight, loss, y_preds: predictions.extend(
        y_preds
    )
    try:
        with compat.batchnorm_moments_as(
            layers, lambda moments: _synced(moments, plan)
        ):
            yield
    finally:
        del model._track
        model._pairing = pairing
        noise.offset = None


def _synced(moments, plan):
    """`BatchNormalization._moments` over the device's group: the mean of
    the devices' means, and of their variances plus the squared distance
    of their means to it (equal shards)."""

    def synced(inputs, mask):
        mean, variance = moments(inputs, mask)
        total = plan.group_mean(mean)
        return total, plan.group_mean(variance + ops.square(mean - total))

    return synced


def _batchnorms(model):
    return [
        layer for layer in model._flatten_layers(include_self=False)
        if isinstance(layer, keras.layers.BatchNormalization)
        and not layer.renorm
    ]


def _batchnorm_momentum(model):
    """`{id(moving statistic): momentum}` of the model's BatchNorms."""
    return {
        id(v): layer.momentum
        for layer in _batchnorms(model)
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


__all__ = ["Options", "check", "for_model", "mesh_axis", "unsupported"]
