"""How `ssgd-train` spreads one run over devices: none, Horovod, Mirrored,
MultiWorkerMirroredStrategy, `keras.distribution` (JAX).

Each engine declares the options it takes (`options`, the names of its
constructor's arguments) and the feature it needs of the backend
(`feature`); `make` hands it those options and no others, so that the
command passes every engine option without asking which engine runs.
TensorFlow is imported by the engines that use it, so that `CHOICES` can be
read (by the command line's parser) on any backend."""

import contextlib

import keras

from keras_ssgd import backends
from keras_ssgd.perturbed import PerturbedModel
from keras_ssgd.wrapping import wrap

class Single:
    """One process, one device (the default)."""

    name = "none"
    options = ()  # the constructor's arguments, which `make` passes
    feature = None  # what the engine needs of the backend (`make`)
    rank = 0
    size = 1
    drop_remainder = False
    transform = None  # maps a built plain model to the one to train
    # Whether a run stopped in progress continues from its checkpoint
    # (`keras_ssgd.checkpoint`), which the root process writes; the other
    # engines' runs start again from their first epoch.
    resumes = True

    def is_root(self):
        return True

    def scope(self):
        return contextlib.nullcontext()

    def prepare(self, model):
        return model

    def shard(self, dataset):
        return dataset

    def learning_rate(self, schedule, steps_per_epoch):
        return schedule

    def callbacks(self):
        return []


class Horovod(Single):
    """One process per device under `horovodrun`.

    `--batch-size` is the global batch; each rank trains on its slice of
    every global batch. Plain methods (SGD, Dropout) train as
    `SymmetricSGDModel(noise_level=0)`, the plain Keras computation, so that
    every method goes through the same reduced step. The learning rate is
    multiplied by the number of ranks, reached linearly over
    `warmup_epochs` (Goyal et al.), unless `scale_lr` is false.

    S-SGD's split form (`ssgd-split`) runs as the pair form on an even
    number of ranks: ranks `2k` and `2k + 1` share one noise and measure
    their shards at `W + n` and `W - n` (one pass per rank, one gradient
    sent; `keras_ssgd.distributed.pairs`). On an odd number of ranks each
    rank splits its own shard instead.
    """

    name = "horovod"
    options = ("shared_noise", "scale_lr", "warmup_epochs", "sync_batchnorm")
    feature = "Horovod"
    drop_remainder = True
    resumes = True  # rank 0 writes; every rank reads the same checkpoint

    def __init__(
        self, shared_noise=False, scale_lr=True, warmup_epochs=5,
        sync_batchnorm=False,
    ):
        from keras_ssgd.distributed import horovod

        self._hvd = horovod
        self.rank, self.size = horovod.init()
        self.shared_noise = shared_noise
        self.scale_lr = scale_lr
        self.warmup_epochs = warmup_epochs
        if sync_batchnorm:
            self.transform = horovod.with_sync_batchnorm

    def is_root(self):
        return self.rank == 0

    def prepare(self, model):
        if not isinstance(model, PerturbedModel):
            model = wrap(model, noise_level=0.0, seed=0)
        return self._hvd.distribute(
            model, shared_noise=self.shared_noise,
            pairs=_pairs(model, self.size),
        )

    def shard(self, dataset):
        return self._hvd.shard(_tf_dataset(dataset))

    def learning_rate(self, schedule, steps_per_epoch):
        return _scaled_learning_rate(self, schedule, steps_per_epoch)

    def callbacks(self):
        return self._hvd.callbacks()


class Mirrored(Single):
    """`tf.distribute.MirroredStrategy` over the local GPUs (or CPUs).

    Keras splits each global batch over the replicas and all-reduces the
    gradients inside the optimizer's update. `ssgd-split` runs as the pair
    form on an even number of replicas (replica `2k` at `W + n`, `2k + 1`
    at `W - n`, one noise for all), and splits each replica's part of the
    batch on an odd number.
    """

    name = "mirrored"
    feature = "MirroredStrategy"
    resumes = False

    def __init__(self):
        import tensorflow as tf

        self.strategy = tf.distribute.MirroredStrategy()
        self.size = self.strategy.num_replicas_in_sync

    def scope(self):
        return self.strategy.scope()

    def prepare(self, model):
        if _pairs(model, self.size):
            from keras_ssgd.distributed.pairs import pair_replicas

            pair_replicas(model, self.strategy)
        return model


class MultiWorker(Mirrored):
    """`tf.distribute.MultiWorkerMirroredStrategy`: one process per host,
    the cluster in `TF_CONFIG` (see `keras_ssgd.distributed.multiworker`).

    `--batch-size` is the global batch. Every worker builds the same data
    (same seed) and Keras hands each replica its slice of every global
    batch (`tf.data` auto-sharding by data, so the run is the
    single-process one up to the gradient all-reduce); the global batches
    drop their remainder. The noise is shared: one `n` per global batch.
    `ssgd-split` runs as the pair form on an even number of replicas and
    splits each replica's part on an odd number. One step per execution
    (Keras's multi-step loop fails under this strategy). Only the chief
    (worker 0) logs and writes results; the others train the same runs. The learning
    rate is multiplied by the number of replicas, reached linearly over
    `warmup_epochs` (Goyal et al.), unless `scale_lr` is false. A worker
    that dies makes the others fail after at most `timeout_seconds`.
    """

    name = "multiworker"
    options = ("scale_lr", "warmup_epochs", "timeout_seconds")
    feature = "MultiWorkerMirroredStrategy"
    drop_remainder = True

    def __init__(self, scale_lr=True, warmup_epochs=5, timeout_seconds=300):
        from keras_ssgd.distributed import multiworker

        self._multiworker = multiworker
        self.strategy = multiworker.strategy(timeout_seconds=timeout_seconds)
        self.size = self.strategy.num_replicas_in_sync
        self.rank = multiworker.task()[1]
        self.scale_lr = scale_lr
        self.warmup_epochs = warmup_epochs

    def is_root(self):
        return self._multiworker.is_chief()

    def prepare(self, model):
        # Keras's multi-step loop (`steps_per_execution > 1`) fails under
        # this strategy ("You must feed a value for placeholder tensor
        # 'while/cond/Placeholder'"): the distributed iterator's
        # end-of-data all-reduce runs inside its `tf.while_loop`. One step
        # per execution, whatever the recipe says.
        compile_ = model.compile

        def compile(*args, **kwargs):
            kwargs["steps_per_execution"] = 1
            return compile_(*args, **kwargs)

        model.compile = compile
        return super().prepare(model)

    def shard(self, dataset):
        # By data, whatever the source: each replica gets its slice of the
        # global batch (by file, the workers would read different files).
        import tensorflow as tf

        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.DATA
        )
        return _tf_dataset(dataset).with_options(options)

    def learning_rate(self, schedule, steps_per_epoch):
        return _scaled_learning_rate(self, schedule, steps_per_epoch)


class KerasDataParallel(Single):
    """`keras.distribution.DataParallel` (JAX) over the job's devices: this
    process's, or those of several processes joined by `jax.distributed`.

    `--batch-size` is the global batch, sharded over the devices; the step
    is compiled once for the whole mesh, so one noise is drawn per global
    batch, the single-device algorithm (and the split form's halves are the
    first and second halves of the global batch: on 2 devices, each
    device's shard). S-SGD's passes are combined on each device and reduced
    once (`keras_ssgd.backends.jax_devices`). The learning rate is
    multiplied by the number of devices, reached linearly over
    `warmup_epochs`, unless `scale_lr` is false.

    Several processes: Keras's variables of `keras.distribution.initialize`
    name the job, `KERAS_DISTRIBUTION_JOB_ADDRESSES` (the coordinator's
    `host:port` first), `KERAS_DISTRIBUTION_NUM_PROCESSES` and
    `KERAS_DISTRIBUTION_PROCESS_ID`; every process runs the same command.
    Every process builds the same data (same seed) and feeds its rows of
    each global batch (`keras_distribution.shard`'s rows), in training and
    in every evaluation (a batch that does not split evenly over the
    processes is refused with a `ValueError`); only process 0 logs and
    writes results and models. A process that dies ends the others within
    30 s (`keras_distribution.initialize`'s heartbeat).
    """

    name = "keras"
    options = ("scale_lr", "warmup_epochs")
    drop_remainder = True
    resumes = False

    def __init__(self, scale_lr=True, warmup_epochs=5):
        backends.require(
            "keras.distribution", "distributed='keras'", backends=("jax",)
        )
        from keras_ssgd.distributed import keras_distribution

        self.processes, self.rank, address = keras_distribution.job()
        if self.processes > 1 and not keras_distribution.is_initialized():
            keras_distribution.initialize(
                address, self.processes, self.rank
            )
        devices = keras.distribution.list_devices()
        keras.distribution.set_distribution(
            # Several processes read their rows themselves (`shard`).
            keras.distribution.DataParallel(
                devices=devices, auto_shard_dataset=self.processes == 1
            )
        )
        self.size = len(devices)
        self.scale_lr = scale_lr
        self.warmup_epochs = warmup_epochs

    def is_root(self):
        return self.rank == 0

    def shard(self, dataset):
        if self.processes == 1 or dataset is None:
            return dataset
        from keras_ssgd.distributed.keras_distribution import ProcessRows

        return ProcessRows(dataset, self.processes, self.rank)

    def prepare(self, model):
        # fit()'s validation data and evaluate()'s data are this process's
        # rows of each batch, as the training data are.
        if self.processes == 1:
            return model
        fit, evaluate, save = model.fit, model.evaluate, model.save

        def sharded_fit(*args, validation_data=None, **kwargs):
            return fit(*args, validation_data=self.shard(validation_data),
                       **kwargs)

        def sharded_evaluate(x=None, *args, **kwargs):
            return evaluate(self.shard(x), *args, **kwargs)

        def local_save(*args, **kwargs):
            # Process 0 saves alone: outside the distribution, so that the
            # values it places are its own (under it, JAX checks every
            # placed value against the other processes', which are not
            # saving).
            distribution = keras.distribution.distribution()
            keras.distribution.set_distribution(None)
            try:
                return save(*args, **kwargs)
            finally:
                keras.distribution.set_distribution(distribution)

        model.fit, model.evaluate = sharded_fit, sharded_evaluate
        model.save = local_save
        return model

    def learning_rate(self, schedule, steps_per_epoch):
        return _scaled_learning_rate(self, schedule, steps_per_epoch)


def _scaled_learning_rate(engine, schedule, steps_per_epoch):
    """`schedule` times the engine's worker count, reached linearly over
    its `warmup_epochs` (Goyal et al.), unless its `scale_lr` is false."""
    if not engine.scale_lr or engine.size == 1:
        return schedule
    from keras_ssgd.schedules import WarmupScaled

    base = schedule if not callable(schedule) else 1.0
    factor = schedule if callable(schedule) else None
    return WarmupScaled(
        base, engine.size, engine.warmup_epochs * steps_per_epoch, factor
    )


def _tf_dataset(dataset):
    """`dataset` as a `tf.data.Dataset`, for the engines that shard one:
    the NumPy batches (`data.Batches`) keep their order, the same as on
    one device."""
    to_tf = getattr(dataset, "as_tf_dataset", None)
    return to_tf() if to_tf is not None else dataset


def _pairs(model, size):
    """Whether `model` runs the pair form over `size` workers: S-SGD's
    split form on an even number of them."""
    return (
        getattr(model, "step_form", "full") != "full" and size % 2 == 0
    )


# The engines by name, in the order `--distributed` lists them.
ENGINES = {
    engine.name: engine
    for engine in (Single, Horovod, Mirrored, MultiWorker, KerasDataParallel)
}
CHOICES = tuple(ENGINES)


def takers(option):
    """The names of the engines that take `option` (in `CHOICES` order)."""
    return [name for name, engine in ENGINES.items()
            if option in engine.options]


def make(name, **options):
    """The distribution called `name` (one of `CHOICES`).

    Args:
        name: str, the engine.
        **options: engine options (`shared_noise`, `scale_lr`,
            `warmup_epochs`, `sync_batchnorm`, ...): each engine gets
            those it declares (its `options`) and ignores the others'.

    Raises:
        TypeError: an option that no engine takes.
        ValueError: `name` is unknown, or is Horovod, MirroredStrategy or
            MultiWorkerMirroredStrategy while Keras runs on another backend
            than TensorFlow.

    Example:

    >>> make("none", scale_lr=False).size
    1
    """
    engine = ENGINES.get(name)
    if engine is None:
        raise ValueError(
            f"Argument `distributed` must be one of {list(CHOICES)}. "
            f"Received: distributed={name!r}"
        )
    unknown = [key for key in options if not takers(key)]
    if unknown:
        raise TypeError(
            f"make() got an option no engine takes: {unknown[0]!r}. "
            f"Engines and their options: "
            + "; ".join(f"{n}: {', '.join(e.options) or 'none'}"
                        for n, e in ENGINES.items())
        )
    if engine.feature is not None:
        backends.require(engine.feature, f"distributed={name!r}")
    return engine(**{key: value for key, value in options.items()
                     if key in engine.options})


__all__ = [
    "CHOICES", "ENGINES", "Horovod", "KerasDataParallel", "Mirrored",
    "MultiWorker", "Single", "make", "takers",
]
