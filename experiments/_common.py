"""Shared by the scripts of `paper/` and `benchmarks/` (each puts this folder
on `sys.path`): run one `ssgd-train` folder, resumably, and the `--smoke`
mode (the whole pipeline in seconds on generated data)."""

import contextlib
import json
import pathlib

PAPER_CIFAR = [  # Section 4.1: 175 epochs, batch 128, lr 0.1 /10 at 75, 125
    "--batch-size", "128", "--lr", "0.1", "--optimizer", "sgd", "--momentum", "0.9",
]

# What `--smoke` changes, whatever else is asked: a tiny model, one seed.
SMOKE_MODEL = "mlp"
SMOKE_EXAMPLES = 32  # per split of the tfds mock data


def run(folder, arguments, quiet=False):
    """Runs `ssgd-train` into `folder` (resuming it if it exists) and
    returns its results (the parsed `results.json`)."""
    from keras_ssgd.train import cli

    folder = pathlib.Path(folder)
    command = [*arguments, "--output", str(folder)]
    if quiet:
        command.append("--quiet")
    if (folder / "config.json").exists():
        command.append("--resume")
    code = cli.main(command)
    if code != 0:
        raise SystemExit(code)
    results = folder / "results.json"
    # Under horovodrun only rank 0 writes: the other ranks get None.
    return json.loads(results.read_text()) if results.exists() else None


def scaled_drops(epochs, drops=(75, 125), total=175):
    """The paper's drop epochs scaled to `epochs` (unchanged at 175)."""
    scaled = sorted({round(epochs * d / total) for d in drops})
    return [str(d) for d in scaled if 0 < d < epochs]


def model_names():
    """The models `ssgd-train` knows."""
    from keras_ssgd.train.registry import MODELS

    return list(MODELS)


def add_common_arguments(parser, output, model="resnet20", seeds=5):
    """`--model` (checked against the registry; left out when `model` is
    None), `--seeds`, `--output`, `--quiet` and `--smoke`."""
    if model is not None:
        parser.add_argument("--model", default=model, choices=model_names(),
                            metavar="MODEL", help="Model, one of: %(choices)s.")
    parser.add_argument("--seeds", type=int, default=seeds, help="Runs per point.")
    parser.add_argument("--output", default=None,
                        help=f"Folder of run folders (default: {output}, "
                        f"or results/smoke/... with --smoke).")
    parser.add_argument("--quiet", action="store_true", help="No progress bars.")
    parser.add_argument("--smoke", action="store_true",
                        help="Run the whole pipeline in seconds on generated "
                        f"data: tfds mock data, the '{SMOKE_MODEL}' model, one "
                        "seed, one or two epochs (results/smoke/...).")
    parser.set_defaults(_output=output)


def finish_arguments(args, smoke_output):
    """Applies `--smoke` (tiny model, one seed, quiet) and the default
    `--output`; returns `args`."""
    if args.smoke:
        args.model, args.seeds, args.quiet = SMOKE_MODEL, 1, True
    if args.output is None:
        args.output = smoke_output if args.smoke else args._output
    return args


@contextlib.contextmanager
def data_for(args):
    """Mock tfds data under `--smoke` (nothing is read or downloaded),
    the real data otherwise."""
    if not args.smoke:
        yield
        return
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=SMOKE_EXAMPLES):
        yield
