"""S-SGD's split form against full S-SGD and its controls on MNIST-1D.

Split S-SGD (`ssgd-split`: half of each batch at W + n, half at W - n, the
cost of one SGD pass) against SGD, full S-SGD (two passes), weight noise
(the one-pass, one-sided control: if split S-SGD only matches it, the
pairing buys nothing) and split S-SGD without noise (level 1e-6: two
half-batch passes at W, which with BatchNorm is ghost batch normalisation,
Hoffer et al. 2017; a gain it also shows is not the noise's). The recipe
is the README's MNIST-1D one (60 epochs, batch 100, SGD momentum 0.9,
cosine learning rate from 0.05, data reshuffled every epoch), the same
initial weights and data order per seed for every method.

The report gives, for each method and level, the per-seed paired difference
to SGD on the same seed, its mean, a 95% t interval (n - 1 degrees of
freedom) and how many seeds were better, and says when the interval holds 0.

    python experiments/benchmarks/split_sweep.py                      # both CNNs, 5 seeds
    python experiments/benchmarks/split_sweep.py --model mnist1d-cnn --levels 0.1,0.2,0.3
    python experiments/benchmarks/split_sweep.py --report-only

A folder that already holds runs is extended, never rerun: the levels given
are added to the levels of its finished runs, and ssgd-train skips the
runs that have a record (so `--levels 0.4,0.5` after `--levels 0.1,0.2,0.3`
trains only the new levels, and the folder's plan lists all five).
"""

import argparse
import json
import math
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).parents[1]))  # experiments/: _common
import _common  # noqa: E402

MODELS = ("mnist1d-cnn", "mnist1d-cnn-bn")
NO_NOISE = 1e-6  # split S-SGD's control: two half-batch passes at W


def methods(levels):
    return [
        "--method", "sgd",
        "--method", f"ssgd-split:{levels},{NO_NOISE:g}",
        "--method", f"ssgd:{levels}",
        "--method", f"weight-noise:{levels}",
    ]


def finished_levels(folder):
    """The noise levels of the finished noisy runs in `folder` (as strings)."""
    results = pathlib.Path(folder) / "results.json"
    if not results.exists():
        return []
    levels = {run.get("level") for run in json.loads(results.read_text())["runs"]}
    return [f"{level:g}" for level in levels
            if level is not None and not math.isclose(level, NO_NOISE)]


def merged_levels(requested, folder):
    """`requested` (comma-separated) with the folder's finished levels added,
    in increasing order, each once."""
    levels = {float(level) for level in requested.split(",") if level.strip()}
    levels |= {float(level) for level in finished_levels(folder)}
    return ",".join(f"{level:g}" for level in sorted(levels))


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--output", default="results/split-sweep",
                        help="Parent of the run folders.")
    parser.add_argument("--model", action="append", choices=MODELS,
                        help="Model(s) to run (default: both).")
    parser.add_argument("--seeds", type=int, default=5, help="Seeds per point.")
    parser.add_argument("--levels", default="0.1,0.2,0.3,0.4,0.5",
                        help="Noise levels of every noisy method.")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--report-only", action="store_true",
                        help="Only rebuild the report from finished runs.")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    root = pathlib.Path(args.output)
    lines = []
    for model in args.model or MODELS:
        folder = root / model
        if not args.report_only:
            _common.run(folder, [
                "--model", model, "--seeds", str(args.seeds),
                "--epochs", str(args.epochs), "--steps-per-execution", "8",
                "--hessian-iterations", "0",
                *methods(merged_levels(args.levels, folder)),
            ], args.quiet)
        results = folder / "results.json"
        if results.exists():
            lines += report(model, json.loads(results.read_text())["runs"])
    (root / "split_sweep.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


def paired(differences):
    """Mean, 95% t interval and the count of positive differences."""
    from scipy import stats

    n = len(differences)
    mean = sum(differences) / n
    if n < 2:
        return mean, (math.nan, math.nan), sum(d > 0 for d in differences)
    sd = math.sqrt(sum((d - mean) ** 2 for d in differences) / (n - 1))
    half = stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
    return mean, (mean - half, mean + half), sum(d > 0 for d in differences)


def report(model, runs):
    """Per method and level: accuracy and the paired difference to SGD."""
    accuracy = {}
    for run in runs:
        if run.get("test_accuracy") is None:
            continue
        key = (run["method"], run.get("level"))
        accuracy.setdefault(key, {})[run["seed"]] = run["test_accuracy"]
    sgd = accuracy.get(("sgd", None), {})
    out = [f"### {model}", "",
           "| method | level | test accuracy (%) | vs SGD, paired (pt) | 95% t interval | better on | verdict |",
           "|---|---|---|---|---|---|---|"]
    for (method, level), by_seed in sorted(
        accuracy.items(), key=lambda item: (item[0][0] != "sgd", item[0][0], item[0][1] or 0)
    ):
        values = list(by_seed.values())
        mean = sum(values) / len(values)
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / max(len(values) - 1, 1))
        cells = [method, "-" if level is None else f"{level:g}", f"{mean:.2f} +- {std:.2f}"]
        seeds = sorted(set(by_seed) & set(sgd))
        if method == "sgd" or not seeds:
            out.append("| " + " | ".join(cells + ["", "", "", ""]) + " |")
            continue
        diff, (low, high), better = paired([by_seed[s] - sgd[s] for s in seeds])
        shown = low <= 0 <= high or math.isnan(low)
        verdict = "no difference shown" if shown else ("better" if diff > 0 else "worse")
        out.append("| " + " | ".join(cells + [
            f"{diff:+.2f}", f"[{low:+.2f}, {high:+.2f}]",
            f"{better} of {len(seeds)}", verdict,
        ]) + " |")
    # Split S-SGD against its controls at the same level, paired by seed.
    out += ["", "| split S-SGD at level | against | paired difference (pt) "
            "| 95% t interval | split better on | verdict |", "|---|---|---|---|---|---|"]
    for (method, level), by_seed in sorted(accuracy.items(), key=lambda i: i[0][1] or 0):
        if method != "ssgd-split" or level == NO_NOISE:
            continue
        for other in ("ssgd", "weight-noise"):
            reference = accuracy.get((other, level), {})
            seeds = sorted(set(by_seed) & set(reference))
            if not seeds:
                continue
            diff, (low, high), better = paired(
                [by_seed[s] - reference[s] for s in seeds]
            )
            verdict = ("no difference shown" if low <= 0 <= high or math.isnan(low)
                       else ("split better" if diff > 0 else "split worse"))
            out.append(f"| {level:g} | {other} {level:g} | {diff:+.2f} | "
                       f"[{low:+.2f}, {high:+.2f}] | {better} of {len(seeds)} | {verdict} |")
    return out + [""]


if __name__ == "__main__":
    sys.exit(main())
