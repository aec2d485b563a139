"""Horovod on this machine: steps per second at a fixed global batch, and
what one step sends.

Run it once per world size, with the same global batch:

    horovodrun --gloo -np 1 -H localhost:1 python experiments/horovod_scaling.py
    horovodrun --gloo -np 2 -H localhost:2 python experiments/horovod_scaling.py

For each method (plain training through the same step at noise level 0, and
S-SGD at 0.5) it times `--steps` steps after a warm-up and counts, from the
gradient reducer, the allreduce calls per step and the elements and bytes
each call reduces. Rank 0 appends a line per method to `--output`
(JSON lines).
"""

import argparse
import json
import os
import pathlib
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
    parser.add_argument("--steps", type=int, default=20, help="Timed steps per method.")
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
    for method, level in (("plain (level 0)", 0.0), ("ssgd", 0.5)):
        keras.utils.set_random_seed(0)
        model = keras_ssgd.wrap(keras_ssgd.models.cifar_resnet(20), noise_level=level, seed=0)
        ssgd_hvd.distribute(model)
        model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(data, steps_per_epoch=args.warmup, epochs=1, verbose=0,
                  callbacks=ssgd_hvd.callbacks(average_metrics=False))
        start = time.perf_counter()
        model.fit(data, steps_per_epoch=args.steps, epochs=1, verbose=0)
        seconds = time.perf_counter() - start
        reducer = model.gradient_reducer
        calls = int(reducer.calls.numpy())
        record = {
            "ranks": size, "global_batch": args.global_batch, "method": method,
            "steps_per_second": args.steps / seconds,
            "allreduce_calls_per_step": calls / (args.warmup + args.steps),
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
