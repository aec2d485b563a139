"""Where the time of an S-SGD step goes, from the backend's own profiler.

The perturbed step names its parts (`keras_ssgd.backends.base.Backend.
scope`): `ssgd_draw` (the random numbers), `ssgd_scale` (the norms and the
scaling to `noise_level * ||W||`), `ssgd_perturb` (`W + n`, `W - n`),
`ssgd_pass_1` and `ssgd_pass_2` (the forward and backward passes),
`ssgd_combine` (the passes' loss and gradients combined), `ssgd_metrics`
(the loss tracker and compiled metrics) and `ssgd_update` (the optimizer's
update, kept only where the loss is finite). This script trains the model
plainly (`keras.Model`) and with S-SGD (`keras_ssgd.wrap`, the full or the
split form), records `--steps` steps of each with the backend's profiler,
and reports the op time per step of each part:

- TensorFlow: `tf.profiler.experimental` (the host plane of the XPlane
  file), ops matched to a part by the name scope in their name;
- JAX: `jax.profiler` (a Perfetto trace) for the time of each XLA operation
  and the optimised HLO dumped by XLA (`--xla_dump_to`) for the named scope
  in each operation's metadata. XLA fuses operations, so a fusion that
  mixes parts counts for the part of its root operation;
- PyTorch: `torch.profiler`, the ranges `torch.profiler.record_function`
  opens for each part.

Op times are summed over threads (an op that runs beside another counts
whole), so a part's share is of the summed op time, not of the wall time;
the step's wall time is printed beside them. `other` is the summed op time
outside the named parts (Keras's own step around them; for the plain step,
all of it).

Usage:

    python experiments/benchmarks/step_profile.py --backend jax --model mlp
    python experiments/benchmarks/step_profile.py --backend torch --model mlp --form split
    python experiments/benchmarks/step_profile.py --backend tensorflow --model transformer --batch-size 32
"""

import argparse
import collections
import glob
import gzip
import json
import os
import pathlib
import re
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import step_time  # noqa: E402  (sets the backend from --backend)

DUMP = None
if __name__ == "__main__" and step_time.keras.backend.backend() == "jax":
    # Must precede XLA's start, at the first compilation.
    DUMP = tempfile.mkdtemp(prefix="ssgd-hlo-")
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "")
        + f" --xla_dump_to={DUMP} --xla_dump_hlo_as_text"
    )

import keras  # noqa: E402

from keras_ssgd import native_log  # noqa: E402

PARTS = (
    "ssgd_draw", "ssgd_scale", "ssgd_perturb", "ssgd_pass_1", "ssgd_pass_2",
    "ssgd_combine", "ssgd_metrics", "ssgd_update",
)
_PART = re.compile("|".join(PARTS))


def part_of(name):
    """The named part in an op's name or scope path, else `"other"`."""
    match = _PART.search(name or "")
    return match.group(0) if match else "other"


def profile(model, data, steps):
    """`{part: microseconds summed over the recorded steps}` and the wall
    seconds of the recorded steps, from the backend's profiler."""
    backend = keras.backend.backend()
    with tempfile.TemporaryDirectory(prefix="ssgd-profile-") as logdir:
        if backend == "torch":
            return _torch(model, data, steps)
        if backend == "jax":
            import jax

            with jax.profiler.trace(logdir, create_perfetto_trace=True):
                wall = step_time.timed_fit(model, data, steps)
            return _jax(logdir), wall
        import tensorflow as tf

        tf.profiler.experimental.start(logdir)
        wall = step_time.timed_fit(model, data, steps)
        tf.profiler.experimental.stop()
        return _tensorflow(logdir), wall


def _torch(model, data, steps):
    import torch

    from keras_ssgd import backends

    backends.current().record_ranges = True

    with torch.profiler.profile(
        activities=[torch.profiler.ProfilerActivity.CPU]
    ) as prof:
        wall = step_time.timed_fit(model, data, steps)
    totals = collections.Counter()
    for event in prof.events():
        if event.name in PARTS:
            totals[event.name] += event.cpu_time_total
        elif event.cpu_parent is None:
            # A top-level operator outside the parts.
            totals["other"] += event.cpu_time_total
    return dict(totals), wall


def _jax(logdir):
    scopes = _hlo_scopes(DUMP)
    (trace,) = glob.glob(f"{logdir}/**/perfetto_trace.json.gz", recursive=True)
    with gzip.open(trace) as f:
        events = json.load(f)
    events = events["traceEvents"] if isinstance(events, dict) else events
    ops = [
        event for event in events
        if event.get("ph") == "X" and "hlo_op" in (event.get("args") or {})
    ]
    totals = collections.Counter()
    for event, seconds in _self_times(ops):
        args = event["args"]
        key = (args.get("hlo_module", ""), args["hlo_op"])
        totals[scopes.get(key, "other")] += seconds
    return dict(totals)


def _self_times(events):
    """`(event, self duration)` pairs: an operation that holds others (a
    conditional's branch, a loop's body) counts only its own time."""
    by_thread = collections.defaultdict(list)
    for event in events:
        by_thread[(event.get("pid"), event.get("tid"))].append(event)
    out = []
    for thread in by_thread.values():
        thread.sort(key=lambda e: (e["ts"], -e["dur"]))
        stack = []  # [event, end, children's time]
        for event in thread:
            while stack and event["ts"] >= stack[-1][1]:
                done = stack.pop()
                out.append((done[0], done[0]["dur"] - done[2]))
            if stack:
                stack[-1][2] += event["dur"]
            stack.append([event, event["ts"] + event["dur"], 0.0])
        out.extend((e[0], e[0]["dur"] - e[2]) for e in stack)
    return out


def _hlo_scopes(dump):
    """`{(module name, instruction name): part}` from the optimised HLO
    text XLA dumped, by the named scope of each instruction's metadata."""
    scopes = {}
    instruction = re.compile(r"^\s*(?:ROOT\s+)?%?([\w.\-]+) = ")
    op_name = re.compile(r'op_name="([^"]*)"')
    for path in glob.glob(f"{dump}/*after_optimizations.txt"):
        text = pathlib.Path(path).read_text()
        header = re.search(r"^HloModule ([\w.\-]+)", text, re.M)
        if header is None:
            continue
        module = header.group(1)
        for line in text.splitlines():
            found = instruction.match(line)
            if not found:
                continue
            name = op_name.search(line)
            scopes[(module, found.group(1))] = part_of(
                name.group(1) if name else ""
            )
    return scopes


def _tensorflow(logdir):
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    ops = []
    for path in glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True):
        space = xplane_pb2.XSpace()
        space.ParseFromString(pathlib.Path(path).read_bytes())
        for plane in space.planes:
            if not plane.name.startswith("/host:CPU"):
                continue
            metadata = plane.event_metadata
            for line in plane.lines:
                # The executor's threads; not the Python thread, nor tf.data.
                if line.name == "python" or line.name.startswith("tf_data"):
                    continue
                for event in line.events:
                    name = metadata[event.metadata_id].name
                    if ":" not in name:  # op events read "scope/op:Type"
                        continue
                    ops.append({
                        "name": name, "pid": plane.id, "tid": line.id,
                        "ts": line.timestamp_ns / 1e3 + event.offset_ps / 1e6,
                        "dur": event.duration_ps / 1e6,
                    })
    totals = collections.Counter()
    for event, microseconds in _self_times(ops):
        totals[part_of(event["name"])] += microseconds
    return dict(totals)


def run(args):
    native_log.quiet_tensorflow()
    data = step_time.make_data(args.model, args.batch_size)
    method = "ssgd_split" if args.form == "split" else "ssgd"
    report = {"machine": step_time.machine(), "config": vars(args),
              "steps": args.steps, "parts": {}, "wall_ms": {}}
    for name in ("keras", method):
        model = step_time.make_model(args.model, name)
        step_time.timed_fit(model, data, 3)  # trace and warm up
        totals, wall = profile(model, data, args.steps)
        report["parts"][name] = {
            k: v / args.steps / 1e3 for k, v in totals.items()
        }
        report["wall_ms"][name] = wall / args.steps * 1e3
    print_table(report, method)
    path = pathlib.Path(args.output or step_time.RECORDS / (
        f"step-profile-{args.model}-{args.form}-{keras.backend.backend()}.json"
    ))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2))
    print(f"\nwrote {path}")


def print_table(report, method):
    config = report["config"]
    print(
        f"\n{config['model']}, batch {config['batch_size']}, "
        f"{keras.backend.backend()}, {method} against keras, "
        f"{report['steps']} profiled steps (op time summed over threads, "
        "ms per step)"
    )
    print("\n| part | keras (ms) | " + method + " (ms) | share |")
    print("|---|---|---|---|")
    parts = report["parts"]
    total = sum(parts[method].values()) or 1.0
    for part in (*PARTS, "other"):
        plain = parts["keras"].get(part, 0.0)
        ours = parts[method].get(part, 0.0)
        print(f"| {part} | {plain:.2f} | {ours:.2f} | {ours / total:.0%} |")
    print(
        f"| summed op time | {sum(parts['keras'].values()):.2f} | "
        f"{total:.2f} | |"
    )
    print(
        f"| wall time of a step | {report['wall_ms']['keras']:.2f} | "
        f"{report['wall_ms'][method]:.2f} | |"
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=step_time.BACKENDS, default=None,
                        help="Keras backend (default: KERAS_BACKEND).")
    parser.add_argument("--model", choices=list(step_time.INPUT_SHAPES),
                        default="mlp")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--form", choices=("full", "split"), default="full")
    parser.add_argument("--steps", type=int, default=20,
                        help="Profiled steps per model (default 20).")
    parser.add_argument("--output", default=None,
                        help="The JSON record (default experiments/results/"
                        "benchmarks/step-profile-<model>-<form>-<backend>.json).")
    args = parser.parse_args(argv)
    if args.steps <= 0 or args.batch_size <= 0:
        parser.error(
            "arguments --steps and --batch-size must be > 0. Received: "
            f"--steps {args.steps}, --batch-size {args.batch_size}"
        )
    started = time.perf_counter()
    run(args)
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
