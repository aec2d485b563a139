"""`make demo`: S-SGD against SGD on the MNIST-1D CNN without BatchNorm,
at equal epochs and at equal compute, choosing on validation.

SGD against S-SGD on the 1-D CNN of MNIST-1D without BatchNorm (generated
offline; 3500 training, 500 validation and 1000 test signals), 60 epochs,
3 seeds, at both budgets: equal epochs and equal passes (SGD then trains
120 epochs, its cosine schedule stretched: S-SGD costs two passes per
step). Each method gets K = 2 configurations, two learning rates (0.1,
0.2; S-SGD at noise level 0.1). Each
method's pick is its configuration with the best mean validation
accuracy; the verdicts compare the picks' test accuracies, the first
(S-SGD against SGD at equal epochs) unadjusted, the others adjusted
together (Holm). To fit about 5 minutes on 2 CPU cores the demo shrinks
the README's headline (10 seeds, K = 4, five methods) to 3 seeds, K = 2
and two methods, and leaves out the CNN with BatchNorm. Each run prints
one progress line; the table and verdicts print at the end, the
conclusion read from the verdicts computed in this run (nothing is decided
before). The run folder is `results/demo-<date-time>/mnist1d-cnn/`, as
`ssgd-train` writes it.

    python experiments/demo.py                        # what `make demo` runs
    python experiments/demo.py --method sgd@0.1,0.2 --method ssgd:0.1@0.1,0.2 \
        --method ssgd-split:0.1@0.1,0.2               # the split form too
    python experiments/demo.py --seeds 10             # more seeds
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
    ("mnist1d-cnn", 60, 3, "both", "the CNN without BatchNorm"),
)
# K = 2 configurations each, the same kind for both: two learning rates
# (around the picks of the headline, experiments/results/), S-SGD at its
# headline level.
METHODS = ["sgd@0.1,0.2", "ssgd:0.1@0.1,0.2"]


def conclusion(verdicts):
    """What the verdicts of one model found, in a few words per line:
    `ssgd: better than sgd at equal epochs; no difference shown at equal
    passes (adjusted)`. Read from the verdict dicts of this run
    (`keras_ssgd.train.verdict.verdicts`): each method's pick, chosen on
    validation, against SGD's."""
    found = {}
    for v in verdicts:
        if v.get("kind") == "best":
            continue
        name = v["method"]
        word = v["verdict"]
        if word in ("better", "worse"):
            word += f" than {v['against']}"
        at = f" at equal {v['budget']}" if v.get("budget") else ""
        adjusted = " (adjusted)" if v.get("role") == "adjusted" else ""
        found.setdefault(name, []).append(word + at + adjusted)
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
                        help="Epochs (default: 60).")
    parser.add_argument("--seeds", default=None,
                        help="Seeds: N (seeds 0 .. N-1), A-B or A,B,... "
                        "(default: 3).")
    parser.add_argument("--method", action="append", default=None,
                        help="ssgd-train's --method (repeatable). Default: "
                        + " and ".join(METHODS) + ".")
    parser.add_argument("--budget", choices=["epochs", "passes", "both"],
                        default=None,
                        help="ssgd-train's --budget (default: both).")
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

    methods = args.method or METHODS
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
    print(f"\nDemo done in {minutes} min {seconds} s; run folder in "
          f"{output}/ (results.json, summary.md, accuracy.png).")
    return 0


if __name__ == "__main__":
    from keras_ssgd import native_log

    native_log.quiet_tensorflow()  # a command: TensorFlow's start-up lines off
    sys.exit(main())
