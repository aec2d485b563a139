"""S-SGD on several hosts with `tf.distribute.MultiWorkerMirroredStrategy`.

One process per host (each with its local GPUs, or its CPU), described by
the `TF_CONFIG` environment variable; no Horovod. Build and compile the
model under `strategy.scope()`, exactly as for `MirroredStrategy`:

- Keras splits each global batch over the replicas of all workers and
  all-reduces the gradient inside the optimizer's update: one gradient per
  step, for plain SGD and S-SGD alike (S-SGD's two passes are averaged on
  each replica before the all-reduce).
- The noise: every worker draws the same `n` from the same seed and step,
  so one noise serves the whole global batch, exactly the single-process
  algorithm. Give the model an explicit `seed` (or call
  `keras.utils.set_random_seed` with the same value on every worker
  before building it: `seed=None` draws the seed from Python's `random`).
- The initial weights are the chief's: the strategy broadcasts every
  variable's initial value from worker 0 when it is created.
- A non-finite loss on any replica skips the step on all of them.
- The pair form of split S-SGD (replica `2k` at `W + n`, `2k + 1` at
  `W - n`): `keras_ssgd.distributed.pairs.pair_replicas(model, strategy)`,
  on an even number of replicas.
- Input: with a `tf.data.Dataset` of global batches, Keras distributes it
  with `strategy.experimental_distribute_dataset`, which shards it across
  workers (auto-shard policy `AUTO`: by file, else by data) and splits each
  global batch over the replicas; every worker must build the same
  dataset (same shuffling seed). NumPy arrays go through Keras's array
  adapter, which builds such a dataset with the `DATA` policy: pass the
  global `batch_size`, and shuffle with the same seed on every worker
  (`keras.utils.set_random_seed(s)` everywhere, or `shuffle=False`).
  Nothing is sharded by hand; `global_batches` is a helper for
  `drop_remainder=True` global batches.
- Only the chief should write files: `is_chief()`. Checkpoints for fault
  tolerance: `WorkerBackupAndRestore`.

Example (on each host, with its own `TF_CONFIG`):

<!-- example: skip one process per host, each with its own `TF_CONFIG`. -->

```python
from keras_ssgd.distributed import multiworker

strategy = multiworker.strategy(timeout_seconds=120)
with strategy.scope():
    model = keras_ssgd.wrap(base, noise_level=0.5, seed=0)
    lr = multiworker.scaled_learning_rate(0.1, warmup_steps=5 * steps)
    model.compile(optimizer=keras.optimizers.SGD(lr, momentum=0.9), ...)
model.fit(global_batches, epochs=..., verbose=int(multiworker.is_chief()),
          callbacks=[multiworker.WorkerBackupAndRestore("/tmp/backup")])
if multiworker.is_chief():
    model.save("model.keras")
```

Reference:
- TensorFlow, "Multi-worker training with Keras",
  https://www.tensorflow.org/tutorials/distribute/multi_worker_with_keras
- Goyal et al., "Accurate, Large Minibatch SGD: Training ImageNet in 1
  Hour", arXiv:1706.02677 (learning-rate scaling and warm-up).
- Sung et al., "S-SGD", Section 4.3 (data-parallel runs).
"""

import json
import numbers
import os

import keras
import tensorflow as tf

# Horovod-free: `keras_ssgd.distributed.horovod` imports Horovod only when
# one of its collectives is called.
from keras_ssgd import _keras_compat as compat
from keras_ssgd.schedules import WarmupScaled

IMPLEMENTATIONS = ("auto", "ring", "nccl")


def tf_config():
    """The parsed `TF_CONFIG` environment variable (`{}` when unset).

    Raises:
        ValueError: `TF_CONFIG` is not a JSON object.
    """
    text = os.environ.get("TF_CONFIG", "")
    if not text.strip():
        return {}
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(
            "The environment variable `TF_CONFIG` must be a JSON object "
            "with `cluster` and `task`. Received: "
            f"TF_CONFIG={text!r} ({error})"
        ) from None
    if not isinstance(config, dict):
        raise ValueError(
            "The environment variable `TF_CONFIG` must be a JSON object "
            f"with `cluster` and `task`. Received: TF_CONFIG={text!r}"
        )
    return config


def task():
    """This process's `(task_type, task_index)`; `("worker", 0)` without
    `TF_CONFIG`."""
    found = tf_config().get("task", {})
    return found.get("type", "worker"), int(found.get("index", 0))


def num_workers():
    """The number of training processes in `TF_CONFIG`'s cluster (its
    `chief` and `worker` tasks); 1 without `TF_CONFIG`."""
    cluster = tf_config().get("cluster", {})
    count = len(cluster.get("chief", [])) + len(cluster.get("worker", []))
    return max(count, 1)


def is_chief():
    """Whether this process is the chief, the one that logs and writes:
    the `chief` task if the cluster has one, else worker 0 (also True
    without `TF_CONFIG`)."""
    task_type, index = task()
    cluster = tf_config().get("cluster", {})
    if cluster.get("chief"):
        return task_type == "chief"
    return task_type == "worker" and index == 0


def strategy(timeout_seconds=300, implementation="auto"):
    """A `MultiWorkerMirroredStrategy` from `TF_CONFIG`, whose collectives
    give up after `timeout_seconds`.

    Keras 3's `fit()` fails on a plain `MultiWorkerMirroredStrategy`
    (keras-team/keras#20585): it asks `strategy.reduce` for a tuple (the
    first batch) and for scalars along `axis=0` (each step's logs). The
    strategy returned here reduces those as `MirroredStrategy` does, so
    `fit()`, `evaluate()` and the pair form work.

    Without a timeout a worker that dies leaves the others waiting in the
    next all-reduce for ever; with it they fail with a
    `DeadlineExceededError` (or sooner, when the strategy's health check
    sees the peer gone), so the job exits with an error instead of
    hanging. Build it before any other TensorFlow operation runs (the
    strategy starts this process's collective server).

    Args:
        timeout_seconds: number > 0, or `None` for no timeout. Longer than
            one step's computation plus the slowest worker's input (and
            the first step's tracing). Defaults to `300`.
        implementation: `"auto"`, `"ring"` (gRPC, CPUs) or `"nccl"`
            (GPUs). Defaults to `"auto"`.

    Returns:
        A `tf.distribute.MultiWorkerMirroredStrategy`.

    Raises:
        ValueError: `timeout_seconds` is not a positive number or `None`,
            or `implementation` is not one of the above.

    Example:

    <!-- example: skip needs `TF_CONFIG` naming two running workers. -->

    ```python
    # TF_CONFIG='{"cluster": {"worker": ["host0:12345", "host1:12345"]},
    #             "task": {"type": "worker", "index": 0}}'
    strategy = multiworker.strategy(timeout_seconds=120)
    print(strategy.num_replicas_in_sync)    # 2 (one CPU per worker)
    ```

    Reference:
    - `tf.distribute.experimental.CommunicationOptions`.
    """
    if timeout_seconds is not None and (
        isinstance(timeout_seconds, bool)
        or not isinstance(timeout_seconds, numbers.Real)
        or not timeout_seconds > 0
    ):
        raise ValueError(
            "Argument `timeout_seconds` must be a number > 0 or None. "
            f"Received: timeout_seconds={timeout_seconds!r}"
        )
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(
            "Argument `implementation` must be one of "
            f"{list(IMPLEMENTATIONS)}. Received: "
            f"implementation={implementation!r}"
        )
    kinds = tf.distribute.experimental.CommunicationImplementation
    options = tf.distribute.experimental.CommunicationOptions(
        timeout_seconds=timeout_seconds,
        implementation=getattr(kinds, implementation.upper()),
    )
    found = tf.distribute.MultiWorkerMirroredStrategy(
        communication_options=options
    )
    _keras_compatible(found)
    return found


def _keras_compatible(strategy):
    """Makes `strategy.reduce` do what Keras 3's `fit()` asks of it, as
    `MirroredStrategy`'s does (keras-team/keras#20585,
    tensorflow/tensorflow#72388).

    - `fit()` first reduces one batch of the distributed dataset, an
      `(x, y)` tuple of `PerReplica` values, with `strategy.reduce("MEAN",
      batch)` (`TensorFlowTrainer._maybe_symbolic_build`);
      `MultiWorkerMirroredStrategy` reduces single values only ("Attempt
      to convert a value (PerReplica...) with an unsupported type"). Each
      leaf is reduced on its own here.
    - Each step's logs (scalars) are reduced with `strategy.reduce("MEAN",
      value, axis=0)` under several workers, which fails on a scalar
      ("Invalid reduction dimension 0 for input with 0 dimensions"). A
      scalar is averaged over the replicas here (`axis=None`), as Keras
      does on one host.
    """

    def nested(reduce_to):
        def nested_reduce_to(reduce_op, value, destinations, options):
            if isinstance(value, (tuple, list, dict)):
                return tf.nest.map_structure(
                    lambda leaf: reduce_to(
                        reduce_op, leaf, destinations, options
                    ),
                    value,
                )
            return reduce_to(reduce_op, value, destinations, options)

        return nested_reduce_to

    compat.tf_strategy_reduce_to_as(strategy, nested)
    reduce = strategy.reduce

    def reduce_scalars(reduce_op, value, axis=None):
        if axis is not None and not isinstance(value, (tuple, list, dict)):
            first = strategy.experimental_local_results(value)[0]
            if getattr(first, "shape", None) is not None and (
                first.shape.rank == 0
            ):
                axis = None
        return reduce(reduce_op, value, axis=axis)

    strategy.reduce = reduce_scalars


def scaled_learning_rate(learning_rate, warmup_steps=0, schedule=None,
                         replicas=None):
    """The learning rate times the number of replicas, with a linear
    warm-up (Goyal et al.), as `horovod.scaled_learning_rate`.

    Args:
        learning_rate: float > 0, the single-replica rate.
        warmup_steps: int >= 0, the steps over which the rate rises
            linearly from `learning_rate` to `learning_rate * replicas`.
            Defaults to `0`.
        schedule: optional callable `step -> factor` multiplied in
            throughout (for example a Keras schedule built with
            `initial_learning_rate=1.0`).
        replicas: int >= 1, the scale. Defaults to `None`: the current
            strategy's `num_replicas_in_sync` (call it under
            `strategy.scope()`).

    Returns:
        A `keras.optimizers.schedules.LearningRateSchedule`
        (`keras_ssgd.distributed.horovod.WarmupScaled`, serializable).

    Raises:
        ValueError: an argument is out of range.

    Example:

    <!-- example: skip
    inside a MultiWorkerMirroredStrategy job (see the module example).
    -->

    ```python
    with strategy.scope():
        lr = multiworker.scaled_learning_rate(0.1, warmup_steps=500)
        model.compile(optimizer=keras.optimizers.SGD(lr, momentum=0.9), ...)
    ```

    Reference:
    - Goyal et al., arXiv:1706.02677, Sections 2.1 and 2.2.
    """
    if isinstance(learning_rate, bool) or not isinstance(
        learning_rate, numbers.Real
    ) or not learning_rate > 0:
        raise ValueError(
            "Argument `learning_rate` must be a number > 0. Received: "
            f"learning_rate={learning_rate!r}"
        )
    if isinstance(warmup_steps, bool) or not isinstance(
        warmup_steps, numbers.Integral
    ) or warmup_steps < 0:
        raise ValueError(
            "Argument `warmup_steps` must be an int >= 0. Received: "
            f"warmup_steps={warmup_steps!r}"
        )
    if schedule is not None and not callable(schedule):
        raise ValueError(
            "Argument `schedule` must be None or a callable `step -> "
            f"factor`. Received: schedule={schedule!r}"
        )
    if replicas is None:
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
    if isinstance(replicas, bool) or not isinstance(
        replicas, numbers.Integral
    ) or replicas < 1:
        raise ValueError(
            "Argument `replicas` must be an int >= 1. Received: "
            f"replicas={replicas!r}"
        )
    return WarmupScaled(learning_rate, replicas, warmup_steps, schedule)


def global_batches(dataset, batch_size, shuffle_seed=None):
    """`dataset`'s examples in global batches of `batch_size`, for
    `fit()` under the strategy (Keras shards them across workers).

    Args:
        dataset: a `tf.data.Dataset` of examples (the same on every
            worker).
        batch_size: int >= 1, the global batch (a multiple of the number
            of replicas, so that every replica gets the same share).
        shuffle_seed: int or `None`. With an int, the examples are
            reshuffled each epoch in the same order on every worker.
            Defaults to `None` (no shuffling).

    Returns:
        A `tf.data.Dataset` of global batches (`drop_remainder=True`).

    Raises:
        ValueError: `batch_size` is not a positive int.

    Example:

    <!-- example: skip
    inside a MultiWorkerMirroredStrategy job (see the module example).
    -->

    ```python
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    model.fit(multiworker.global_batches(ds, 256, shuffle_seed=0), ...)
    ```

    Reference:
    - `tf.distribute.Strategy.experimental_distribute_dataset`.
    """
    if isinstance(batch_size, bool) or not isinstance(
        batch_size, numbers.Integral
    ) or batch_size < 1:
        raise ValueError(
            "Argument `batch_size` must be an int >= 1. Received: "
            f"batch_size={batch_size!r}"
        )
    if shuffle_seed is not None:
        size = dataset.cardinality()
        dataset = dataset.shuffle(
            tf.maximum(size, 1), seed=shuffle_seed,
            reshuffle_each_iteration=True,
        )
    return dataset.batch(batch_size, drop_remainder=True)


class WorkerBackupAndRestore(keras.callbacks.BackupAndRestore):
    """`keras.callbacks.BackupAndRestore` for several workers: each worker
    keeps its own copy in `backup_dir/worker-<index>`.

    Keras's callback has every worker write the same files, which races on
    a shared file system. Here the workers write apart (their states are
    identical, so every copy is the same backup), and each restores its
    own at the start of `fit()`, which also works without a shared file
    system. Restart every worker after a failure: all must restore the
    same epoch.

    Args:
        backup_dir: str, the folder (shared or not).
        **kwargs: `keras.callbacks.BackupAndRestore`'s other arguments
            (`save_freq`, `double_checkpoint`, `delete_checkpoint`).

    Example:

    <!-- example: skip
    inside a MultiWorkerMirroredStrategy job (see the module example).
    -->

    ```python
    model.fit(data, epochs=90,
              callbacks=[multiworker.WorkerBackupAndRestore("/ckpt/run1")])
    ```

    Reference:
    - `keras.callbacks.BackupAndRestore`.
    """

    def __init__(self, backup_dir, **kwargs):
        if not backup_dir:
            raise ValueError(
                "Argument `backup_dir` must be a non-empty path. Received: "
                f"backup_dir={backup_dir!r}"
            )
        task_type, index = task()
        super().__init__(
            os.path.join(str(backup_dir), f"{task_type}-{index}"), **kwargs
        )


__all__ = [
    "WarmupScaled",
    "WorkerBackupAndRestore",
    "global_batches",
    "is_chief",
    "num_workers",
    "scaled_learning_rate",
    "strategy",
    "task",
    "tf_config",
]
