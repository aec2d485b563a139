"""The options of a comparison, each declared once: `OPTIONS`.

Each `Option` holds an argument's Python name (that of
`keras_ssgd.compare` and `plan.make_plan`), its default, its check
(`checks`), its flag and help on the command line, and what the command
converts its text to. `ssgd-train`'s parser is made from the table
(`cli.build_parser`) and only converts text; `plan.make_plan` runs each
option's check (`checked`), then the rules that relate options to each
other. An error names the argument (`seeds`) in Python and its flag
(`--seeds`) on the command line (`checks.ArgumentError.cli`, through
`flag_of`).

Example:

>>> flag_of("noise_levels"), flag_of("epochs")
('--noise-level', '--epochs')
>>> checked({"epochs": 3})["seeds"]
(0, 1, 2)
"""

import dataclasses

from keras_ssgd.distributed import engines
from keras_ssgd.train import checks


@dataclasses.dataclass(frozen=True)
class Option:
    """One argument of a comparison.

    Args:
        name: str, the Python name (`"noise_levels"`).
        default: the value when the argument is not given.
        check: `check(value, name) -> value`, the argument checked alone
            (`checks`), in the form the plan uses.
        help: str, or a function returning it (read when the parser is
            made), for `--help`.
        flag: str, the command's option. Defaults to the name with dashes
            (`--noise-levels`).
        text: what the command converts the option's text to: `str`,
            `int`, `float`, or `bool` for a switch (which sets the
            opposite of `default`).
        many: `"+"` or `"*"` (several values after the flag), `"append"`
            (the flag repeated), or None (one value).
        metavar: str, the value's name in `--help`.
        plan: bool, whether `plan.make_plan` takes it (else only the
            command has it).
    """

    name: str
    default: object = None
    check: object = checks.unchecked
    help: object = ""
    flag: str = None
    text: type = str
    many: str = None
    metavar: str = None
    plan: bool = True

    @property
    def option(self):
        """The command's flag."""
        return self.flag or "--" + self.name.replace("_", "-")

    def help_text(self):
        """The help, as `--help` shows it."""
        return self.help() if callable(self.help) else self.help


def _methods_help():
    from keras_ssgd.train.registry import METHODS

    listed = "; ".join(
        f"{m.name}: {m.description}"
        + (f" (default {m.level_name} {', '.join(map(str, m.default_levels))})"
           if m.default_levels else "")
        for m in METHODS.values()
    )
    return (
        "A method to train; repeat for several. NAME:0.1,0.2 gives the "
        "method its own levels, NAME@0.05,0.1 its own learning rates (in "
        "place of --lr's). A method with several configurations (levels "
        "times learning rates) is run at each, and the one with the best "
        "mean validation accuracy is its pick, whose test accuracy the "
        "verdict reports. The first method other than sgd is the primary "
        f"comparison (--primary). Methods: {listed}. Default: sgd and ssgd."
    )


def _engines(option):
    """`--distributed horovod, multiworker or keras`: the engines that
    take `option` (`engines.takers`)."""
    return f"--distributed {checks.listed(engines.takers(option))}"


def _choices(check):
    return "{" + ",".join(check.choices) + "}"


def _metavar_of(names):
    return "{" + ",".join(names) + "}"


def _data_names():
    from keras_ssgd.data import DATASETS

    return sorted(DATASETS)


def _model_names():
    from keras_ssgd.train.registry import MODELS

    return list(MODELS)


_OPTIMIZERS = checks.choice(("sgd", "adam"))  # the optimizer's names
_SCHEDULES = checks.choice(("cosine", "step", "sgdr", "constant"),
                           optional=True)
_BUDGETS = checks.choice(("epochs", "passes", "both"))
_FILTERS = checks.choice(("kernels", "conv_kernels", "dense_kernels",
                          "recurrent_kernels", "all_trainable"),
                         optional=True)
_ENGINES = checks.choice(engines.CHOICES)

# In `--help`'s order.
OPTIONS = [
    Option("methods", None, checks.methods, _methods_help, flag="--method",
           many="append", metavar="NAME[:LEVELS][@LRS]"),
    Option("noise_levels", None, checks.levels, flag="--noise-level",
           text=float, many="+", metavar="LEVEL", help=(
               "Levels for every method with a level that has none of its "
               "own (a sweep): the noise level of ssgd, ssgd-split, "
               "ssgd-every, weight-noise and smoothout, the drop rate of "
               "dropconnect and dropout, the radius of sam, sam-every and "
               "asam, the momentum of ema, the start (a fraction of the "
               "epochs) of swa.")),
    Option("seeds", 3, checks.seeds, metavar="N|A-B|A,B,...", help=(
        "Seeds per method and level: N is seeds 0 .. N-1; 10-14 is seeds "
        "10 to 14; 1,3,5 (or 1,10-12) lists them. A seed fixes the initial "
        "weights and the data order, the same for every method. To add "
        "seeds to a finished sweep, or to run again the seeds it lacks, "
        "rerun with the same recipe, --output and --resume: the results "
        "combine.")),
    Option("data", "mnist1d", checks.data, flag="--dataset",
           metavar=_metavar_of(_data_names()) + "|DATA", help=(
               "Dataset (cifar10/cifar100 download through "
               "tensorflow-datasets the first time). Your own DATA: "
               "path/to/data.npz holding x_train, y_train, x_test, y_test "
               "(optionally num_classes); package.module:function, called "
               "with no arguments, returning a dict with those keys, "
               "((x_train, y_train), (x_test, y_test)) as keras.datasets' "
               "load_data() does, or (x_train, y_train, x_test, y_test), or "
               "the sets as dataset objects ({'train': ..., 'test': ...} or "
               "(train, test), both keras.utils.PyDataset or both "
               "tf.data.Dataset on TensorFlow; their order is yours: the "
               "function is called again for each run after its seed is "
               "set); or tfds:NAME, a supervised tensorflow-datasets "
               "classification set in --data-dir (needs TensorFlow). Labels "
               "are class ids 0 .. num_classes - 1; inputs are used as "
               "given (tfds images scaled to [0, 1]).")),
    Option("data_dir", None, metavar="DIR", help=(
        "With --dataset tfds:NAME: the tensorflow-datasets folder (default "
        "~/tensorflow_datasets).")),
    Option("validation_split", 0.0, checks.number(below=1), text=float,
           metavar="F", help=(
               "With your own DATA: hold out the last fraction F of the "
               "training set (Keras's convention) as a validation set; each "
               "run records its validation accuracy, and --eval-every-epoch "
               "evaluates it instead of the test set.")),
    Option("build_model", None, checks.build_model, flag="--model",
           metavar=_metavar_of(_model_names()) + "|MODULE:FUNCTION", help=(
               "Model (default: the dataset's: mnist1d-cnn-bn for mnist1d, "
               "resnet20 for CIFAR). Your own: package.module:function, "
               "importable from the current folder or the environment, with "
               "the signature build(input_shape, num_classes, dropout=0.0) "
               "-> keras.Model giving num_classes logits (no softmax); "
               "dropout is needed only by --method dropout. Every method "
               "starts from the same weights per seed.")),
    Option("epochs", None, checks.integer(1, optional=True), text=int,
           help="Epochs per run (default: 60 for mnist1d, 175 for CIFAR; "
           "with --phases, the plan's)."),
    Option("batch_size", None, checks.integer(1, optional=True), text=int,
           help="Batch size (default: 100 for mnist1d, 128 for CIFAR)."),
    Option("lr", None, checks.learning_rates, text=float, many="+",
           metavar="LR", help=(
               "Initial learning rates, searched for every method without "
               "its own (NAME@LRS): each is a configuration, chosen on "
               "validation accuracy (default: 0.05 for mnist1d, 0.1 for "
               "CIFAR).")),
    Option("weight_decay", 0.0, checks.number(), text=float, metavar="WD",
           help=(
               "Decoupled weight decay of the optimizer (Keras's "
               "weight_decay: each step scales the weights by 1 - lr * WD). "
               "Refused for a model that adds its own L2 penalty (resnet18, "
               "resnet50).")),
    Option("primary", None, plan=False, metavar="NAME", help=(
        "The method of the primary comparison, against sgd at equal "
        "epochs, reported without correction; every other line of the "
        "folder is adjusted for multiple comparisons (Holm). Default: the "
        "first --method other than sgd.")),
    Option("optimizer", "sgd", _OPTIMIZERS, metavar=_choices(_OPTIMIZERS),
           help="Optimizer; sgd uses --momentum."),
    Option("momentum", 0.9, checks.number(below=1), text=float,
           help="SGD momentum."),
    Option("lr_schedule", None, _SCHEDULES, metavar=_choices(_SCHEDULES),
           help=(
               "cosine: cosine decay to 0; step: /10 at each of --lr-drops; "
               "sgdr: cosine with warm restarts, first period 10 epochs, "
               "doubling (paper 4.3); constant. Default: cosine for "
               "mnist1d, step for CIFAR.")),
    Option("lr_drops", None, checks.epochs_list, text=int, many="*",
           metavar="EPOCH", help=(
               "Epochs of the /10 drops of --lr-schedule step (default: 75 "
               "125 for CIFAR, half and three quarters of --epochs "
               "otherwise).")),
    Option("phases", None, checks.phase_plan, metavar="PLAN", help=(
        "A Table 1 phase plan such as 75-25S-25S: the methods with a level "
        "use it only in the S phases (plain SGD elsewhere), the learning "
        "rate drops /10 at each phase boundary, and the plan sets the "
        "epochs. An H phase (75-25S-25H) runs S-SGD in its split form "
        "(half of each batch at W + n, half at W - n; ssgd and ssgd-split "
        "only); an S phase runs each method as it is (split for "
        "ssgd-split).")),
    Option("budget", "epochs", _BUDGETS, metavar=_choices(_BUDGETS), help=(
        "What every method gets the same of. epochs: the same epochs (a "
        "two-pass method, S-SGD or SAM, costs twice SGD). passes: the same "
        "forward/backward passes as the costliest method compared; a "
        "one-pass method trains twice the epochs of a two-pass one, its "
        "learning-rate schedule stretched to them. both: the runs of both, "
        "and a verdict at each. Not with --phases.")),
    Option("every", 5, checks.integer(1), text=int, metavar="K", help=(
        "ssgd-every and sam-every run their method on one step in K, plain "
        "steps between (1 + 1/K passes per step), the naive interval "
        "baseline (not LookSAM, which also reuses the full step's gradient "
        "component between them; its interval is 5). They run one step "
        "per execution.")),
    Option("steps_per_execution", None, checks.integer(1, optional=True),
           text=int, metavar="N", help=(
               "Keras compile(steps_per_execution=N): N training steps per "
               "traced call, less Python overhead for small models; the "
               "same for every method (default: 8 for mnist1d, 1 for "
               "CIFAR).")),
    Option("noise_filter", None, _FILTERS, metavar=_choices(_FILTERS), help=(
        "Which variables the perturbation methods perturb (default: each "
        "method's own: kernels; dense kernels for dropconnect; every "
        "trainable variable for sam). conv_kernels / dense_kernels are the "
        "paper's 'S-SGD Conv only' / 'Dense only' (Fig. 3).")),
    Option("eval_every_epoch", False, checks.boolean, text=bool, help=(
        "Evaluate the test set after every epoch (per-epoch val_accuracy in "
        "each run's history, for convergence curves).")),
    Option("tensorboard", False, text=bool, plan=False, help=(
        "TensorBoard logs of every run (keras.callbacks.TensorBoard, with "
        "the noise level in effect and the passes per step as scalars) in "
        "OUTPUT/tensorboard/<run key>/: tensorboard --logdir "
        "OUTPUT/tensorboard. Needs TensorFlow installed (any backend).")),
    Option("hessian_iterations", 20, checks.integer(0), text=int,
           metavar="N", help=(
               "Lanczos vectors (ARPACK's ncv, about one Hessian-vector "
               "product each) for the top Hessian eigenvalue of each final "
               "model (training loss, training set, inference mode); 0 "
               "skips it.")),
    Option("distributed", "none", _ENGINES, metavar=_choices(_ENGINES), help=(
        "horovod: data parallel over the processes of `horovodrun -np N "
        "ssgd-train ...` (--batch-size is the global batch; rank 0 logs and "
        "writes); mirrored: tf.distribute.MirroredStrategy over the local "
        "devices; multiworker: tf.distribute.MultiWorkerMirroredStrategy "
        "over the hosts of TF_CONFIG (the chief writes); keras: "
        "keras.distribution.DataParallel on JAX over this process's "
        "devices.")),
    Option("shared_noise", False, checks.boolean, text=bool, help=(
        f"With {_engines('shared_noise')}: every rank draws the same noise "
        "(default: seed + rank, one direction per rank and step).")),
    Option("warmup_epochs", 5, checks.integer(0), text=int, metavar="E",
           help=(
               f"With {_engines('warmup_epochs')}: epochs of linear warm-up "
               "to the learning rate times the number of ranks.")),
    Option("sync_batchnorm", False, checks.boolean, text=bool, help=(
        f"With {_engines('sync_batchnorm')}: BatchNorm statistics over the "
        "global batch (default: per device, as in the paper).")),
    Option("scale_lr", True, checks.boolean, flag="--no-scale-lr",
           text=bool, help=(
               f"With {_engines('scale_lr')}: do not multiply the learning "
               "rate by the number of ranks.")),
    Option("output", None, plan=False, metavar="DIR",
           help="Run folder (default: results/<date-time>)."),
    Option("resume", False, text=bool, plan=False, help=(
        "Continue or extend the run in --output: finished runs are skipped, "
        "a run stopped in progress continues from its last checkpoint "
        "(each run saves one every epoch, and with --checkpoint-every N "
        "after every N batches) to the result it would have had, new seeds, "
        "methods and levels are added, and the table, verdict and plot "
        "cover every run in the folder. The recipe must be the same.")),
    Option("checkpoint_every", None, checks.integer(1, optional=True),
           text=int, plan=False, metavar="N", help=(
               "Also checkpoint the run in progress after every N batches "
               "of an epoch (a multiple of "
               "--steps-per-execution), so that --resume continues from "
               "there; MNIST-1D and in-memory arrays (other data resume at "
               "an epoch's end). Default: at the end of every epoch only.")),
    Option("replot", None, plan=False, metavar="DIR", help=(
        "Redraw accuracy.png and curves.png of the run folder DIR from its "
        "records (results.json), train nothing, and exit.")),
    Option("quiet", False, text=bool, plan=False,
           help="No progress: only the header and the results."),
    Option("verbose", False, text=bool, plan=False, help=(
        "Keras's progress bar for every epoch too, and the run's line once "
        "it is done.")),
]

# The options `plan.make_plan` takes, by name.
PLAN = {option.name: option for option in OPTIONS if option.plan}
# The options the engines take (`engines.Single.options`), by name.
ENGINE = {name: option for name, option in PLAN.items()
          if engines.takers(name)}


def flag_of(name):
    """The command's flag of the argument `name` (`"--method"` for
    `"methods"`)."""
    for option in OPTIONS:
        if option.name == name:
            return option.option
    return "--" + name.replace("_", "-")


def checked(arguments):
    """Each of `plan.make_plan`'s arguments checked alone (`Option.check`),
    the default for each one not in `arguments`.

    Args:
        arguments: dict, argument name -> value as given.

    Returns:
        A dict, argument name -> the checked value.

    Raises:
        TypeError: an argument `make_plan` does not take.
        checks.ArgumentError: an argument that cannot be used.
    """
    unknown = [name for name in arguments if name not in PLAN]
    if unknown:
        raise TypeError(
            f"make_plan() got an unexpected keyword argument {unknown[0]!r}"
        )
    return {name: option.check(arguments.get(name, option.default), name)
            for name, option in PLAN.items()}
