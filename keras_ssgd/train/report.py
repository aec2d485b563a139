"""What an `ssgd-train` sweep shows once it has trained: the tables,
summary and plots of its results (the line it shows while it trains is
`progress.SweepProgress`)."""

import math
import statistics

from keras_ssgd.methods import REFERENCE


# What `summarize` reads from each record; a record without them (from
# another tool) is refused on resume.
RECORD_FIELDS = ("key", "method", "level", "level_name", "seed", "status",
                 "seconds", "test_accuracy", "train_loss")


def summarize(records, methods, order=None):
    """One row per configuration: mean and spread over seeds.

    Args:
        records: run records (see `runner.train`).
        methods: the `registry.METHODS` mapping, for passes per step.
        order: the run keys in the plan's order (ties between
            configurations go to the first), or None.

    Returns:
        A list of dicts with `method`, `level`, `level_name`, `lr`,
        `epochs`, `budgets`, `runs`, `diverged`, `validation_accuracy_mean`
        and `_std` (None without a validation set), `test_accuracy_mean`,
        `test_accuracy_std`, `train_loss_mean`, `seconds_mean`,
        `time_vs_sgd`, `passes_vs_sgd`, `picked` (the budgets for which
        this configuration is its method's pick, chosen on validation:
        `selection`) and `candidates` (the configurations of its method
        in its budget), one per (method, level, lr, epochs) (an
        equal-passes run of a one-pass method trains more epochs), sorted
        by method, level, learning rate and epochs. `time_vs_sgd` is
        against SGD at the recipe's epochs.
    """
    from keras_ssgd.train import selection

    chosen = {}
    for budget in selection.BUDGETS:
        for pick in selection.picks(records, budget, order):
            chosen.setdefault(
                (pick.method, pick.level, pick.lr,
                 pick.records[0].get("epochs")), []
            ).append((budget, pick.candidates))
    groups = {}
    for r in records:
        groups.setdefault(
            (r["method"], r["level"], r.get("lr"), r.get("epochs")), []
        ).append(r)
    order = list(methods)
    sgd_seconds = [
        r["seconds"] for (method, _, _, _), runs in groups.items()
        if method == REFERENCE for r in runs
        if r["status"] == "ok" and "epochs" in r.get("budgets", ["epochs"])
    ]
    sgd_time = statistics.mean(sgd_seconds) if sgd_seconds else None
    rows = []
    for (method, level, lr, epochs), runs in groups.items():
        ok = [r for r in runs if r["status"] == "ok"]
        accuracies = [r["test_accuracy"] for r in ok]
        validation = [r.get("validation_accuracy") for r in ok]
        seconds = statistics.mean(r["seconds"] for r in runs)
        picked = chosen.get((method, level, lr, epochs), [])
        rows.append({
            "method": method,
            "level_name": runs[0]["level_name"],
            "level": level,
            "lr": lr,
            "epochs": epochs,
            "picked": [budget for budget, _ in picked],
            "candidates": max([k for _, k in picked], default=None),
            "validation_accuracy_mean": _mean(validation),
            "validation_accuracy_std": _std(validation),
            "budgets": sorted({b for r in runs
                               for b in r.get("budgets", ["epochs"])}),
            "runs": len(runs),
            "diverged": len(runs) - len(ok),
            "seeds": sorted(r["seed"] for r in runs),
            "test_accuracy_mean": _mean(accuracies),
            "test_accuracy_std": _std(accuracies),
            "train_loss_mean": _mean([r["train_loss"] for r in ok]),
            "hessian_top_mean": _mean([r.get("hessian_top") for r in ok]),
            "hessian_top_std": _std([r.get("hessian_top") for r in ok]),
            "seconds_mean": seconds,
            "time_vs_sgd": seconds / sgd_time if sgd_time else None,
            # Per step, averaged over a phase plan's epochs where the
            # records carry it (older records: the method's own passes).
            "passes_vs_sgd": _mean([
                r.get("passes_per_step", methods[method].passes)
                for r in runs
            ]),
        })
    rows.sort(key=lambda row: (order.index(row["method"]), row["level"] or 0,
                               row["lr"] or 0, row["epochs"] or 0))
    return rows


def table(rows):
    """The summary as Markdown table lines (also readable on a terminal).

    Where the runs differ in their budget (an equal-passes comparison),
    the table says each row's epochs and budget: `equal epochs`, `equal
    passes` or both. Where they have learning rates of their own, a column
    says each row's; where a validation set was held out, a column gives
    its accuracy, and `pick` marks each method's configuration chosen on
    it (per budget).
    """
    budgets = any(row.get("budgets", ["epochs"]) != ["epochs"]
                  for row in rows)
    rates = len({row.get("lr") for row in rows} - {None}) > 1
    validation = any(row.get("validation_accuracy_mean") is not None
                     for row in rows)
    picks = any(row.get("candidates") and row["candidates"] > 1
                for row in rows)
    head = "| method | level |" + (" lr |" if rates else "") + (
        " epochs | budget |" if budgets else "") + (
        " validation accuracy (%) |" if validation else "") + (
        " test accuracy (%) | seeds |") + (" pick |" if picks else "") + (
        " train loss (clean W) | top Hessian eigenvalue | time / run (s) | "
        "time vs SGD | passes vs SGD |")
    lines = [head, "|" + "---|" * head.count(" |")]
    words = {"epochs": "equal epochs", "passes": "equal passes"}
    for row in rows:
        level = (
            "-" if row["level"] is None
            else f"{row['level_name']} {row['level']:g}"
        )
        if row["test_accuracy_mean"] is None:
            accuracy = "diverged"
        else:
            accuracy = (
                f"{row['test_accuracy_mean']:.2f} +- "
                f"{row['test_accuracy_std']:.2f}"
            )
        if row["diverged"]:
            accuracy += f" ({row['diverged']}/{row['runs']} diverged)"
        cells = [row["method"], level]
        if rates:
            cells.append(_fmt(row.get("lr"), "g"))
        if budgets:
            cells += [_fmt(row.get("epochs"), "d"),
                      ", ".join(words[b] for b in row["budgets"])]
        if validation:
            cells.append(_pm2(row.get("validation_accuracy_mean"),
                              row.get("validation_accuracy_std")))
        cells += [accuracy, str(row["runs"])]
        if picks:
            cells.append(
                "pick of " + str(row["candidates"]) + (
                    " (" + ", ".join(words[b] for b in row["picked"]) + ")"
                    if budgets else "")
                if row.get("picked") else "")
        cells += [
            _fmt(row["train_loss_mean"], ".4f"),
            _pm(row["hessian_top_mean"], row["hessian_top_std"]),
            f"{row['seconds_mean']:.1f}", _fmt(row["time_vs_sgd"], ".2f"),
            f"{row['passes_vs_sgd']:.3g}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def picks_table(verdicts):
    """The picks the verdict lines compare, as Markdown table lines: per
    budget, each method's chosen configuration, how many it was chosen
    from, its validation and test accuracy (empty without picks)."""
    seen, lines = set(), []
    for v in verdicts:
        if v.get("kind") == "best":
            continue
        for side in ("against", "method"):
            prefix = "against_" if side == "against" else ""
            key = (v[side], v.get(prefix + "level"), v.get(prefix + "lr"),
                   v.get("budget"))
            if key in seen:
                continue
            seen.add(key)
            lines.append(key + (v.get(prefix + "candidates"),))
    if not lines:
        return []
    out = ["| budget | method | pick | chosen from |",
           "|---|---|---|---|"]
    for method, level, lr, budget, candidates in lines:
        pick = " ".join(
            part for part in (
                "" if level is None else f"level {level:g}",
                "" if lr is None else f"lr {lr:g}") if part) or "-"
        out.append(f"| {'equal ' + budget if budget else 'epochs'} | "
                   f"{method} | {pick} | {candidates or 1} |")
    return out


# What summary.md says of runs on the user's dataset objects.
USER_ORDER_NOTE = (
    "Data order: the user's dataset objects (data_order user), read as "
    "they are; ssgd-train does not reshuffle them by seed. The function "
    "that makes them is called again for each run after the run's seed is "
    "set, so every method of a seed sees the same order if the objects' "
    "order depends on nothing but that seed."
)


def budget_line(recipe):
    """What every method got the same of, in words (`recipe`: the JSON form
    of `runner.Config`; recipes saved before budgets read as equal
    epochs)."""
    budget = recipe.get("budget") or "epochs"
    epochs = recipe.get("epochs")
    if budget == "epochs":
        return (f"Budget: equal epochs ({epochs} for every method; a "
                "two-pass method, S-SGD, SAM or ASAM, costs twice SGD).")
    passes = ("equal passes (every method got the forward/backward passes "
              "of the costliest one compared: a one-pass method trained "
              "more epochs, its learning-rate schedule stretched)")
    if budget == "passes":
        return f"Budget: {passes}."
    return (f"Budget: both, equal epochs ({epochs}) and {passes}; a "
            "verdict at each.")


def summary_markdown(config, rows, verdicts=None):
    """`summary.md`: the recipe, the table, then the verdict lines.

    `verdicts` is the list `verdict.verdicts` returns (none: no section).
    """
    from keras_ssgd.train import verdict as verdict_lib

    recipe = ", ".join(f"{k} {v}" for k, v in config.items() if v not in (None, [], ()))
    return "\n".join(
        ["# ssgd-train results", "", f"Recipe: {recipe}.", "",
         budget_line(config), "",
         "Validation and test accuracy: mean +- sample standard deviation "
         "over seeds; train loss: cross-entropy of the final clean weights "
         "on the training set, without augmentation. Each method's pick "
         "is its configuration with the best mean validation accuracy; "
         "the test set is read only to report.", ""]
        + ([USER_ORDER_NOTE, ""] if config.get("data_order") == "user"
           else [])
        + table(rows)
        + (["", "## Verdict against SGD", "",
            verdict_lib.explanation(), ""]
           + picks_table(verdicts) + [""]
           + [f"- {v['text']}" for v in verdicts]
           if verdicts else [])
    ) + "\n"


def plot(rows, path, title="", verdicts=None):
    """Test accuracy against level, one line per method, SGD as a band.

    The paper's Fig. 3 style: error bars are one standard deviation over
    seeds. Methods without a level (SGD) are drawn as a horizontal line with
    a shaded +- one standard deviation band. `verdicts` (from
    `verdict.verdicts`), if given, are written under the axes, one line
    each.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    notes = [v["text"] for v in verdicts or ()]
    note_height = 0.18 * (len(notes) + 1) if notes else 0.0
    fig, ax = plt.subplots(figsize=(6.4 + 1.6 * bool(notes), 4.2 + note_height))
    by_method = {}
    for row in rows:
        if row["test_accuracy_mean"] is not None:
            name = row["method"]
            if "epochs" not in row.get("budgets", ["epochs"]):
                name += f", {row['epochs']} epochs"  # an equal-passes run
            by_method.setdefault(name, []).append(row)
    levels = [r["level"] for r in rows if r["level"] is not None]
    for method, method_rows in by_method.items():
        if method_rows[0]["level"] is None:
            row = method_rows[0]
            mean, std = row["test_accuracy_mean"], row["test_accuracy_std"]
            stretched = "epochs" not in row.get("budgets", ["epochs"])
            ax.axhline(mean, color="gray" if stretched else "black",
                       linestyle=":" if stretched else "--",
                       label=method.upper() if not stretched else method)
            if levels and not stretched:
                ax.axhspan(mean - std, mean + std, color="gray", alpha=0.2)
            continue
        method_rows.sort(key=lambda r: r["level"])
        ax.errorbar(
            [r["level"] for r in method_rows],
            [r["test_accuracy_mean"] for r in method_rows],
            yerr=[r["test_accuracy_std"] for r in method_rows],
            marker="o", capsize=3,
            label=f"{method} ({method_rows[0]['level_name']})",
        )
    ax.set_xlabel("level (noise level, drop rate or SAM radius)")
    ax.set_ylabel("test accuracy (%)")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    if by_method:
        ax.legend(fontsize="small")
    else:
        ax.text(0.5, 0.5, "every run diverged", ha="center",
                transform=ax.transAxes)
    if notes:
        bottom = note_height / (4.2 + note_height)
        fig.text(
            0.01, 0.01,
            "Paired by seed, 95% t interval (pt):\n" + "\n".join(notes),
            fontsize="x-small", family="monospace", va="bottom",
        )
        fig.tight_layout(rect=(0, bottom, 1, 1))
    else:
        fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def curve_picks(records, order=None):
    """The picks at equal epochs whose runs kept a loss history."""
    from keras_ssgd.train import selection

    return [p for p in selection.picks(records, "epochs", order)
            if any(r.get("history", {}).get("loss") for r in p.records)]


def plot_curves(records, path, title="", order=None):
    """Learning curves of each method's pick at equal epochs: the training
    loss per epoch and, where the runs evaluated every epoch
    (`--eval-every-epoch`), the validation accuracy, as the mean over
    seeds with a band of one standard deviation. Drawn from the records'
    histories, so a finished folder can be drawn again; the test set is
    not read. Returns whether anything was drawn.
    """
    import matplotlib
    import numpy as np

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    picks = curve_picks(records, order)
    if not picks:
        return False
    panels = [("loss", "training loss (at the perturbed weights)")]
    if any("val_accuracy" in r.get("history", {})
           for p in picks for r in p.records):
        panels.append(("val_accuracy", "validation accuracy"))
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.8),
                             squeeze=False)
    for ax, (key, label) in zip(axes[0], panels):
        for pick in picks:
            curves = [r["history"][key] for r in pick.records
                      if r.get("status", "ok") == "ok"
                      and r.get("history", {}).get(key)]
            if not curves:
                continue
            length = min(len(c) for c in curves)
            values = np.array([[np.nan if v is None else v for v in c[:length]]
                               for c in curves], dtype=float)
            if key == "val_accuracy":
                values = 100.0 * values
            mean, std = np.nanmean(values, axis=0), np.nanstd(values, axis=0)
            epochs = np.arange(1, length + 1)
            line, = ax.plot(epochs, mean, label=f"{pick.name()} "
                            f"({len(curves)} seeds)")
            ax.fill_between(epochs, mean - std, mean + std,
                            color=line.get_color(), alpha=0.2)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label + (" (%)" if key == "val_accuracy" else ""))
        if key == "loss":
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize="x-small")
    if title:
        fig.suptitle(title + ": each method's pick, mean +- 1 sd over seeds",
                     fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def _mean(values):
    values = [v for v in values if v is not None]
    return statistics.mean(values) if values else None


def _std(values):
    values = [v for v in values if v is not None]
    return statistics.stdev(values) if len(values) > 1 else 0.0 if values else None


def _pm2(mean, std):
    if mean is None:
        return "-"
    return f"{mean:.2f} +- {std:.2f}"


def _pm(mean, std):
    if mean is None:
        return "-"
    return f"{mean:.3g} +- {std:.2g}"


def _fmt(value, spec):
    return "-" if value is None or not math.isfinite(value) else format(value, spec)

