"""Horovod data parallelism for S-SGD and its baselines (Keras 3).

One process per device. Each rank runs the model's step on its own shard of
the global batch (both +- passes, locally), then a single grouped allreduce
averages the already averaged gradient across ranks, so the bytes sent per
step equal one gradient, as for plain SGD. Whether the step is applied is
decided from every rank's loss (a non-finite loss anywhere skips the update
everywhere), so the ranks never diverge.

Only Horovod's core ops are used (`grouped_allreduce`, `allreduce`,
`broadcast`): `horovod.keras`, `horovod.tensorflow.keras`,
`DistributedOptimizer`, `DistributedGradientTape` and
`SyncBatchNormalization` do not work with Keras 3.

Example (run with `horovodrun -np 4 python train.py`):

<!-- example: skip runs under `horovodrun -np N`, one process per rank. -->

```python
from keras_ssgd.distributed import horovod as ssgd_hvd

ssgd_hvd.init()
model = keras_ssgd.wrap(base, noise_level=0.5, seed=0)
ssgd_hvd.distribute(model)                 # per-rank noise, reduced gradients
lr = ssgd_hvd.scaled_learning_rate(0.1, warmup_steps=5 * steps_per_epoch,
                                   schedule=...)   # 0.1 * size, warmed up
model.compile(optimizer=keras.optimizers.SGD(lr, momentum=0.9), ...)
model.fit(ssgd_hvd.shard(global_batches), epochs=...,
          callbacks=ssgd_hvd.callbacks(), verbose=int(ssgd_hvd.is_root()))
```

Reference:
- Sergeev and Del Balso, "Horovod: fast and easy distributed deep learning
  in TensorFlow", arXiv:1802.05799.
- Sung et al., "S-SGD", Section 4.3 (4 GPUs, Horovod, batches 1K-16K).
"""

import math

import keras
import tensorflow as tf

from keras_ssgd.perturbed import PerturbedModel
from keras_ssgd.sharing import WorkerPairs


def _hvd():
    try:
        import horovod.tensorflow as hvd
    except ImportError as error:
        raise ImportError(
            "Horovod with TensorFlow ops is not installed. Build it with "
            "`docker/install_horovod.sh` (Horovod 0.28.1 needs the project's "
            f"patch for TensorFlow 2.21). Import error: {error}"
        ) from error
    return hvd


def available():
    """Whether Horovod's TensorFlow ops can be imported."""
    try:
        _hvd()
    except ImportError:
        return False
    return True


def init():
    """Initialises Horovod (idempotent) and returns `(rank, size)`."""
    hvd = _hvd()
    if not hvd.is_initialized():
        hvd.init()
    return hvd.rank(), hvd.size()


def rank():
    return _hvd().rank()


def size():
    return _hvd().size()


def is_root():
    """True on rank 0, the only rank that logs and writes files."""
    return rank() == 0


class HorovodPairs(WorkerPairs):
    """Horovod ranks for the pair form: pair `k` is ranks `2k` and
    `2k + 1` (`distribute(model, pairs=True)`)."""

    engine = "Horovod ranks"

    def index(self):
        return rank()

    def size(self):
        return size()


@keras.saving.register_keras_serializable(package="keras_ssgd")
class SyncBatchNormalization(keras.layers.BatchNormalization):
    """`BatchNormalization` whose training statistics span all Horovod ranks.

    In training, the batch mean and variance are computed over the global
    batch (the local means of `x` and `x**2` averaged across ranks, which is
    exact for equal shards), so every rank normalises with the same numbers
    and updates the same moving statistics. Gradients flow through the
    allreduce. Inference is plain BatchNormalization. Masks are not
    supported (use the per-device layer for masked inputs).

    Written for Keras 3 because Horovod's own `SyncBatchNormalization`
    targets Keras 2's internals. It overrides `BatchNormalization._moments`,
    a private Keras method (Keras 3.15).

    Args:
        **kwargs: the `keras.layers.BatchNormalization` arguments
            (`synchronized` must stay False: that is tf.distribute's own
            mechanism).

    Example:

    <!-- example: skip
    needs Horovod initialised in every rank (`horovodrun`).
    -->

    ```python
    model = ssgd_hvd.with_sync_batchnorm(keras_ssgd.models.cifar_resnet(20))
    ```

    Reference:
    - Ioffe and Szegedy, "Batch Normalization", ICML 2015; Peng et al.,
      "MegDet" (cross-GPU BatchNorm), CVPR 2018.
    """

    def _moments(self, inputs, mask):
        if mask is not None:
            raise ValueError(
                f"{type(self).__name__} does not support masks. Received a "
                f"mask for layer '{self.name}'."
            )
        hvd = _hvd()
        x = tf.cast(inputs, "float32")
        axes = self._reduction_axes
        mean = tf.reduce_mean(x, axis=axes)
        mean_square = tf.reduce_mean(tf.square(x), axis=axes)
        both = hvd.allreduce(
            tf.stack([mean, mean_square]), op=hvd.Average,
            name=f"ssgd_syncbn_{self.name}",
        )
        mean, mean_square = both[0], both[1]
        variance = tf.maximum(mean_square - tf.square(mean), 0.0)
        return (
            tf.cast(mean, inputs.dtype), tf.cast(variance, inputs.dtype)
        )


def with_sync_batchnorm(model):
    """A copy of functional `model` with every BatchNormalization layer
    replaced by `SyncBatchNormalization` (same config and weights)."""

    def clone(layer):
        if type(layer) is keras.layers.BatchNormalization:
            return SyncBatchNormalization.from_config(layer.get_config())
        return layer.__class__.from_config(layer.get_config())

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy


class HorovodReducer:
    """Gradient reducer: one grouped allreduce (average) per step.

    Called by `PerturbedModel.train_step` with `(gradients, finite)`. `None`
    gradients stay `None` on every rank (all ranks run the same model).
    Sparse gradients (`tf.IndexedSlices`, embeddings) are gathered, as
    Horovod does for them. The finite flags are combined with a minimum: a
    non-finite loss on any rank skips the step on all ranks.
    """

    def __init__(self):
        # What one step sends, from the static shapes seen when the step is
        # traced: the element count of the reduced gradients and their bytes.
        self.elements_per_step = None
        self.bytes_per_step = None
        self.calls = None  # a counter variable: allreduce calls so far

    def __call__(self, gradients, finite):
        hvd = _hvd()
        present = [g for g in gradients if g is not None]
        self.elements_per_step = sum(
            math.prod(g.shape) for g in present
            if not isinstance(g, tf.IndexedSlices)
        )
        self.bytes_per_step = sum(
            math.prod(g.shape) * g.dtype.size for g in present
            if not isinstance(g, tf.IndexedSlices)
        )
        if self.calls is None:
            with tf.init_scope():
                self.calls = tf.Variable(0, dtype="int64", trainable=False)
        self.calls.assign_add(1)
        reduced = iter(
            hvd.grouped_allreduce(present, op=hvd.Average, name="ssgd_grads")
            if present else []
        )
        gradients = [None if g is None else next(reduced) for g in gradients]
        flag = hvd.allreduce(
            tf.cast(finite, "float32"), op=hvd.Min, name="ssgd_finite"
        )
        return gradients, flag > 0.5


def distribute(model, shared_noise=False, pairs=False):
    """Prepares a `PerturbedModel` for Horovod data-parallel training.

    - Gradients are averaged across ranks once per step (`HorovodReducer`).
    - Noise seeds are per rank by default (`seed + rank`): each step samples
      `size` directions, one per rank. `shared_noise=True` gives every rank
      the same noise.
    - `pairs=True` (S-SGD's split form, `split_batch=True`): ranks `2k` and
      `2k + 1` form a pair that draws one noise (seed `seed + k`, or `seed`
      with `shared_noise=True`); the even rank measures its whole shard at
      `W + n`, the odd rank at `W - n`. The allreduce averages them, so
      each rank runs one pass per step and sends one gradient, as in plain
      data-parallel SGD. With 2 ranks this is the split step on the global
      batch (see `keras_ssgd.distributed.pairs`).
    - `jit_compile` is turned off (Horovod ops have no XLA kernel).

    Call it before `fit()`; pair it with `callbacks()` so every rank starts
    from rank 0's weights.

    Args:
        model: a `keras_ssgd.PerturbedModel` (S-SGD or a baseline; plain
            training is `SymmetricSGDModel(noise_level=0)`).
        shared_noise: bool. Defaults to `False`.
        pairs: bool. The pair form of split S-SGD (a `SymmetricSGDModel`
            and an even number of ranks). Defaults to `False`.

    Returns:
        `model`, prepared.

    Raises:
        TypeError: `model` is not a `PerturbedModel` (with `pairs=True`: not
            a `SymmetricSGDModel`).
        ValueError: `pairs=True` with an odd number of ranks.

    Example:

    <!-- example: skip
    runs under `horovodrun -np 2` (or 4, 8): pairs need an even number of
    ranks.
    -->

    ```python
    model = keras_ssgd.wrap(base, noise_level=0.2, seed=0, split_batch=True)
    ssgd_hvd.distribute(model, pairs=True)      # horovodrun -np 2, 4, 8
    ```
    """
    if not isinstance(model, PerturbedModel):
        raise TypeError(
            "Argument `model` must be a keras_ssgd.PerturbedModel (for plain "
            "training use keras_ssgd.wrap(model, noise_level=0)). Received: "
            f"model of type {type(model).__name__}"
        )
    if not isinstance(pairs, bool):
        raise TypeError(
            f"Argument `pairs` must be a bool. Received: pairs={pairs!r}"
        )
    rank_, _ = init()
    if pairs:
        from keras_ssgd.distributed.pairs import set_pairs

        set_pairs(model, HorovodPairs())
        if not shared_noise:
            model.noise_seed = model.noise_seed + rank_ // 2
    elif not shared_noise:
        model.noise_seed = model.noise_seed + rank_
    model.gradient_reducer = HorovodReducer()
    return model


class BroadcastInitialState(keras.callbacks.Callback):
    """Copies rank 0's model and optimizer variables to every rank.

    Runs at the start of `fit()` (after any restore from a checkpoint, so
    put it after `BackupAndRestore` in the callback list). The optimizer's
    variables are created first, so its state is broadcast too.
    """

    def __init__(self, root_rank=0):
        super().__init__()
        self.root_rank = root_rank

    def on_train_begin(self, logs=None):
        hvd = _hvd()
        model = self.model
        optimizer = model.optimizer
        if optimizer is not None and not optimizer.built:
            optimizer.build(model.trainable_variables)
        variables = list(model.variables)
        if optimizer is not None:
            variables += list(optimizer.variables)
        seen = set()
        for i, v in enumerate(variables):
            if id(v) in seen:
                continue
            seen.add(id(v))
            v.assign(hvd.broadcast(v.value, self.root_rank, name=f"ssgd_bcast_{i}"))


class AverageMetrics(keras.callbacks.Callback):
    """Averages the epoch logs (loss, metrics) over ranks, for rank 0's log.

    Each rank's metrics cover its own shard; the average over ranks is the
    metric over the global batch (equal shards).
    """

    def on_epoch_end(self, epoch, logs=None):
        if not logs:
            return
        hvd = _hvd()
        for key in sorted(logs):
            value = logs[key]
            if isinstance(value, (int, float)):
                logs[key] = float(
                    hvd.allreduce(
                        tf.constant(float(value)), op=hvd.Average,
                        name=f"ssgd_metric_{key}",
                    )
                )


class StopOnNonFinite(keras.callbacks.Callback):
    """Stops every rank together when the rank-averaged epoch loss is not
    finite (put it after `AverageMetrics`).

    `keras.callbacks.TerminateOnNaN` looks at each rank's own batch loss, so
    one rank could stop while the others wait for it in an allreduce.
    """

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            self.model.stop_training = True


class RootBackupAndRestore(keras.callbacks.BackupAndRestore):
    """`keras.callbacks.BackupAndRestore` that only rank 0 writes.

    Every rank restores from the same backup at the start of `fit()`;
    saving and the final clean-up happen on rank 0 only.
    """

    def on_epoch_end(self, epoch, logs=None):
        if is_root():
            super().on_epoch_end(epoch, logs)

    def on_train_batch_end(self, batch, logs=None):
        if is_root():
            super().on_train_batch_end(batch, logs)

    def on_train_end(self, logs=None):
        if is_root():
            super().on_train_end(logs)


def callbacks(average_metrics=True):
    """The callbacks a Horovod `fit()` needs: broadcast, metric averaging,
    and a stop on a non-finite loss that all ranks take together."""
    found = [BroadcastInitialState()]
    if average_metrics:
        found += [AverageMetrics(), StopOnNonFinite()]
    return found


def shard(dataset):
    """Each rank's part of every global batch of `dataset`.

    `dataset` yields global batches, in the same order on every rank (the
    same shuffling seed); rank `r` of `n` keeps the rows
    `[r * b, (r + 1) * b)` of each, with `b = global / n`. Global batches
    must divide evenly: build them with `drop_remainder=True`.
    """
    rank_, size_ = init()

    def take(*batch):
        rows = tf.shape(tf.nest.flatten(batch)[0])[0]
        local = rows // size_
        tf.debugging.assert_equal(
            local * size_, rows,
            message="global batch not divisible by the number of ranks",
        )
        part = tf.nest.map_structure(
            lambda t: t[rank_ * local : (rank_ + 1) * local], batch
        )
        return part if len(part) > 1 else part[0]

    return dataset.map(take)


def scaled_learning_rate(learning_rate, warmup_steps=0, schedule=None):
    """The learning rate times the number of ranks, with a linear warm-up.

    Goyal et al.'s rule: with `size` ranks the global batch is `size` times
    larger, so the rate is scaled by `size`, reached linearly over
    `warmup_steps` from `learning_rate`.

    Args:
        learning_rate: float, the single-process rate.
        warmup_steps: int >= 0. Defaults to `0`.
        schedule: optional callable `step -> factor` multiplied in after
            the warm-up (for example a Keras schedule built with
            `initial_learning_rate=1.0`).

    Returns:
        A `keras.optimizers.schedules.LearningRateSchedule`.
    """
    _, size_ = init()
    return WarmupScaled(learning_rate, size_, warmup_steps, schedule)


# Backend-neutral, in keras_ssgd.schedules; kept importable from here.
from keras_ssgd.schedules import WarmupScaled  # noqa: E402,F401
