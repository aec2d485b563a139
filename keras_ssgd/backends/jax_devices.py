"""S-SGD's step written per device under `keras.distribution.DataParallel`
(JAX): one gradient all-reduce per step.

The step decides where it runs (`keras_ssgd.perturbed`, from
`model.sharing` and `keras_ssgd.sharing.per_device_obstacles`); this
module runs the passes it is given on each device's shard.

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

`keras_distribution.distribute(model, shared_noise=..., pairs=...)` (a
`keras_ssgd.sharing.StepSharing` other than the default, as `model.sharing`) gives
the semantics of the other engines' data-parallel runs instead (Horovod's
`distribute`): a noise per device (seed `seed + i` on device `i`) or per
pair of devices (`seed + i // 2`), the pair form (device `2k` at `W + n`,
`2k + 1` at `W - n`), and BatchNorm statistics per device (the paper's
multi-GPU runs); the moving statistics are the mean of the devices' (with
pairs, the `W + n` devices' then the `W - n` devices', as the split step
updates them).

The shared-noise step is written per device only where it computes the
step on the global batch (`keras_ssgd.sharing.per_device_obstacles`, and
an even number of devices for the split form); elsewhere the step on the
global batch is kept (two gradients per step, exact), and `distribute()`
refuses the model. The baselines keep the global step: SAM's ascent
direction needs the global gradient.

Reference:
- JAX, "Manual parallelism with shard_map".
- Sung et al., "S-SGD", Eq. 3 and Section 4.3.
"""

import jax
import keras
from jax.sharding import PartitionSpec
from keras import ops



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


class Plan:
    """How the per-device step runs on the mesh's batch axis.

    Args:
        mesh, axis, size: the batch axis (`mesh_axis()`).
        noise: `None` (the model's seed on every device), `"device"` (seed
            + device index) or `"pair"` (seed + index // 2).
        signs: `None` (the model's own form on each shard), `"halves"`
            (devices `[0, D/2)` at `W + n`, the rest at `W - n`) or
            `"pairs"` (even devices at `W + n`).
        sync: the devices whose BatchNorm moments are averaged: `"all"`,
            `"sign"` (the devices measuring at the same point) or `None`
            (each its own).
        variables_of: `model -> variables`, every variable the step
            reads (`keras_ssgd.backends.jax`), the shard map's state.
    """

    def __init__(self, mesh, axis, size, noise, signs, sync, variables_of):
        self.mesh, self.axis, self.size = mesh, axis, size
        self.noise, self.signs, self.sync = noise, signs, sync
        self.variables_of = variables_of

    def index(self):
        return jax.lax.axis_index(self.axis)

    def run(self, model, passes, data, momentum):
        """`run(model, self, ...)`: the passes run per device."""
        return run(model, self, passes, data, momentum)

    def plus(self):
        """Whether this device measures at `W + n` (signed plans)."""
        if self.signs == "halves":
            return self.index() < self.size // 2
        return self.index() % 2 == 0

    def group_mean(self, value):
        """The mean of `value` over the devices of this device's group."""
        if self.sync == "all":
            return jax.lax.pmean(value, self.axis)
        if self.sync == "sign":
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


class Device:
    """What the passes read while they are traced on one device.

    `pairs`: for signed plans, the device's point as the pair form's
    numbering (`index()`, `size()`, a traced `sign()`), else `None` (the
    model's own). `noise_offset()`: added to the noise seed, or `None`.
    `moments`: `None`, or the wrapper of `BatchNormalization`'s batch
    moments that averages them over the device's group.
    """

    engine = "keras.distribution devices"

    def __init__(self, plan):
        self.plan = plan
        self.pairs = self if plan.signs is not None else None
        self.moments = _synced(plan) if plan.sync is not None else None

    def noise_offset(self):
        if self.plan.noise == "device":
            return self.plan.index()
        if self.plan.noise == "pair":
            return self.plan.index() // 2
        return None

    # The pair form's numbering (`keras_ssgd.sharing.WorkerPairs`).
    def index(self):
        return self.plan.index()

    def size(self):
        return self.plan.size

    def sign(self):
        return ops.where(self.plan.plus(), 1.0, -1.0)

    def check(self):
        """Nothing to check: signed plans have an even number of devices."""


def _shard_map(body, mesh, in_specs, out_specs):
    if hasattr(jax, "shard_map"):
        return jax.shard_map(body, mesh=mesh, in_specs=in_specs,
                             out_specs=out_specs, check_vma=False)
    from jax.experimental.shard_map import shard_map

    return shard_map(body, mesh=mesh, in_specs=in_specs,
                     out_specs=out_specs, check_rep=False)


def run(model, plan, passes, data, momentum):
    """The per-device passes, one reduction; the new non-trainable state
    is written back. Returns `(loss, gradients, predictions)` of the global
    batch (`predictions` in the order of its examples).

    Args:
        model: the model (its variables are the shard map's state).
        plan: a `Plan`.
        passes: `passes(x, y, sample_weight, device) -> (loss, gradients,
            predictions)`, the model's passes on one device's shard.
        data: `(x, y, sample_weight)` of the global batch.
        momentum: `{id(moving statistic): momentum}` of the BatchNorms.
    """
    variables = plan.variables_of(model)
    non_trainable = model.non_trainable_variables

    def body(values, local):
        mapping = list(zip(variables, values))
        with keras.StatelessScope(state_mapping=mapping) as scope:
            loss, gradients, predictions = passes(*local, Device(plan))
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
    )([v.value for v in variables], data)
    for variable, value in zip(non_trainable, new):
        variable.assign(value)
    return loss, list(gradients), predictions


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


def _synced(plan):
    """Wraps `BatchNormalization`'s batch moments: over the device's
    group, the mean of the devices' means, and of their variances plus the
    squared distance of their means to it (equal shards)."""

    def wrap(moments):
        def synced(inputs, mask):
            mean, variance = moments(inputs, mask)
            total = plan.group_mean(mean)
            return total, plan.group_mean(
                variance + ops.square(mean - total)
            )

        return synced

    return wrap


__all__ = ["Device", "Plan", "mesh_axis", "run"]
