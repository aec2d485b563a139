"""The equal-compute verdict of the README: S-SGD against SGD and the cheap
baselines on both MNIST-1D CNNs, at equal epochs and at equal passes.

Is S-SGD worth its second pass? Every method trains at both budgets
(`ssgd-train --budget both`): the recipe's epochs, and the forward/backward
passes of S-SGD's run (the one-pass methods train twice the epochs, their
cosine schedule stretched; the every-k forms, 1.2 passes per step, 100 of
60 epochs). The baselines: SGD, one-sided weight noise (the control at
S-SGD's noise cost), the split form, SAM, ASAM, S-SGD and SAM on one step
in 5, Keras's EMA of the weights and SWA (BatchNorm recomputed). Levels:
those the five-level sweep found best where it had them
(`mnist1d_sweep.py`: S-SGD 0.2 without BatchNorm and 0.1 with, weight
noise 0.1 and 0.2, SAM 0.1), each method's default besides, two levels for
the averages. Batch 100, SGD momentum 0.9, cosine learning rate from 0.05,
5 seeds; 60 epochs without BatchNorm and 30 with.

The run folders are `ssgd-train`'s (resumable: rerun to continue, or to
rebuild their tables with the current verdict code); their `summary.md`
holds the table and the verdicts, which this script prints.

    python experiments/benchmarks/equal_compute.py          # about 80 min on 2 CPU cores
    python experiments/benchmarks/equal_compute.py --smoke  # seconds: the MLP, 1 epoch, 1 seed
"""

import argparse
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).parents[1]))  # experiments/: _common
import _common  # noqa: E402

BOTH = ["sgd", "ssgd-split:0.2", "asam:0.5"]
# model -> (epochs, methods besides BOTH)
MODELS = {
    "mnist1d-cnn": (60, [
        "ssgd:0.2", "weight-noise:0.1,0.2", "sam:0.05,0.1",
        "ssgd-every:0.2", "sam-every:0.05,0.1", "ema:0.99,0.999",
        "swa:0.5,0.75",
    ]),
    "mnist1d-cnn-bn": (30, [
        "ssgd:0.1,0.2", "weight-noise:0.2", "sam:0.1", "ssgd-every:0.1",
        "sam-every:0.1", "ema:0.99,0.999", "swa:0.5,0.75",
    ]),
}


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--output", default="results/equal-compute",
                        help="Parent of the two run folders.")
    parser.add_argument("--seeds", type=int, default=5, help="Seeds per run.")
    parser.add_argument("--smoke", action="store_true",
                        help="The whole pipeline in seconds: the MLP, 1 "
                        "epoch, 1 seed.")
    parser.add_argument("--quiet", action="store_true",
                        help="No progress lines.")
    args = parser.parse_args(argv)
    root = pathlib.Path(args.output)
    for model, (epochs, methods) in MODELS.items():
        command = [
            # --smoke: the whole pipeline on a tiny model, into the folder
            # of `model`.
            "--model", _common.SMOKE_MODEL if args.smoke else model,
            "--dataset", "mnist1d",
            "--epochs", "1" if args.smoke else str(epochs),
            "--seeds", "1" if args.smoke else str(args.seeds),
            "--budget", "both", "--every", "5", "--hessian-iterations", "0",
        ]
        for method in BOTH + methods:
            command += ["--method", method]
        _common.run(root / model, command, args.quiet)
        print(f"\n== {model}\n")
        print((root / model / "summary.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
