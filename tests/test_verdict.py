"""The verdict against SGD: paired t intervals checked against SciPy."""

import math

import numpy as np
import pytest
from scipy import stats

from keras_ssgd.train import report
from keras_ssgd.train import verdict


@pytest.mark.parametrize("dof", [1, 2, 3, 4, 5, 9, 29, 100, 1000])
@pytest.mark.parametrize("p", [0.975, 0.995, 0.9, 0.6, 0.025])
def test_t_quantile_matches_scipy(dof, p):
    assert verdict.t_quantile(p, dof) == pytest.approx(
        stats.t.ppf(p, dof), rel=1e-10, abs=1e-10
    )


def _scipy_interval(differences):
    d = np.asarray(differences, dtype=float)
    return stats.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=stats.sem(d))


@pytest.mark.parametrize(
    "differences, expected",
    [
        ([2.0, 3.5, 1.8, 4.1, 3.1], "better"),
        ([-1.2, -0.7, -2.0, -1.1], "worse"),
        ([0.9, -0.4, 1.3, -1.1, 0.2], "no difference shown"),
        ([0.5, 0.52], "better"),
        ([0.1, 2.5], "no difference shown"),  # n = 2: a wide interval
    ],
)
def test_paired_interval_matches_scipy(differences, expected):
    result = verdict.paired_interval(differences)
    low, high = _scipy_interval(differences)
    assert result["low"] == pytest.approx(low, rel=1e-9)
    assert result["high"] == pytest.approx(high, rel=1e-9)
    assert result["mean"] == pytest.approx(np.mean(differences))
    assert result["dof"] == len(differences) - 1
    assert result["verdict"] == expected
    assert result["better"] == sum(d > 0 for d in differences)
    assert (low <= 0 <= high) == (expected == "no difference shown")


def test_one_seed_gives_no_interval_and_no_claim():
    result = verdict.paired_interval([3.0])
    assert result["n"] == 1 and result["mean"] == 3.0
    assert result["low"] is None and result["high"] is None
    assert result["verdict"] == "no difference shown"


def test_no_seed_gives_nothing():
    result = verdict.paired_interval([])
    assert result["n"] == 0 and result["mean"] is None
    assert result["verdict"] == "no difference shown"


def test_non_finite_difference_is_refused():
    with pytest.raises(ValueError, match="finite"):
        verdict.paired_interval([1.0, math.nan])


def _record(method, level, seed, accuracy, status="ok"):
    return {
        "key": f"{method}-{level}-seed{seed}", "method": method,
        "level": level, "level_name": None if level is None else "noise_level",
        "seed": seed, "status": status, "test_accuracy": accuracy,
        "train_loss": 1.0, "seconds": 1.0,
    }


def test_verdicts_pair_by_seed_and_leave_out_diverged_runs():
    sgd = [80.0, 81.0, 79.5, 80.5, 82.0]
    ssgd = [83.0, 84.5, 81.3, 84.6, 85.1]
    records = [_record("sgd", None, s, a) for s, a in enumerate(sgd)]
    # Finished in another order than the seeds: pairing is by seed.
    records += [_record("ssgd", 0.2, s, a) for s, a in reversed(list(enumerate(ssgd)))]
    records += [_record("ssgd", 0.4, s, a) for s, a in enumerate([80.5, 80.0, 80.1])]
    records.append(_record("ssgd", 0.4, 3, None, status="diverged"))
    found = {(v["method"], v["level"]): v for v in verdict.verdicts(records)}
    assert set(found) == {("ssgd", 0.2), ("ssgd", 0.4)}
    v = found[("ssgd", 0.2)]
    differences = [b - a for a, b in zip(sgd, ssgd)]
    assert v["differences"] == pytest.approx(differences)
    low, high = _scipy_interval(differences)
    assert (v["low"], v["high"]) == pytest.approx((low, high))
    assert v["text"] == (
        f"ssgd 0.2 vs sgd: +{np.mean(differences):.2f} pt [{low:.2f}, "
        f"{high:.2f}], better on 5 of 5 seeds: better than sgd"
    )
    v = found[("ssgd", 0.4)]
    assert v["seeds"] == [0, 1, 2] and v["unpaired"] == [3, 4]
    assert v["verdict"] == "no difference shown"
    assert "the 95% interval contains 0" in v["text"]
    assert "2 seeds left out" in v["text"]


def test_one_seed_verdict_says_so():
    records = [_record("sgd", None, 0, 80.0), _record("ssgd", 0.2, 0, 82.0)]
    (v,) = verdict.verdicts(records)
    assert v["text"] == (
        "ssgd 0.2 vs sgd: +2.00 pt, better on 1 of 1 seed: no difference "
        "shown (one seed gives no interval)"
    )


def test_no_sgd_no_verdict():
    assert verdict.verdicts([_record("ssgd", 0.2, 0, 82.0)]) == []


def test_summary_and_plot_carry_the_verdict(tmp_path):
    records = [_record("sgd", None, s, 80.0 + s) for s in range(3)]
    records += [_record("ssgd", 0.2, s, 82.0 + 1.1 * s) for s in range(3)]
    rows = report.summarize(records, __import__(
        "keras_ssgd.train.registry", fromlist=["METHODS"]).METHODS)
    verdicts = verdict.verdicts(records)
    text = report.summary_markdown({"model": "mlp"}, rows, verdicts)
    assert "## Verdict against SGD" in text
    assert f"- {verdicts[0]['text']}" in text
    report.plot(rows, tmp_path / "a.png", verdicts=verdicts)
    assert (tmp_path / "a.png").stat().st_size > 1000


def test_the_paired_test_is_scipys():
    differences = [2.0, 3.5, 1.8, 4.1, 3.1]
    result = verdict.paired_interval(differences)
    plus, minus = np.array([83.0, 84.5, 81.3, 84.6, 85.1]), None
    minus = plus - np.array(differences)
    assert result["p_value"] == pytest.approx(
        stats.ttest_rel(plus, minus).pvalue, rel=1e-9)
    # Equal differences: a point interval, no division by zero.
    same = verdict.paired_interval([1.5, 1.5, 1.5])
    assert same["low"] == same["high"] == 1.5
    assert same["verdict"] == "better" and same["p_value"] == 0.0


def _budget_record(method, level, seed, accuracy, budgets, passes,
                   epochs=10):
    record = _record(method, level, seed, accuracy)
    record.update(budgets=list(budgets), passes_per_step=passes,
                  epochs=epochs)
    return record


def _both_budgets():
    """SGD at 10 and 20 epochs, S-SGD (both budgets), EMA at 10 and 20."""
    records = []
    for s in range(4):
        records.append(_budget_record("sgd", None, s, 80.0 + s, ["epochs"], 1))
        records.append(_budget_record("sgd", None, s, 83.0 + s, ["passes"], 1,
                                      20))
        records.append(_budget_record("ssgd", 0.2, s, 82.0 + s + 0.1 * s * s,
                                      ["epochs", "passes"], 2))
        records.append(_budget_record("ema", 0.99, s, 81.0 + s, ["epochs"], 1))
        records.append(_budget_record("ema", 0.99, s, 84.0 + s + 0.2 * s,
                                      ["passes"], 1, 20))
    return records


def test_a_verdict_per_budget_pairs_runs_of_that_budget():
    found = {(v["method"], v["level"], v["budget"], v.get("kind")): v
             for v in verdict.verdicts(_both_budgets())}
    epochs = found[("ssgd", 0.2, "epochs", None)]
    passes = found[("ssgd", 0.2, "passes", None)]
    # At equal epochs S-SGD is against SGD at 10 epochs, at equal passes
    # against SGD at 20.
    assert epochs["differences"] == pytest.approx(
        [2.0 + 0.1 * s * s for s in range(4)])
    assert passes["differences"] == pytest.approx(
        [-1.0 + 0.1 * s * s for s in range(4)])
    assert epochs["text"].startswith("ssgd 0.2 vs sgd, equal epochs: ")
    assert passes["text"].startswith("ssgd 0.2 vs sgd, equal passes: ")
    ema = found[("ema", 0.99, "passes", None)]
    assert ema["differences"] == pytest.approx([1.0 + 0.2 * s
                                                for s in range(4)])


def test_the_best_two_pass_method_against_the_best_one_pass_method():
    best = [v for v in verdict.verdicts(_both_budgets())
            if v.get("kind") == "best"]
    assert [v["budget"] for v in best] == ["epochs", "passes"]
    at_epochs, at_passes = best
    # Equal epochs: EMA (81.0 + s) beats SGD (80.0 + s) among 1-pass.
    assert (at_epochs["against"], at_epochs["against_level"]) == ("ema", 0.99)
    assert at_epochs["differences"] == pytest.approx(
        [1.0 + 0.1 * s * s for s in range(4)])
    # Equal passes: EMA at 20 epochs (84 + 1.2 s) is the best 1-pass.
    assert at_passes["differences"] == pytest.approx(
        [(82.0 + s + 0.1 * s * s) - (84.0 + 1.2 * s) for s in range(4)])
    low, high = _scipy_interval(at_passes["differences"])
    assert (at_passes["low"], at_passes["high"]) == pytest.approx((low, high))
    assert at_passes["text"].startswith(
        "best 2-pass method, ssgd 0.2, vs the best 1-pass method, ema 0.99, "
        "equal passes: ")
    assert at_passes["text"].endswith(
        "each best picked after the fact, on its mean")
    assert at_passes["verdict"] == "worse"
    assert "worse than ema 0.99" in at_passes["text"]


def test_no_best_line_where_it_repeats_the_line_against_sgd():
    records = [_budget_record("sgd", None, s, 80.0 + s, ["epochs"], 1)
               for s in range(3)]
    records += [_budget_record("ssgd", 0.2, s, 81.0 + s, ["epochs"], 2)
                for s in range(3)]
    lines = verdict.verdicts(records)
    assert [v.get("kind") for v in lines] == [None]
    # Older records (no budgets): equal epochs, unnamed, as before.
    assert lines[0]["budget"] is None
    assert lines[0]["text"].startswith("ssgd 0.2 vs sgd: ")
    # Every-k methods (1 < passes < 2) are in neither group.
    records += [_budget_record("ssgd-every", 0.2, s, 90.0, ["epochs"], 1.2)
                for s in range(3)]
    assert all(v.get("kind") is None for v in verdict.verdicts(records))
