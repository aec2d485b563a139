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
