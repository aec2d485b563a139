"""The pair form of split S-SGD: the two points on two workers.

Split S-SGD (`SymmetricSGDModel(split_batch=True)`) measures one half of a
batch at `W + n` and the other half at `W - n`. In data-parallel training
the halves can be the workers' shards: workers `2k` and `2k + 1` form a
pair; the even one measures its whole shard at `W + n`, the odd one at
`W - n`, and the gradient average the engine already computes (one
allreduce of one gradient per step) is the split step on the pair's
combined batch. Each worker runs one forward and backward pass per step,
as in plain data-parallel SGD, and its BatchNorm layers normalise its whole
shard with their own statistics.

Three engines number their workers (a `keras_ssgd.sharing.WorkerPairs`
set as `model.sharing.pairs`):
- Horovod: `keras_ssgd.distributed.horovod.distribute(model, pairs=True)`
  (ranks; each pair draws its own `n` by default, `shared_noise=True` gives
  every pair the same one).
- `tf.distribute` (`MirroredStrategy`, `MultiWorkerMirroredStrategy`):
  `pair_replicas(model)` (replicas in sync; the noise is drawn from one
  seed stream, so every pair measures at the same `+- n`).
- `keras.distribution.DataParallel` (JAX):
  `keras_ssgd.distributed.keras_distribution.distribute(model, pairs=True)`
  (devices of the mesh's batch axis; each pair draws its own `n` by
  default, as Horovod's ranks).

The pair form applies wherever the model runs its split form
(`split_batch=True`, or an `H` phase of a `NoiseSchedule` plan); the full
S-SGD steps of `S` phases still measure both points on every worker.

Reference:
- Sung et al., "S-SGD", Eq. 3 and Section 4.3 (data-parallel runs).
- Li et al., "Efficient Generalization Improvement Guided by Random Weight
  Perturbation" (RWP), 2022: clean and perturbed gradients on alternate
  devices.
"""

import warnings

from keras_ssgd.sharing import StepSharing
from keras_ssgd.sharing import WorkerPairs


class ReplicaPairs(WorkerPairs):
    """`tf.distribute` replicas in sync: pair `k` is replicas `2k`, `2k + 1`.

    The replica's index is read from the replica context when the step is
    traced (`MirroredStrategy` traces the step once per replica).
    """

    engine = "tf.distribute replicas"

    def __init__(self, strategy):
        self.strategy = strategy

    def index(self):
        import tensorflow as tf

        context = tf.distribute.get_replica_context()
        if context is None:
            raise RuntimeError(
                "The pair form runs in a tf.distribute replica context: "
                "build and train the model under `strategy.scope()`."
            )
        index = tf.get_static_value(context.replica_id_in_sync_group)
        if index is None:
            raise RuntimeError(
                "The pair form needs the replica's index when the step is "
                f"traced; {type(self.strategy).__name__} gives it only at "
                "run time (TPUStrategy does). Use `split_batch=True` "
                "without pairs."
            )
        return int(index)

    def size(self):
        return self.strategy.num_replicas_in_sync


def set_pairs(model, pairing, **sharing):
    """Makes `model`'s split form the pair form over `pairing`'s workers.

    Args:
        model: a `keras_ssgd.SymmetricSGDModel`.
        pairing: a `keras_ssgd.sharing.WorkerPairs`.
        **sharing: the rest of the model's `keras_ssgd.sharing.StepSharing`
            (`noise`, `batchnorm`).

    Returns:
        `model`, its `sharing` now a `StepSharing(pairs=pairing, ...)`.

    Raises:
        TypeError: `model` is not a `SymmetricSGDModel`.
        ValueError: the number of workers is odd.
    """
    from keras_ssgd.model import SymmetricSGDModel

    if not isinstance(model, SymmetricSGDModel):
        raise TypeError(
            "Argument `pairs=True` applies to S-SGD's split form: `model` "
            "must be a keras_ssgd.SymmetricSGDModel. Received: model of "
            f"type {type(model).__name__}"
        )
    pairing.check()
    if not model.split_batch:
        warnings.warn(
            f"Model '{model.name}' has split_batch=False: the pair form "
            "applies only to its split steps (`H` phases of a plan). Build "
            "it with `split_batch=True` for the pair form on every step.",
            stacklevel=3,
        )
    model.sharing = StepSharing(pairs=pairing, **sharing)
    return model


def pair_replicas(model, strategy=None):
    """The pair form across the replicas of a `tf.distribute` strategy.

    Replica `2k` measures its part of the global batch at `W + n`, replica
    `2k + 1` at `W - n`; Keras's gradient all-reduce averages them. With
    two replicas this is exactly the split step on the global batch, whose
    first half is replica 0's part. All replicas draw the same `n` (the
    model's one seed stream).

    Args:
        model: a `keras_ssgd.SymmetricSGDModel`, built under the strategy's
            scope, normally with `split_batch=True`.
        strategy: a `tf.distribute.Strategy` with an even number of
            replicas. Defaults to `None`, the strategy of the current scope.

    Returns:
        `model`.

    Raises:
        TypeError: `model` is not a `SymmetricSGDModel`.
        ValueError: the strategy has an odd number of replicas (one
            included).

    Example:

    <!-- example: skip needs an even number of devices (2, 4 or 8 GPUs). -->

    ```python
    strategy = tf.distribute.MirroredStrategy()      # 2, 4, 8 GPUs
    with strategy.scope():
        model = keras_ssgd.wrap(base, noise_level=0.2, split_batch=True)
        keras_ssgd.distributed.pairs.pair_replicas(model)
        model.compile(...)
    model.fit(x, y, batch_size=256)   # one pass per replica per step
    ```

    Reference:
    - Sung et al., "S-SGD", Eq. 3 and Section 4.3.
    """
    import tensorflow as tf

    if strategy is None:
        strategy = tf.distribute.get_strategy()
    return set_pairs(model, ReplicaPairs(strategy))


__all__ = [
    "ReplicaPairs",
    "WorkerPairs",
    "pair_replicas",
    "set_pairs",
]
