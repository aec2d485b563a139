"""`ssgd-train`: train methods under one recipe and compare them.

With no arguments: MNIST-1D (generated offline), the 1-D CNN with
BatchNorm, SGD against S-SGD at noise level 0.2, 3 seeds, 60 epochs; a few
minutes on a 2-core CPU. Results go to `results/<run>/`: `results.json`,
`summary.md`, `accuracy.png` (test accuracy against noise level) and
`curves.png` (learning curves of each method's pick).

Under the table, a verdict per method and level against SGD, paired by
seed (`verdict`). The command is a shell over `keras_ssgd.compare`
(`compare.py`): it turns its options into Python values, then runs the
same checks (`plan.make_plan`) and the same sweep (`compare.sweep`).
"""

import argparse
import contextlib
import signal
import sys
import threading

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT: Ctrl-C
EXIT_TERMINATED = 143  # 128 + SIGTERM: a preemption, a job scheduler's stop

class UsageError(ValueError):
    """Bad input, from `parse(..., raise_errors=True)`."""


class _RaisingParser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


class Terminated(BaseException):
    """SIGTERM, raised in the main thread while `main()` runs.

    A `BaseException` like `KeyboardInterrupt`, so that no `except
    Exception` between the signal and `main()` swallows it.
    """


@contextlib.contextmanager
def _sigterm_raises():
    """While open, SIGTERM raises `Terminated` in the main thread.

    Only the first SIGTERM raises; later ones are ignored, so that the
    results of the finished runs get written. The previous handler is put
    back on exit. Off the main thread (where Python cannot set a handler)
    this changes nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Terminated(signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        # None: a handler set outside Python, which cannot be put back.
        signal.signal(
            signal.SIGTERM, signal.SIG_DFL if previous is None else previous
        )


def _stop_reason(stop):
    """`(signal name, exit code)` of a `KeyboardInterrupt` or `Terminated`."""
    if isinstance(stop, Terminated):
        return "SIGTERM", EXIT_TERMINATED
    return "Ctrl-C (SIGINT)", EXIT_INTERRUPTED


def _method_arg(text):
    """`NAME[:LEVEL,LEVEL,...][@LR,LR,...]` -> (name, levels or None, lrs
    or None)."""
    from keras_ssgd.train.registry import METHODS

    head, at, rates = text.partition("@")
    name, _, levels = head.partition(":")
    if name not in METHODS:
        raise argparse.ArgumentTypeError(
            f"unknown method {name!r}; valid methods: {', '.join(METHODS)}"
        )
    lrs = None
    if at:
        if not rates:
            raise argparse.ArgumentTypeError(
                f"--method {name}@ needs learning rates (NAME@0.05,0.1). "
                f"Received: {text!r}"
            )
        lrs = tuple(_number(x, float, positive=True, flag=f"--method {name}@")
                    for x in rates.split(","))
    if not levels:
        return name, None, lrs
    if METHODS[name].level_name is None:
        raise argparse.ArgumentTypeError(f"method {name!r} takes no level")
    return (name,
            tuple(_level(x, f"--method {name}") for x in levels.split(",")),
            lrs)


def _number(text, convert, positive, flag=""):
    """`text` as an int or a finite float, > 0 or >= 0, else a usage error."""
    prefix = f"{flag} " if flag else ""
    noun = "an int" if convert is int else "a finite number"
    bound = "> 0" if positive else ">= 0"
    try:
        value = convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{prefix}must be {noun} {bound}. Received: {text!r}"
        ) from None
    if not (value > 0 if positive else value >= 0) or value == float("inf"):
        raise argparse.ArgumentTypeError(
            f"{prefix}must be {noun} {bound}. Received: {text}"
        )
    return value


def _level(text, flag="--noise-level"):
    return _number(text, float, positive=False, flag=flag)


def _decay(text):
    return _number(text, float, positive=False, flag="--weight-decay")


def _positive_int(text):
    return _number(text, int, positive=True)


def _seeds(text):
    """`--seeds`, read by `plan.parse_seeds`."""
    from keras_ssgd.train.plan import parse_seeds

    try:
        return parse_seeds(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _positive_float(text):
    return _number(text, float, positive=True)


def _model_arg(text):
    """A built-in model name or an importable `package.module:function`."""
    from keras_ssgd.train.registry import model_builder
    from keras_ssgd.user_code import UserCodeError

    try:
        model_builder(text)
    except UserCodeError as error:
        raise argparse.ArgumentTypeError(
            str(error).removeprefix("--model: ").removeprefix("--model ")
        ) from None
    return text


def _dataset_arg(text):
    """A built-in dataset name or the user's data (checked in `parse`)."""
    from keras_ssgd.data import DATASETS
    from keras_ssgd.data import arrays

    if text in DATASETS or arrays.is_source(text):
        return text
    raise argparse.ArgumentTypeError(
        f"invalid choice: {text!r} (choose from "
        f"{', '.join(map(repr, sorted(DATASETS)))}, or your own data: "
        "path/to/data.npz, package.module:function, tfds:NAME)"
    )


def _fraction(text):
    value = _number(text, float, positive=False, flag="--validation-split")
    if value >= 1:
        raise argparse.ArgumentTypeError(
            f"--validation-split must be in [0, 1). Received: {text}"
        )
    return value


def _phases(text):
    from keras_ssgd.phases import PhasePlan

    try:
        return str(PhasePlan.parse(text))
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def build_parser(raise_errors=False):
    """The argument parser; with `raise_errors`, bad input raises
    `UsageError` instead of exiting."""
    from keras_ssgd.data import DATASETS
    from keras_ssgd.distributed.engines import CHOICES as DISTRIBUTED
    from keras_ssgd.train.registry import METHODS
    from keras_ssgd.train.registry import MODELS

    methods_help = "; ".join(
        f"{m.name}: {m.description}"
        + (f" (default {m.level_name} {', '.join(map(str, m.default_levels))})"
           if m.default_levels else "")
        for m in METHODS.values()
    )
    parser = (_RaisingParser if raise_errors else argparse.ArgumentParser)(
        prog="ssgd-train",
        description=__doc__.split("\n\n")[0] + " " + __doc__.split("\n\n")[1],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--method", action="append", type=_method_arg,
        metavar="NAME[:LEVELS][@LRS]",
        help="A method to train; repeat for several. NAME:0.1,0.2 gives the "
        "method its own levels, NAME@0.05,0.1 its own learning rates (in "
        "place of --lr's). A method with several configurations (levels "
        "times learning rates) is run at each, and the one with the best "
        "mean validation accuracy is its pick, whose test accuracy the "
        "verdict reports. The first method other than sgd is the primary "
        "comparison (--primary). Methods: " + methods_help
        + ". Default: sgd and ssgd.",
    )
    parser.add_argument(
        "--noise-level", nargs="+", type=_level, metavar="LEVEL",
        help="Levels for every method with a level that has none of its own "
        "(a sweep): the noise level of ssgd, ssgd-split, ssgd-every, "
        "weight-noise and smoothout, the drop rate of dropconnect and "
        "dropout, the radius of sam, sam-every and asam, the momentum of "
        "ema, the start (a fraction of the epochs) of swa.",
    )
    parser.add_argument(
        "--seeds", type=_seeds, default=(0, 1, 2), metavar="N|A-B|A,B,...",
        help="Seeds per method and level: N is seeds 0 .. N-1; 10-14 is "
        "seeds 10 to 14; 1,3,5 (or 1,10-12) lists them. A seed fixes the "
        "initial weights and the data order, the same for every method. To "
        "add seeds to a finished sweep, or to run again the seeds it "
        "lacks, rerun with the same recipe, --output and --resume: the "
        "results combine.",
    )
    parser.add_argument(
        "--dataset", type=_dataset_arg, default="mnist1d",
        metavar="{" + ",".join(sorted(DATASETS)) + "}|DATA",
        help="Dataset (cifar10/cifar100 download through tensorflow-datasets "
        "the first time). Your own DATA: path/to/data.npz holding x_train, "
        "y_train, x_test, y_test (optionally num_classes); "
        "package.module:function, called with no arguments, returning a "
        "dict with those keys, ((x_train, y_train), (x_test, y_test)) as "
        "keras.datasets' load_data() does, or (x_train, y_train, x_test, "
        "y_test), or the sets as dataset objects ({'train': ..., 'test': "
        "...} or (train, test), both keras.utils.PyDataset or both "
        "tf.data.Dataset on TensorFlow; their order is yours: the function "
        "is called again for each run after its seed is set); or "
        "tfds:NAME, a supervised tensorflow-datasets "
        "classification set in --data-dir (needs TensorFlow). Labels are "
        "class ids 0 .. num_classes - 1; inputs are used as given (tfds "
        "images scaled to [0, 1]).",
    )
    parser.add_argument(
        "--data-dir", default=None, metavar="DIR",
        help="With --dataset tfds:NAME: the tensorflow-datasets folder "
        "(default ~/tensorflow_datasets).",
    )
    parser.add_argument(
        "--validation-split", type=_fraction, default=0.0, metavar="F",
        help="With your own DATA: hold out the last fraction F of the "
        "training set (Keras's convention) as a validation set; each run "
        "records its validation accuracy, and --eval-every-epoch evaluates "
        "it instead of the test set.",
    )
    parser.add_argument(
        "--model", type=_model_arg, default=None,
        metavar="{" + ",".join(MODELS) + "}|MODULE:FUNCTION",
        help="Model (default: the dataset's: mnist1d-cnn-bn for mnist1d, "
        "resnet20 for CIFAR). Your own: package.module:function, importable "
        "from the current folder or the environment, with the signature "
        "build(input_shape, num_classes, dropout=0.0) -> keras.Model giving "
        "num_classes logits (no softmax); dropout is needed only by "
        "--method dropout. Every method starts from the same weights per "
        "seed.",
    )
    parser.add_argument("--epochs", type=_positive_int, default=None,
                        help="Epochs per run (default: 60 for mnist1d, 175 "
                        "for CIFAR; with --phases, the plan's).")
    parser.add_argument("--batch-size", type=_positive_int, default=None,
                        help="Batch size (default: 100 for mnist1d, 128 for "
                        "CIFAR).")
    parser.add_argument("--lr", type=_positive_float, nargs="+",
                        default=None, metavar="LR",
                        help="Initial learning rates, searched for every "
                        "method without its own (NAME@LRS): each is a "
                        "configuration, chosen on validation accuracy "
                        "(default: 0.05 for mnist1d, 0.1 for CIFAR).")
    parser.add_argument(
        "--weight-decay", type=_decay, default=0.0, metavar="WD",
        help="Decoupled weight decay of the optimizer (Keras's "
        "weight_decay: each step scales the weights by 1 - lr * WD). "
        "Refused for a model that adds its own L2 penalty (resnet18, "
        "resnet50).",
    )
    parser.add_argument(
        "--primary", default=None, metavar="NAME",
        help="The method of the primary comparison, against sgd at equal "
        "epochs, reported without correction; every other line of the "
        "folder is adjusted for multiple comparisons (Holm). Default: the "
        "first --method other than sgd.",
    )
    parser.add_argument("--optimizer", choices=["sgd", "adam"], default="sgd",
                        help="Optimizer; sgd uses --momentum.")
    parser.add_argument("--momentum", type=float, default=0.9,
                        help="SGD momentum.")
    parser.add_argument(
        "--lr-schedule", choices=["cosine", "step", "sgdr", "constant"],
        default=None,
        help="cosine: cosine decay to 0; step: /10 at each of --lr-drops; "
        "sgdr: cosine with warm restarts, first period 10 epochs, doubling "
        "(paper 4.3); constant. Default: cosine for mnist1d, step for CIFAR.",
    )
    parser.add_argument("--lr-drops", nargs="*", type=_positive_int,
                        default=None, metavar="EPOCH",
                        help="Epochs of the /10 drops of --lr-schedule step "
                        "(default: 75 125 for CIFAR, half and three "
                        "quarters of --epochs otherwise).")
    parser.add_argument(
        "--phases", type=_phases, default=None, metavar="PLAN",
        help="A Table 1 phase plan such as 75-25S-25S: the methods with a "
        "level use it only in the S phases (plain SGD elsewhere), the "
        "learning rate drops /10 at each phase boundary, and the plan sets "
        "the epochs. An H phase (75-25S-25H) runs S-SGD in its split form "
        "(half of each batch at W + n, half at W - n; ssgd and ssgd-split "
        "only); an S phase runs each method as it is (split for "
        "ssgd-split).",
    )
    parser.add_argument(
        "--budget", choices=["epochs", "passes", "both"], default="epochs",
        help="What every method gets the same of. epochs: the same epochs "
        "(a two-pass method, S-SGD or SAM, costs twice SGD). passes: the "
        "same forward/backward passes as the costliest method compared; a "
        "one-pass method trains twice the epochs of a two-pass one, its "
        "learning-rate schedule stretched to them. both: the runs of both, "
        "and a verdict at each. Not with --phases.",
    )
    parser.add_argument(
        "--every", type=_positive_int, default=5, metavar="K",
        help="ssgd-every and sam-every run their method on one step in K, "
        "plain steps between (1 + 1/K passes per step), the naive interval "
        "baseline (not LookSAM, which also reuses the full step's gradient "
        "component between them; its interval is 5). They run one step "
        "per execution.",
    )
    parser.add_argument(
        "--steps-per-execution", type=_positive_int, default=None,
        metavar="N",
        help="Keras compile(steps_per_execution=N): N training steps per "
        "traced call, less Python overhead for small models; the same for "
        "every method (default: 8 for mnist1d, 1 for CIFAR).",
    )
    parser.add_argument(
        "--noise-filter", default=None,
        choices=["kernels", "conv_kernels", "dense_kernels", "recurrent_kernels",
                 "all_trainable"],
        help="Which variables the perturbation methods perturb (default: "
        "each method's own: kernels; dense kernels for dropconnect; every "
        "trainable variable for sam). conv_kernels / dense_kernels are the "
        "paper's 'S-SGD Conv only' / 'Dense only' (Fig. 3).",
    )
    parser.add_argument(
        "--eval-every-epoch", action="store_true",
        help="Evaluate the test set after every epoch (per-epoch "
        "val_accuracy in each run's history, for convergence curves).",
    )
    parser.add_argument(
        "--tensorboard", action="store_true",
        help="TensorBoard logs of every run (keras.callbacks.TensorBoard, "
        "with the noise level in effect and the passes per step as "
        "scalars) in OUTPUT/tensorboard/<run key>/: tensorboard --logdir "
        "OUTPUT/tensorboard. Needs TensorFlow installed (any backend).",
    )
    parser.add_argument(
        "--hessian-iterations", type=int, default=20, metavar="N",
        help="Lanczos vectors (ARPACK's ncv, about one Hessian-vector "
        "product each) for the top Hessian eigenvalue of each final model "
        "(training loss, training set, inference mode); 0 skips it.",
    )
    parser.add_argument(
        "--distributed", choices=DISTRIBUTED,
        default="none",
        help="horovod: data parallel over the processes of `horovodrun -np "
        "N ssgd-train ...` (--batch-size is the global batch; rank 0 logs "
        "and writes); mirrored: tf.distribute.MirroredStrategy over the "
        "local devices; multiworker: tf.distribute.MultiWorkerMirrored"
        "Strategy over the hosts of TF_CONFIG (the chief writes); keras: "
        "keras.distribution.DataParallel on JAX over this process's "
        "devices.",
    )
    parser.add_argument(
        "--shared-noise", action="store_true",
        help="With --distributed horovod: every rank draws the same noise "
        "(default: seed + rank, one direction per rank and step).",
    )
    parser.add_argument(
        "--warmup-epochs", type=int, default=5, metavar="E",
        help="With --distributed horovod, multiworker or keras: epochs of "
        "linear warm-up to the "
        "learning rate times the number of ranks.",
    )
    parser.add_argument(
        "--sync-batchnorm", action="store_true",
        help="With --distributed horovod: BatchNorm statistics over the "
        "global batch (default: per device, as in the paper).",
    )
    parser.add_argument(
        "--no-scale-lr", action="store_true",
        help="With --distributed horovod, multiworker or keras: do not "
        "multiply the learning rate "
        "by the number of ranks.",
    )
    parser.add_argument("--output", default=None, metavar="DIR",
                        help="Run folder (default: results/<date-time>).")
    parser.add_argument("--resume", action="store_true",
                        help="Continue or extend the run in --output: "
                        "finished runs are skipped, new seeds, methods and "
                        "levels are added, and the table, verdict and plot "
                        "cover every run in the folder. The recipe must be "
                        "the same.")
    parser.add_argument("--quiet", action="store_true",
                        help="No progress: only the header and the results.")
    parser.add_argument("--verbose", action="store_true",
                        help="Keras's progress bar for every epoch too, and "
                        "the run's line once it is done.")
    return parser


def parse(argv=None, raise_errors=False):
    """Parses and checks the arguments; returns `(config, specs, args)`.

    argparse turns the options into Python values, and
    `plan.make_plan` checks them, alone and together, as
    `keras_ssgd.compare` does (the same function). Exits with code 2 and a
    message on bad input (argparse's convention); with `raise_errors`,
    raises `UsageError` instead.
    """
    from keras_ssgd.train import plan

    parser = build_parser(raise_errors=raise_errors)
    args = parser.parse_args(argv)
    try:
        config, specs, _, _ = plan.make_plan(**plan_arguments(args))
    except plan.ArgumentError as error:
        parser.error(error.cli())
    except ValueError as error:  # DataError, ModelMismatch, UserCodeError
        parser.error(str(error))
    try:
        plan.check_primary(args.primary, specs)
    except plan.ArgumentError as error:
        parser.error(error.cli())
    return config, specs, args


def plan_arguments(args):
    """The arguments of `plan.make_plan` (and `keras_ssgd.compare`) that
    the parsed options `args` give."""
    return dict(
        build_model=args.model, data=args.dataset,
        methods=args.method, seeds=args.seeds, epochs=args.epochs,
        noise_levels=args.noise_level, batch_size=args.batch_size,
        lr=args.lr, optimizer=args.optimizer, momentum=args.momentum,
        lr_schedule=args.lr_schedule, lr_drops=args.lr_drops,
        phases=args.phases, steps_per_execution=args.steps_per_execution,
        noise_filter=args.noise_filter,
        eval_every_epoch=args.eval_every_epoch,
        hessian_iterations=args.hessian_iterations, data_dir=args.data_dir,
        validation_split=args.validation_split,
        distributed=args.distributed, shared_noise=args.shared_noise,
        sync_batchnorm=args.sync_batchnorm, scale_lr=not args.no_scale_lr,
        warmup_epochs=args.warmup_epochs, budget=args.budget,
        every=args.every, weight_decay=args.weight_decay,
    )


def _worded(error):
    """A run folder's error (`store.StoreError`) in the command's flags."""
    return error.worded(resume="--resume", output="--output")


def main(argv=None):
    """Runs the command; returns the exit code.

    Ctrl-C and SIGTERM (a preemption, a job scheduler's stop) end it
    cleanly: the finished runs stay on disk with `results.json` and
    `summary.md` written for them, and the exit code is 130 (Ctrl-C) or
    143 (SIGTERM); `--resume` continues. SIGTERM is handled only while
    `main()` runs.
    """
    # TensorFlow's C++ start-up lines hide the command's own output.
    from keras_ssgd import native_log

    native_log.quiet_tensorflow()
    config, specs, args = parse(argv)
    from keras_ssgd.store import StoreError


    with _sigterm_raises():
        try:
            return _run(config, specs, args)
        except (KeyboardInterrupt, Terminated) as stop:
            # Stopped outside the training loop (loading, final writes).
            name, code = _stop_reason(stop)
            folder = f" --output {args.output}" if args.output else ""
            print(f"\nssgd-train: stopped by {name}; rerun the same command "
                  f"with --resume{folder} to continue.", file=sys.stderr)
            return code
        except StoreError as error:
            print(f"ssgd-train: error: {_worded(error)}", file=sys.stderr)
            return EXIT_USAGE


def _run(config, specs, args):
    """`main()` after parsing: trains the runs not done; the exit code."""
    from keras_ssgd.train import compare as compare_lib
    from keras_ssgd.distributed import engines as distribution_lib
    from keras_ssgd.train import report
    from keras_ssgd.store import StoreError
    from keras_ssgd.store import record_paths

    try:
        dist = distribution_lib.make(
            args.distributed,
            **({"shared_noise": args.shared_noise,
                "scale_lr": not args.no_scale_lr,
                "warmup_epochs": args.warmup_epochs,
                "sync_batchnorm": args.sync_batchnorm}
               if args.distributed == "horovod" else
               {"scale_lr": not args.no_scale_lr,
                "warmup_epochs": args.warmup_epochs}
               if args.distributed in ("multiworker", "keras") else {}),
        )
    except (ImportError, ValueError) as error:
        print(f"ssgd-train: error: --distributed {args.distributed}: {error}",
              file=sys.stderr)
        return EXIT_USAGE
    if not dist.is_root():
        return _follow(config, specs, args, dist)

    if args.tensorboard:
        from keras_ssgd.train import runner

        try:
            runner.require_tensorboard()
        except ValueError as error:
            print(f"ssgd-train: error: {error}", file=sys.stderr)
            return EXIT_USAGE
    output = args.output
    if output is None:
        if args.resume:
            print("ssgd-train: error: --resume needs --output, the folder of "
                  "the run to continue.", file=sys.stderr)
            return EXIT_USAGE
        output = compare_lib.default_output()
    try:
        result = compare_lib.sweep(
            config, specs, output, resume=args.resume,
            verbose=1 if args.verbose and not args.quiet else 0,
            distribution=dist, log=lambda text: print(text, flush=True),
            required=report.RECORD_FIELDS,
            progress=None if args.quiet else sys.stdout,
            primary=args.primary, tensorboard=args.tensorboard,
        )
    except StoreError as error:
        print(f"ssgd-train: error: {_worded(error)}", file=sys.stderr)
        return EXIT_USAGE
    except (KeyboardInterrupt, Terminated) as stop:
        name, code = _stop_reason(stop)
        print(
            f"\nssgd-train: stopped by {name}. The "
            f"{len(record_paths(output))} finished runs are in {output}; "
            f"continue with --resume --output {output}",
            file=sys.stderr,
        )
        return code
    print()
    print(result)
    print(f"\nWrote {result.folder / 'results.json'}, summary.md, "
          "accuracy.png, curves.png")
    return 0


def _follow(config, specs, args, dist):
    """A non-root Horovod rank: trains the same runs, writes nothing.

    With --resume it skips the runs rank 0 skips: the ones with a record in
    the output folder (read before rank 0 starts writing new ones).
    """
    from keras_ssgd.train import runner
    from keras_ssgd.store import record_paths

    done = set()
    if args.resume and args.output:
        done = {path.stem for path in record_paths(args.output)}
    for spec in specs:
        if spec.key not in done:
            runner.train(config, spec, verbose=0, distribution=dist)
    return 0


if __name__ == "__main__":
    sys.exit(main())
