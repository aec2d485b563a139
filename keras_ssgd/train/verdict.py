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
shown. The t quantiles are SciPy's (`scipy.stats.t.ppf`); nothing here
needs TensorFlow.
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
        `dof` (`None` when n < 2), `better`, `worse`, `tied` (seed counts)
        and `verdict`: `"better"` or `"worse"` when the interval excludes
        0, else `"no difference shown"`.

    Example:

    >>> v = paired_interval([2.0, 3.5, 1.8, 4.1, 3.1])
    >>> round(v["low"], 2), round(v["high"], 2), v["verdict"]
    (1.68, 4.12, 'better')

    Reference:
    - Student's paired t interval: `scipy.stats.t.interval(0.95, n - 1,
      loc=mean, scale=std / sqrt(n))`.
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
    half = t_quantile(0.5 + confidence / 2, n - 1) * std / math.sqrt(n)
    low, high = mean - half, mean + half
    result.update(std=std, low=low, high=high, dof=n - 1)
    if low > 0:
        result["verdict"] = BETTER
    elif high < 0:
        result["verdict"] = WORSE
    return result


def verdicts(records, reference=REFERENCE, confidence=CONFIDENCE):
    """One verdict per (method, level) against `reference`, paired by seed.

    Args:
        records: run records (`key`, `method`, `level`, `level_name`,
            `seed`, `status`, `test_accuracy`; see `runner.train`).
        reference: the method compared against. Defaults to `"sgd"`.
        confidence: float. Defaults to `0.95`.

    Returns:
        A list of dicts, in the order the methods and levels first appear
        (the reference left out): `method`, `level`, `level_name`,
        `against`, `seeds` (the paired seeds), `differences` (points, one
        per paired seed), `unpaired` (seeds of either side left out: not
        run for both, or diverged), the fields of `paired_interval`, and
        `text` (the line `line()` makes). Empty when the reference was not
        run.
    """
    accuracy = {}
    for r in records:
        accuracy.setdefault((r["method"], r["level"]), {})
        if r.get("status", "ok") == "ok" and r.get("test_accuracy") is not None:
            accuracy[(r["method"], r["level"])][r["seed"]] = r["test_accuracy"]
    runs = {}
    names = {}
    for r in records:
        runs.setdefault((r["method"], r["level"]), set()).add(r["seed"])
        names[(r["method"], r["level"])] = r.get("level_name")
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
            "seeds": seeds,
            "differences": differences,
            "unpaired": sorted(everything - set(seeds)),
            **paired_interval(differences, confidence),
        }
        result["text"] = line(result)
        out.append(result)
    return out


def line(v):
    """One verdict as a sentence.

    Example: `ssgd 0.2 vs sgd: +2.90 pt [1.68, 4.12], better on 5 of 5
    seeds: better than sgd`, or, when the interval contains 0, `... better on 3 of
    5 seeds: no difference shown (the 95% interval contains 0)`.
    """
    name = v["method"] if v["level"] is None else f"{v['method']} {v['level']:g}"
    head = f"{name} vs {v['against']}: "
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
        text += f" than {v['against']}"
    else:
        text += f" (the {100 * v['confidence']:g}% interval contains 0)"
    return text + left_out


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

