"""Would one batched pass make the split step cheaper? Measured outside Keras.

The split form of S-SGD measures the first half of the batch at `W + n`
and the second at `W - n`: two half-batch passes. Batching them into one
computation over the stacked weights `[W + n, W - n]` and the two halves
(`jax.vmap`, `torch.func.vmap`) would run each layer once, with a batched
matrix product, instead of twice. Whether that is cheaper depends on the
backend's batched kernels; this script measures it on the 784-512-512-10
MLP, written directly in JAX or PyTorch (no Keras, a fixed noise, SGD), in
alternating rounds:

- `plain`: one pass over the batch (SGD's step);
- `two-pass`: the split step as the package computes it, two half-batch
  passes at `W + n` and `W - n`, gradients averaged;
- `vmap`: the same step as one batched pass over the stacked weights.

Before timing, the two forms' gradients are computed at the same weights
and compared: they must agree to `TOLERANCE` of the largest element (the
record keeps the difference), or the script stops.

It prints each step's time and the ratios to `plain` (medians over rounds,
with their range) and writes a record beside the other benchmarks.

Usage:

    python experiments/benchmarks/vmap_split.py --backend jax
    python experiments/benchmarks/vmap_split.py --backend torch --rounds 9
"""

import argparse
import json
import os
import pathlib
import platform
import statistics
import sys
import time

import numpy as np

RECORDS = pathlib.Path(__file__).resolve().parents[1] / "results" / "benchmarks"
SIZES = [(784, 512), (512, 512), (512, 10)]


def jax_steps(batch_size):
    """The three steps in JAX, compiled, and their arguments."""
    import jax
    import jax.numpy as jnp

    key = jax.random.key(0)
    weights = [jax.random.normal(jax.random.fold_in(key, i), s) * 0.05
               for i, s in enumerate(SIZES)]
    biases = [jnp.zeros(s[1]) for s in SIZES]
    noise = [jax.random.normal(jax.random.fold_in(key, 10 + i), s) * 0.01
             for i, s in enumerate(SIZES)]
    x = jax.random.normal(key, (batch_size, 784))
    y = jax.random.randint(key, (batch_size,), 0, 10)
    half = batch_size // 2

    def loss(ws, bs, x, y):
        h = x
        for i, (w, b) in enumerate(zip(ws, bs)):
            h = h @ w + b
            if i < len(ws) - 1:
                h = jax.nn.relu(h)
        logp = jax.nn.log_softmax(h)
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], 1))

    grad = jax.grad(loss, argnums=(0, 1))

    def update(ws, bs, gw, gb):
        return ([w - 0.01 * g for w, g in zip(ws, gw)],
                [b - 0.01 * g for b, g in zip(bs, gb)])

    @jax.jit
    def plain(ws, bs, ns, x, y):
        return update(ws, bs, *grad(ws, bs, x, y))

    def two_pass_gradients(ws, bs, ns, x, y):
        g1 = grad([w + n for w, n in zip(ws, ns)], bs, x[:half], y[:half])
        g2 = grad([w - n for w, n in zip(ws, ns)], bs, x[half:], y[half:])
        return [[(a + b) / 2 for a, b in zip(p, q)] for p, q in zip(g1, g2)]

    def batched_gradients(ws, bs, ns, x, y):
        stacked = [jnp.stack([w + n, w - n]) for w, n in zip(ws, ns)]
        gw, gb = jax.vmap(grad, in_axes=(0, None, 0, 0))(
            stacked, bs, x.reshape(2, half, 784), y.reshape(2, half))
        return [g.mean(0) for g in gw], [g.mean(0) for g in gb]

    @jax.jit
    def two_pass(ws, bs, ns, x, y):
        return update(ws, bs, *two_pass_gradients(ws, bs, ns, x, y))

    @jax.jit
    def batched(ws, bs, ns, x, y):
        return update(ws, bs, *batched_gradients(ws, bs, ns, x, y))

    args = (weights, biases, noise, x, y)
    gradients = {
        name: lambda f=f: jax.tree.map(np.asarray, jax.jit(f)(*args))
        for name, f in (("two-pass", two_pass_gradients),
                        ("vmap", batched_gradients))
    }

    def timed(step):
        def run(count):
            out = None
            for _ in range(count):
                out = step(*args)
            jax.block_until_ready(out)
        return run

    return {"plain": timed(plain), "two-pass": timed(two_pass),
            "vmap": timed(batched)}, gradients, {
                "jax": jax.__version__,
                "device": str(jax.devices()[0].device_kind)}


def torch_steps(batch_size):
    """The three steps in PyTorch (eager, `torch.func`), and their
    arguments."""
    import torch
    from torch import func

    generator = torch.Generator().manual_seed(0)
    weights = [torch.randn(s, generator=generator) * 0.05 for s in SIZES]
    biases = [torch.zeros(s[1]) for s in SIZES]
    noise = [torch.randn(s, generator=generator) * 0.01 for s in SIZES]
    x = torch.randn(batch_size, 784, generator=generator)
    y = torch.randint(0, 10, (batch_size,), generator=generator)
    half = batch_size // 2

    def loss(ws, bs, x, y):
        h = x
        for i, (w, b) in enumerate(zip(ws, bs)):
            h = h @ w + b
            if i < len(ws) - 1:
                h = torch.relu(h)
        return torch.nn.functional.cross_entropy(h, y)

    grad = func.grad(loss, argnums=(0, 1))

    def update(ws, bs, gw, gb):
        with torch.no_grad():
            for w, g in zip(ws, gw):
                w.sub_(0.01 * g)
            for b, g in zip(bs, gb):
                b.sub_(0.01 * g)

    def plain():
        update(weights, biases, *grad(weights, biases, x, y))

    def two_pass_gradients():
        g1 = grad([w + n for w, n in zip(weights, noise)], biases,
                  x[:half], y[:half])
        g2 = grad([w - n for w, n in zip(weights, noise)], biases,
                  x[half:], y[half:])
        return [[(a + b) / 2 for a, b in zip(p, q)] for p, q in zip(g1, g2)]

    def batched_gradients():
        stacked = [torch.stack([w + n, w - n]) for w, n in zip(weights, noise)]
        gw, gb = func.vmap(grad, in_dims=(0, None, 0, 0))(
            stacked, biases, x.reshape(2, half, 784), y.reshape(2, half))
        return [g.mean(0) for g in gw], [g.mean(0) for g in gb]

    def two_pass():
        update(weights, biases, *two_pass_gradients())

    def batched():
        update(weights, biases, *batched_gradients())

    def as_numpy(f):
        return lambda: [[g.numpy() for g in part] for part in f()]

    def timed(step):
        def run(count):
            for _ in range(count):
                step()
        return run

    return {"plain": timed(plain), "two-pass": timed(two_pass),
            "vmap": timed(batched)}, {
                "two-pass": as_numpy(two_pass_gradients),
                "vmap": as_numpy(batched_gradients)}, {
                                      "torch": torch.__version__,
                                      "device": "cpu",
                                      "threads": torch.get_num_threads()}


def difference(gradients):
    """The largest difference between the two-pass and the batched step's
    gradients, relative to the largest gradient element, computed at the
    same weights before any timing; a `RuntimeError` past `TOLERANCE`, so
    that the timed steps are known to compute the same step."""
    two_pass, batched = gradients["two-pass"](), gradients["vmap"]()
    pairs = [(a, b) for p, q in zip(two_pass, batched) for a, b in zip(p, q)]
    scale = max(float(np.max(np.abs(a))) for a, _ in pairs)
    worst = max(float(np.max(np.abs(a - b))) for a, b in pairs) / scale
    if not worst <= TOLERANCE:
        raise RuntimeError(
            f"The batched split step's gradients differ from the two-pass "
            f"step's by {worst:.2e} of the largest element (more than "
            f"{TOLERANCE:.0e}): they do not compute the same step."
        )
    return worst


# float32 sums over the batch in another order.
TOLERANCE = 1e-4


def measure(steps, count, rounds):
    """Seconds per step of each, per round, in alternating order."""
    names = list(steps)
    for run in steps.values():  # compile and warm up
        run(3)
    times = {name: [] for name in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            start = time.perf_counter()
            steps[name](count)
            times[name].append((time.perf_counter() - start) / count)
    return times


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("jax", "torch"), required=True)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=30,
                        help="Steps per method and round (default 30).")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--output", default=None,
                        help="The JSON record (default experiments/results/"
                        "benchmarks/vmap-split-<backend>.json).")
    args = parser.parse_args(argv)
    if min(args.batch_size, args.steps, args.rounds) <= 0 or args.batch_size % 2:
        parser.error(
            "--batch-size must be even and > 0, --steps and --rounds > 0. "
            f"Received: --batch-size {args.batch_size}, --steps {args.steps}, "
            f"--rounds {args.rounds}")
    make = jax_steps if args.backend == "jax" else torch_steps
    steps, gradients, versions = make(args.batch_size)
    worst = difference(gradients)
    times = measure(steps, args.steps, args.rounds)
    ratios = {name: [t / p for t, p in zip(times[name], times["plain"])]
              for name in times if name != "plain"}
    print(f"\nMLP 784-512-512-10, batch {args.batch_size}, {args.backend}, "
          f"{args.rounds} rounds of {args.steps} steps")
    print("\n| step | ms (median) | / plain (median, range) |\n|---|---|---|")
    for name, values in times.items():
        ratio = ("1" if name == "plain" else
                 f"{statistics.median(ratios[name]):.2f} "
                 f"({min(ratios[name]):.2f} - {max(ratios[name]):.2f})")
        print(f"| {name} | {statistics.median(values) * 1e3:.2f} | {ratio} |")
    record = {
        "machine": {"platform": platform.platform(),
                    "processor": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                    "backend": args.backend, **versions},
        "config": vars(args), "seconds": times, "ratios": ratios,
        "gradient_difference": worst,
    }
    path = pathlib.Path(args.output or RECORDS / f"vmap-split-{args.backend}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2))
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
