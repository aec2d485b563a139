"""The verdict against SGD: paired t intervals checked against SciPy."""

import math

import numpy as np
import pytest
from scipy import stats

from keras_ssgd.train import report
from keras_ssgd.train import verdict


def _scipy_interval(differences, confidence=0.95):
    d = np.asarray(differences, dtype=float)
    return stats.t.interval(confidence, len(d) - 1, loc=d.mean(),
                            scale=stats.sem(d))


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
    records += [_record("sam", 0.4, s, a) for s, a in enumerate([80.5, 80.0, 80.1])]
    records.append(_record("sam", 0.4, 3, None, status="diverged"))
    found = {(v["method"], v["level"]): v for v in verdict.verdicts(records)}
    assert set(found) == {("ssgd", 0.2), ("sam", 0.4)}
    v = found[("ssgd", 0.2)]
    differences = [b - a for a, b in zip(sgd, ssgd)]
    assert v["differences"] == pytest.approx(differences)
    low, high = _scipy_interval(differences)
    assert (v["low"], v["high"]) == pytest.approx((low, high))
    # The first method is the primary comparison: read at 95%, unadjusted.
    assert v["role"] == "primary"
    assert v["text"] == (
        f"ssgd 0.2 vs sgd: +{np.mean(differences):.2f} pt [{low:.2f}, "
        f"{high:.2f}], better on 5 of 5 seeds: better than sgd; the primary "
        f"comparison, p = {v['p_value']:.2g}"
    )
    v = found[("sam", 0.4)]
    assert v["seeds"] == [0, 1, 2] and v["unpaired"] == [3, 4]
    assert v["verdict"] == "no difference shown"
    assert v["role"] == "adjusted" and v["m"] == 1
    assert "adjusted (Holm, m = 1)" in v["text"]
    assert "2 seeds left out" in v["text"]


def test_one_seed_verdict_says_so():
    records = [_record("sgd", None, 0, 80.0), _record("ssgd", 0.2, 0, 82.0)]
    (v,) = verdict.verdicts(records)
    assert v["text"] == (
        "ssgd 0.2 vs sgd: +2.00 pt, better on 1 of 1 seed: no difference "
        "shown (one seed gives no interval); the primary comparison"
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
    # Equal differences: no interval, no claim, and p = 1 for a correction.
    same = verdict.paired_interval([1.5, 1.5, 1.5])
    assert same["low"] is None and same["high"] is None
    assert same["verdict"] == "no interval (all differences equal)"
    assert same["p_value"] == 1.0


def _budget_record(method, level, seed, accuracy, budgets, passes,
                   epochs=10):
    record = _record(method, level, seed, accuracy)
    # Validation accuracy ranks the methods as test accuracy does here.
    record.update(budgets=list(budgets), passes_per_step=passes,
                  epochs=epochs, validation_accuracy=accuracy - seed)
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
    # A line of the corrected family: its interval at its Holm step's level.
    m, step = at_passes["m"], at_passes["step"]
    assert at_passes["confidence"] == pytest.approx(1 - 0.05 / (m - step + 1))
    low, high = _scipy_interval(at_passes["differences"],
                                at_passes["confidence"])
    assert (at_passes["low"], at_passes["high"]) == pytest.approx((low, high))
    assert at_passes["text"].startswith(
        "best 2-pass pick, ssgd 0.2, vs the best 1-pass pick, ema 0.99, "
        "equal passes: ")
    assert "both picked on validation; adjusted (Holm, m = " in (
        at_passes["text"])
    assert at_passes["role"] == "adjusted"


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


# Choose on validation, report on test; Holm's correction.


def _grid_records(rng, seeds=5):
    """SGD at 3 learning rates, S-SGD at 2 levels x 2 rates, SAM at 2
    levels: random validation and test accuracies, both budgets."""
    records = []
    grid = [("sgd", None, lr, 1) for lr in (0.025, 0.05, 0.1)]
    grid += [("ssgd", level, lr, 2) for level in (0.1, 0.2)
             for lr in (0.05, 0.1)]
    grid += [("sam", level, 0.05, 2) for level in (0.05, 0.1)]
    grid += [("weight-noise", 0.1, lr, 1) for lr in (0.05, 0.1)]
    for budget, epochs in (("epochs", 10), ("passes", 20)):
        for method, level, lr, passes in grid:
            if budget == "passes" and passes == 2:
                continue  # a two-pass run serves both budgets
            for seed in range(seeds):
                records.append({
                    "key": f"{method}-{level}-lr{lr}-{epochs}-seed{seed}",
                    "method": method, "level": level, "lr": lr,
                    "level_name": None if level is None else "noise_level",
                    "seed": seed, "status": "ok", "epochs": epochs,
                    "budgets": (["epochs", "passes"] if passes == 2
                                else [budget]),
                    "passes_per_step": passes,
                    "validation_accuracy": float(rng.uniform(80, 90)),
                    "test_accuracy": float(rng.uniform(80, 90)),
                })
    return records


@pytest.mark.parametrize("change", ["negate", "reverse"])
def test_picks_are_made_on_validation_and_never_read_test(change):
    from keras_ssgd.train import selection

    rng = np.random.default_rng(7)
    records = _grid_records(rng)
    changed = [dict(r) for r in records]
    tests = [r["test_accuracy"] for r in records]
    for r, value in zip(changed, -np.asarray(tests) if change == "negate"
                        else tests[::-1]):
        r["test_accuracy"] = float(value)
    for budget in ("epochs", "passes"):
        before = selection.picks(records, budget)
        after = selection.picks(changed, budget)
        assert ([(p.method, p.configuration) for p in before]
                == [(p.method, p.configuration) for p in after])
        for p in before:
            # The argmax of mean validation accuracy over the seeds.
            runs = {}
            for r in records:
                if r["method"] == p.method and budget in r["budgets"]:
                    runs.setdefault((r["level"], r["lr"]), []).append(
                        r["validation_accuracy"])
            best = max(runs, key=lambda c: np.mean(runs[c]))
            assert p.configuration == best
            assert p.candidates == len(runs)
    # The verdicts compare the picks' test accuracies, paired by seed.
    lines = verdict.verdicts(changed)
    picks = {(p.method, p.budget): p
             for b in ("epochs", "passes")
             for p in selection.picks(changed, b)}
    for v in lines:
        if v.get("kind") == "best":
            continue
        mine = picks[(v["method"], v["budget"])].test_by_seed()
        theirs = picks[("sgd", v["budget"])].test_by_seed()
        assert (v["lr"], v["against_lr"]) == (
            picks[(v["method"], v["budget"])].lr,
            picks[("sgd", v["budget"])].lr)
        assert v["differences"] == pytest.approx(
            [mine[s] - theirs[s] for s in sorted(mine)])


def test_a_tie_goes_to_the_configuration_given_first():
    from keras_ssgd.train import selection

    records = [
        {"key": f"ssgd-{level}-seed{s}", "method": "ssgd", "level": level,
         "lr": 0.05, "seed": s, "validation_accuracy": 85.0,
         "test_accuracy": 80.0 + 10 * (level == 0.3)}
        for level in (0.2, 0.3) for s in range(3)]
    (pick,) = selection.picks(records, "epochs")
    assert pick.level == 0.2
    order = [r["key"] for r in records if r["level"] == 0.3] + [
        r["key"] for r in records if r["level"] == 0.2]
    (pick,) = selection.picks(records, "epochs", order=order)
    assert pick.level == 0.3


def test_a_configuration_with_a_diverged_run_ranks_last():
    from keras_ssgd.train import selection

    records = [
        {"key": f"sgd-{lr}-seed{s}", "method": "sgd", "level": None,
         "lr": lr, "seed": s, "status": "ok",
         "validation_accuracy": 95.0 if lr == 0.4 else 80.0,
         "test_accuracy": 80.0}
        for lr in (0.1, 0.4) for s in range(3)]
    records[-1].update(status="diverged", validation_accuracy=None,
                       test_accuracy=None)
    (pick,) = selection.picks(records, "epochs")
    assert pick.lr == 0.1


@pytest.mark.parametrize("seed", range(5))
def test_holm_matches_statsmodels(seed):
    from statsmodels.stats import multitest
    from keras_ssgd.train import multiple

    rng = np.random.default_rng(seed)
    p = rng.uniform(0, 0.2, size=rng.integers(1, 15))
    p[rng.integers(len(p))] = p[0]  # a tie
    adjusted, steps = multiple.holm(list(p))
    reject, expected, _, _ = multitest.multipletests(p, alpha=0.05,
                                                     method="holm")
    assert adjusted == pytest.approx(list(expected), rel=1e-12)
    assert [a < 0.05 for a in adjusted] == list(reject)
    assert sorted(steps) == list(range(1, len(p) + 1))


def test_holm_refuses_a_p_value_outside_0_1():
    from keras_ssgd.train import multiple

    with pytest.raises(ValueError, match=r"p_values=\[0.5, 1.5\]"):
        multiple.holm([0.5, 1.5])


def test_one_primary_line_and_the_others_adjusted_together():
    rng = np.random.default_rng(3)
    records = _grid_records(rng)
    lines = verdict.verdicts(records)
    roles = [v["role"] for v in lines]
    assert roles.count("primary") == 1
    (primary,) = [v for v in lines if v["role"] == "primary"]
    # The first method other than SGD, at equal epochs.
    assert (primary["method"], primary["budget"]) == ("ssgd", "epochs")
    family = [v for v in lines if v["role"] == "adjusted"]
    # Both budgets' picks against SGD and the best-vs-best lines.
    assert len(family) == len(lines) - 1
    assert {v["m"] for v in family} == {len(family)}
    expected, _ = __import__("keras_ssgd.train.multiple",
                             fromlist=["holm"]).holm(
        [v["p_value"] for v in family])
    assert [v["p_adjusted"] for v in family] == pytest.approx(expected)
    assert all(f"adjusted (Holm, m = {len(family)})" in v["text"]
               for v in family)
    assert "adjusted" not in primary["text"]
    # --primary names another.
    lines = verdict.verdicts(records, primary="sam")
    (primary,) = [v for v in lines if v["role"] == "primary"]
    assert primary["method"] == "sam" and primary["budget"] == "epochs"


def test_a_line_with_no_spread_is_no_claim_and_counts_with_p_1():
    records = []
    for s in range(3):
        records.append(_record("sgd", None, s, 80.0 + s))
        records.append(_record("ssgd", 0.2, s, 81.0 + s))  # +1 on each
        records.append(_record("sam", 0.1, s, 82.0 + s))   # +2 on each
        records.append(_record("weight-noise", 0.1, s, 80.0 + 2 * s))
    lines = {v["method"]: v for v in verdict.verdicts(records)}
    for method in ("ssgd", "sam"):
        v = lines[method]
        assert v["verdict"] == "no interval (all differences equal)"
        assert v["low"] is None and v["high"] is None
        assert "better than" not in v["text"]
        assert "no interval (all differences equal)" in v["text"]
    # m counts the zero-spread line, at p = 1.
    assert lines["sam"]["m"] == 2
    assert lines["sam"]["p_adjusted"] == 1.0
