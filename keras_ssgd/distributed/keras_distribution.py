"""S-SGD on Keras's own distribution API (`keras.distribution`, JAX).

`keras.distribution.DataParallel` shards every global batch over the
devices of a mesh (one host, or several processes joined by
`jax.distributed`) and compiles the step once for the whole mesh. S-SGD
needs nothing of its own there: its step is a function of the global batch,
so under `DataParallel`

- one noise `n` is drawn per step for the whole global batch (every device
  derives it from the same seed and step): the single-device algorithm,
  tested against one device to 1e-6;
- full S-SGD measures the global batch at `W + n` and `W - n`;
- the split form (`split_batch=True`) measures the first half of the global
  batch at `W + n` and the second at `W - n`. The batch is sharded in order
  over the devices, so with 2 devices (or processes) each measures its own
  shard at one point: the pair form of `keras_ssgd.distributed.pairs`, with
  no extra code; with `2k` devices the first `k` are at `W + n`;
- the gradient all-reduce is XLA's: one gradient per step for plain
  training, but two for S-SGD and its split form (XLA reduces each pass's
  gradient before they are averaged; measured from the compiled step by
  `experiments/benchmarks/keras_distribution_scaling.py`). Horovod and tf.distribute
  send one;
- BatchNorm normalises over the global batch (its statistics are
  all-reduced), not per device as in the paper's multi-GPU runs.

Per-device noise (a different `n` on every device, as Horovod's default
`seed + rank`) is not offered here: `DataParallel` compiles one global
step, and the package does not rewrite it with `shard_map`.

This module adds what a multi-process run needs around Keras's API:
`initialize` (with a heartbeat timeout, so that a dead process ends the
job), `shard` (each process's rows of every global batch, for NumPy data)
and `process_id` / `num_processes`.

Example (each of 2 processes, `python train.py ID`):

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

import keras

from keras_ssgd import backends


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
    from keras.src.backend.jax.distribution_lib import initialize_rng

    initialize_rng()


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


__all__ = [
    "initialize", "is_initialized", "num_processes", "process_id", "shard",
]
