"""Quickstart: plain SGD against S-SGD on MNIST-1D, offline, on a CPU.

MNIST-1D (4000 train / 1000 test signals) is generated locally by the
`mnist1d` package, so nothing is downloaded. Every method trains the MNIST-1D
1-D CNN from the same initial weights, with the same data order (reshuffled
every epoch from the seed), SGD with momentum 0.9 and a cosine learning
rate; S-SGD only adds the symmetric noise. An S-SGD step costs two SGD
steps, so `sgd_2x` (SGD for twice the epochs) is the equal-compute baseline.
The table gives the test accuracy of each seed and the wall time. Results go
to `results/quickstart.json`.

Usage:

    python experiments/quickstart.py
    python experiments/quickstart.py --batchnorm --seeds 3 --epochs 60
"""

import argparse
import json
import os
import pathlib
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

import keras_ssgd  # noqa: E402
from keras_ssgd.models import mnist1d_cnn  # noqa: E402


def train_once(method, seed, args):
    epochs = 2 * args.epochs if method == "sgd_2x" else args.epochs
    # Every method gets the same data order (reshuffled every epoch from the
    # seed and TensorFlow's global seed) and the same initial weights.
    keras.utils.set_random_seed(seed)
    data = keras_ssgd.data.load("mnist1d", batch_size=args.batch_size, seed=seed)
    keras.utils.set_random_seed(seed)
    model = mnist1d_cnn(batchnorm=args.batchnorm)
    if method == "ssgd":
        model = keras_ssgd.wrap(model, noise_level=args.noise_level, seed=seed)
    steps = data.steps_per_epoch
    schedule = keras.optimizers.schedules.CosineDecay(
        args.lr, decay_steps=steps * epochs
    )
    model.compile(
        optimizer=keras.optimizers.SGD(schedule, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    start = time.perf_counter()
    model.fit(data.train, epochs=epochs, verbose=0)
    seconds = time.perf_counter() - start
    _, accuracy = model.evaluate(data.test, verbose=0)
    return {"test_accuracy": 100 * accuracy, "seconds": seconds}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=60, help="Epochs per run; sgd_2x runs twice as many (default 60).")
    parser.add_argument("--seeds", type=int, default=3, help="Seeds per method (default 3).")
    parser.add_argument("--batch-size", type=int, default=100, help="Batch size (default 100).")
    parser.add_argument("--lr", type=float, default=0.05, help="Initial learning rate of the cosine schedule (default 0.05).")
    parser.add_argument("--noise-level", type=float, default=0.2, help="S-SGD noise level (default 0.2).")
    parser.add_argument("--batchnorm", action="store_true", help="Use the CNN with BatchNorm.")
    parser.add_argument("--output", default="results/quickstart.json", help="JSON results path.")
    args = parser.parse_args(argv)
    for flag in ("epochs", "seeds", "batch_size"):
        if getattr(args, flag) <= 0:
            parser.error(f"argument --{flag.replace('_', '-')} must be > 0. Received: {getattr(args, flag)}")
    if not args.noise_level > 0:
        parser.error(f"argument --noise-level must be > 0. Received: {args.noise_level}")

    runs = {"sgd": [], "sgd_2x": [], "ssgd": []}
    print(f"MNIST-1D, 1-D CNN{' + BatchNorm' if args.batchnorm else ''}, {args.epochs} epochs, batch {args.batch_size}")
    for seed in range(args.seeds):
        for method in runs:
            result = train_once(method, seed, args)
            runs[method].append(result)
            print(f"  seed {seed} {method:<6} test accuracy {result['test_accuracy']:.2f}%  ({result['seconds']:.0f} s)")

    print(f"\n{'method':<8}{'noise':>7}{'test accuracy (%)':>22}{'time (s)':>10}")
    summary = {}
    for method, results in runs.items():
        accs = [r["test_accuracy"] for r in results]
        std = statistics.stdev(accs) if len(accs) > 1 else 0.0
        secs = statistics.mean(r["seconds"] for r in results)
        noise = args.noise_level if method == "ssgd" else 0.0
        summary[method] = {"mean": statistics.mean(accs), "std": std, "seconds": secs}
        print(f"{method:<8}{noise:>7.2f}{statistics.mean(accs):>15.2f} +- {std:<4.2f}{secs:>10.0f}")

    path = pathlib.Path(args.output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"config": vars(args), "runs": runs, "summary": summary}, indent=2))
    print(f"\nWrote {path}")


if __name__ == "__main__":
    main()
