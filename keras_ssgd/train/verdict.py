"""The verdict under the table: each method's pick against SGD's pick,
paired by seed, with one primary comparison and the rest corrected.

Choose on validation, report on test (`selection`): a method given
several configurations (levels times learning rates) is represented by
its pick, the configuration with the best mean validation accuracy; SGD,
given several learning rates, too. The test set is read only to report.

A seed fixes the initial weights and the data order, the same for every
method, so the runs of one seed are a matched pair: the difference in test
accuracy between a method's pick and SGD's pick on the same seed removes
the part of the spread that comes from the seed. For each pick the verdict
is

- the per-seed differences `d_i = acc(pick, seed i) - acc(sgd, seed i)`,
  in accuracy points, over the seeds where both runs finished (a diverged
  run has no accuracy: its seed is left out and counted);
- their mean `m` and sample standard deviation `s` (n - 1 in the
  denominator);
- the paired t test of the differences (`scipy.stats.ttest_1samp`), its
  p-value and Student t interval, `m +- t(1 - a/2, n - 1) * s / sqrt(n)`
  (read it as a guide, not a proof: few seeds cannot check that the
  differences are roughly normal);
- how many seeds were better (`d_i > 0`), worse and tied.

One comparison is primary: the first method other than SGD, against SGD,
at equal epochs (`primary` names another). It is read at the 95% level,
unadjusted. Every other line of the run folder, the picks against SGD of
both budgets and the best-against-best lines, is one family, corrected by
Holm's step-down procedure (`multiple.holm`): its p-value is adjusted, its
interval is at the level of its Holm step (`1 - 0.05 / (m - i + 1)`), and
it says "adjusted (Holm, m = N)". A line with no spread (all differences
equal) or one seed gives no interval: it counts in m with p = 1 and is
never better or worse.

Where runs of both budgets were made (`ssgd-train --budget both`), each
method gets a verdict at equal epochs and one at equal passes, and each
budget ends with the best two-pass pick against the best one-pass pick
(`best_against_cheap`), both chosen on validation, so that the test
interval between them is not biased by the choice.
"""

import math

from scipy import stats

from keras_ssgd.methods import REFERENCE
from keras_ssgd.train import multiple
from keras_ssgd.train import selection

CONFIDENCE = 0.95

# The verdict's words.
BETTER = "better"
WORSE = "worse"
NO_DIFFERENCE = "no difference shown"
NO_INTERVAL = "no interval (all differences equal)"


def paired_interval(differences, confidence=CONFIDENCE):
    """Mean, t interval and counts of paired differences.

    Args:
        differences: sequence of finite numbers (method minus reference,
            one per seed).
        confidence: float in (0, 1). Defaults to `0.95`.

    Returns:
        A dict: `n`, `mean`, `std` (sample, n - 1), `low` and `high` (the
        t interval with n - 1 degrees of freedom; `None` when n < 2),
        `dof` and `p_value` (the two-sided paired t test; `None` when
        n < 2), `better`, `worse`, `tied` (seed counts)
        and `verdict`: `"better"` or `"worse"` when the interval excludes
        0, else `"no difference shown"`. When every difference is the same
        (no spread) there is no interval: `low` and `high` are `None`,
        `p_value` is 1 (it counts so in a correction) and `verdict` is
        `"no interval (all differences equal)"`.

    Example:

    >>> v = paired_interval([2.0, 3.5, 1.8, 4.1, 3.1])
    >>> round(v["low"], 2), round(v["high"], 2), v["verdict"]
    (1.68, 4.12, 'better')

    Reference:
    - Student's paired t test and interval, as SciPy computes them:
      `scipy.stats.ttest_1samp(differences, 0).confidence_interval(0.95)`
      (the same as `scipy.stats.ttest_rel` on the two sides).
    """
    values = [float(d) for d in differences]
    if not all(math.isfinite(d) for d in values):
        raise ValueError(
            "Argument `differences` must hold finite numbers. Received: "
            f"differences={list(differences)!r}"
        )
    if not 0 < confidence < 1:
        raise ValueError(
            "Argument `confidence` must be in (0, 1). Received: "
            f"confidence={confidence!r}"
        )
    n = len(values)
    result = {
        "n": n,
        "mean": None, "std": None, "low": None, "high": None, "dof": None,
        "p_value": None,
        "confidence": confidence,
        "better": sum(d > 0 for d in values),
        "worse": sum(d < 0 for d in values),
        "tied": sum(d == 0 for d in values),
        "verdict": NO_DIFFERENCE,
    }
    if n == 0:
        return result
    mean = math.fsum(values) / n
    result["mean"] = mean
    if n < 2:
        return result
    std = math.sqrt(math.fsum((d - mean) ** 2 for d in values) / (n - 1))
    if std == 0:  # every seed gave the same difference: no interval
        result.update(std=0.0, dof=n - 1, p_value=1.0, verdict=NO_INTERVAL)
        return result
    # The paired t test is the one-sample test of the differences.
    test = stats.ttest_1samp(values, 0.0)
    low, high = test.confidence_interval(confidence)
    p_value = float(test.pvalue)
    result.update(std=std, low=float(low), high=float(high), dof=n - 1,
                  p_value=p_value)
    if low > 0:
        result["verdict"] = BETTER
    elif high < 0:
        result["verdict"] = WORSE
    return result


def verdicts(records, reference=REFERENCE, confidence=CONFIDENCE,
             primary=None, order=None):
    """The verdict lines of a run folder: each method's pick against the
    reference's pick, paired by seed, per budget; then, per budget, the
    best two-pass pick against the best one-pass pick; one line primary,
    the others adjusted together (Holm).

    A record belongs to the budgets it lists in `budgets` (`"epochs"`:
    every method trained the recipe's epochs; `"passes"`: every method got
    the same forward/backward passes); records without the field belong to
    `"epochs"`. Where the records hold another budget than equal epochs, each
    line names its budget.

    Args:
        records: run records (`key`, `method`, `level`, `level_name`,
            `seed`, `status`, `test_accuracy`, and `lr`,
            `validation_accuracy`, `budgets` and `passes_per_step` where
            known; see `runner.train`).
        reference: the method compared against. Defaults to `"sgd"`.
        confidence: float, the level of the primary line; the family is
            corrected at `1 - confidence`. Defaults to `0.95`.
        primary: the method of the primary comparison (against the
            reference, at the first budget), or None for the first method
            other than the reference in the order given.
        order: the run keys in the plan's order (ties in a pick go to the
            configuration given first), or None for the records' order.

    Returns:
        A list of dicts, per budget in the order the methods first appear
        (the reference left out): `method`, `level`, `level_name`, `lr`,
        `candidates` (configurations the pick was chosen from),
        `validation` (the pick's mean validation accuracy), `against`,
        `against_level`, `against_lr`, `budget` (`None` where only equal
        epochs ran), `seeds`, `differences` (points, one per paired seed),
        `unpaired` (seeds of either side left out), the fields of
        `paired_interval`, `role` (`"primary"` or `"adjusted"`), for an
        adjusted line `m`, `step` and `p_adjusted`, and `text` (the line
        `line()` makes); the `best_against_cheap` dicts (`kind: "best"`)
        follow each budget's lines. No line against the reference where it
        was not run.
    """
    present = budgets_of(records)
    named = present != ["epochs"]
    out = []
    for budget in present:
        picks = selection.picks(records, budget, order)
        label = budget if named else None
        out += _against(picks, reference, confidence, label)
        out += _best(picks, confidence, label)
    return correct(out, primary, confidence)


def budgets_of(records):
    """The budgets the records hold, equal epochs first."""
    held = {b for r in records for b in selection.budgets(r)}
    return [b for b in selection.BUDGETS if b in held]


def correct(lines, primary=None, confidence=CONFIDENCE):
    """Marks the primary line and adjusts the others (Holm); sets `text`.

    The primary line is the first line (not a best-against-best one) of
    method `primary` (None: of the first method), at the first budget. A
    line without a p-value (one seed, no spread) counts in m with p = 1.
    """
    alpha = 1 - confidence
    plain = [v for v in lines if v.get("kind") != "best"]
    if primary is None and plain:
        primary = plain[0]["method"]
    head = next((v for v in plain if v["method"] == primary), None)
    family = [v for v in lines if v is not head]
    p_values = [1.0 if v.get("p_value") is None else v["p_value"]
                for v in family]
    adjusted, steps = multiple.holm(p_values) if family else ([], [])
    m = len(family)
    for v, p_adjusted, step in zip(family, adjusted, steps):
        level = 1 - alpha / (m - step + 1)
        v.update(role="adjusted", m=m, step=step, p_adjusted=p_adjusted,
                 confidence=level)
        if v["low"] is not None:
            interval = paired_interval(v["differences"], level)
            v["low"], v["high"] = interval["low"], interval["high"]
            if p_adjusted < alpha:
                v["verdict"] = BETTER if v["mean"] > 0 else WORSE
            else:
                v["verdict"] = NO_DIFFERENCE
    if head is not None:
        head["role"] = "primary"
    for v in lines:
        v["text"] = line(v)
    return lines


def _pair(top, against, confidence, budget, kind=None):
    """`top` against `against` (`selection.Pick`s), paired by seed."""
    mine, theirs = top.test_by_seed(), against.test_by_seed()
    seeds = sorted(set(mine) & set(theirs))
    everything = ({r["seed"] for r in top.records}
                  | {r["seed"] for r in against.records})
    differences = [mine[s] - theirs[s] for s in seeds]
    result = {
        "method": top.method,
        "level": top.level,
        "level_name": top.records[0].get("level_name"),
        "lr": top.lr,
        "candidates": top.candidates,
        "validation": top.validation,
        "against": against.method,
        "against_level": against.level,
        "against_lr": against.lr,
        "against_candidates": against.candidates,
        "budget": budget,
        "seeds": seeds,
        "differences": differences,
        "unpaired": sorted(everything - set(seeds)),
        **paired_interval(differences, confidence),
    }
    if kind is not None:
        result["kind"] = kind
    return result


def _against(picks, reference, confidence, budget):
    base = next((p for p in picks if p.method == reference), None)
    if base is None:
        return []
    return [_pair(p, base, confidence, budget) for p in picks
            if p is not base]


def _best(picks, confidence, budget):
    two = [p for p in picks if p.passes is not None and p.passes >= 2]
    one = [p for p in picks if p.passes == 1]
    if len(two) + len(one) < 3:
        return []
    top, cheap = selection.best_of(two), selection.best_of(one)
    if top is None or cheap is None:
        return []
    if len(two) == 1 and cheap.method == REFERENCE:
        return []  # the line of `top` against SGD says it
    return [_pair(top, cheap, confidence, budget, kind="best")]


def best_against_cheap(records, confidence=CONFIDENCE, budget=None,
                       order=None):
    """The best two-pass pick against the best one-pass pick.

    Each method's pick is chosen on validation (`selection.picks`); among
    the picks with 2 passes per step or more (S-SGD, SAM, ASAM) and those
    with 1 (SGD, weight noise, the split form, EMA, SWA, ...), the one
    with the best mean validation accuracy of each group is chosen, and
    the two are compared on test accuracy, paired by seed. No test
    accuracy enters a choice, so the test interval is not biased by them.
    Every-k methods (between 1 and 2 passes) are in neither group.

    Args:
        records: the run records of one budget (`passes_per_step` read
            from each; records without it are left out).
        confidence: float. Defaults to `0.95`.
        budget: the budget's name for the line (`"passes"`), or `None`.
        order: the run keys in the plan's order, or None.

    Returns:
        A list of one dict (`kind: "best"`, the fields of `verdicts`'
        lines, unadjusted), or an empty list where a group is empty, no
        pick has a validation accuracy, or the line would be one against
        SGD already (one two-pass method, and SGD the best one-pass
        method).

    Example:

    >>> runs = [
    ...     {"key": f"{m}-{s}", "method": m, "level": lv, "seed": s,
    ...      "test_accuracy": a + s, "validation_accuracy": a,
    ...      "passes_per_step": p}
    ...     for m, lv, p, a in [("sgd", None, 1, 80.0), ("ema", 0.99, 1, 81.0),
    ...                         ("ssgd", 0.2, 2, 81.5)]
    ...     for s in range(3)]
    >>> best = best_against_cheap(runs)[0]
    >>> best["text"].split(":")[0]
    'best 2-pass pick, ssgd 0.2, vs the best 1-pass pick, ema 0.99'
    """
    chosen = [r for r in records
              if (budget or "epochs") in selection.budgets(r)]
    lines = _best(selection.picks(chosen, budget or "epochs", order),
                  confidence, budget)
    for v in lines:
        v["text"] = line(v)
    return lines


def line(v):
    """One verdict as a sentence.

    Examples: `ssgd 0.2 vs sgd: +2.90 pt [1.68, 4.12], better on 5 of 5
    seeds: better than sgd`; when the interval contains 0, `... better on 3
    of 5 seeds: no difference shown (the 95% interval contains 0)`; a line
    of the corrected family ends with `adjusted (Holm, m = 9): p = 0.031`
    and gives the interval at its Holm step's level; a pick with a learning
    rate of its own is named `ssgd 0.2 (lr 0.05)`.
    """
    name = _name(v["method"], v["level"], v.get("lr"))
    against = _name(v["against"], v.get("against_level"),
                    v.get("against_lr"))
    if v.get("kind") == "best":
        name = f"best 2-pass pick, {name},"
        against = f"the best 1-pass pick, {against}"
    budget = f", equal {v['budget']}" if v.get("budget") else ""
    head = f"{name} vs {against}{budget}: "
    unpaired = len(v.get("unpaired") or ())
    left_out = (
        f" ({unpaired} seed{'' if unpaired == 1 else 's'} left out: not "
        "finished for both)" if unpaired else ""
    )
    adjusted = ""
    if v.get("role") == "adjusted":
        adjusted = (f"; adjusted (Holm, m = {v['m']}): p = "
                    f"{_p(v['p_adjusted'])}")
    elif v.get("role") == "primary":
        adjusted = "; the primary comparison" + (
            "" if v.get("p_value") is None or v.get("low") is None
            else f", p = {_p(v['p_value'])}")
    n = v["n"]
    if n == 0:
        return (f"{head}no seed finished for both: {NO_DIFFERENCE}"
                f"{adjusted}{left_out}")
    count = f"better on {v['better']} of {n} seed{'' if n == 1 else 's'}"
    if n < 2:
        return (f"{head}{v['mean']:+.2f} pt, {count}: {NO_DIFFERENCE} (one "
                f"seed gives no interval){adjusted}{left_out}")
    if v["low"] is None:
        return (f"{head}{v['mean']:+.2f} pt, {count}: {NO_INTERVAL}"
                f"{adjusted}{left_out}")
    level = f"{100 * v['confidence']:.3g}%"
    interval = f"[{v['low']:.2f}, {v['high']:.2f}]"
    if v.get("role") == "adjusted":
        interval += f" ({level} interval, Holm step {v['step']})"
    text = f"{head}{v['mean']:+.2f} pt {interval}, {count}: {v['verdict']}"
    if v["verdict"] != NO_DIFFERENCE:
        text += f" than {against.replace('the best 1-pass pick, ', '')}"
    elif v.get("role") == "adjusted":
        text += " (adjusted p >= " f"{_p(1 - CONFIDENCE)})"
    else:
        text += f" (the {level} interval contains 0)"
    if v.get("kind") == "best":
        text += "; both picked on validation"
    return text + adjusted + left_out


def _p(value):
    return f"{value:.2g}" if value >= 0.001 else f"{value:.1e}"


def _name(method, level, lr=None):
    text = method if level is None else f"{method} {level:g}"
    return text if lr is None else f"{text} (lr {lr:g})"


def explanation(confidence=CONFIDENCE):
    """How to read the verdict lines (for `summary.md` and the terminal)."""
    percent = f"{100 * confidence:g}%"
    return (
        "Verdict: each method's pick (its configuration with the best mean "
        "validation accuracy) minus SGD's pick on the same seed (same "
        "initial weights and data order), in test-accuracy points: the mean "
        f"difference, its Student t interval (n - 1 degrees of freedom) and "
        "the seeds on which the method was better. The primary comparison "
        f"is read at {percent}, unadjusted; every other line is adjusted "
        "for the m lines of the folder (Holm): its interval is at its Holm "
        "step's level and its verdict follows the adjusted p-value. When "
        "the interval contains 0, only one seed was run, or every seed "
        "gave the same difference, no difference is shown."
    )
