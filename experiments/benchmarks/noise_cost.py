"""What drawing S-SGD's noise costs in a training step, and what is cheaper.

Every perturbed step draws a random direction per perturbed kernel and
scales it to `||n|| = noise_level * ||W||` (`keras_ssgd.noise.
symmetric_noise`). On a CPU, for the 784-512-512-10 MLP at batch 128, the
Gaussian draw of the default (`noise_distribution="gaussian"`) costs about
as much as a whole plain step, which the split form (`split_batch=True`,
one pass of FLOPs) feels most. This script measures, in one process and on
the backend chosen with `--backend`:

- `plain`: a `keras.Model` training step (`fit()`, per step);
- `split-gaussian`, `split-rademacher`: a split S-SGD step
  (`noise_level=0.5`) with each direction distribution;
- `split-fixed`: the same split step with the draw replaced by a fixed
  sign pattern scaled as the Rademacher draw scales its signs (`fixed_noise`):
  everything but the random numbers. `1 - split-fixed / split-X` is then
  the share of the split step that sampling costs *inside* the compiled
  step, the figure the split form's budget cares about;
- `draw-gaussian`, `draw-rademacher`: the noise draw alone for the MLP's
  three kernels (0.67M numbers), compiled as the step compiles it
  (`tf.function` on TensorFlow, `jax.jit` on JAX, eager on PyTorch), with
  the seed positioned at `[seed, step]` as the model does; the `--draws`
  draws of a round run in one compiled call, so the cost of calling a
  compiled function from Python is shared by them, as in a step;
- where the Gaussian draw's time goes: `normal` (`keras.random.normal` of
  the 0.67M numbers alone), `norms` (the kernels' L2 norms) and, for the
  Rademacher draw, `randint` (its ~42k random 16-bit integers alone).

Machines are noisy: every round times each item once, in an order that
rotates from round to round, and the report gives the median over rounds of
each item's time and of the per-round ratios: sampling's share of the
split step (`1 - split-fixed / split step`, and the draw timed alone
against the split step, `draw / split step`) and `split step / plain step`.

`--accuracy` instead trains split S-SGD with each distribution (and SGD)
on MNIST-1D with the 1-D CNN, the README's recipe (60 epochs, batch 100,
SGD momentum 0.9, cosine learning rate from 0.05), 5 seeds, the same
initial weights and data order per seed, and reports the paired
differences (Rademacher - Gaussian, and each against SGD) with a 95% t
interval, as `split_sweep.py` does.

Usage:

    python experiments/benchmarks/noise_cost.py                      # TensorFlow, MLP, batch 128
    python experiments/benchmarks/noise_cost.py --backend jax --rounds 9
    python experiments/benchmarks/noise_cost.py --backend torch --steps 10 --draws 10
    python experiments/benchmarks/noise_cost.py --accuracy --levels 0.2       # 15 runs
"""

import argparse
import json
import math
import os
import pathlib
import statistics
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).parents[1]))  # experiments/: _common
sys.path.insert(0, str(pathlib.Path(__file__).parent))  # step_time, split_sweep
import step_time  # noqa: E402  (sets the backend from --backend first)

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import ops  # noqa: E402

import keras_ssgd  # noqa: E402
from keras_ssgd import noise as noise_lib  # noqa: E402

LEVEL = 0.5
SEED = 0
ITEMS = (
    "plain", "split-gaussian", "split-rademacher", "split-fixed",
    "draw-gaussian", "draw-rademacher", "normal", "randint", "norms",
)


def make_model(distribution=None):
    """The MLP as `keras.Model` (`distribution=None`) or as split S-SGD.

    `distribution="fixed"` is the split step with the Rademacher draw's
    scaling but no random numbers: it is timed under `fixed_noise` (see
    there)."""
    keras.utils.set_random_seed(SEED)
    model = step_time.build_model("mlp")
    if distribution is not None:
        model = keras_ssgd.wrap(
            model, noise_level=LEVEL, seed=SEED, split_batch=True,
            noise_distribution="rademacher" if distribution == "fixed" else distribution,
        )
    model.compile(
        optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def compiled(fn, draws):
    """`fn(weights, seed)` as a function of `(weights, step)` that makes
    `draws` draws, at seeds `[SEED, step]` to `[SEED, step + draws - 1]`,
    in one call compiled as the backend compiles a training step
    (`tf.function` on TensorFlow, `jax.jit` on JAX, eager on PyTorch). One
    call per timed item and round, so the cost of calling a compiled
    function from Python (about a millisecond on TensorFlow) is shared by
    the draws instead of counted in each, as inside a training step."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax
        import jax.numpy as jnp

        @jax.jit
        def call(weights, step):
            return [
                fn(weights, jnp.stack([jnp.uint32(SEED), (step + i).astype("uint32")]))
                for i in range(draws)
            ]

        def run(weights, step):
            return jax.block_until_ready(call(weights, jnp.int32(step)))

        return run
    generator = keras.random.SeedGenerator(SEED)

    def draw(weights, step):
        state = generator.state
        state.assign(ops.stack([ops.cast(SEED, state.dtype), ops.cast(step, state.dtype)]))
        # Each draw advances the generator's counter by one.
        return [fn(weights, generator) for _ in range(draws)]

    if backend == "tensorflow":
        import tensorflow as tf

        draw = tf.function(draw)

        def run(weights, step):
            out = draw(weights, tf.constant(step, tf.int64))
            ops.convert_to_numpy(out[-1][-1])  # explicit end of the timed region
            return out

        return run
    return draw  # PyTorch: eager, as its training step


class fixed_noise:
    """While active, the model's noise draw is replaced by a fixed sign
    pattern (one per kernel, drawn once here with NumPy) scaled exactly as
    the Rademacher draw scales its signs, `noise_level * ||W|| / sqrt(size)`.

    The split step timed under it does everything the split step does
    except generating random numbers and turning them into signs, so
    `1 - split-fixed / split-X` is the share of the split step that
    sampling costs inside the compiled step (where the compiler may overlap
    or fuse it), beside the draw timed alone.
    """

    def __init__(self, weights):
        rng = np.random.default_rng(SEED)
        self.signs = {
            tuple(w.shape): ops.convert_to_tensor(
                rng.choice(np.array([-1.0, 1.0], "float32"), size=tuple(w.shape)))
            for w in weights
        }

    def draw(self, weights, noise_level, seed, distribution="gaussian"):
        level = ops.cast(noise_level, "float32")
        noise = []
        for w in weights:
            size = max(math.prod(w.shape), 1)
            a = level * noise_lib.l2_norm(ops.cast(w, "float32")) / math.sqrt(size)
            noise.append(ops.cast(self.signs[tuple(w.shape)] * a, w.dtype))
        return noise

    def __enter__(self):
        self.saved = noise_lib.symmetric_noise
        noise_lib.symmetric_noise = self.draw
        return self

    def __exit__(self, *exc):
        noise_lib.symmetric_noise = self.saved


def draw_functions(weights):
    """The timed draws, each `(weights, seed) -> list of tensors`."""
    size = sum(math.prod(w.shape) for w in weights)
    words = sum(math.prod(w.shape[:-1]) * -(-w.shape[-1] // 16) for w in weights)
    return {
        "draw-gaussian": lambda ws, seed: noise_lib.symmetric_noise(
            ws, LEVEL, seed, distribution="gaussian"),
        "draw-rademacher": lambda ws, seed: noise_lib.symmetric_noise(
            ws, LEVEL, seed, distribution="rademacher"),
        "normal": lambda ws, seed: [
            keras.random.normal((size,), dtype="float32", seed=seed)],
        "randint": lambda ws, seed: [
            keras.random.randint((words,), 0, 2**16, dtype="int32", seed=seed)],
        "norms": lambda ws, seed: [noise_lib.l2_norm(w) for w in ws],
    }


def measure(batch_size, steps, draws, rounds):
    data = step_time.make_data("mlp", batch_size)
    models = {
        "plain": make_model(),
        "split-gaussian": make_model("gaussian"),
        "split-rademacher": make_model("rademacher"),
        "split-fixed": make_model("fixed"),
    }
    # Copies: JAX's training step donates (frees) the variables' buffers.
    weights = [
        ops.convert_to_tensor(ops.convert_to_numpy(v))
        for v in models["split-gaussian"].noise_variables
    ]
    functions = {k: compiled(f, draws) for k, f in draw_functions(weights).items()}
    fixed = fixed_noise(weights)

    def fit(item, steps):
        if item != "split-fixed":
            return step_time.timed_fit(models[item], data, steps)
        with fixed:  # traced (TensorFlow, JAX) and run (PyTorch) under it
            return step_time.timed_fit(models[item], data, steps)

    for item in models:  # trace and warm up
        fit(item, 2)
    for fn in functions.values():
        fn(weights, 0)
        fn(weights, draws)
    times = {item: [] for item in ITEMS}
    step = 2 * draws
    for r in range(rounds):
        shift = r % len(ITEMS)
        for item in ITEMS[shift:] + ITEMS[:shift]:
            if item in models:
                seconds = fit(item, steps) / steps
            else:
                start = time.perf_counter()
                functions[item](weights, step)
                step += draws
                seconds = (time.perf_counter() - start) / draws
            times[item].append(seconds)
    return times


def ratios(times):
    per_round = {
        "draw-gaussian / split-gaussian": ("draw-gaussian", "split-gaussian"),
        "draw-rademacher / split-rademacher": ("draw-rademacher", "split-rademacher"),
        "split-gaussian / plain": ("split-gaussian", "plain"),
        "split-rademacher / plain": ("split-rademacher", "plain"),
        "split-rademacher / split-gaussian": ("split-rademacher", "split-gaussian"),
        "normal / draw-gaussian": ("normal", "draw-gaussian"),
        "draw-gaussian / draw-rademacher": ("draw-gaussian", "draw-rademacher"),
    }
    table = {
        name: [a / b for a, b in zip(times[num], times[den])]
        for name, (num, den) in per_round.items()
    }
    # Sampling's share of the split step, measured inside the step: the
    # split step less the same step without random numbers (`fixed_noise`).
    for distribution in ("gaussian", "rademacher"):
        step = times[f"split-{distribution}"]
        table[f"sampling in the split step, {distribution} "
              f"(1 - split-fixed / split-{distribution})"] = [
            1 - fixed / total for fixed, total in zip(times["split-fixed"], step)]
    table["split-fixed / plain"] = [
        a / b for a, b in zip(times["split-fixed"], times["plain"])]
    return table


def timing(args):
    backend = keras.backend.backend()
    if backend == "torch":
        import torch

        print(f"torch threads: {torch.get_num_threads()}")
    times = measure(args.batch_size, args.steps, args.draws, args.rounds)
    table = ratios(times)
    print(f"\nMLP 784-512-512-10, batch {args.batch_size}, backend {backend}, "
          f"{args.rounds} rounds (medians; min - max over rounds)")
    print("\n| item | ms |\n|---|---|")
    for item in ITEMS:
        values = [t * 1e3 for t in times[item]]
        print(f"| {item} | {statistics.median(values):.2f} "
              f"({min(values):.2f} - {max(values):.2f}) |")
    print("\n| ratio | median | rounds |\n|---|---|---|")
    for name, values in table.items():
        print(f"| {name} | **{statistics.median(values):.3f}** | "
              f"{min(values):.3f} - {max(values):.3f} |")
    path = pathlib.Path(args.output or step_time.RECORDS / (
        f"noise-cost-{backend}.json"))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "machine": step_time.machine(),
        "arguments": vars(args),
        "seconds": times,
        "ratios": table,
    }, indent=2))
    print(f"\nwrote {path}")
    return 0


def accuracy(args):
    """Split S-SGD with Gaussian against Rademacher directions (and SGD)."""
    import _common
    import split_sweep

    import dataclasses

    from keras_ssgd import methods

    # A method of this script's own, added under a new name for the
    # command to run (the table's own methods stay as they are).
    name = "ssgd-split-rademacher"
    base = methods.METHODS["ssgd-split"]
    methods.register(dataclasses.replace(
        base, name=name, description="split S-SGD with Rademacher directions",
        options={**base.options, "noise_distribution": "rademacher"},
    ))
    folder = pathlib.Path(args.accuracy_output)
    results = _common.run(folder, [
        "--model", "mnist1d-cnn", "--seeds", str(args.seeds),
        "--epochs", str(args.epochs), "--steps-per-execution", "8",
        "--hessian-iterations", "0",
        "--method", "sgd",
        "--method", f"ssgd-split:{args.levels}",
        "--method", f"{name}:{args.levels}",
    ], args.quiet)
    by_key = {}
    for run in results["runs"]:
        if run.get("test_accuracy") is not None:
            by_key.setdefault((run["method"], run.get("level")), {})[
                run["seed"]] = run["test_accuracy"]
    sgd = by_key.get(("sgd", None), {})
    lines = ["| level | method | accuracy (%) | vs SGD (pt) | 95% interval "
             "| Rademacher - Gaussian (pt) | 95% interval | Rademacher better on |",
             "|---|---|---|---|---|---|---|---|"]
    for level in sorted({lv for (_, lv) in by_key if lv is not None}):
        gauss = by_key.get(("ssgd-split", level), {})
        for method in ("ssgd-split", name):
            values = by_key.get((method, level), {})
            if not values:
                continue
            accs = list(values.values())
            std = statistics.stdev(accs) if len(accs) > 1 else 0.0
            seeds = sorted(set(values) & set(sgd))
            diff, (low, high), _ = split_sweep.paired(
                [values[s] - sgd[s] for s in seeds])
            cells = [f"{level:g}", method,
                     f"{statistics.mean(accs):.2f} +- {std:.2f}",
                     f"{diff:+.2f}", f"[{low:+.2f}, {high:+.2f}]"]
            if method == name:
                seeds = sorted(set(values) & set(gauss))
                d, (lo, hi), better = split_sweep.paired(
                    [values[s] - gauss[s] for s in seeds])
                cells += [f"{d:+.2f}", f"[{lo:+.2f}, {hi:+.2f}]",
                          f"{better} of {len(seeds)}"]
            else:
                cells += ["", "", ""]
            lines.append("| " + " | ".join(cells) + " |")
    print("\n".join(lines))
    (folder / "noise_cost_accuracy.md").write_text("\n".join(lines) + "\n")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--backend", choices=step_time.BACKENDS, default=None,
                        help="Keras backend (default: KERAS_BACKEND).")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20,
                        help="Training steps per timed fit().")
    parser.add_argument("--draws", type=int, default=20,
                        help="Noise draws per timed item and round.")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--output", default=None,
                        help="The JSON record of the per-round times and "
                        "ratios, with the machine and the versions (default "
                        "experiments/results/benchmarks/noise-cost-"
                        "<backend>.json, committed; `make figures` reads "
                        "it).")
    parser.add_argument("--accuracy", action="store_true",
                        help="Train and compare the distributions instead.")
    parser.add_argument("--levels", default="0.2",
                        help="--accuracy: noise levels (comma-separated).")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--accuracy-output", default="results/noise-cost",
                        help="--accuracy: the ssgd-train folder.")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    for flag in ("batch_size", "steps", "draws", "rounds", "seeds", "epochs"):
        if getattr(args, flag) <= 0:
            parser.error(f"argument --{flag.replace('_', '-')}: must be > 0. "
                         f"Received: {getattr(args, flag)}")
    backend = keras.backend.backend()
    if args.backend is not None and args.backend != backend:
        parser.error(f"argument --backend: Keras was already imported with "
                     f"backend {backend!r}. Received: --backend {args.backend}")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return accuracy(args) if args.accuracy else timing(args)


if __name__ == "__main__":
    sys.exit(main())
