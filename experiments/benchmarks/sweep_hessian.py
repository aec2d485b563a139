"""Top Hessian eigenvalue of the saved models of an `ssgd-train` run.

For runs made with `--hessian-iterations 0` (or before the eigenvalue was
part of the record): loads `runs/<key>.keras` for the chosen methods and
levels, computes the top eigenvalue of the training loss over the whole
training set (inference mode, Lanczos), and writes `hessian.json` in the
run folder with per-run values and mean +- std per (method, level).

    python experiments/benchmarks/sweep_hessian.py results/sweep-cnn --select sgd ssgd:0.2 sam:0.05
"""

import argparse
import json
import os
import pathlib
import statistics

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

import keras_ssgd  # noqa: E402
import keras_ssgd.wrapping  # noqa: E402,F401  (registers the model classes for load_model)
from keras_ssgd.landscape import hessian_eigenvalues  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="An ssgd-train output folder.")
    parser.add_argument("--select", nargs="+", required=True, metavar="METHOD[:LEVEL]",
                        help="Which (method, level) groups, e.g. sgd ssgd:0.2.")
    parser.add_argument("--iterations", type=int, default=20, help="Lanczos vectors (ARPACK ncv).")
    args = parser.parse_args()
    run = pathlib.Path(args.run)
    results = json.loads((run / "results.json").read_text())
    recipe = results["config"]["recipe"]
    data = keras_ssgd.data.load(recipe["dataset"], batch_size=500, seed=0)
    wanted = []
    for item in args.select:
        method, _, level = item.partition(":")
        wanted.append((method, float(level) if level else None))
    values = {}
    for record in results["runs"]:
        group = (record["method"], record["level"])
        if group not in wanted or record["status"] != "ok":
            continue
        model = keras.models.load_model(run / "runs" / f"{record['key']}.keras")
        top = float(hessian_eigenvalues(model, data.train_eval, k=1,
                                        iterations=args.iterations)[0])
        values.setdefault(f"{group[0]}:{group[1]}", {})[record["key"]] = top
        print(f"{record['key']}: {top:.4g}", flush=True)
    summary = {
        group: {"mean": statistics.mean(v.values()),
                "std": statistics.stdev(v.values()) if len(v) > 1 else 0.0,
                "runs": len(v)}
        for group, v in values.items()
    }
    (run / "hessian.json").write_text(json.dumps(
        {"iterations": args.iterations, "runs": values, "summary": summary}, indent=1))
    for group, s in summary.items():
        print(f"{group}: {s['mean']:.4g} +- {s['std']:.2g} ({s['runs']} runs)")


if __name__ == "__main__":
    main()
