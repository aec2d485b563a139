"""S-SGD under `keras.distribution.DataParallel` (JAX): what one step sends
and steps per second, at 1 and at N devices.

Run it once per device count, with the same global batch (virtual CPU
devices here; real GPUs elsewhere):

    KERAS_BACKEND=jax XLA_FLAGS=--xla_force_host_platform_device_count=1 \
        python experiments/benchmarks/keras_distribution_scaling.py
    KERAS_BACKEND=jax XLA_FLAGS=--xla_force_host_platform_device_count=2 \
        python experiments/benchmarks/keras_distribution_scaling.py

For plain training (level 0, Keras's own step), full S-SGD and split S-SGD
(ResNet-20, random CIFAR-shaped data), the bytes one step sends are read
from the compiled step: the sum of the outputs of XLA's cross-device
reductions (`all-reduce`, `reduce-scatter`, `all-gather`) in the optimized
HLO of the model's `train_step`, compiled with the mesh's shardings. The
methods are timed in alternating rounds of `--steps` steps after a warm-up,
the median over `--rounds` rounds is reported with its ratio to plain
training. One JSON line per method is appended to `--output`.
"""

import argparse
import json
import os
import pathlib
import re
import statistics
import time

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import jax  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_ssgd  # noqa: E402

_COLLECTIVE = re.compile(
    r"=\s*(\([^=]*?\)|\S+)\s+(all-reduce|reduce-scatter|all-gather)(?:-start)?\("
)
_ARRAY = re.compile(r"(f64|f32|bf16|f16|s64|s32|u32|u8|pred)\[([\d,]*)\]")
_BYTES = {"f64": 8, "f32": 4, "bf16": 2, "f16": 2, "s64": 8, "s32": 4,
          "u32": 4, "u8": 1, "pred": 1}


def collective_bytes(hlo):
    """Bytes of every cross-device collective's output in optimized HLO."""
    total, calls = 0, 0
    hlo = re.sub(r"/\*.*?\*/", "", hlo)  # `/*index=5*/` in long tuples
    for match in _COLLECTIVE.finditer(hlo):
        calls += 1
        for dtype, dims in _ARRAY.findall(match.group(1)):
            size = int(np.prod([int(d) for d in dims.split(",") if d] or [1]))
            total += size * _BYTES[dtype]
    return total, calls


def step_hlo(model, x, y):
    """The optimized HLO of `model.train_step` on one global batch."""
    from keras.src.backend.jax.trainer import _distribute_data

    state = (
        [v.value for v in model.trainable_variables],
        [v.value for v in model.non_trainable_variables],
        [v.value for v in model.optimizer.variables],
        [v.value for v in model.metrics_variables],
    )
    data = _distribute_data((x, y))
    lowered = jax.jit(model.train_step).lower(state, data)
    return lowered.compile().as_text()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--global-batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=5,
                        help="Timed steps per method and round.")
    parser.add_argument("--rounds", type=int, default=5,
                        help="Alternating rounds (the median is reported).")
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
        "plain (level 0)": dict(noise_level=0.0),
        "ssgd": dict(noise_level=0.5),
        "ssgd-split": dict(noise_level=0.5, split_batch=True),
    }
    models = {}
    for method, kwargs in methods.items():
        keras.utils.set_random_seed(0)
        model = keras_ssgd.wrap(
            keras_ssgd.models.cifar_resnet(20), seed=0, **kwargs
        )
        model.compile(
            optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
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
    plain = statistics.median(seconds["plain (level 0)"])
    for method, model in models.items():
        median = statistics.median(seconds[method])
        sent, calls = collective_bytes(step_hlo(model, x, y))
        gradient = sum(
            int(np.prod(v.shape)) * 4 for v in model.trainable_variables
        )
        record = {
            "devices": len(devices), "global_batch": args.global_batch,
            "method": method, "steps_per_second": args.steps / median,
            "step_time_vs_plain": median / plain, "rounds": args.rounds,
            "collective_bytes_per_step": sent, "collectives_per_step": calls,
            "gradient_bytes": gradient,
        }
        print(json.dumps(record))
        path = pathlib.Path(args.output)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as f:
            f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
