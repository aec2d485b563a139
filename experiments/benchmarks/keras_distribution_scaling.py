"""S-SGD under `keras.distribution.DataParallel` (JAX): what one step sends
and steps per second, at 1 and at N devices.

Run it once per device count, with the same global batch (virtual CPU
devices here; real GPUs elsewhere):

    KERAS_BACKEND=jax XLA_FLAGS=--xla_force_host_platform_device_count=1 \
        python experiments/benchmarks/keras_distribution_scaling.py
    KERAS_BACKEND=jax XLA_FLAGS=--xla_force_host_platform_device_count=2 \
        python experiments/benchmarks/keras_distribution_scaling.py

For plain training (level 0, Keras's own step), full S-SGD and split S-SGD
(ResNet-20, random CIFAR-shaped data), and on an even number of devices
S-SGD with a noise per device and split S-SGD over pairs of devices
(`keras_distribution.distribute`), the bytes one step sends are read from
the compiled step (`keras_ssgd.distributed.collectives`): the sum of the
outputs of XLA's cross-device collectives (`all-reduce`, `reduce-scatter`,
`all-gather`) in the optimized HLO of the model's `train_step`, compiled
with the mesh's shardings. S-SGD's steps run per device
(`keras_ssgd.backends.jax_devices`): each device combines its passes'
gradients, then one all-reduce. The methods are timed in alternating rounds
of `--steps` steps after a warm-up, the median over `--rounds` rounds is
reported with its ratio to plain training (`--rounds 0`: bytes only). One
JSON line per method is appended to `--output`.
"""

import argparse
import json
import os
import pathlib
import statistics
import time

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_ssgd  # noqa: E402
from keras_ssgd.distributed import keras_distribution  # noqa: E402
from keras_ssgd.distributed.collectives import collective_bytes  # noqa: E402
from keras_ssgd.distributed.collectives import gradient_bytes  # noqa: E402
from keras_ssgd.distributed.collectives import step_hlo  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--global-batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=5,
                        help="Timed steps per method and round.")
    parser.add_argument("--rounds", type=int, default=5,
                        help="Alternating rounds (the median is reported); "
                             "0 reports the bytes only.")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--output",
                        default="results/keras_distribution_scaling.jsonl")
    args = parser.parse_args()
    devices = keras.distribution.list_devices()
    if len(devices) > 1:
        keras.distribution.set_distribution(
            keras.distribution.DataParallel(devices=devices)
        )
    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.global_batch, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, size=(args.global_batch,)).astype("int32")
    methods = {
        "plain (level 0)": (dict(noise_level=0.0), None),
        "ssgd": (dict(noise_level=0.5), None),
        "ssgd-split": (dict(noise_level=0.5, split_batch=True), None),
    }
    if len(devices) > 1 and len(devices) % 2 == 0:
        methods["ssgd (noise per device)"] = (dict(noise_level=0.5), {})
        methods["ssgd-split (device pairs)"] = (
            dict(noise_level=0.5, split_batch=True), dict(pairs=True)
        )
    models = {}
    for method, (kwargs, options) in methods.items():
        keras.utils.set_random_seed(0)
        model = keras_ssgd.wrap(
            keras_ssgd.models.cifar_resnet(20), seed=0, **kwargs
        )
        model.compile(
            optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        if options is not None:
            keras_distribution.distribute(model, **options)
        model.fit(x, y, batch_size=args.global_batch, epochs=args.warmup,
                  verbose=0, shuffle=False)
        models[method] = model
    repeated = (np.tile(x, (args.steps, 1, 1, 1)), np.tile(y, args.steps))
    seconds = {method: [] for method in models}
    for _ in range(args.rounds):
        for method, model in models.items():
            start = time.perf_counter()
            model.fit(*repeated, batch_size=args.global_batch, epochs=1,
                      verbose=0, shuffle=False)
            seconds[method].append(time.perf_counter() - start)
    plain = statistics.median(seconds["plain (level 0)"] or [0.0])
    for method, model in models.items():
        median = statistics.median(seconds[method] or [0.0])
        sent, calls = collective_bytes(step_hlo(model, x, y))
        gradient = gradient_bytes(model)
        record = {
            "devices": len(devices), "global_batch": args.global_batch,
            "method": method,
            "steps_per_second": args.steps / median if median else None,
            "step_time_vs_plain": median / plain if plain else None,
            "rounds": args.rounds,
            "collective_bytes_per_step": sent, "collectives_per_step": calls,
            "gradient_bytes": gradient, "gradients_sent": sent / gradient,
        }
        print(json.dumps(record))
        path = pathlib.Path(args.output)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as f:
            f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
