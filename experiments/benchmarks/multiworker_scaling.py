"""MultiWorkerMirroredStrategy on this machine: steps per second at a fixed
global batch, and what one step sends.

    python experiments/benchmarks/multiworker_scaling.py --workers 1
    python experiments/benchmarks/multiworker_scaling.py --workers 2

The script starts `--workers` local processes of itself, each a worker of a
`tf.distribute.MultiWorkerMirroredStrategy` on 127.0.0.1 (`TF_CONFIG`, one
CPU replica per worker; 1 worker is the same strategy with a single
replica). Methods: plain training (noise level 0, Keras's own step), full
S-SGD at 0.5 (both points on every replica's part) and split S-SGD at 0.5
(on an even number of replicas its pair form: replica 2k at W + n, 2k + 1
at W - n; on one replica the split of its own batch). They are timed in
alternating rounds of `--steps` steps after a warm-up; the median over
`--rounds` rounds is reported with its ratio to plain training. Bytes per
step: one gradient (the model's trainable variables, all-reduced once per
step for every method), plus the 4-byte finite flag of the perturbed steps.
The chief appends a line per method to `--output` (JSON lines).
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def launch(args):
    """Starts the workers (this script with `TF_CONFIG`); their exit code."""
    sockets = [socket.socket() for _ in range(args.workers)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, *sys.argv[1:]],
            env=dict(os.environ, TF_CONFIG=json.dumps(
                {"cluster": cluster, "task": {"type": "worker", "index": i}}
            )),
        )
        for i in range(args.workers)
    ]
    return max(p.wait() for p in procs)


def worker(args):
    from keras_ssgd.distributed import multiworker

    strategy = multiworker.strategy(timeout_seconds=600)

    import keras
    import numpy as np
    import tensorflow as tf

    import keras_ssgd
    from keras_ssgd.distributed.pairs import pair_replicas

    replicas = strategy.num_replicas_in_sync
    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.global_batch, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, size=(args.global_batch,)).astype("int32")
    data = tf.data.Dataset.from_tensors((x, y)).repeat()
    pairs = replicas % 2 == 0
    methods = {
        "plain (level 0)": dict(noise_level=0.0),
        "ssgd": dict(noise_level=0.5),
        "ssgd-split" + (" (pairs)" if pairs else ""): dict(
            noise_level=0.5, split_batch=True
        ),
    }
    models = {}
    for method, kwargs in methods.items():
        keras.utils.set_random_seed(0)
        with strategy.scope():
            model = keras_ssgd.wrap(
                keras_ssgd.models.cifar_resnet(args.depth), seed=0, **kwargs
            )
            if kwargs.get("split_batch") and pairs:
                pair_replicas(model, strategy)
            model.compile(
                optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                loss=keras.losses.SparseCategoricalCrossentropy(
                    from_logits=True
                ),
            )
        model.fit(data, steps_per_epoch=args.warmup, epochs=1, verbose=0)
        models[method] = model
    seconds = {method: [] for method in models}
    for _ in range(args.rounds):
        for method, model in models.items():
            start = time.perf_counter()
            model.fit(data, steps_per_epoch=args.steps, epochs=1, verbose=0)
            seconds[method].append(time.perf_counter() - start)
    plain = statistics.median(seconds["plain (level 0)"])
    for method, model in models.items():
        gradient = sum(
            int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize
            for v in model.trainable_variables
        )
        median = statistics.median(seconds[method])
        line = {
            "method": method,
            "workers": multiworker.num_workers(),
            "replicas": replicas,
            "global_batch": args.global_batch,
            "model": f"cifar_resnet({args.depth})",
            "steps_per_second": args.steps / median,
            "ratio_to_plain": median / plain,
            "passes_per_step": 1 if method.startswith("plain") else model.passes,
            "gradient_bytes_per_step": gradient,
            "flag_bytes_per_step": 0 if method.startswith("plain") else 4,
            "round_seconds": seconds[method],
        }
        if multiworker.is_chief():
            print(json.dumps(line), flush=True)
            os.makedirs(os.path.dirname(args.output) or ".", exist_ok=True)
            with open(args.output, "a") as f:
                f.write(json.dumps(line) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2,
                        help="Local worker processes.")
    parser.add_argument("--global-batch", type=int, default=64,
                        help="Global batch (split over the replicas).")
    parser.add_argument("--depth", type=int, default=8,
                        help="cifar_resnet depth (6n + 2).")
    parser.add_argument("--steps", type=int, default=10,
                        help="Timed steps per method and round.")
    parser.add_argument("--rounds", type=int, default=5,
                        help="Alternating rounds (the median is reported).")
    parser.add_argument("--warmup", type=int, default=3,
                        help="Untimed steps first (tracing).")
    parser.add_argument("--output", default="results/multiworker_scaling.jsonl",
                        help="JSON lines, appended by the chief.")
    args = parser.parse_args()
    if args.workers < 1:
        parser.error(f"argument --workers: must be >= 1. Received: {args.workers}")
    if args.global_batch % args.workers:
        parser.error(
            f"argument --global-batch: {args.global_batch} is not divisible "
            f"by {args.workers} workers"
        )
    if "TF_CONFIG" not in os.environ:
        sys.exit(launch(args))
    worker(args)


if __name__ == "__main__":
    main()
