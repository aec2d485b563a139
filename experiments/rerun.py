"""Reruns recorded runs and checks they give the recorded figures, bit for bit.

A refactor must not change what a run computes. This script takes a
committed `ssgd-train` folder (`experiments/results/NAME`), rebuilds the
recipe and the runs of one seed from their records, trains them again in
this process, and compares every figure the verdicts are made of: the
per-epoch history, the test, validation and train accuracies and losses,
and the status. Wall times and file paths are not compared.

    python experiments/rerun.py experiments/results/mnist1d-mlp --seed 0
    python experiments/rerun.py experiments/results/mnist1d-mlp \
        --run ssgd-0.1-seed0 --run sgd-seed0

It exits 1 if any figure differs, naming the run and the figure. The
figures are reproducible under the CPU settings they were recorded with
(the machine and thread count of the record); elsewhere a difference in
the last bits is expected, not a change of behaviour.
"""

import argparse
import json
import pathlib
import sys

# The figures a record holds that a rerun must reproduce exactly.
FIGURES = (
    "status", "epochs_run", "history", "train_loss_last_epoch",
    "test_accuracy", "test_loss", "validation_accuracy", "validation_loss",
    "train_accuracy", "train_loss", "hessian_top",
)


def run_spec(record, config):
    """The `RunSpec` of `record` under the recipe `config`."""
    from keras_ssgd.train.runner import RunSpec

    spec = RunSpec(
        method=record["method"],
        level=record["level"],
        seed=record["seed"],
        epochs=None if record["epochs"] == config.epochs else record["epochs"],
        budgets=tuple(record.get("budgets", ("epochs",))),
        lr=None if record["lr"] == config.lr else record["lr"],
        weight_decay=record.get("weight_decay") or None,
    )
    if spec.key != record["key"]:
        raise SystemExit(
            f"rerun: cannot rebuild run {record['key']!r} from its record "
            f"(it rebuilds as {spec.key!r})"
        )
    return spec


def differences(recorded, rerun):
    """`[(figure, recorded value, rerun value)]` where they differ."""
    return [
        (figure, recorded.get(figure), rerun.get(figure))
        for figure in FIGURES
        if recorded.get(figure) != rerun.get(figure)
    ]


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Rerun recorded runs; check their figures bit for bit.")
    parser.add_argument("folder", type=pathlib.Path,
                        help="an ssgd-train folder with config.json and runs/")
    parser.add_argument("--seed", type=int, default=None,
                        help="rerun every run of this seed")
    parser.add_argument("--run", action="append", default=[],
                        help="rerun the run with this key (repeatable)")
    args = parser.parse_args(argv)
    if args.seed is None and not args.run:
        parser.error("name runs with --run KEY, or a seed with --seed N")

    from keras_ssgd.train.runner import Config
    from keras_ssgd.train.runner import train

    recipe = json.loads((args.folder / "config.json").read_text())["recipe"]
    recipe["lr_drops"] = tuple(recipe["lr_drops"])
    config = Config(**recipe)
    records = [
        json.loads(path.read_text())
        for path in sorted((args.folder / "runs").glob("*.json"))
    ]
    chosen = [
        r for r in records
        if r["key"] in args.run or (args.seed is not None
                                    and r["seed"] == args.seed)
    ]
    missing = sorted(set(args.run) - {r["key"] for r in records})
    if missing:
        parser.error(f"no record for --run {missing} in {args.folder}")
    failed = 0
    for record in chosen:
        rerun = train(config, run_spec(record, config), verbose=0)
        found = differences(record, rerun)
        failed += bool(found)
        print(f"{record['key']}: " + (
            "identical" if not found else "DIFFERS in " + ", ".join(
                f"{figure} ({a!r} recorded, {b!r} rerun)"
                if figure != "history" else "history"
                for figure, a, b in found)), flush=True)
    print(f"{len(chosen) - failed} of {len(chosen)} runs identical")
    return 1 if failed else 0


if __name__ == "__main__":
    from keras_ssgd import native_log

    native_log.quiet_tensorflow()  # a command: TensorFlow's start-up lines off
    sys.exit(main())
