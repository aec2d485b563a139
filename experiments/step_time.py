"""Step time and peak memory of S-SGD relative to the plain Keras step.

Two forward/backward passes put S-SGD's FLOP cost at 2.0x plain SGD. This
script measures, in one process, the time of `fit()` steps for:

- `keras`: the plain `keras.Model` (the baseline);
- `ssgd`: `SymmetricSGDModel` with noise (two passes);
- `ssgd_level0`: `SymmetricSGDModel` with `noise_level=0` (one pass, the cost
  of being switched off by a `NoiseSchedule`).

Machines are noisy, so it times alternating rounds (the order rotates each
round) and reports the median of the per-round ratios. Peak memory is measured
in a fresh subprocess per method: the peak resident set size during training
minus the resident size of the built model before training.

Usage:

    python experiments/step_time.py                      # ResNet-20 and MLP
    python experiments/step_time.py --model resnet20 --rounds 9 --steps 20
"""

import argparse
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_ssgd  # noqa: E402
from keras_ssgd.models import cifar_resnet  # noqa: E402

METHODS = ("keras", "ssgd", "ssgd_level0")
INPUT_SHAPES = {"resnet20": (32, 32, 3), "mlp": (784,)}


def build_model(name):
    if name == "resnet20":
        return cifar_resnet(20, num_classes=10)
    inputs = keras.Input(INPUT_SHAPES["mlp"])
    x = keras.layers.Dense(512, activation="relu")(inputs)
    x = keras.layers.Dense(512, activation="relu")(x)
    return keras.Model(inputs, keras.layers.Dense(10)(x), name="mlp")


def make_model(name, method, seed=0):
    keras.utils.set_random_seed(seed)
    model = build_model(name)
    if method != "keras":
        level = 0.5 if method == "ssgd" else 0.0
        model = keras_ssgd.wrap(model, noise_level=level, seed=seed)
    model.compile(
        optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def make_data(name, batch_size):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch_size * 4, *INPUT_SHAPES[name]))
    y = rng.integers(0, 10, batch_size * 4)
    return (
        tf.data.Dataset.from_tensor_slices((x.astype("float32"), y))
        .batch(batch_size, drop_remainder=True)
        .repeat()
        .prefetch(2)
    )


def timed_fit(model, data, steps):
    start = time.perf_counter()
    model.fit(data, epochs=1, steps_per_epoch=steps, verbose=0)
    return time.perf_counter() - start


def time_methods(name, batch_size, steps, rounds):
    data = make_data(name, batch_size)
    models = {m: make_model(name, m) for m in METHODS}
    for model in models.values():  # trace and warm up
        timed_fit(model, data, 2)
    times = {m: [] for m in METHODS}
    for r in range(rounds):
        order = METHODS[r % 3 :] + METHODS[: r % 3]
        for method in order:
            times[method].append(timed_fit(models[method], data, steps) / steps)
    ratios = {
        m: [t / k for t, k in zip(times[m], times["keras"])]
        for m in METHODS
        if m != "keras"
    }
    return times, ratios


def memory_probe(name, method, batch_size, steps):
    """Runs in a subprocess: resident memory of training one method."""
    data = make_data(name, batch_size)
    model = make_model(name, method)
    model.predict(data.take(1), verbose=0)
    before = _rss_bytes()
    model.fit(data, epochs=1, steps_per_epoch=steps, verbose=0)
    return {"rss_before_training": before, "peak_rss": _status_bytes("VmHWM")}


def _rss_bytes():
    return _status_bytes("VmRSS")


def _status_bytes(field):
    # /proc/self/status: VmHWM, the peak resident size of this process image
    # (unlike ru_maxrss, it does not inherit the parent's peak across exec).
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not found in /proc/self/status")


def measure_memory(name, batch_size, steps, extra_args=()):
    out = {}
    for method in METHODS:
        result = subprocess.run(
            [
                sys.executable, __file__, "--memory-probe", method,
                "--model", name, "--batch-size", str(batch_size),
                "--steps", str(steps),
            ] + list(extra_args),
            check=True, capture_output=True, text=True,
        )
        probe = json.loads(result.stdout.strip().splitlines()[-1])
        probe["training_bytes"] = probe["peak_rss"] - probe["rss_before_training"]
        out[method] = probe
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model", choices=["resnet20", "mlp", "all"], default="all",
        help="Model to measure (default: both).",
    )
    parser.add_argument(
        "--batch-size", type=int, default=128, help="Batch size (default 128)."
    )
    parser.add_argument(
        "--steps", type=int, default=10,
        help="Training steps timed per method and round (default 10).",
    )
    parser.add_argument(
        "--rounds", type=int, default=7,
        help="Alternating timing rounds; the median ratio is reported "
        "(default 7).",
    )
    parser.add_argument(
        "--no-memory", action="store_true", help="Skip the memory probes."
    )
    parser.add_argument(
        "--output", default="results/step_time.json",
        help="Where to write the JSON results (default results/step_time.json).",
    )
    parser.add_argument(
        "--inter-op-threads", type=int, default=None,
        help="TensorFlow inter-op threads (default: TensorFlow's choice). "
        "1 runs independent ops, such as the two S-SGD passes, one at a time.",
    )
    parser.add_argument("--memory-probe", choices=METHODS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.inter_op_threads is not None:
        tf.config.threading.set_inter_op_parallelism_threads(args.inter_op_threads)
    for flag in ("batch_size", "steps", "rounds"):
        if getattr(args, flag) <= 0:
            parser.error(
                f"argument --{flag.replace('_', '-')} must be > 0. "
                f"Received: {getattr(args, flag)}"
            )

    if args.memory_probe:
        probe = memory_probe(args.model, args.memory_probe, args.batch_size, args.steps)
        print(json.dumps(probe))
        return

    names = ["resnet20", "mlp"] if args.model == "all" else [args.model]
    report = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
            "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        },
        "config": vars(args),
        "models": {},
    }
    for name in names:
        times, ratios = time_methods(name, args.batch_size, args.steps, args.rounds)
        entry = {
            "step_seconds": times,
            "ratio_rounds": ratios,
            "median_ratio": {m: statistics.median(r) for m, r in ratios.items()},
            "median_step_seconds": {m: statistics.median(t) for m, t in times.items()},
        }
        if not args.no_memory:
            extra = []
            if args.inter_op_threads is not None:
                extra = ["--inter-op-threads", str(args.inter_op_threads)]
            memory = measure_memory(name, args.batch_size, args.steps, extra)
            entry["memory"] = memory
            base = memory["keras"]
            entry["memory_ratio"] = {
                m: {
                    "peak_rss": memory[m]["peak_rss"] / base["peak_rss"],
                    "training_bytes": memory[m]["training_bytes"]
                    / max(base["training_bytes"], 1),
                }
                for m in METHODS
                if m != "keras"
            }
        report["models"][name] = entry
        print_summary(name, args, entry)

    path = pathlib.Path(args.output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2))
    print(f"\nWrote {path}")


def print_summary(name, args, entry):
    print(f"\n{name}, batch {args.batch_size}, {args.rounds} rounds of {args.steps} steps")
    print(f"{'method':<13}{'step (ms)':>11}{'time / keras':>14}{'rounds':>34}")
    for m in METHODS:
        ms = 1000 * entry["median_step_seconds"][m]
        if m == "keras":
            print(f"{m:<13}{ms:>11.1f}{'1.00':>14}")
            continue
        rounds = " ".join(f"{r:.2f}" for r in entry["ratio_rounds"][m])
        print(f"{m:<13}{ms:>11.1f}{entry['median_ratio'][m]:>14.2f}   {rounds}")
    if "memory" in entry:
        print(f"{'method':<13}{'peak RSS (MB)':>15}{'training MB':>13}{'peak / keras':>14}{'training / keras':>18}")
        for m in METHODS:
            mem = entry["memory"][m]
            ratio = entry["memory_ratio"].get(m, {"peak_rss": 1.0, "training_bytes": 1.0})
            print(
                f"{m:<13}{mem['peak_rss'] / 2**20:>15.0f}"
                f"{mem['training_bytes'] / 2**20:>13.0f}"
                f"{ratio['peak_rss']:>14.2f}{ratio['training_bytes']:>18.2f}"
            )


if __name__ == "__main__":
    main()
