"""Throughput and peak memory of S-SGD relative to plain Keras training.

Two forward/backward passes put S-SGD's FLOP cost at 2.0x plain SGD; its
split form (half of the batch at W + n, half at W - n) costs 1.0x. This
script measures, in one process and on the Keras backend chosen with
`--backend` (TensorFlow, JAX or PyTorch), `fit()` on random data of the
model's input shape (CIFAR-shaped 32x32x3 for ResNet-20, 40x1 for the
MNIST-1D CNNs) for:

- `keras`: the plain `keras.Model` (the baseline);
- `ssgd`: `SymmetricSGDModel` with noise (two passes);
- `ssgd_split`: `SymmetricSGDModel(split_batch=True)` with noise (one pass
  in two halves of the batch);
- `ssgd_level0`: `SymmetricSGDModel` with `noise_level=0` (one pass: plain
  training through the S-SGD step, the cost of being switched off by a
  `NoiseSchedule`).

For each batch size it reports images per second per method, each
method's step-time ratio to Keras (targets: <= 2.0x for `ssgd`, about 1.0x
for `ssgd_split` and `ssgd_level0`) and the peak memory of each method:
the accelerator's peak bytes in use where the backend reports them (JAX:
`device.memory_stats()["peak_bytes_in_use"]`; PyTorch:
`torch.cuda.max_memory_allocated()`; TensorFlow:
`tf.config.experimental.get_memory_info("GPU:0")["peak"]`), measured in a
fresh subprocess per method; on a CPU it says "n/a" and gives the peak
resident size (VmHWM) of that process instead.

Machines are noisy, so it times alternating rounds (the order rotates each
round) and reports the median of the per-round ratios. `--methods` times a
subset (`keras` is always timed: it is the reference).

Usage:

    python experiments/benchmarks/step_time.py --backend jax        # ResNet-20, batch 128 and 1024
    python experiments/benchmarks/step_time.py --backend torch --batch-size 32 --steps 2 --rounds 1
    python experiments/benchmarks/step_time.py --model mlp --batch-size 128 --rounds 9
    python experiments/benchmarks/step_time.py --model mnist1d-cnn-bn --batch-size 100 --no-memory
    python experiments/benchmarks/step_time.py --methods ssgd ssgd_split --no-memory
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

# The committed benchmark records (`make figures` reads them).
RECORDS = pathlib.Path(__file__).resolve().parents[1] / "results" / "benchmarks"
BACKENDS = ("tensorflow", "jax", "torch")


def _backend_from_argv(argv):
    """`--backend` must be known before Keras is imported."""
    for i, arg in enumerate(argv):
        if arg == "--backend" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--backend="):
            return arg.split("=", 1)[1]
    return None


_requested = _backend_from_argv(sys.argv[1:])
if _requested in BACKENDS:
    os.environ["KERAS_BACKEND"] = _requested
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The memory probes run in processes of their own while this one holds its
# device memory: JAX and TensorFlow must not reserve most of the GPU upfront.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_ssgd  # noqa: E402
from keras_ssgd.tasks.cifar.resnet import cifar_resnet  # noqa: E402
from keras_ssgd.tasks.mnist1d.cnn import mnist1d_cnn  # noqa: E402

METHODS = ("keras", "ssgd", "ssgd_split", "ssgd_level0")
INPUT_SHAPES = {
    "resnet20": (32, 32, 3),
    "mlp": (784,),
    "mnist1d-cnn": (40, 1),
    "mnist1d-cnn-bn": (40, 1),
    "transformer": (128,),
}
# The transformer encoder: token ids of a sequence of 128, 2 blocks of
# width 256, 4 heads, feed-forward 1024.
VOCABULARY, WIDTH, HEADS, FEED_FORWARD, BLOCKS = 1000, 256, 4, 1024, 2
# The transformer's batch size under `--model all`.
TRANSFORMER_BATCH = 32
# The methods timed: all of them unless `--methods` says otherwise.
TIMED = list(METHODS)


class PositionEmbedding(keras.layers.Layer):
    """Adds a learned vector per position to a `(batch, length, width)`
    sequence (as `keras_hub.layers.PositionEmbedding`, without KerasHub)."""

    def build(self, input_shape):
        self.embeddings = self.add_weight(
            shape=tuple(input_shape[1:]), initializer="glorot_uniform",
            name="embeddings",
        )

    def call(self, x):
        return x + keras.ops.expand_dims(self.embeddings, 0)


def transformer_encoder():
    """A small transformer encoder classifier: token and position
    embeddings, `BLOCKS` post-norm blocks of `keras.layers.
    MultiHeadAttention` and a ReLU feed-forward layer, mean pooling, 10
    classes."""
    length = INPUT_SHAPES["transformer"][0]
    tokens = keras.Input((length,), dtype="int32")
    x = keras.layers.Embedding(VOCABULARY, WIDTH)(tokens)
    x = PositionEmbedding(name="positions")(x)
    for _ in range(BLOCKS):
        attended = keras.layers.MultiHeadAttention(
            HEADS, WIDTH // HEADS
        )(x, x)
        x = keras.layers.LayerNormalization()(x + attended)
        hidden = keras.layers.Dense(FEED_FORWARD, activation="relu")(x)
        x = keras.layers.LayerNormalization()(
            x + keras.layers.Dense(WIDTH)(hidden)
        )
    x = keras.layers.GlobalAveragePooling1D()(x)
    return keras.Model(tokens, keras.layers.Dense(10)(x), name="transformer")


def build_model(name):
    if name == "transformer":
        return transformer_encoder()
    if name == "resnet20":
        return cifar_resnet(20, num_classes=10)
    if name.startswith("mnist1d-cnn"):
        return mnist1d_cnn(batchnorm=name.endswith("-bn"), num_classes=10)
    inputs = keras.Input(INPUT_SHAPES["mlp"])
    x = keras.layers.Dense(512, activation="relu")(inputs)
    x = keras.layers.Dense(512, activation="relu")(x)
    return keras.Model(inputs, keras.layers.Dense(10)(x), name="mlp")


# `compile(jit_compile=...)` for every method (`--jit-compile`); Keras's
# default ("auto") otherwise.
JIT_COMPILE = "auto"


def make_model(name, method, seed=0):
    keras.utils.set_random_seed(seed)
    model = build_model(name)
    if method != "keras":
        level = 0.0 if method == "ssgd_level0" else 0.5
        model = keras_ssgd.wrap(
            model, noise_level=level, seed=seed,
            split_batch=method == "ssgd_split",
        )
    model.compile(
        jit_compile=JIT_COMPILE,
        optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def make_data(name, batch_size):
    """Four batches of random inputs and labels, as NumPy arrays."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, batch_size * 4).astype("int32")
    if name == "transformer":
        shape = (batch_size * 4, *INPUT_SHAPES[name])
        return rng.integers(0, VOCABULARY, shape).astype("int32"), y
    x = rng.standard_normal((batch_size * 4, *INPUT_SHAPES[name]))
    return x.astype("float32"), y


class Batches(keras.utils.PyDataset):
    """`steps` batches cycling over the four random ones (no copies)."""

    def __init__(self, data, steps):
        super().__init__()
        self.x, self.y = data
        self.batch_size = len(self.x) // 4
        self.steps = steps

    def __len__(self):
        return self.steps

    def __getitem__(self, index):
        start = (index % 4) * self.batch_size
        end = start + self.batch_size
        return self.x[start:end], self.y[start:end]


def timed_fit(model, data, steps):
    """Seconds for one `fit()` of `steps` training steps."""
    start = time.perf_counter()
    model.fit(Batches(data, steps), epochs=1, verbose=0)
    _wait(model)
    return time.perf_counter() - start


def _wait(model):
    """Blocks until the device has finished (JAX and PyTorch dispatch
    asynchronously); `fit` already waits for its logs on every backend, so
    this only makes the end of the timed region explicit."""
    keras.ops.convert_to_numpy(model.trainable_variables[0])


def time_methods(name, batch_size, steps, rounds, methods=None):
    methods = list(methods or TIMED)
    data = make_data(name, batch_size)
    models = {m: make_model(name, m) for m in methods}
    for model in models.values():  # trace and warm up
        timed_fit(model, data, 2)
    times = {m: [] for m in methods}
    for r in range(rounds):
        shift = r % len(methods)
        order = methods[shift:] + methods[:shift]
        for method in order:
            times[method].append(timed_fit(models[method], data, steps) / steps)
    ratios = {
        m: [t / k for t, k in zip(times[m], times["keras"])]
        for m in methods
        if m != "keras"
    }
    return times, ratios


def memory_probe(name, method, batch_size, steps):
    """Runs in a subprocess: the peak memory of training one method."""
    data = make_data(name, batch_size)
    model = make_model(name, method)
    model.predict(data[0][:batch_size], batch_size=batch_size, verbose=0)
    before = _rss_bytes()
    timed_fit(model, data, steps)
    return {
        "rss_before_training": before,
        "peak_rss": _status_bytes("VmHWM"),
        "peak_device_bytes": peak_device_bytes(),
    }


def peak_device_bytes():
    """Peak accelerator memory of this process, or None on a CPU."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        device = jax.devices()[0]
        if device.platform == "cpu":
            return None
        stats = device.memory_stats() or {}
        return stats.get("peak_bytes_in_use")
    if backend == "torch":
        import torch

        if not torch.cuda.is_available():
            return None
        return torch.cuda.max_memory_allocated()
    import tensorflow as tf

    if not tf.config.list_physical_devices("GPU"):
        return None
    return tf.config.experimental.get_memory_info("GPU:0")["peak"]


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
    """Peak memory of each method, each in a fresh process."""
    out = {}
    for method in TIMED:
        result = subprocess.run(
            [
                sys.executable, __file__, "--memory-probe", method,
                "--backend", keras.backend.backend(),
                "--model", name, "--batch-size", str(batch_size),
                "--steps", str(steps),
            ] + list(extra_args),
            check=True, capture_output=True, text=True,
        )
        probe = json.loads(result.stdout.strip().splitlines()[-1])
        probe["training_bytes"] = probe["peak_rss"] - probe["rss_before_training"]
        out[method] = probe
    return out


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--backend", choices=BACKENDS, default=None,
        help="Keras backend (default: KERAS_BACKEND, else Keras's default).",
    )
    parser.add_argument(
        "--model", choices=[*INPUT_SHAPES, "all"], default="resnet20",
        help="Model to measure (default resnet20; all: resnet20, mlp at "
        "the batch sizes given, and transformer at batch 32).",
    )
    parser.add_argument(
        "--methods", nargs="+", choices=METHODS[1:], default=None,
        metavar="METHOD",
        help=f"Methods timed against keras: some of {', '.join(METHODS[1:])} "
        "(default all).",
    )
    parser.add_argument(
        "--batch-size", type=int, nargs="+", default=[128, 1024],
        help="Batch sizes (default 128 1024).",
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
        "--output", default=None,
        help="Where to write the JSON record, with the machine and the "
        "versions (default experiments/results/benchmarks/"
        "step-time-<model>-<backend>.json, committed; `make figures` "
        "reads it).",
    )
    parser.add_argument(
        "--inter-op-threads", type=int, default=None,
        help="TensorFlow backend only: inter-op threads (default: "
        "TensorFlow's choice). 1 runs independent ops, such as the two "
        "S-SGD passes, one at a time.",
    )
    parser.add_argument(
        "--jit-compile", action="store_true",
        help="compile(jit_compile=True) for every method (PyTorch: "
        "torch.compile; TensorFlow: XLA). The record's name ends in -jit.",
    )
    parser.add_argument("--memory-probe", choices=METHODS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for flag in ("steps", "rounds"):
        if getattr(args, flag) <= 0:
            parser.error(
                f"argument --{flag}: must be > 0. "
                f"Received: {getattr(args, flag)}"
            )
    if any(b <= 0 for b in args.batch_size):
        parser.error(
            f"argument --batch-size: must be > 0. Received: {args.batch_size}"
        )
    backend = keras.backend.backend()
    if args.backend is not None and args.backend != backend:
        parser.error(
            f"argument --backend: Keras was already imported with backend "
            f"{backend!r}. Received: --backend {args.backend}"
        )
    if args.inter_op_threads is not None and backend != "tensorflow":
        parser.error(
            "argument --inter-op-threads: a TensorFlow setting, not "
            f"available with backend {backend!r}. Received: "
            f"--inter-op-threads {args.inter_op_threads}, --backend {backend}"
        )
    return args


def machine():
    backend = keras.backend.backend()
    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        # A run pinned to fewer cores (`taskset`) or given a real-time
        # policy (`chrt`) says so: both change the figures.
        "cores_used": len(os.sched_getaffinity(0)),
        "scheduler": {
            os.SCHED_FIFO: "fifo", os.SCHED_RR: "rr",
        }.get(os.sched_getscheduler(0), "other"),
        "python": platform.python_version(),
        "keras": keras.__version__,
        "backend": backend,
    }
    if backend == "jax":
        import jax

        info["jax"] = jax.__version__
        info["device"] = str(jax.devices()[0].device_kind)
    elif backend == "torch":
        import torch

        info["torch"] = torch.__version__
        info["device"] = (
            torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
        )
    else:
        import tensorflow as tf

        info["tensorflow"] = tf.__version__
        gpus = tf.config.list_physical_devices("GPU")
        info["device"] = gpus[0].name if gpus else "cpu"
        info["inter_op_threads"] = (
            tf.config.threading.get_inter_op_parallelism_threads()
        )
    return info


def main(argv=None):
    args = parse_args(argv)
    if args.inter_op_threads is not None:
        import tensorflow as tf

        tf.config.threading.set_inter_op_parallelism_threads(
            args.inter_op_threads
        )

    if args.methods:
        TIMED[:] = ["keras"] + [m for m in METHODS[1:] if m in args.methods]
    global JIT_COMPILE
    if args.jit_compile:
        JIT_COMPILE = True
    if args.memory_probe:
        probe = memory_probe(
            args.model, args.memory_probe, args.batch_size[0], args.steps
        )
        print(json.dumps(probe))
        return

    backend = keras.backend.backend()
    names = (
        ["resnet20", "mlp", "transformer"] if args.model == "all"
        else [args.model]
    )
    report = {"machine": machine(), "config": vars(args), "runs": []}
    for name in names:
        sizes = args.batch_size
        if args.model == "all" and name == "transformer":
            sizes = [TRANSFORMER_BATCH]
        for batch_size in sizes:
            entry = measure(name, batch_size, args)
            report["runs"].append(entry)
            print_summary(entry, args)

    suffix = "-jit" if args.jit_compile else ""
    path = pathlib.Path(args.output or RECORDS / (
        f"step-time-{args.model}-{backend}{suffix}.json"))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2))
    print(f"\nWrote {path}")


def measure(name, batch_size, args):
    times, ratios = time_methods(name, batch_size, args.steps, args.rounds)
    median_step = {m: statistics.median(t) for m, t in times.items()}
    entry = {
        "model": name,
        "batch_size": batch_size,
        "step_seconds": times,
        "ratio_rounds": ratios,
        "median_ratio": {m: statistics.median(r) for m, r in ratios.items()},
        "median_step_seconds": median_step,
        "images_per_second": {m: batch_size / t for m, t in median_step.items()},
    }
    if not args.no_memory:
        extra = []
        if args.inter_op_threads is not None:
            extra = ["--inter-op-threads", str(args.inter_op_threads)]
        if args.jit_compile:
            extra.append("--jit-compile")
        entry["memory"] = measure_memory(name, batch_size, args.steps, extra)
    return entry


def _mb(value):
    return "n/a" if value is None else f"{value / 2**20:.0f}"


def print_summary(entry, args):
    print(
        f"\n{entry['model']}, batch {entry['batch_size']}, backend "
        f"{keras.backend.backend()}, {args.rounds} rounds of {args.steps} steps"
    )
    print(
        f"{'method':<13}{'images/s':>10}{'step (ms)':>11}{'time / keras':>14}"
        f"{'peak device MB':>16}{'peak RSS MB':>13}   rounds"
    )
    for m in TIMED:
        ms = 1000 * entry["median_step_seconds"][m]
        ratio = 1.0 if m == "keras" else entry["median_ratio"][m]
        rounds = (
            "" if m == "keras"
            else " ".join(f"{r:.2f}" for r in entry["ratio_rounds"][m])
        )
        memory = entry.get("memory", {}).get(m, {})
        print(
            f"{m:<13}{entry['images_per_second'][m]:>10.1f}{ms:>11.1f}"
            f"{ratio:>14.2f}{_mb(memory.get('peak_device_bytes')):>16}"
            f"{_mb(memory.get('peak_rss')):>13}   {rounds}"
        )


if __name__ == "__main__":
    main()
