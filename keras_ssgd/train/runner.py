"""One training run of `ssgd-train`: a method, a level and a seed."""

import dataclasses
import math
import time

import keras

from keras_ssgd import data as data_lib
from keras_ssgd import schedules
from keras_ssgd.callbacks import NoiseSchedule
from keras_ssgd.data import TENSORFLOW_DATASETS
from keras_ssgd.data.pipeline import DATA_ORDER
from keras_ssgd.data.pipeline import Batches
from keras_ssgd.phases import PhasePlan
from keras_ssgd.distributed.engines import Single
from keras_ssgd import checkpoint as checkpoint_lib
from keras_ssgd import store as store_lib
from keras_ssgd.train import evaluation
from keras_ssgd.train import resumption
from keras_ssgd.train.registry import METHODS
from keras_ssgd.train.registry import OPTIMIZERS
from keras_ssgd.train.registry import model_builder
from keras_ssgd.wrapping import wrap


@dataclasses.dataclass(frozen=True)
class Config:
    """The recipe every run of one `ssgd-train` invocation shares.

    `phases` is a phase plan (`"75-25S-25S"`, or the `PhasePlan` itself),
    kept as its text; `phase_plan` is the plan, parsed once.
    """

    dataset: str
    model: str
    epochs: int
    batch_size: int
    lr: float
    optimizer: str
    momentum: float
    lr_schedule: str
    lr_drops: tuple
    phases: str = None
    steps_per_execution: int = 1
    hessian_iterations: int = 0
    noise_filter: str = None
    epoch_eval: bool = False
    # The user's data: tfds's folder, the held-out fraction of the training
    # set, and a digest of the arrays (so that runs on other data do not
    # combine).
    data_dir: str = None
    validation_split: float = 0.0
    data_digest: str = None
    # The training data order: `data.pipeline.DATA_ORDER` (NumPy, seeded
    # per epoch, the same on every backend) for MNIST-1D and the user's
    # data; None for CIFAR and ImageNet (tf.data). Recipes saved before the
    # field existed used tf.data's shuffle for every dataset, so a missing
    # field reads as None and `--resume` refuses to mix the two orders.
    # "user" for the user's dataset objects (`data.objects`): their order
    # is the user's, not reshuffled by the seed.
    data_order: str = None
    # The every-k methods (`ssgd-every`, `sam-every`) run their method on
    # one step in `every`.
    every: int = 5
    # "epochs": every method trains `epochs` epochs; "passes": every method
    # gets the forward/backward passes of the costliest one (a one-pass
    # method trains twice the epochs of a two-pass one, its learning-rate
    # schedule stretched); "both": the runs of both.
    budget: str = "epochs"
    # Keras's decoupled weight decay (the optimizers' `weight_decay`): each
    # step multiplies the weights by `1 - lr * weight_decay`. 0: none.
    weight_decay: float = 0.0

    def __post_init__(self):
        plan = None if self.phases is None else PhasePlan.parse(self.phases)
        object.__setattr__(self, "phases", None if plan is None else str(plan))
        # Not a field: it is the text `phases` parsed.
        object.__setattr__(self, "phase_plan", plan)
        if self.data_order is None and (
            self.dataset not in TENSORFLOW_DATASETS
        ):
            object.__setattr__(self, "data_order", DATA_ORDER)

    @classmethod
    def defaults(cls):
        """The fields that have defaults, with them (JSON-ready)."""
        return {
            f.name: f.default for f in dataclasses.fields(cls)
            if f.default is not dataclasses.MISSING
        }

    def to_json(self):
        config = dataclasses.asdict(self)
        config["lr_drops"] = list(self.lr_drops)
        return config


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One run: `method` at `level` (None for SGD) from `seed`.

    `epochs`, if set, replaces the recipe's (an equal-passes run, its
    schedule stretched: `learning_rate`); `lr`, if set, the recipe's
    initial learning rate (a point of the `--lr` grid other than the
    recipe's own, `Config.lr`), and
    `weight_decay` names the recipe's weight decay in the key where it is
    not 0; `budgets` says which comparisons the run belongs to
    (`"epochs"`, `"passes"`; it does not tell runs apart).

    The key names each of them, so that no two points of a grid share a
    record: `ssgd-0.2-lr0.1-seed3`, `sgd-lr0.1-120ep-seed0`; a run at the
    recipe's learning rate (`Config.lr`, the first of `--lr`) has none in
    its key: `ssgd-0.2-seed3`.
    """

    method: str
    level: float
    seed: int
    epochs: int = None
    budgets: tuple = dataclasses.field(default=("epochs",), compare=False)
    lr: float = None
    weight_decay: float = None

    @property
    def key(self):
        level = "" if self.level is None else f"-{self.level:g}"
        lr = "" if self.lr is None else f"-lr{self.lr:g}"
        decay = "" if not self.weight_decay else f"-wd{self.weight_decay:g}"
        epochs = "" if self.epochs is None else f"-{self.epochs}ep"
        return f"{self.method}{level}{lr}{decay}{epochs}-seed{self.seed}"

    def epochs_of(self, config):
        """The epochs this run trains."""
        return config.epochs if self.epochs is None else self.epochs

    def config_of(self, config):
        """`config` with this run's learning rate."""
        if self.lr is None or self.lr == config.lr:
            return config
        return dataclasses.replace(config, lr=self.lr)


def learning_rate(config, steps_per_epoch, epochs=None):
    """The learning-rate schedule of `config`, as a Keras schedule.

    With `epochs` other than `config.epochs` (an equal-passes run), the
    schedule is stretched to them, not cut: every boundary, decay length
    and restart period is scaled by `epochs / config.epochs`, so the run
    ends at the learning rate the recipe ends at.
    """
    stretch = 1.0 if epochs is None else epochs / config.epochs
    if config.phases:
        if stretch != 1:
            raise ValueError(
                "A phase plan's schedule is not stretched: an equal-passes "
                f"run needs no phases. Received: phases={config.phases!r} "
                f"with epochs={epochs}"
            )
        return config.phase_plan.learning_rate_schedule(
            config.lr, steps_per_epoch
        )
    if config.lr_schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(
            config.lr,
            decay_steps=round(steps_per_epoch * config.epochs * stretch),
        )
    if config.lr_schedule == "step":
        drops = sorted(config.lr_drops)
        if not drops:
            return config.lr
        return keras.optimizers.schedules.PiecewiseConstantDecay(
            boundaries=[round(d * stretch * steps_per_epoch) for d in drops],
            values=[config.lr * 0.1**i for i in range(len(drops) + 1)],
        )
    if config.lr_schedule == "sgdr":
        return schedules.SGDR(
            config.lr, steps_per_epoch=steps_per_epoch,
            first_period_epochs=10 * stretch if stretch != 1 else 10,
        )
    if config.lr_schedule == "constant":
        return config.lr
    raise ValueError(
        "Argument `lr_schedule` must be one of ['cosine', 'step', 'sgdr', "
        f"'constant']. Received: lr_schedule={config.lr_schedule!r}"
    )


def build_model(config, spec, data, transform=None, builder=None):
    """The model of `spec`; every method starts from the same weights.

    The weights come from the seed alone: Dropout's model gets the weights
    of the plain model built from the same seed. `transform`, if given,
    maps the plain model to another before the method wraps it (for
    example synchronized BatchNorm). `builder`, if given, is the model
    builder (`build(input_shape, num_classes, dropout=0.0)`); by default
    the one `config.model` names (a built-in model or
    `package.module:function`).
    """
    raw_build = builder or model_builder(config.model)

    def build(*args):
        model = raw_build(*args)
        return model if transform is None else transform(model)

    method = METHODS[spec.method]
    keras.utils.set_random_seed(spec.seed)
    model = build(data.input_shape, data.num_classes)
    options = {"seed": spec.seed}  # SAM and ASAM draw nothing: they drop it
    if config.noise_filter:
        options["noise_filter"] = config.noise_filter
    return method.build_model(
        model, spec.level,
        lambda dropout: build(data.input_shape, data.num_classes, dropout),
        wrap=wrap, every=config.every, **options,
    )


def make_optimizer(config, spec, schedule):
    """The Keras optimizer of a run (`OPTIMIZERS[config.optimizer]`), with
    Keras's decoupled `weight_decay` where the recipe has one, and the
    method's own options (`ema`: Keras's EMA of the weights, its level the
    momentum)."""
    options = METHODS[spec.method].optimizer_options(spec.level)
    if config.weight_decay:
        options["weight_decay"] = config.weight_decay
    return OPTIMIZERS[config.optimizer](schedule, config, options)


def passes_per_step(method, phases=None, every=1):
    """Forward and backward passes per step over the batch, averaged over
    the epochs of a phase plan (`phases`: a `PhasePlan`, its text, or
    None): plain epochs cost 1, `H` (split) epochs 1, `S` epochs the
    method's own passes (2 for S-SGD and SAM). An every-k method costs
    `1 + 1/every`."""
    if method.every:
        return method.passes_at(every)
    if not phases or method.model_class is None:
        return method.passes
    plan = PhasePlan.parse(phases)
    total = sum(
        epochs * (method.passes if noisy and not split else 1)
        for (epochs, noisy), split in zip(plan.phases, plan.split)
    )
    return total / plan.epochs


def load_data(config, seed, drop_remainder=False, arrays=None):
    """The data of `config` with the training order of `seed`.

    `arrays` (a `keras_ssgd.data.arrays.Arrays`), if given, is the data
    (the Python API's in-memory arrays); else `config.dataset` names it.
    """
    from keras_ssgd.data import arrays as arrays_lib

    user = {"data_dir": config.data_dir,
            "validation_split": config.validation_split}
    if arrays is not None:
        return arrays_lib.to_data(
            arrays, batch_size=config.batch_size, seed=seed,
            drop_remainder=drop_remainder,
            validation_split=config.validation_split,
        )
    return data_lib.load(
        config.dataset, batch_size=config.batch_size, seed=seed,
        drop_remainder=drop_remainder,
        **(user if arrays_lib.is_source(config.dataset) else {}),
    )


def train(config, spec, verbose=1, model_path=None, distribution=None,
          builder=None, arrays=None, extra_callbacks=(), checkpoint=None,
          restore=None, checkpoint_every=None, logging_callbacks=()):
    """Trains one run and returns its record (a JSON-ready dict).

    With `model_path`, the trained model is saved there (a `.keras` file,
    written atomically) before the record is returned (by the root process
    only). With a `distribution` (see `keras_ssgd.distributed.engines`), the
    run is spread over its devices; `config.batch_size` is the global batch.
    `builder` (a model builder) and `arrays` (the data as `Arrays`), if
    given, replace the ones `config.model` and `config.dataset` name.
    `extra_callbacks` go to `fit` after the run's own (the sweep's progress
    line, `progress.SweepProgress`); `logging_callbacks` (TensorBoard's)
    before the run's checkpoint, so that an epoch the checkpoint holds is
    logged.

    With a validation split (`config.validation_split`), per-epoch
    evaluation (`config.epoch_eval`) uses the validation set, and the
    record holds `validation_accuracy` and `validation_loss`.

    A run whose loss becomes NaN or infinite is stopped
    (`keras.callbacks.TerminateOnNaN`) and recorded with
    `status: "diverged"`; it does not raise.

    With `checkpoint` (a path), the run in progress is saved there at the
    end of every epoch (`keras_ssgd.checkpoint`; one device, or Horovod's
    ranks: rank 0 writes, every rank restores), and with
    `checkpoint_every` also after every that many batches of an epoch,
    where the training data can be resumed within an epoch (a
    `data.pipeline.Batches`: MNIST-1D and in-memory arrays; elsewhere at
    epochs' ends only). With `restore` (the `checkpoint.State` read from
    it), the run continues from the epoch and batch it holds instead of
    starting again (`resumption`); its record is the one of the run never
    stopped, with `resumed` (how many times it was resumed) added.
    """
    dist = distribution or Single()
    recipe = config.to_json()  # the folder's recipe, as the checkpoint's
    config = spec.config_of(config)
    # Every method of a seed sees the same data order and initial weights.
    keras.utils.set_random_seed(spec.seed)
    data = load_data(config, spec.seed, dist.drop_remainder, arrays=arrays)
    validation = getattr(data, "validation", None)
    train_data = dist.shard(data.train)
    steps = data.steps_per_epoch
    epochs = spec.epochs_of(config)
    method = METHODS[spec.method]
    with dist.scope():
        model = dist.prepare(
            build_model(config, spec, data, transform=dist.transform,
                        builder=builder)
        )
        schedule = dist.learning_rate(
            learning_rate(config, steps, epochs), steps
        )
        optimizer = make_optimizer(config, spec, schedule)
        model.compile(
            optimizer=optimizer,
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
            # Keras on PyTorch runs one step per execution only.
            # The every-k methods pick the branch of each step before it.
            steps_per_execution=(
                1 if keras.backend.backend() == "torch" or method.every
                else config.steps_per_execution
            ),
        )
    # Under Horovod a rank-local stop would hang the others: its callbacks
    # stop all ranks together instead.
    callbacks = dist.callbacks() or [keras.callbacks.TerminateOnNaN()]
    if config.phases and method.model_class is not None:
        callbacks.append(
            NoiseSchedule(config.phase_plan, noise_level=spec.level)
        )
    callbacks += method.callbacks(spec.level, data, config.epoch_eval)
    callbacks += list(logging_callbacks)
    saving = None
    if checkpoint is not None and dist.resumes:
        # After the callbacks whose state it keeps. Every process restores;
        # the root writes. Within an epoch where the data can continue from
        # any batch: one process's NumPy batches.
        within = isinstance(train_data, Batches)
        saving = checkpoint_lib.for_run(
            checkpoint, spec.key, recipe, callbacks, restore,
            every=checkpoint_every if within else None,
            steps_per_epoch=steps, writes=dist.is_root(), workers=dist.size)
        callbacks.append(saving)
    first_epoch = 0 if saving is None or restore is None else restore.epoch
    skip = 0 if saving is None else saving.skip
    if skip and not isinstance(train_data, Batches):
        raise store_lib.checkpoint_error(
            f"The checkpoint {checkpoint} was written within an epoch, and "
            f"this run's training data ({type(train_data).__name__}) can "
            "only be resumed at an epoch's end."
        )
    if first_epoch and not skip and hasattr(data.train, "start_at"):
        # The order of the epochs left (also under an engine's shards,
        # which iterate `data.train` once per epoch).
        data.train.start_at(first_epoch)
    callbacks += list(extra_callbacks)
    fit_kwargs = dict(
        validation_data=(
            (validation or data.test) if config.epoch_eval else None
        ),
        verbose=verbose if dist.is_root() else 0,
        shuffle=False,  # the pipeline reshuffles per epoch
    )
    start = time.perf_counter()
    if skip:
        history = resumption.fit_from_within_an_epoch(
            model, train_data, first_epoch, skip, epochs, callbacks,
            **fit_kwargs)
    else:
        history = model.fit(
            train_data, epochs=epochs, initial_epoch=first_epoch,
            callbacks=callbacks, **fit_kwargs,
        )
    seconds = time.perf_counter() - start
    method.after_fit(model, data)
    # The epochs of every part of a resumed run, from its checkpoint.
    logged = history.history if saving is None else saving.history
    losses = logged.get("loss", [])
    diverged = not losses or not all(math.isfinite(x) for x in losses)
    record = {
        "key": spec.key,
        "method": spec.method,
        "level_name": method.level_name,
        "level": spec.level,
        "seed": spec.seed,
        # The configuration's learning rate and weight decay.
        "lr": config.lr,
        "weight_decay": config.weight_decay,
        "epochs_run": len(losses),
        "epochs": epochs,
        # The comparisons the run belongs to: equal epochs, equal passes.
        "budgets": list(spec.budgets),
        "seconds": seconds,
        "passes_per_step": passes_per_step(
            method, config.phase_plan, config.every
        ),
        "distributed": dist.name,
        # S-SGD's split form over worker pairs (keras_ssgd.distributed.pairs)
        "pairs": _paired(model),
        "workers": dist.size,
        "train_loss_last_epoch": evaluation.finite_or_none(
            losses[-1] if losses else None
        ),
        # Per epoch, as fit() logged it (the loss at the perturbed weights).
        "history": {
            name: [evaluation.finite_or_none(float(v)) for v in values]
            for name, values in logged.items()
        },
    }
    if saving is not None and saving.resumed:
        record["resumed"] = saving.resumed
    if diverged:
        record.update(status="diverged", test_accuracy=None, test_loss=None,
                      train_loss=None, train_accuracy=None)
        if validation is not None:
            record.update(validation_accuracy=None, validation_loss=None)
        return record
    record.update(evaluation.figures(model, data, validation, config,
                                     dist.is_root(), model_path))
    return record


def _paired(model):
    """Whether `model` runs S-SGD's split form over worker pairs (a plain
    Keras model has no `sharing`)."""
    sharing = getattr(model, "sharing", None)
    return sharing is not None and sharing.pairs is not None
