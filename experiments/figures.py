"""`make figures`: the measured figures of README.md, the docs and
experiments/README.md, generated from the committed records under
`experiments/results/`.

A generated figure sits in a block of its Markdown file:

    <!-- figures: NAME -->
    ...what `render(NAME)` gives, rewritten by `make figures`...
    <!-- /figures -->

`python experiments/figures.py` rewrites every block from the records;
`--check` rewrites nothing and exits 1 naming each block that differs, and
each decimal figure of those files (`FILES`) that sits outside a block,
outside a code block, outside a historical part (`<!-- historical -->` ...
`<!-- /historical -->`, figures whose records were not kept, which the
text there says) and outside a part quoted from the paper (`<!-- paper
-->` ... `<!-- /paper -->`), unless `ALLOWED` lists its kind with a reason
(a version, a hyperparameter, a figure of the paper). The test suite runs
the same check.

Only complete seeds count: a seed is in the figures once every run the
folder planned for it has finished, so a run still in progress (or stopped
and resumed) never shows half a seed.

    python experiments/figures.py          # rewrite the blocks
    python experiments/figures.py --check  # what the tests check
"""

import argparse
import json
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = ROOT / "experiments" / "results"
# The pages checked: the README, every page of the docs, and the paper
# reproduction's README (which docs/guides/paper.md includes).
FILES = tuple(
    ["README.md"]
    + sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").rglob("*.md"))
    + ["experiments/README.md"]
)

BLOCK = re.compile(
    r"(?P<open><!-- figures: (?P<name>[\w-]+) -->\n)(?P<body>.*?)"
    r"(?P<close><!-- /figures -->)", re.S)
HISTORICAL = re.compile(r"<!-- historical -->.*?<!-- /historical -->", re.S)
PAPER = re.compile(r"<!-- paper -->.*?<!-- /paper -->", re.S)
# A fenced code block, also indented in a list item.
FENCE = re.compile(r"^[ \t]*(```|~~~).*?^[ \t]*(```|~~~)[^\n]*$", re.S | re.M)
# The doc examples' hidden setup code (`<!-- example: setup ... -->`).
EXAMPLE = re.compile(r"<!--\s*example:.*?-->", re.S)
DECIMAL = re.compile(r"(?<![\w.])[-+]?\d+\.\d+")

# Decimals that are not measured figures, each kind with its reason. A
# decimal is allowed when one of these matches around it on its line.
ALLOWED = (
    (r"\b(TensorFlow|Keras|Python|Horovod|JAX|jax|PyTorch|torch|keras-cv"
     r"|KerasHub|tensorflow-datasets|hadolint|builds)\s+\d+\.\d+(\.\d+)*",
     "a version"),
    (r"[<>=]=\s*\d+\.\d+(\.\d+)*", "a version bound"),
    (r"\b(noise level|level|levels|lr|learning rate|rho|momentum"
     r"|weight decay)\s+\d+\.\d+(,\s*\d+\.\d+)*",
     "a setting (a level, a learning rate), not a measurement"),
    (r"\bat most\s+\d+\.\d+x", "a target, not a measurement"),
)


# Lines on which every decimal is allowed, with the reason.
LINE_ALLOWED = (
    (r"\b(the paper|paper's|[Tt]he paper reports|Table \d|Fig\. ?\d"
     r"|Sung et al)", "a figure quoted from the paper"),
)


def _records(folder):
    """The records of `folder` (its `results.json`) restricted to its
    complete seeds, and those seeds."""
    results = json.loads((folder / "results.json").read_text())
    planned = results["config"]["runs"]
    runs = results["runs"]
    done = {r["key"] for r in runs}
    seeds = sorted({r["seed"] for r in runs})
    complete = [
        s for s in seeds
        if all(key in done for key in planned
               if key.endswith(f"-seed{s}"))
    ]
    return [r for r in runs if r["seed"] in complete], complete, results


def _seeds_text(seeds, planned):
    if not seeds:
        return "no seed finished yet"
    if len(seeds) == 1:
        span = f"seed {seeds[0]}"
    elif seeds == list(range(seeds[0], seeds[-1] + 1)):
        span = f"seeds {seeds[0]}-{seeds[-1]}"
    else:
        span = "seeds " + ", ".join(map(str, seeds))
    if len(seeds) == planned:
        return f"{span} ({planned} seeds)"
    return (f"{span}: {len(seeds)} of the {planned} seeds planned; the run "
            "continues with `--resume` and the figures grow with it")


def comparison(folder, title):
    """A comparison folder as Markdown: the picks at each budget (chosen on
    validation, with K), their validation and test accuracy, and the
    verdict lines, recomputed from the records by the current code."""
    from keras_ssgd.train import selection
    from keras_ssgd.train import verdict

    folder = RESULTS / folder
    records, seeds, results = _records(folder)
    planned = len({int(k.rsplit("-seed", 1)[1])
                   for k in results["config"]["runs"]})
    recipe = results["config"]["recipe"]
    order = results["config"]["runs"]
    lines = [
        f"{title}: {recipe['model']}, {recipe['epochs']} epochs, batch "
        f"{recipe['batch_size']}, SGD momentum {recipe['momentum']:g}, "
        f"{recipe['lr_schedule']} learning rate, weight decay "
        f"{recipe.get('weight_decay', 0):g}; "
        f"{_seeds_text(seeds, planned)}. Record: "
        f"`experiments/results/{folder.name}/`.",
        "",
    ]
    if not records:
        return "\n".join(lines) + "\n"
    primary = next((v["method"] for v in results.get("verdicts", [])
                    if v.get("role") == "primary"), None)
    lines += [
        "| budget | method | passes per step | pick (of K) | validation "
        "accuracy (%) | test accuracy (%) |",
        "|---|---|---|---|---|---|",
    ]
    budgets = verdict.budgets_of(records)
    for budget in budgets:
        for pick in selection.picks(records, budget, order):
            ok = [r for r in pick.records if r.get("status", "ok") == "ok"]
            val = [r["validation_accuracy"] for r in ok]
            test = [r["test_accuracy"] for r in ok]
            setting = " ".join(p for p in (
                "" if pick.level is None else f"level {pick.level:g}",
                "" if pick.lr is None else f"lr {pick.lr:g}") if p)
            diverged = len(pick.records) - len(ok)
            note = f" ({diverged} diverged)" if diverged else ""
            lines.append(
                f"| equal {budget} | {pick.method} | {pick.passes:g} | "
                f"{setting} (of {pick.candidates}) | {_pm(val)} | "
                f"{_pm(test)}{note} |")
    lines += ["", "Verdicts, paired by seed (the first line is the primary "
              "comparison; every other line is adjusted, Holm):", ""]
    lines += [f"- {v['text']}" for v in verdict.verdicts(
        records, primary=primary, order=order)]
    return "\n".join(lines) + "\n"


def configurations(folder, method):
    """Every configuration of `method` in a comparison folder, at each
    budget: its validation and test accuracy over the complete seeds, the
    pick marked. (The full table of every method is the folder's
    `summary.md`.)"""
    from keras_ssgd.train import selection
    from keras_ssgd.train import verdict

    records, seeds, results = _records(RESULTS / folder)
    order = results["config"]["runs"]
    lines = [
        f"{method} at each of its configurations, seeds "
        f"{seeds[0]}-{seeds[-1]} (the pick, chosen on validation, in bold):",
        "",
        "| budget | configuration | validation accuracy (%) | test "
        "accuracy (%) |",
        "|---|---|---|---|",
    ] if records else ["No seed finished yet.", ""]
    for budget in verdict.budgets_of(records):
        found = selection.groups(records, budget, order).get(method, {})
        chosen = next((p.configuration for p in
                       selection.picks(records, budget, order)
                       if p.method == method), None)
        for (level, lr), runs in found.items():
            ok = [r for r in runs if r.get("status", "ok") == "ok"]
            setting = " ".join(p for p in (
                "" if level is None else f"level {level:g}",
                "" if lr is None else f"lr {lr:g}") if p)
            if (level, lr) == chosen:
                setting = f"**{setting}**"
            lines.append(
                f"| equal {budget} | {setting} | "
                f"{_pm([r['validation_accuracy'] for r in ok])} | "
                f"{_pm([r['test_accuracy'] for r in ok])} |")
    return "\n".join(lines) + "\n"


def _pm(values):
    import statistics

    if not values:
        return "-"
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.2f} +- {spread:.2f}"


# The comparison folders, with a short name of their model.
FOLDERS = (
    ("mnist1d-cnn-headline", "the CNN without BatchNorm (10 seeds, K = 4)"),
    ("mnist1d-cnn-bn", "the CNN with BatchNorm (3 seeds, K = 2)"),
    ("mnist1d-mlp", "the MLP (3 seeds, K = 2)"),
    ("mnist1d-lstm", "the LSTM (3 seeds, K = 2)"),
)


def verdict_summary():
    """For every comparison folder: S-SGD's primary line, its line at
    equal passes, and the best-2-pass-against-best-1-pass lines,
    recomputed from the records."""
    from keras_ssgd.train import verdict

    lines = []
    for folder, title in FOLDERS:
        records, seeds, results = _records(RESULTS / folder)
        if not records:
            continue
        order = results["config"]["runs"]
        primary = next((v["method"] for v in results.get("verdicts", [])
                        if v.get("role") == "primary"), None)
        chosen = [
            v for v in verdict.verdicts(records, primary=primary, order=order)
            if v.get("role") == "primary" or v.get("kind") == "best"
            or (v["method"] == "ssgd" and v["budget"] == "passes")
        ]
        lines.append(f"- MNIST-1D, {title}, record "
                     f"`experiments/results/{folder}/`:")
        lines += [f"    - {v['text']}" for v in chosen]
    return "\n".join(lines) + "\n" if lines else "No record yet.\n"


BENCHMARKS = RESULTS / "benchmarks"


def _machine(info):
    """A record's machine in words: processor, cores, device, versions."""
    versions = ", ".join(
        f"{name} {info[key]}" for name, key in (
            ("TensorFlow", "tensorflow"), ("JAX", "jax"),
            ("PyTorch", "torch"), ("Keras", "keras"), ("Python", "python"))
        if info.get(key))
    return (f"{info.get('processor') or 'unknown processor'}, "
            f"{info.get('cpus')} cores, device {info.get('device', 'cpu')}; "
            f"{versions}")


def _benchmark_records(prefix):
    """`(name, record)` of each committed benchmark record `prefix*.json`."""
    return [(path.name, json.loads(path.read_text()))
            for path in sorted(BENCHMARKS.glob(f"{prefix}*.json"))]


def _spread(values, digits=2):
    """`median (min - max)` of per-round values."""
    import statistics

    return (f"{statistics.median(values):.{digits}f} "
            f"({min(values):.{digits}f} - {max(values):.{digits}f})")


def step_time():
    """Step time of S-SGD's forms against the plain Keras step, from every
    `step-time-*.json` record: the median over rounds of the per-round
    ratios (min - max), and the plain step's throughput."""
    lines = []
    for name, record in _benchmark_records("step-time-"):
        config, info = record["config"], record["machine"]
        lines += [
            f"`{name}`: backend {info['backend']}, "
            + ("`jit_compile=True`, " if config.get("jit_compile") else "")
            + f"{config['rounds']} alternating rounds of {config['steps']} "
            f"steps; {_pinning(info)}{_machine(info)}.",
            "",
            "| model | batch | Keras (images/s) | S-SGD / Keras | split / "
            "Keras | level 0 / Keras |",
            "|---|---|---|---|---|---|",
        ]
        for run in record["runs"]:
            rounds = run["ratio_rounds"]
            cells = [_spread(rounds[m]) if m in rounds else "-"
                     for m in ("ssgd", "ssgd_split", "ssgd_level0")]
            lines.append(
                f"| {run['model']} | {run['batch_size']} | "
                f"{run['images_per_second']['keras']:.0f} | "
                + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines) or "No record yet.\n"


def noise_cost():
    """The cost of drawing the noise, from every `noise-cost-*.json`
    record: the per-round ratios' medians (min - max)."""
    lines = []
    for name, record in _benchmark_records("noise-cost-"):
        args, info = record["arguments"], record["machine"]
        lines += _ratio_table(
            f"`{name}`: the MLP 784-512-512-10, batch {args['batch_size']}, "
            f"backend {info['backend']}, {args['rounds']} rounds; "
            f"{_machine(info)}.",
            "| ratio | median (min - max over rounds) |",
            record["ratios"], digits=3)
    return "\n".join(lines) or "No record yet.\n"


def _ratio_table(caption, header, ratios, digits=2):
    """The lines of a record's caption and its table of per-round ratios
    (`name -> values`), each as `median (min - max)`."""
    return [caption, "", header, "|---|---|",
            *(f"| {name} | {_spread(values, digits)} |"
              for name, values in ratios.items()), ""]


def step_profile():
    """Where an S-SGD step's time goes, from every `step-profile-*.json`
    record: each named part's op time per step (summed over threads), for
    Keras's step and S-SGD's."""
    lines = []
    for name, record in _benchmark_records("step-profile-"):
        config, info = record["config"], record["machine"]
        parts = record["parts"]
        (method,) = [m for m in parts if m != "keras"]
        total = sum(parts[method].values()) or 1.0
        lines += [
            f"`{name}`: {config['model']}, batch {config['batch_size']}, "
            f"{config['form']} form, backend {info['backend']}, "
            f"{record['steps']} profiled steps; {_machine(info)}.",
            "",
            "| part | Keras (ms) | S-SGD (ms) | share of S-SGD's op time |",
            "|---|---|---|---|",
        ]
        for part in (*STEP_PARTS, "other"):
            plain = parts["keras"].get(part, 0.0)
            ours = parts[method].get(part, 0.0)
            lines.append(f"| {part} | {plain:.2f} | {ours:.2f} | "
                         f"{ours / total:.0%} |")
        lines += [
            f"| summed op time | {sum(parts['keras'].values()):.2f} | "
            f"{total:.2f} | |",
            f"| wall time of a profiled step | "
            f"{record['wall_ms']['keras']:.2f} | "
            f"{record['wall_ms'][method]:.2f} | |",
            "",
        ]
    return "\n".join(lines) or "No record yet.\n"


def _pinning(info):
    """`on N of M cores, real-time policy P; ` where a run was pinned
    (`taskset`) or given a real-time policy (`chrt`), else nothing."""
    used, policy = info.get("cores_used"), info.get("scheduler", "other")
    parts = []
    if used is not None and used != info.get("cpus"):
        parts.append(f"pinned to {used} of the {info.get('cpus')} cores")
    if policy != "other":
        parts.append(f"real-time policy {policy}")
    return ", ".join(parts) + "; " if parts else ""


def _median_interval(values):
    """The distribution-free 95% interval of the median that
    `step_against.py` prints (its `median_interval`)."""
    sys.path.insert(0, str(ROOT / "experiments" / "benchmarks"))
    import step_against as script

    return script.median_interval(values)


def step_against():
    """The step-time ratios of this package against an earlier commit's,
    measured in one run, from every `step-against-*.json` record: per
    method, each version's ratio to its own Keras step and the per-round
    quotient `this / earlier` (median, min - max, and a distribution-free
    95% interval for the median)."""
    lines = []
    for name, record in _benchmark_records("step-against-"):
        this, earlier = record["rounds"]["this"], record["rounds"]["against"]
        lines += [
            f"`{name}`: {record['model']}, batch {record['batch_size']}, "
            f"backend {record['machine']['backend']}, {len(this)} "
            f"alternating rounds of {record['steps']} steps; commit "
            f"{record['this']['commit'][:7]} against "
            f"{record['against']['commit'][:7]}; "
            + _pinning(record["machine"])
            + f"{_machine(record['machine'])}.",
            "",
            "| method | this / Keras | earlier / Keras | this / earlier "
            "| its 95% interval |",
            "|---|---|---|---|---|",
        ]
        for method in record["methods"]:
            ours = [r[method] / r["keras"] for r in this]
            theirs = [r[method] / r["keras"] for r in earlier]
            quotient = record["quotient_rounds"][method]
            low, high = _median_interval(quotient)
            lines.append(
                f"| {method} | {_spread(ours)} | {_spread(theirs)} | "
                f"{_spread(quotient, 3)} | {low:.3f} - {high:.3f} |")
        lines.append("")
    return "\n".join(lines) or "No record yet.\n"


def vmap_split():
    """The split step as one batched pass against two half-batch passes,
    outside Keras, from every `vmap-split-*.json` record."""
    lines = []
    for name, record in _benchmark_records("vmap-split-"):
        config, info = record["config"], record["machine"]
        lines += _ratio_table(
            f"`{name}`: the MLP 784-512-512-10 written in "
            f"{info['backend']}, batch {config['batch_size']}, "
            f"{config['rounds']} alternating rounds of {config['steps']} "
            f"steps; {_machine(info)}."
            + (f" The two forms' gradients, compared before timing, differ "
               f"by {record['gradient_difference']:.0e} of the largest "
               f"element." if "gradient_difference" in record else ""),
            "| step | / plain step, median (min - max over rounds) |",
            record["ratios"])
    return "\n".join(lines) or "No record yet.\n"


# The parts `experiments/benchmarks/step_profile.py` reports, in step order.
STEP_PARTS = (
    "ssgd_draw", "ssgd_scale", "ssgd_perturb", "ssgd_pass_1", "ssgd_pass_2",
    "ssgd_combine", "ssgd_metrics", "ssgd_update",
)


def hessian_cost():
    """What curvature costs, from every `hessian-cost*.json` record."""
    lines = []
    for name, record in _benchmark_records("hessian-cost"):
        rounds = record["hvp_over_gradient_rounds"]
        model = ("the CNN with BatchNorm" if record["batchnorm"]
                 else "the CNN without BatchNorm")
        lines += [
            f"`{name}`: MNIST-1D, {model}, {record['parameters']} "
            f"parameters, {record['examples']} training signals; "
            f"{_machine(record['machine'])}.",
            "",
            "| measure | value |",
            "|---|---|",
        ]
        lines += [f"| one Hessian-vector product / one gradient, {method} "
                  f"| {_spread(values)} |" for method, values in rounds.items()]
        lines += [
            f"| top eigenvalue (Lanczos, 20 steps) | "
            f"{record['top_eigenvalue']:.2f} |",
            f"| its time, end to end (s) | "
            f"{record['top_eigenvalue_seconds']:.1f} |",
            "",
        ]
    return "\n".join(lines) or "No record yet.\n"


# name -> function of no arguments returning the block's Markdown.
GENERATORS = {
    "headline": lambda: comparison(
        "mnist1d-cnn-headline",
        "MNIST-1D (3500 training, 500 validation, 1000 test signals), the "
        "CNN without BatchNorm, every method with K = 4 configurations at "
        "both budgets"),
    "headline-sgd": lambda: configurations("mnist1d-cnn-headline", "sgd"),
    "cnn-bn": lambda: comparison(
        "mnist1d-cnn-bn",
        "MNIST-1D, the CNN with BatchNorm, K = 2 configurations per method "
        "(SGD two learning rates; S-SGD and weight noise two levels at the "
        "recipe's rate)"),
    "lstm": lambda: comparison(
        "mnist1d-lstm",
        "MNIST-1D, the LSTM classifier, K = 2 configurations per method "
        "(SGD two learning rates; S-SGD and weight noise two levels at the "
        "recipe's rate)"),
    "mlp": lambda: comparison(
        "mnist1d-mlp",
        "MNIST-1D, the MLP, K = 2 configurations per method (SGD two "
        "learning rates; S-SGD and weight noise two levels at the recipe's "
        "rate)"),
    "verdict-summary": verdict_summary,
    "step-time": step_time,
    "noise-cost": noise_cost,
    "step-profile": step_profile,
    "vmap-split": vmap_split,
    "step-against": step_against,
    "hessian-cost": hessian_cost,
}


def render(name):
    """The Markdown of block `name`."""
    if name not in GENERATORS:
        raise KeyError(
            f"Unknown figures block {name!r}; known: {', '.join(GENERATORS)}")
    return GENERATORS[name]()


def update(path, check=False):
    """Rewrites (or, with `check`, compares) the blocks of `path`; returns
    the names of the blocks that differed."""
    text = path.read_text()
    differ = []

    def replace(match):
        body = render(match["name"])
        if body != match["body"]:
            differ.append(match["name"])
        return match["open"] + body + match["close"]

    new = BLOCK.sub(replace, text)
    if not check and new != text:
        path.write_text(new)
    return differ


def untracked(text):
    """`(line number, decimal, line)` of each decimal figure of `text`
    outside generated blocks, code blocks, historical parts and parts quoted
    from the paper that `ALLOWED` does not explain."""
    def blank(match):
        return re.sub(r"[^\n]", " ", match.group(0))

    masked = BLOCK.sub(blank, text)
    masked = HISTORICAL.sub(blank, masked)
    masked = PAPER.sub(blank, masked)
    masked = EXAMPLE.sub(blank, masked)
    masked = FENCE.sub(blank, masked)
    masked = re.sub(r"`[^`\n]*`", blank, masked)  # inline code
    out = []
    for number, line in enumerate(masked.splitlines(), start=1):
        for match in DECIMAL.finditer(line):
            if not _allowed(line, match):
                out.append((number, match.group(0), line.strip()))
    return out


def _allowed(line, match):
    if any(re.search(pattern, line) for pattern, _ in LINE_ALLOWED):
        return True
    return any(
        found.start() <= match.start() and match.end() <= found.end()
        for pattern, _ in ALLOWED for found in re.finditer(pattern, line)
    )


def check_all():
    """The problems `--check` reports, as lines (empty: all good)."""
    problems = []
    for name in FILES:
        path = ROOT / name
        for block in update(path, check=True):
            problems.append(f"{name}: the block {block!r} differs from what "
                            "the records give (run `make figures`)")
        for number, value, line in untracked(path.read_text()):
            problems.append(f"{name}:{number}: the figure {value} has no "
                            f"record (generate it, or move it to the "
                            f"historical appendix): {line}")
    return problems


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="Rewrite nothing; exit 1 if a block differs "
                        "or a figure has no record.")
    args = parser.parse_args(argv)
    if args.check:
        problems = check_all()
        print("\n".join(problems) or "figures: every block matches its "
              "records, and no figure lacks one")
        return 1 if problems else 0
    current = 0
    for name in FILES:
        changed = update(ROOT / name)
        if changed:
            print(f"{name}: {', '.join(changed)} rewritten")
        else:
            current += 1
    print(f"{current} of {len(FILES)} files up to date")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    from keras_ssgd import native_log

    native_log.quiet_tensorflow()  # a command: TensorFlow's start-up lines off
    sys.exit(main())
