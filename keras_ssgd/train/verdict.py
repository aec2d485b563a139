"""The verdict under the table: each method and level against SGD, paired
by seed.

A seed fixes the initial weights and the data order, the same for every
method, so the runs of one seed are a matched pair: the difference in test
accuracy between a method and SGD on the same seed removes the part of the
spread that comes from the seed. For each method and level the verdict is

- the per-seed differences `d_i = acc(method, seed i) - acc(sgd, seed i)`,
  in accuracy points, over the seeds where both runs finished (a diverged
  run has no accuracy: its seed is left out and counted);
- their mean `m` and sample standard deviation `s` (n - 1 in the
  denominator);
- a 95% Student t interval for the mean difference,
  `m +- t(0.975, n - 1) * s / sqrt(n)`, with n - 1 degrees of freedom (the
  paired t interval; it assumes the differences are roughly normal, which
  few seeds cannot check: read it as a guide, not a proof);
- how many seeds were better (`d_i > 0`), worse and tied.

When the interval contains 0, or there are fewer than 2 paired seeds (no
interval can be formed from one), the verdict says that no difference was
shown. The interval and the test are SciPy's (`scipy.stats.ttest_1samp`
on the differences, the paired t test); nothing here needs TensorFlow.

Where runs of both budgets were made (`ssgd-train --budget both`), each
method gets a verdict at equal epochs and one at equal passes, and each
budget ends with the best two-pass method against the best one-pass
method (`best_against_cheap`): the question whether a method that costs
twice SGD per step beats the best one that does not.
"""

import math

from scipy import stats

CONFIDENCE = 0.95
REFERENCE = "sgd"

# The verdict's words.
BETTER = "better"
WORSE = "worse"
NO_DIFFERENCE = "no difference shown"


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
        0, else `"no difference shown"`.

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
    if std == 0:  # every seed gave the same difference: a point interval
        low = high = mean
        p_value = 1.0 if mean == 0 else 0.0
    else:
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


def verdicts(records, reference=REFERENCE, confidence=CONFIDENCE):
    """One verdict per (method, level) against `reference`, paired by seed,
    per budget; then, per budget, the best two-pass method against the best
    one-pass method (`best_against_cheap`).

    A record belongs to the budgets it lists in `budgets` (`"epochs"`:
    every method trained the recipe's epochs; `"passes"`: every method got
    the same forward/backward passes); records without the field belong to
    `"epochs"`. Where the records hold another budget than equal epochs, each
    line names its budget.

    Args:
        records: run records (`key`, `method`, `level`, `level_name`,
            `seed`, `status`, `test_accuracy`, and `budgets` and
            `passes_per_step` where known; see `runner.train`).
        reference: the method compared against. Defaults to `"sgd"`.
        confidence: float. Defaults to `0.95`.

    Returns:
        A list of dicts, per budget in the order the methods and levels
        first appear (the reference left out): `method`, `level`,
        `level_name`, `against`, `budget` (`None` where only equal epochs
        ran), `seeds` (the paired seeds), `differences` (points, one per
        paired seed), `unpaired` (seeds of either side left out: not run
        for both, or diverged), the fields of `paired_interval`, and `text`
        (the line `line()` makes); then the `best_against_cheap` dicts.
        No line against the reference where it was not run.
    """
    present = budgets_of(records)
    named = present != ["epochs"]
    out = []
    for budget in present:
        chosen = [r for r in records if budget in _budgets(r)]
        label = budget if named else None
        out += _against(chosen, reference, confidence, label)
        out += best_against_cheap(chosen, confidence, label)
    return out


def budgets_of(records):
    """The budgets the records hold, equal epochs first."""
    held = {b for r in records for b in _budgets(r)}
    return [b for b in ("epochs", "passes") if b in held]


def _budgets(record):
    return record.get("budgets") or ["epochs"]


def _accuracies(records):
    """`{(method, level): {seed: accuracy}}` of the finished runs, and
    `{(method, level): {seeds run}}` and the level names."""
    accuracy, runs, names = {}, {}, {}
    for r in records:
        key = (r["method"], r["level"])
        accuracy.setdefault(key, {})
        runs.setdefault(key, set()).add(r["seed"])
        names[key] = r.get("level_name")
        if r.get("status", "ok") == "ok" and r.get("test_accuracy") is not None:
            accuracy[key][r["seed"]] = r["test_accuracy"]
    return accuracy, runs, names


def _against(records, reference, confidence, budget):
    accuracy, runs, names = _accuracies(records)
    base = accuracy.get((reference, None))
    if base is None:
        return []
    out = []
    for (method, level), by_seed in accuracy.items():
        if (method, level) == (reference, None):
            continue
        seeds = sorted(set(by_seed) & set(base))
        everything = runs[(method, level)] | runs[(reference, None)]
        differences = [by_seed[s] - base[s] for s in seeds]
        result = {
            "method": method,
            "level": level,
            "level_name": names[(method, level)],
            "against": reference,
            "budget": budget,
            "seeds": seeds,
            "differences": differences,
            "unpaired": sorted(everything - set(seeds)),
            **paired_interval(differences, confidence),
        }
        result["text"] = line(result)
        out.append(result)
    return out


def best_against_cheap(records, confidence=CONFIDENCE, budget=None):
    """The best two-pass method against the best one-pass method.

    Among the (method, level) pairs of `records` with 2 passes per step or
    more (S-SGD, SAM, ASAM) and those with 1 (SGD, weight noise, the split
    form, EMA, SWA, ...), the one with the highest mean test accuracy of
    each group is picked, after the fact, and the two are compared paired
    by seed, as `verdicts` does. That picking favours both winners a
    little; the line says so. Every-k methods (between 1 and 2 passes) are
    in neither group.

    Args:
        records: the run records of one budget (`passes_per_step` read
            from each; records without it are left out).
        confidence: float. Defaults to `0.95`.
        budget: the budget's name for the line (`"passes"`), or `None`.

    Returns:
        A list of one dict (`kind: "best"`, `method`, `level`, `against`,
        `against_level`, `budget`, the fields of `paired_interval`, `text`),
        or an empty list where a group is empty or the line would be one
        against SGD already (one two-pass method, and SGD the best one-pass
        method).

    Example:

    >>> runs = [
    ...     {"method": m, "level": lv, "seed": s, "test_accuracy": a + s,
    ...      "passes_per_step": p}
    ...     for m, lv, p, a in [("sgd", None, 1, 80.0), ("ema", 0.99, 1, 81.0),
    ...                         ("ssgd", 0.2, 2, 81.5)]
    ...     for s in range(3)]
    >>> best = best_against_cheap(runs)[0]
    >>> best["text"].split(":")[0]
    'best 2-pass method, ssgd 0.2, vs the best 1-pass method, ema 0.99'
    """
    accuracy, runs, names = _accuracies(records)
    passes = {}
    for r in records:
        if r.get("passes_per_step") is not None:
            passes[(r["method"], r["level"])] = r["passes_per_step"]

    def best(group):
        scored = [
            (sum(accuracy[k].values()) / len(accuracy[k]), k)
            for k in group if accuracy.get(k)
        ]
        return max(scored)[1] if scored else None

    two = [k for k, p in passes.items() if p >= 2]
    one = [k for k, p in passes.items() if p == 1]
    if len(two) + len(one) < 3:
        return []
    top, cheap = best(two), best(one)
    if top is None or cheap is None:
        return []
    if len(two) == 1 and cheap == (REFERENCE, None):
        return []  # the line of `top` against SGD says it
    seeds = sorted(set(accuracy[top]) & set(accuracy[cheap]))
    differences = [accuracy[top][s] - accuracy[cheap][s] for s in seeds]
    result = {
        "kind": "best",
        "method": top[0], "level": top[1], "level_name": names[top],
        "against": cheap[0], "against_level": cheap[1],
        "budget": budget,
        "seeds": seeds,
        "differences": differences,
        "unpaired": sorted((runs[top] | runs[cheap]) - set(seeds)),
        **paired_interval(differences, confidence),
    }
    result["text"] = line(result)
    return [result]


def line(v):
    """One verdict as a sentence.

    Example: `ssgd 0.2 vs sgd: +2.90 pt [1.68, 4.12], better on 5 of 5
    seeds: better than sgd`, or, when the interval contains 0, `... better on 3 of
    5 seeds: no difference shown (the 95% interval contains 0)`.
    """
    name = _name(v["method"], v["level"])
    against = v["against"]
    if v.get("kind") == "best":
        name = f"best 2-pass method, {name},"
        against = ("the best 1-pass method, "
                   f"{_name(v['against'], v['against_level'])}")
    budget = f", equal {v['budget']}" if v.get("budget") else ""
    head = f"{name} vs {against}{budget}: "
    unpaired = len(v.get("unpaired") or ())
    left_out = (
        f" ({unpaired} seed{'' if unpaired == 1 else 's'} left out: not "
        "finished for both)" if unpaired else ""
    )
    n = v["n"]
    if n == 0:
        return f"{head}no seed finished for both: {NO_DIFFERENCE}{left_out}"
    count = f"better on {v['better']} of {n} seed{'' if n == 1 else 's'}"
    if n < 2:
        return (f"{head}{v['mean']:+.2f} pt, {count}: {NO_DIFFERENCE} (one "
                f"seed gives no interval){left_out}")
    text = (f"{head}{v['mean']:+.2f} pt [{v['low']:.2f}, {v['high']:.2f}], "
            f"{count}: {v['verdict']}")
    if v["verdict"] != NO_DIFFERENCE:
        text += f" than {_name(v['against'], v.get('against_level'))}"
    else:
        text += f" (the {100 * v['confidence']:g}% interval contains 0)"
    if v.get("kind") == "best":
        text += "; each best picked after the fact, on its mean"
    return text + left_out


def _name(method, level):
    return method if level is None else f"{method} {level:g}"


def explanation(confidence=CONFIDENCE):
    """How to read the verdict lines (for `summary.md` and the terminal)."""
    percent = f"{100 * confidence:g}%"
    return (
        "Verdict: each method and level minus SGD on the same seed (same "
        "initial weights and data order), in test-accuracy points: the mean "
        f"difference, its {percent} Student t interval (n - 1 degrees of "
        "freedom) and the seeds on which the method was better. When the "
        "interval contains 0, or only one seed was run, no difference is "
        "shown."
    )


def t_quantile(p, dof):
    """The `p` quantile of Student's t distribution with `dof` > 0
    (`scipy.stats.t.ppf`)."""
    if not 0 < p < 1:
        raise ValueError(f"Argument `p` must be in (0, 1). Received: p={p!r}")
    if not dof > 0:
        raise ValueError(
            f"Argument `dof` must be > 0. Received: dof={dof!r}"
        )
    return float(stats.t.ppf(p, dof))

