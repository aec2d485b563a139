"""Table 2 of the paper: SGD against S-SGD on CIFAR-10/100 for six CNNs.

The paper's recipe (Section 4.1): 175 epochs, batch 128, SGD with momentum
0.9, learning rate 0.1 divided by 10 at epochs 75 and 125, pad-4 random
crop, horizontal flip and per-channel normalisation, 5 runs per point, and
the noise levels of Table 2 for each model. Each (model, dataset) pair is
one `ssgd-train` run folder under `--output`, resumable: run the script
again to continue after an interruption. At the end `table2.md` sets the
measured means next to the paper's numbers.

    python experiments/paper/table2_cifar.py --models resnet20 --datasets cifar10
    python experiments/paper/table2_cifar.py             # all 6 models x 2 datasets (GPU days)
    python experiments/paper/table2_cifar.py --smoke     # the pipeline in seconds on mock data

CIFAR comes through tensorflow-datasets (downloaded on first use).
"""

import argparse
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).parents[1]))  # experiments/: _common
import _common  # noqa: E402

# The paper's Table 2: model -> (noise levels, {dataset: (SGD, {level: S-SGD})}).
PAPER = {
    "resnet20": ((0.4, 0.5), {"cifar10": (92.17, {0.4: 92.34, 0.5: 92.62}),
                              "cifar100": (68.00, {0.4: 69.44, 0.5: 69.48})}),
    "resnet56": ((0.4, 0.5), {"cifar10": (93.06, {0.4: 93.50, 0.5: 93.50}),
                              "cifar100": (70.12, {0.4: 71.61, 0.5: 72.19})}),
    "wrn28-2": ((0.5, 0.7), {"cifar10": (94.20, {0.5: 94.50, 0.7: 94.68}),
                             "cifar100": (74.81, {0.5: 75.43, 0.7: 75.55})}),
    "wrn28-4": ((0.5, 0.7), {"cifar10": (95.07, {0.5: 95.20, 0.7: 95.30}),
                             "cifar100": (77.12, {0.5: 77.66, 0.7: 77.57})}),
    "vgg6": ((0.7, 0.9), {"cifar10": (92.94, {0.7: 94.30, 0.9: 94.37}),
                          "cifar100": (74.81, {0.7: 75.61, 0.9: 75.81})}),
    "vgg16": ((0.7, 0.9), {"cifar10": (92.18, {0.7: 93.72, 0.9: 93.57}),
                           "cifar100": (72.68, {0.7: 73.31, 0.9: 73.11})}),
}


def parse(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--models", nargs="+", choices=list(PAPER), default=list(PAPER),
                        metavar="MODEL", help="Models of Table 2 to run, of: %(choices)s.")
    parser.add_argument("--datasets", nargs="+", choices=["cifar10", "cifar100"],
                        default=["cifar10", "cifar100"], help="Datasets.")
    parser.add_argument("--epochs", type=int, default=175,
                        help="Epochs (paper: 175; the /10 drops stay at 75 and "
                        "125 when it is 175, else at 3/7 and 5/7 of it).")
    _common.add_common_arguments(parser, "results/table2", model=None)
    args = _common.finish_arguments(parser.parse_args(argv), "results/smoke/table2")
    # Each Table 2 model is built as itself, except under --smoke (the tiny
    # model in place of the first one, with its levels and paper numbers).
    args.build = {name: name for name in PAPER}
    if args.smoke:
        args.models, args.datasets, args.epochs = args.models[:1], ["cifar10"], 2
        args.build[args.models[0]] = args.model
    return args


def main(argv=None):
    args = parse(argv)
    with _common.data_for(args):
        return _run(args)


def _run(args):
    root = pathlib.Path(args.output)
    drops = [round(args.epochs * 75 / 175), round(args.epochs * 125 / 175)]
    drops = sorted({d for d in drops if 0 < d < args.epochs})
    rows = ["| model | method | dataset | measured (mean +- std, runs) | paper |",
            "|---|---|---|---|---|"]
    for model in args.models:
        levels, paper = PAPER[model]
        for dataset in args.datasets:
            run = root / f"{dataset}-{model}"
            summary = _common.run(run, [
                "--dataset", dataset, "--model", args.build[model], "--epochs", str(args.epochs),
                "--batch-size", "128", "--lr", "0.1", "--lr-schedule", "step",
                "--lr-drops", *map(str, drops), "--seeds", str(args.seeds),
                "--method", "sgd", "--method", "ssgd:" + ",".join(map(str, levels)),
                "--hessian-iterations", "0"], args.quiet)["summary"]
            sgd, ssgd = paper[dataset]
            for row in summary:
                reference = sgd if row["level"] is None else ssgd.get(row["level"])
                measured = "diverged" if row["test_accuracy_mean"] is None else (
                    f"{row['test_accuracy_mean']:.2f} +- {row['test_accuracy_std']:.2f} "
                    f"({row['runs']})")
                label = "SGD" if row["level"] is None else f"S-SGD ({row['level']:g})"
                name = model if args.build[model] == model else f"{model} (as {args.build[model]})"
                rows.append(f"| {name} | {label} | {dataset} | {measured} | {reference} |")
    root.mkdir(parents=True, exist_ok=True)
    (root / "table2.md").write_text("\n".join(rows) + "\n")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
