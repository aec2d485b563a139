"""Shared by the paper scripts: run one `ssgd-train` folder, resumably."""

import json
import pathlib

PAPER_CIFAR = [  # Section 4.1: 175 epochs, batch 128, lr 0.1 /10 at 75, 125
    "--batch-size", "128", "--lr", "0.1", "--optimizer", "sgd", "--momentum", "0.9",
]


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
