"""S-SGD's step-time ratios on this checkout against another commit's, in
one run.

`step_time.py` measures each method's step time against Keras's own step in
one process. Whether a change made the step slower is a question about two
versions of the package, and two separate runs of `step_time.py` would
compare them across the machine's drift (these machines are shared). This
script answers it in one run:

- two worker processes time the same model, one importing this checkout's
  `keras_ssgd`, the other the package of a commit (`--against REF`,
  extracted with `git archive` into a temporary folder); each builds its
  models once and warms them up;
- the rounds alternate between the two workers (which goes first rotates
  every round), and within a worker the methods' order rotates too; only
  one worker runs at a time;
- per round, each version's ratio to its own Keras step, and their
  quotient `this / REF`: the change's effect on the ratio (1.00 is no
  change), reported as the median over rounds with a distribution-free
  95% interval for it (order statistics).

The record (`experiments/results/benchmarks/step-against-<model>-<backend>
.json` by default) holds every round's times, both versions' commits, the
machine and the versions; `make figures` reads it.

On a shared machine TensorFlow's rounds vary the most; pinned to one core
at a real-time priority (`chrt -f 50 taskset -c 1 python ...`, as
`experiments/README.md` times TensorFlow) they agree far better. The record
keeps the cores used and the scheduling policy.

Usage:

    python experiments/benchmarks/step_against.py --against c180813^ --backend jax
    chrt -f 50 taskset -c 1 python experiments/benchmarks/step_against.py --against c180813^ --backend tensorflow
    python experiments/benchmarks/step_against.py --against main --backend torch --model mlp --batch-size 128 --rounds 9
"""

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
RECORDS = ROOT / "experiments" / "results" / "benchmarks"
BACKENDS = ("tensorflow", "jax", "torch")
METHODS = ("ssgd", "ssgd_split", "ssgd_level0")
MODELS = ("resnet20", "mlp", "mnist1d-cnn", "mnist1d-cnn-bn", "transformer")
# The lines of the workers' protocol on stdout (Keras may print too).
READY, TIMES = "STEP-AGAINST-READY ", "STEP-AGAINST-TIMES "


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--against", required=False, metavar="REF",
        help="The commit (any git revision) whose package is timed against "
        "this checkout's.",
    )
    parser.add_argument("--backend", choices=BACKENDS, default=None,
                        help="Keras backend (default: KERAS_BACKEND).")
    parser.add_argument("--model", choices=MODELS, default="resnet20",
                        help="Model to time (default resnet20).")
    parser.add_argument("--batch-size", type=int, default=128,
                        help="Batch size (default 128).")
    parser.add_argument(
        "--methods", nargs="+", choices=METHODS, default=["ssgd", "ssgd_split"],
        metavar="METHOD",
        help="Methods timed against keras (default ssgd ssgd_split).",
    )
    parser.add_argument("--steps", type=int, default=5,
                        help="Steps timed per method and round (default 5).")
    parser.add_argument("--rounds", type=int, default=7,
                        help="Alternating rounds (default 7).")
    parser.add_argument(
        "--output", default=None,
        help="The JSON record (default experiments/results/benchmarks/"
        "step-against-<model>-<backend>.json).",
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for flag in ("steps", "rounds", "batch_size"):
        if getattr(args, flag) <= 0:
            parser.error(
                f"argument --{flag.replace('_', '-')}: must be > 0. "
                f"Received: {getattr(args, flag)}"
            )
    if not args.serve and not args.against:
        parser.error("the following arguments are required: --against")
    return args


# The worker: one version of the package, its models warm.


def serve(args):
    """Builds the models with the `keras_ssgd` on `sys.path` (the driver
    sets PYTHONPATH), then times one round per `ROUND <shift>` line of
    stdin."""
    sys.path.insert(0, str(HERE))
    import keras_ssgd
    import step_time

    methods = ["keras", *args.methods]
    data = step_time.make_data(args.model, args.batch_size)
    models = {m: step_time.make_model(args.model, m) for m in methods}
    for model in models.values():
        step_time.timed_fit(model, data, 2)
    print(READY + json.dumps({
        "package": keras_ssgd.__file__, "machine": step_time.machine(),
    }), flush=True)
    for line in sys.stdin:
        shift = int(line.split()[1]) % len(methods)
        order = methods[shift:] + methods[:shift]
        seconds = {
            m: step_time.timed_fit(models[m], data, args.steps) / args.steps
            for m in order
        }
        print(TIMES + json.dumps(seconds), flush=True)


class Worker:
    """A `--serve` process importing the package under `root`."""

    def __init__(self, root, args):
        self.root = pathlib.Path(root)
        command = [
            sys.executable, str(pathlib.Path(__file__).resolve()), "--serve",
            "--model", args.model, "--batch-size", str(args.batch_size),
            "--steps", str(args.steps), "--methods", *args.methods,
        ]
        env = dict(os.environ, PYTHONPATH=str(self.root),
                   KERAS_BACKEND=args.backend or os.environ.get(
                       "KERAS_BACKEND", "tensorflow"))
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
            text=True, cwd=self.root,
        )
        self.info = json.loads(self._read(READY))
        package = pathlib.Path(self.info["package"]).resolve()
        if self.root.resolve() not in package.parents:
            self.close()
            raise RuntimeError(
                f"The worker for {self.root} imported keras_ssgd from "
                f"{package}: an installed copy shadows PYTHONPATH."
            )

    def _read(self, prefix):
        for line in self.process.stdout:
            if line.startswith(prefix):
                return line[len(prefix):]
        raise RuntimeError(
            f"The worker for {self.root} ended (exit code "
            f"{self.process.wait()}) before it answered."
        )

    def round(self, shift):
        self.process.stdin.write(f"ROUND {shift}\n")
        self.process.stdin.flush()
        return json.loads(self._read(TIMES))

    def close(self):
        if self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait()


def commit_of(ref):
    """The full commit id of `ref` (a `ValueError` naming it if git does not
    know it)."""
    result = subprocess.run(
        ["git", "rev-parse", "--verify", f"{ref}^{{commit}}"], cwd=ROOT,
        capture_output=True, text=True,
    )
    if result.returncode != 0:
        raise ValueError(
            f"Argument `--against` must be a commit of this repository. "
            f"Received: --against {ref!r} ({result.stderr.strip()})"
        )
    return result.stdout.strip()


def extract(commit, folder):
    """The package `keras_ssgd/` of `commit`, written under `folder`."""
    archive = subprocess.run(
        ["git", "archive", commit, "keras_ssgd"], cwd=ROOT,
        capture_output=True, check=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)


def ratios(rounds, method):
    """Per round: the method's step time over that version's Keras step."""
    return [r[method] / r["keras"] for r in rounds]


def median_interval(values, confidence=0.95):
    """A distribution-free interval for the median of `values` (order
    statistics: the number of values below the median is binomial, n and
    1/2). Returns `(low, high)`; with fewer than 6 values it is their range,
    which then covers the median with less than `confidence`."""
    from scipy import stats

    ordered = sorted(values)
    n = len(ordered)
    k = int(stats.binom.ppf((1 - confidence) / 2, n, 0.5))
    if k < 1:
        return ordered[0], ordered[-1]
    return ordered[k - 1], ordered[n - k]


def summary(record):
    """The lines printed at the end: per method, each version's median
    ratio and the median of the per-round quotients."""
    this, ref = record["rounds"]["this"], record["rounds"]["against"]
    lines = [
        f"{record['model']}, batch {record['batch_size']}, backend "
        f"{record['machine']['backend']}, {len(this)} rounds of "
        f"{record['steps']} steps; this checkout against "
        f"{record['against']['commit'][:7]}",
        f"{'method':<13}{'this / keras':>14}{'ref / keras':>13}"
        f"{'this / ref':>12}{'95% interval':>18}",
    ]
    for method in record["methods"]:
        quotient = record["quotient_rounds"][method]
        low, high = median_interval(quotient)
        lines.append(
            f"{method:<13}{statistics.median(ratios(this, method)):>14.3f}"
            f"{statistics.median(ratios(ref, method)):>13.3f}"
            f"{statistics.median(quotient):>12.3f}"
            f"{f'[{low:.3f}, {high:.3f}]':>18}"
        )
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    if args.serve:
        serve(args)
        return
    commit = commit_of(args.against)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT,
                          capture_output=True, text=True).stdout.strip()
    dirty = bool(subprocess.run(
        ["git", "status", "--porcelain", "keras_ssgd"], cwd=ROOT,
        capture_output=True, text=True).stdout.strip())
    with tempfile.TemporaryDirectory() as folder:
        extract(commit, folder)
        workers = {"this": Worker(ROOT, args), "against": Worker(folder, args)}
        try:
            rounds = {name: [] for name in workers}
            names = list(workers)
            for r in range(args.rounds):
                order = names if r % 2 == 0 else names[::-1]
                for name in order:
                    rounds[name].append(workers[name].round(r))
        finally:
            for worker in workers.values():
                worker.close()
    record = {
        "model": args.model, "batch_size": args.batch_size,
        "steps": args.steps, "methods": args.methods,
        "this": {"commit": head, "uncommitted_changes": dirty},
        "against": {"ref": args.against, "commit": commit},
        "machine": workers["this"].info["machine"],
        "rounds": rounds,
        "quotient_rounds": {
            m: [a / b for a, b in zip(ratios(rounds["this"], m),
                                      ratios(rounds["against"], m))]
            for m in args.methods
        },
    }
    print(summary(record))
    path = pathlib.Path(args.output or RECORDS / (
        f"step-against-{args.model}-{record['machine']['backend']}.json"))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2))
    print(f"\nWrote {path}")


if __name__ == "__main__":
    main()
