"""`make demo`: S-SGD against SGD on the two MNIST-1D CNNs, at equal epochs
and at equal compute.

SGD against S-SGD at noise level 0.2 on the two 1-D CNNs of MNIST-1D
(generated offline): the CNN without BatchNorm (60 epochs, 5 seeds) at both
budgets, equal epochs and equal passes (SGD then trains 120 epochs, its
cosine schedule stretched: S-SGD costs two passes per step), and the CNN
with BatchNorm (30 epochs, 3 seeds, to fit the time) at equal epochs. The
README's MNIST-1D figures have both at 60 or 30 epochs and 5 seeds and more
baselines. Each run prints one progress line; the tables and verdicts of
both models print at the end, each model's conclusion read from its
verdicts, as computed in this run (nothing is decided before). The run
folders are `results/demo-<date-time>/<model>/`, as `ssgd-train` writes
them.

    python experiments/demo.py                        # what `make demo` runs
    python experiments/demo.py --method sgd --method ssgd:0.2 \
        --method ssgd-split:0.2                       # the split form too
    python experiments/demo.py --seeds 5 --epochs 60  # longer, both models
    python experiments/demo.py --budget epochs        # the first budget only
"""

import argparse
import datetime
import os
import sys
import time

# Before TensorFlow loads: no C++ start-up log lines.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Model, epochs, seeds, budget, the setup in words.
MODELS = (
    ("mnist1d-cnn", 60, 5, "both", "the CNN without BatchNorm"),
    ("mnist1d-cnn-bn", 30, 3, "epochs", "the CNN with BatchNorm"),
)


def conclusion(verdicts):
    """What the verdicts of one model found, in a few words per line:
    `ssgd 0.2: better than sgd at equal epochs; no difference shown at
    equal passes`. Read from the verdict dicts of this run
    (`keras_ssgd.train.verdict.verdicts`)."""
    found = {}
    for v in verdicts:
        if v.get("kind") == "best":
            continue
        name = v["method"] if v["level"] is None else (
            f"{v['method']} {v['level']:g}")
        word = v["verdict"]
        if word != "no difference shown":
            word += f" than {v['against']}"
        at = f" at equal {v['budget']}" if v.get("budget") else ""
        found.setdefault(name, []).append(word + at)
    if not found:
        return "no verdict (no run finished for both methods)"
    return "; ".join(f"{name}: {'; '.join(words)}"
                     for name, words in found.items())


def parse(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--epochs", type=int, default=None,
                        help="Epochs for both models (default: 60 without "
                        "BatchNorm, 30 with).")
    parser.add_argument("--seeds", default=None,
                        help="Seeds for both models: N (seeds 0 .. N-1), A-B "
                        "or A,B,... (default: 5 without BatchNorm, 3 with).")
    parser.add_argument("--method", action="append", default=None,
                        help="ssgd-train's --method (repeatable). Default: "
                        "sgd and ssgd:0.2.")
    parser.add_argument("--budget", choices=["epochs", "passes", "both"],
                        default=None,
                        help="ssgd-train's --budget for both models "
                        "(default: both without BatchNorm, epochs with).")
    parser.add_argument("--hessian-iterations", type=int, default=0,
                        help="Lanczos vectors for the top Hessian eigenvalue "
                        "of each model (0: skip; 20 adds a few seconds per "
                        "run).")
    parser.add_argument("--output", default=None,
                        help="Folder of the two run folders (default "
                        "results/demo-<date-time>).")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse(argv)
    import keras_ssgd

    methods = args.method or ["sgd", "ssgd:0.2"]
    output = args.output or os.path.join(
        "results", "demo-" + datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    )
    start = time.monotonic()
    results = []
    for model, epochs, seeds, budget, label in MODELS:
        budget = args.budget or budget
        words = {"both": "equal epochs and equal passes",
                 "epochs": "equal epochs", "passes": "equal passes"}[budget]
        print(f"\n== {model}: {label}, {words}", flush=True)
        results.append(keras_ssgd.compare(
            model, "mnist1d", methods=methods, seeds=args.seeds or seeds,
            epochs=args.epochs or epochs, output=os.path.join(output, model),
            hessian_iterations=args.hessian_iterations, verbose=1,
            budget=budget,
        ))
    for (model, _, _, _, label), result in zip(MODELS, results):
        print(f"\n== {model}, {label}: {conclusion(result.verdicts)}\n")
        print(result)
    minutes, seconds = divmod(round(time.monotonic() - start), 60)
    print(f"\nDemo done in {minutes} min {seconds} s; run folders in "
          f"{output}/ (results.json, summary.md, accuracy.png per model).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
