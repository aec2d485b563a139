"""The MNIST-1D benchmark of the README: S-SGD's noise sweep, every baseline
over the same five levels, SAM over five radii, and SGD, on the 1-D CNN with
and without BatchNorm, 5 seeds, 60 epochs (batch 100, SGD momentum 0.9,
cosine learning rate from 0.05, data reshuffled every epoch).

Every method other than SGD gets five levels at the recipe's learning rate
(SGD gets none: for a comparison with equal tuning effort, SGD included,
use `equal_compute.py`) and, per seed, the same initial weights and data
order. Runs go to `ssgd-train` folders under `--output` (resumable; rerun
to continue); `--report-only` just rebuilds `mnist1d_sweep.md` (per model:
SGD, every S-SGD level, and for each other method its pick, the level with
the best mean validation accuracy, with its whole sweep's test accuracies
listed) and `mnist1d_sweep_<model>.png` (test accuracy against level, every
method, SGD as the reference line).

    python experiments/benchmarks/mnist1d_sweep.py                  # about 3 h on 2 CPU cores
    python experiments/benchmarks/mnist1d_sweep.py --report-only
"""

import argparse
import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).parents[1]))  # experiments/: _common
import _common  # noqa: E402

from keras_ssgd.train.report import plot  # noqa: E402

LEVELS = "0.1,0.2,0.3,0.4,0.5"
CORE = ["--method", "sgd", "--method", f"ssgd:{LEVELS}",
        "--method", "sam:0.01,0.02,0.05,0.1,0.2"]
BASELINES = [f"--method={m}:{LEVELS}" for m in ("weight-noise", "smoothout", "dropconnect", "dropout")]
# model -> folders (name -> methods); the BatchNorm model's were two runs.
FOLDERS = {
    "mnist1d-cnn": {"sweep-cnn": CORE + BASELINES},
    "mnist1d-cnn-bn": {"sweep-cnn-bn": CORE, "sweep-cnn-bn-baselines": BASELINES},
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--output", default="results", help="Parent of the run folders.")
    parser.add_argument("--seeds", type=int, default=5, help="Seeds per point.")
    parser.add_argument("--report-only", action="store_true", help="Only rebuild the report.")
    parser.add_argument("--quiet", action="store_true", help="No progress bars.")
    args = parser.parse_args(argv)
    root = pathlib.Path(args.output)
    lines = []
    for model, folders in FOLDERS.items():
        rows = []
        for folder, methods in folders.items():
            if not args.report_only:
                _common.run(root / folder, [
                    "--model", model, "--seeds", str(args.seeds), "--epochs", "60",
                    "--steps-per-execution", "8", "--hessian-iterations", "0", *methods,
                ], args.quiet)
            rows += json.loads((root / folder / "results.json").read_text())["summary"]
        lines += report(model, rows)
        plot(rows, root / f"mnist1d_sweep_{model}.png",
             title=f"MNIST-1D, {model}, 5 seeds")
    (root / "mnist1d_sweep.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


def report(model, rows):
    def fmt(row):
        if row["test_accuracy_mean"] is None:
            return "diverged"
        return f"{row['test_accuracy_mean']:.2f} +- {row['test_accuracy_std']:.2f}"

    out = [f"### {model}", "",
           "| method | level | test accuracy (%) | train loss (clean W) | every level tried |",
           "|---|---|---|---|---|"]
    methods = []
    for row in rows:
        if row["method"] not in methods:
            methods.append(row["method"])
    for method in methods:
        group = sorted((r for r in rows if r["method"] == method),
                       key=lambda r: r["level"] or 0)
        tried = ", ".join(
            f"{r['level']:g}: {r['test_accuracy_mean']:.2f}" if r["test_accuracy_mean"] is not None
            else f"{r['level']:g}: diverged" for r in group if r["level"] is not None)
        # The pick ssgd-train made on validation accuracy, never on test.
        shown = group if method == "ssgd" else [
            r for r in group if r.get("picked")]
        for row in shown:
            level = "-" if row["level"] is None else f"{row['level_name']} {row['level']:g}"
            loss = "-" if row["train_loss_mean"] is None else f"{row['train_loss_mean']:.4f}"
            out.append(f"| {method} | {level} | {fmt(row)} | {loss} | "
                       f"{tried if method != 'ssgd' else ''} |")
    return out + [""]


if __name__ == "__main__":
    sys.exit(main())
