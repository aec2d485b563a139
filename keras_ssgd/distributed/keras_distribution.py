"""S-SGD on Keras's own distribution API (`keras.distribution`, JAX).

`keras.distribution.DataParallel` shards every global batch over the
devices of a mesh (one host, or several processes joined by
`jax.distributed`) and compiles the step once for the whole mesh. Under
`DataParallel` S-SGD is the single-device algorithm on the global batch:

- one noise `n` is drawn per step for the whole global batch (every device
  derives it from the same seed and step), tested against one device to
  1e-6;
- full S-SGD measures every device's shard at `W + n` and `W - n`;
- the split form (`split_batch=True`) measures the first half of the global
  batch at `W + n` and the second at `W - n`: on an even number of devices
  the first half of the devices at `W + n`, one pass per device;
- each device combines its passes' gradients, and one all-reduce per step
  averages them (`keras_ssgd.backends.jax_devices`, a `shard_map` over
  the batch axis): one gradient sent per step, as Horovod and
  tf.distribute send (measured from the compiled step by
  `experiments/benchmarks/keras_distribution_scaling.py`);
- BatchNorm normalises with the statistics of every example measured at
  the same point (the global batch for full S-SGD, its half for the split
  form), as on one device: the devices' moments are all-reduced.

Models the per-device step cannot run exactly (layers that draw random
numbers in training such as `Dropout`, stateful RNNs, a loss that is not a
mean over the batch, the baselines, the split form on an odd number of
devices) keep the step compiled on the global batch: the same algorithm,
but XLA then all-reduces each pass's gradient (two gradients per S-SGD
step).

Per-device noise (a different `n` on every device, as Horovod's default
`seed + rank`) and pairs of devices: `distribute(model, shared_noise=...,
pairs=...)`.

This module adds what a multi-process run needs around Keras's API:
`initialize` (with a heartbeat timeout, so that a dead process ends the
job), `shard` (each process's rows of every global batch, for NumPy data)
and `process_id` / `num_processes`.

Example (each of 2 processes, `python train.py ID`):

<!-- example: skip
two processes on the JAX backend, each started with its own `ID`.
-->

```python
from keras_ssgd.distributed import keras_distribution as kd

kd.initialize("10.0.0.1:1234", num_processes=2, process_id=ID)
keras.distribution.set_distribution(keras.distribution.DataParallel(
    devices=keras.distribution.list_devices(), auto_shard_dataset=False))
model = keras_ssgd.SymmetricSGDModel(inputs, outputs, noise_level=0.3)
model.compile(...)
x_local, y_local = kd.shard((x, y), global_batch=256)
model.fit(x_local, y_local, batch_size=256 // 2, shuffle=False)
```

Reference:
- Keras, "Distributed training with Keras 3" (keras.io guides,
  `keras.distribution`).
- Sung et al., "S-SGD", Eq. 3 and Section 4.3.
"""

import os

import keras

from keras_ssgd import _keras_compat as compat
from keras_ssgd import backends
from keras_ssgd import sharing


def _jax():
    backends.require("keras.distribution multi-process training",
                     "keras_distribution.initialize()", backends=("jax",))
    import jax

    return jax


def initialize(
    coordinator_address, num_processes, process_id,
    heartbeat_timeout_seconds=30,
):
    """Joins this process to a multi-process JAX job, as
    `keras.distribution.initialize` does, with a heartbeat timeout.

    A process that dies is noticed by the others within about
    `heartbeat_timeout_seconds`, and the job ends with an error instead of
    waiting (JAX's default is 100 s). Call it before any computation.

    Args:
        coordinator_address: `"host:port"` of process 0.
        num_processes: int >= 1.
        process_id: int in `[0, num_processes)`.
        heartbeat_timeout_seconds: int >= 1. Defaults to `30`.

    Raises:
        ValueError: an argument is out of range, or the Keras backend is not
            JAX.

    Example:

    <!-- example: skip waits for a second process to join (JAX backend). -->

    ```python
    initialize("127.0.0.1:1234", num_processes=2, process_id=0)
    ```
    """
    jax = _jax()
    for name, value, low in (
        ("num_processes", num_processes, 1),
        ("heartbeat_timeout_seconds", heartbeat_timeout_seconds, 1),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ValueError(
                f"Argument `{name}` must be an int >= {low}. Received: "
                f"{name}={value!r}"
            )
    if (
        not isinstance(process_id, int) or isinstance(process_id, bool)
        or not 0 <= process_id < num_processes
    ):
        raise ValueError(
            "Argument `process_id` must be an int in [0, num_processes). "
            f"Received: process_id={process_id!r} with "
            f"num_processes={num_processes}"
        )
    jax.distributed.initialize(
        coordinator_address=coordinator_address,
        num_processes=num_processes,
        process_id=process_id,
        heartbeat_timeout_seconds=heartbeat_timeout_seconds,
    )
    # What `keras.distribution.initialize` does next: one global seed.
    compat.jax_initialize_rng()


def is_initialized():
    """Whether this process has joined a multi-process JAX job (without
    starting JAX's backend, which would forbid joining one)."""
    if keras.backend.backend() != "jax":
        return False
    import jax

    return jax.distributed.is_initialized()


def process_id():
    """This process's index (0 without `initialize`)."""
    if keras.backend.backend() != "jax":
        return 0
    import jax

    return jax.process_index()


def num_processes():
    """The number of processes in the job (1 without `initialize`)."""
    if keras.backend.backend() != "jax":
        return 1
    import jax

    return jax.process_count()


def distribute(model, shared_noise=False, pairs=False):
    """Per-device noise and pairs of devices under `DataParallel`, as
    `keras_ssgd.distributed.horovod.distribute` gives them to ranks.

    The step runs per device (`keras_ssgd.backends.jax_devices`), one
    gradient all-reduce per step:

    - Noise per device by default: device `i` of the mesh's batch axis
      draws with seed `seed + i`, so each step samples one direction per
      device; `shared_noise=True` gives every device the model's noise.
    - `pairs=True` (S-SGD's split form, `split_batch=True`): devices `2k`
      and `2k + 1` form a pair that draws one noise (seed `seed + k`, or
      `seed` with `shared_noise=True`); the even device measures its whole
      shard at `W + n`, the odd one at `W - n`: one pass per device. With
      2 devices this is the split step on the global batch, each half on
      its device. Without pairs, the split form splits each device's
      shard.
    - BatchNorm normalises each device's shard with its own statistics
      (the paper's multi-GPU runs); the moving statistics kept are the
      mean of the devices' (with pairs: the `W + n` devices' update, then
      the `W - n` devices', as the split step makes them).

    Without `distribute()` a `DataParallel` run is the single-device
    algorithm: one noise for the global batch, BatchNorm over the
    examples measured at each point.

    Call it after `keras.distribution.set_distribution(DataParallel(...))`
    and before `fit()`.

    Args:
        model: a `keras_ssgd.SymmetricSGDModel` whose only non-trainable
            state is BatchNorm's moving statistics, compiled with a loss
            that is a mean over the batch (see
            `keras_ssgd.sharing.per_device_obstacles`).
        shared_noise: bool. Defaults to `False`.
        pairs: bool. The pair form of the split step (an even number of
            devices). Defaults to `False`.

    Returns:
        `model`, its `sharing` set to a `keras_ssgd.sharing.StepSharing` with
        `batchnorm="local"`, `noise` `"per_device"`, `"per_pair"` (pairs)
        or `"shared"`, and `pairs` the devices' numbering with
        `pairs=True`.

    Raises:
        TypeError: `model` is not a `SymmetricSGDModel`, or a flag is not a
            bool.
        ValueError: no `DataParallel` distribution is set, the model cannot
            run per device, or `pairs=True` with an odd number of devices.

    Example:

    <!-- example: skip needs the JAX backend and an even number of devices. -->

    ```python
    keras.distribution.set_distribution(keras.distribution.DataParallel())
    model = keras_ssgd.wrap(base, noise_level=0.2, seed=0, split_batch=True)
    model.compile(...)
    kd.distribute(model, pairs=True)     # 2, 4, 8 devices
    model.fit(x, y, batch_size=256)      # one pass per device per step
    ```

    Reference:
    - Sung et al., "S-SGD", Eq. 3 and Section 4.3.
    """
    from keras_ssgd.distributed.pairs import set_pairs
    from keras_ssgd.model import SymmetricSGDModel

    _jax()
    if not isinstance(model, SymmetricSGDModel):
        raise TypeError(
            "Argument `model` must be a keras_ssgd.SymmetricSGDModel (the "
            "per-device step is S-SGD's). Received: model of type "
            f"{type(model).__name__}"
        )
    for name, value in (("shared_noise", shared_noise), ("pairs", pairs)):
        if not isinstance(value, bool):
            raise TypeError(
                f"Argument `{name}` must be a bool. Received: "
                f"{name}={value!r}"
            )
    mesh = _mesh_axis()
    if (model.built and getattr(model, "compiled", False)) or mesh is None:
        sharing.check_per_device(model, mesh)
    if shared_noise:
        noise = "shared"
    else:
        noise = "per_pair" if pairs else "per_device"
    if pairs:
        set_pairs(model, DevicePairs(), noise=noise, batchnorm="local")
    else:
        model.sharing = sharing.StepSharing(noise=noise, batchnorm="local")
    return model


def _mesh_axis():
    """The `DataParallel` batch axis, `(jax_mesh, axis_name, size)`, or
    `None` (JAX only: imported here, not with the module)."""
    from keras_ssgd.backends import jax_devices

    return jax_devices.mesh_axis()


class DevicePairs(sharing.WorkerPairs):
    """`keras.distribution.DataParallel` devices (JAX): pair `k` is devices
    `2k` and `2k + 1` of the mesh's batch axis (`distribute(model,
    pairs=True)`).

    One step is compiled for every device and run per device
    (`keras_ssgd.backends.jax_devices`), which measures each device at its
    point; `size()` is the number of devices on the batch axis.
    """

    engine = "keras.distribution devices"

    def _axis(self):
        found = _mesh_axis()
        if found is None:
            raise ValueError(
                "Argument `pairs=True` under keras.distribution needs a "
                "DataParallel distribution. Received: distribution="
                f"{keras.distribution.distribution()!r}"
            )
        return found

    def index(self):
        import jax

        return jax.lax.axis_index(self._axis()[1])

    def size(self):
        return self._axis()[2]

    def sign(self):
        """`+1.0` on even devices, `-1.0` on odd ones (a traced float)."""
        return keras.ops.where(self.index() % 2 == 0, 1.0, -1.0)


def shard(arrays, global_batch):
    """This process's rows of every global batch of `arrays`.

    Process `p` of `P` keeps rows `[p * b, (p + 1) * b)` of each global
    batch of `global_batch` rows (`b = global_batch / P`), in order, so that
    `fit(..., batch_size=b, shuffle=False)` on every process trains on the
    global batches of the single-process run (shuffle the arrays the same
    way on every process first, with the same seed). A last partial global
    batch is dropped.

    Args:
        arrays: a NumPy array or a structure (tuple, list, dict) of arrays
            with the same first dimension.
        global_batch: int, divisible by the number of processes.

    Returns:
        The same structure, holding this process's rows.

    Raises:
        ValueError: `global_batch` is not a positive multiple of the number
            of processes, or the arrays' first dimensions differ.
    """
    import numpy as np

    processes, index = num_processes(), process_id()
    if (
        not isinstance(global_batch, int) or isinstance(global_batch, bool)
        or global_batch <= 0 or global_batch % processes
    ):
        raise ValueError(
            "Argument `global_batch` must be a positive int divisible by the "
            f"number of processes ({processes}). Received: "
            f"global_batch={global_batch!r}"
        )
    flat = keras.tree.flatten(arrays)
    rows = {len(a) for a in flat}
    if len(rows) != 1:
        raise ValueError(
            "Argument `arrays` must hold arrays of one length. Received: "
            f"lengths {sorted(rows)}"
        )
    (count,) = rows
    local = global_batch // processes
    starts = np.arange(0, count - global_batch + 1, global_batch)
    index_rows = (
        starts[:, None] + index * local + np.arange(local)[None, :]
    ).reshape(-1)
    return keras.tree.map_structure(lambda a: a[index_rows], arrays)


class ProcessRows(keras.utils.PyDataset):
    """This process's rows of every batch of `batches` (a
    `keras.utils.PyDataset` of `(x, y)` NumPy batches, such as
    `keras_ssgd.data.Batches`): process `p` of `P` keeps rows
    `[p * b, (p + 1) * b)` of a batch of `P * b` rows, the rows
    `keras_distribution.shard` gives it.

    Args:
        batches: the batches of the whole job.
        processes: int, the number of processes.
        rank: int, this process's index.

    Raises (when a batch is read):
        ValueError: a batch's rows do not split evenly over the processes.
    """

    def __init__(self, batches, processes, rank):
        super().__init__()
        self.batches = batches
        self.processes = processes
        self.rank = rank

    def __len__(self):
        return len(self.batches)

    def __getitem__(self, index):
        x, y = self.batches[index]
        if len(x) % self.processes:
            raise ValueError(
                f"Batch {index} of {len(x)} examples does not split over "
                f"{self.processes} processes: every process feeds an equal "
                "share of each batch. Choose a batch size (and data sizes) "
                "whose batches are multiples of the number of processes. "
                f"Received: {len(x)} examples with "
                f"KERAS_DISTRIBUTION_NUM_PROCESSES={self.processes}"
            )
        local = len(x) // self.processes
        rows = slice(self.rank * local, (self.rank + 1) * local)
        return x[rows], y[rows]

    def on_epoch_begin(self):
        self.batches.on_epoch_begin()

    def on_epoch_end(self):
        self.batches.on_epoch_end()


def job():
    """`(processes, process_id, coordinator)` from Keras's variables of a
    multi-process job (`keras.distribution.initialize`); `(1, 0, None)`
    without them."""
    names = ("KERAS_DISTRIBUTION_NUM_PROCESSES",
             "KERAS_DISTRIBUTION_PROCESS_ID")
    values = []
    for name, default in zip(names, ("1", "0")):
        value = os.environ.get(name, default)
        try:
            values.append(int(value))
        except ValueError:
            raise ValueError(
                f"{name} must be an int. Received: {name}={value!r}"
            ) from None
    processes, rank = values
    if processes < 1 or not 0 <= rank < processes:
        raise ValueError(
            "KERAS_DISTRIBUTION_NUM_PROCESSES must be >= 1 and "
            "KERAS_DISTRIBUTION_PROCESS_ID in [0, processes). Received: "
            f"KERAS_DISTRIBUTION_NUM_PROCESSES={processes}, "
            f"KERAS_DISTRIBUTION_PROCESS_ID={rank}"
        )
    address = os.environ.get("KERAS_DISTRIBUTION_JOB_ADDRESSES", "")
    address = address.split(",")[0].strip()
    if processes > 1 and not address:
        raise ValueError(
            "A job of several processes needs its coordinator: set "
            "KERAS_DISTRIBUTION_JOB_ADDRESSES to the host:port of process 0 "
            "(then the others', comma-separated). Received: "
            f"KERAS_DISTRIBUTION_NUM_PROCESSES={processes} without it"
        )
    return processes, rank, address or None


__all__ = [
    "ProcessRows", "distribute", "initialize", "is_initialized", "job",
    "num_processes", "process_id", "shard",
]
