"""Horovod on this machine: steps per second at a fixed global batch, and
what one step sends.

Run it once per world size, with the same global batch:

    horovodrun --gloo -np 1 -H localhost:1 python experiments/benchmarks/horovod_scaling.py
    horovodrun --gloo -np 2 -H localhost:2 python experiments/benchmarks/horovod_scaling.py

Methods, all through the same reduced step: plain training (noise level 0),
full S-SGD at 0.5 (both points on every rank's shard) and split S-SGD at
0.5 (on an even number of ranks its pair form: rank 2k measures its shard
at W + n, rank 2k + 1 at W - n; on one rank the split of its own batch).
The methods are timed in alternating rounds of `--steps` steps after a
warm-up; the median over `--rounds` rounds is reported, with its ratio to
plain training. From the gradient reducer come the allreduce calls per
step and the elements and bytes each step reduces. Rank 0 appends a line
per method to `--output` (JSON lines).
"""

import argparse
import json
import os
import pathlib
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_ssgd  # noqa: E402
from keras_ssgd.distributed import horovod as ssgd_hvd  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--global-batch", type=int, default=128, help="Global batch (split over ranks).")
    parser.add_argument("--steps", type=int, default=10, help="Timed steps per method and round.")
    parser.add_argument("--rounds", type=int, default=5, help="Alternating rounds (the median is reported).")
    parser.add_argument("--warmup", type=int, default=3, help="Untimed steps first (tracing).")
    parser.add_argument("--output", default="results/horovod_scaling.jsonl", help="JSON lines, appended by rank 0.")
    args = parser.parse_args()
    rank, size = ssgd_hvd.init()
    if args.global_batch % size:
        parser.error(f"--global-batch {args.global_batch} is not divisible by {size} ranks")
    local = args.global_batch // size
    rng = np.random.default_rng(rank)
    x = rng.normal(size=(local, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, size=(local,)).astype("int32")
    data = tf.data.Dataset.from_tensors((x, y)).repeat()
    methods = {
        "plain (level 0)": dict(noise_level=0.0),
        "ssgd": dict(noise_level=0.5),
        "ssgd-split" + (" (pairs)" if size % 2 == 0 else ""): dict(
            noise_level=0.5, split_batch=True
        ),
    }
    models = {}
    for method, kwargs in methods.items():
        keras.utils.set_random_seed(0)
        model = keras_ssgd.wrap(
            keras_ssgd.models.cifar_resnet(20), seed=0, **kwargs
        )
        ssgd_hvd.distribute(
            model, pairs=kwargs.get("split_batch", False) and size % 2 == 0
        )
        model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(data, steps_per_epoch=args.warmup, epochs=1, verbose=0,
                  callbacks=ssgd_hvd.callbacks(average_metrics=False))
        models[method] = model
    seconds = {method: [] for method in models}
    for _ in range(args.rounds):
        for method, model in models.items():
            start = time.perf_counter()
            model.fit(data, steps_per_epoch=args.steps, epochs=1, verbose=0)
            seconds[method].append(time.perf_counter() - start)
    plain = statistics.median(seconds["plain (level 0)"])
    for method, model in models.items():
        median = statistics.median(seconds[method])
        reducer = model.gradient_reducer
        calls = int(reducer.calls.numpy())
        record = {
            "ranks": size, "global_batch": args.global_batch, "method": method,
            "steps_per_second": args.steps / median,
            "step_time_vs_plain": median / plain,
            "rounds": args.rounds,
            "passes_per_step_per_rank": model.passes if model.noise_level > 0 else 1,
            "allreduce_calls_per_step": calls / (args.warmup + args.rounds * args.steps),
            "elements_per_step": reducer.elements_per_step,
            "bytes_per_step": reducer.bytes_per_step,
            "parameters": int(sum(np.prod(v.shape) for v in model.trainable_variables)),
        }
        if rank == 0:
            print(json.dumps(record))
            path = pathlib.Path(args.output)
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a") as f:
                f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
