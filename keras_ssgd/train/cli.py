"""`ssgd-train`: train methods under one recipe and compare them.

With no arguments: MNIST-1D (generated offline), the 1-D CNN with
BatchNorm, SGD against S-SGD at noise level 0.2, 3 seeds, 60 epochs; a few
minutes on a 2-core CPU. Results go to `results/<run>/`: `results.json`,
`summary.md`, `accuracy.png` (test accuracy against noise level) and
`curves.png` (learning curves of each method's pick).

Under the table, a verdict per method and level against SGD, paired by
seed (`verdict`). The command is a shell over `keras_ssgd.compare`
(`compare.py`): it turns its options' text into Python values (the
parser is made from `options.OPTIONS`), then runs the same checks
(`plan.make_plan`) and the same sweep (`compare.sweep`).
"""

import argparse
import contextlib
import pathlib
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


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Each option's default in `--help`, except a switch's: it is off
    unless given (`--no-scale-lr` too, whose `scale_lr` is true)."""

    def _get_help_string(self, action):
        if action.nargs == 0:
            return action.help
        return super()._get_help_string(action)


# What the command converts an option's text to, in words (`_converter`).
_WORDS = {int: "an int", float: "a number"}


def _converter(kind):
    """`text -> kind(text)`, a usage error naming the text if it is not
    one; the option's check (`options.Option.check`) comes later, in
    `plan.make_plan`."""

    def convert(text):
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"must be {_WORDS[kind]}. Received: {text!r}"
            ) from None

    convert.__name__ = kind.__name__
    return convert


def build_parser(raise_errors=False):
    """The argument parser, one option per `options.OPTIONS` entry; with
    `raise_errors`, bad input raises `UsageError` instead of exiting.

    The parser only converts text (to an int, a float, a list); the checks
    are the options' own, in `plan.make_plan`.
    """
    from keras_ssgd.train.options import OPTIONS

    parser = (_RaisingParser if raise_errors else argparse.ArgumentParser)(
        prog="ssgd-train",
        description=__doc__.split("\n\n")[0] + " " + __doc__.split("\n\n")[1],
        formatter_class=_HelpFormatter,
    )
    for option in OPTIONS:
        settings = dict(dest=option.name, default=option.default,
                        help=option.help_text())
        if option.text is bool:  # a switch: sets the other value
            settings["action"] = "store_false" if option.default else (
                "store_true")
        else:
            settings.update(metavar=option.metavar, action=(
                "append" if option.many == "append" else "store"))
            if option.many in ("+", "*"):
                settings["nargs"] = option.many
            if option.text is not str:
                settings["type"] = _converter(option.text)
        parser.add_argument(option.option, **settings)
    return parser


def parse(argv=None, raise_errors=False):
    """Parses and checks the arguments; returns `(config, specs, args)`.

    argparse turns the options' text into Python values, and
    `plan.make_plan` checks them, alone and together, as
    `keras_ssgd.compare` does (the same function). Exits with code 2 and a
    message on bad input (argparse's convention); with `raise_errors`,
    raises `UsageError` instead.
    """
    from keras_ssgd.train import plan
    from keras_ssgd.train.checks import ArgumentError
    from keras_ssgd.train.options import PLAN

    parser = build_parser(raise_errors=raise_errors)
    args = parser.parse_args(argv)
    if args.replot is not None:  # no recipe: the folder has it
        return None, [], args
    try:
        config, specs, _, _ = plan.make_plan(
            **{name: getattr(args, name) for name in PLAN})
        plan.check_primary(args.primary, specs)
        plan.check_checkpoint_every(args.checkpoint_every, config,
                                    args.distributed)
    except ArgumentError as error:
        parser.error(error.cli())
    except ValueError as error:  # DataError, ModelMismatch, UserCodeError
        parser.error(str(error))
    return config, specs, args


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
    if args.replot is not None:
        return _replot(args.replot)
    from keras_ssgd.distributed import engines as distribution_lib
    from keras_ssgd.train import compare as compare_lib
    from keras_ssgd.train import options
    from keras_ssgd.train import report
    from keras_ssgd.store import StoreError
    from keras_ssgd.store import record_paths

    try:
        # Each engine takes the options it declares (`engines.make`).
        dist = distribution_lib.make(
            args.distributed,
            **{name: getattr(args, name) for name in options.ENGINE},
        )
    except (ImportError, ValueError) as error:
        print(f"ssgd-train: error: --distributed {args.distributed}: {error}",
              file=sys.stderr)
        return EXIT_USAGE
    if not dist.is_root():
        return _follow(config, specs, args, dist)

    if args.tensorboard:
        from keras_ssgd.train import tensorboard_logs

        try:
            tensorboard_logs.require_tensorboard()
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
            checkpoint_every=args.checkpoint_every,
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


def _replot(folder):
    """`--replot DIR`: the folder's plots redrawn from its records."""
    from keras_ssgd.store import StoreError
    from keras_ssgd.train import compare as compare_lib

    try:
        paths = compare_lib.replot(folder)
    except StoreError as error:
        print(f"ssgd-train: error: --replot {folder}: {error}",
              file=sys.stderr)
        return EXIT_USAGE
    print("Wrote " + ", ".join(str(path) for path in paths))
    return 0


def _follow(config, specs, args, dist):
    """A non-root Horovod rank: trains the same runs, writes nothing.

    With --resume it skips the runs rank 0 skips: the ones with a record in
    the output folder, and continues those rank 0 continues, from the same
    checkpoints (all read before training: rank 0 writes a checkpoint only
    once every rank trains with it). Rank 0 checks the files and the
    recipe, and stops the job if one is refused.
    """
    from keras_ssgd import checkpoint
    from keras_ssgd.train import runner
    from keras_ssgd.store import record_paths

    done, restores, folder = set(), {}, None
    if args.output:
        folder = pathlib.Path(args.output) / "runs"
    if args.resume and folder is not None:
        done = {path.stem for path in record_paths(args.output)}
        for spec in specs:
            path = folder / (spec.key + checkpoint.SUFFIX)
            if spec.key not in done and path.exists():
                restores[spec.key] = checkpoint.read(
                    path, spec.key, lambda recipe: "", workers=dist.size)
    for spec in specs:
        if spec.key not in done:
            runner.train(
                config, spec, verbose=0, distribution=dist,
                checkpoint=(None if folder is None
                            else folder / (spec.key + checkpoint.SUFFIX)),
                restore=restores.get(spec.key),
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
