"""`experiments/benchmarks/step_against.py`: step-time ratios of this
checkout against a commit's package, in one run. The refusal of an unknown
commit in the fast tier; the script end to end in the e2e tier (about 15 s:
two PyTorch workers, a small MLP, one round of one step)."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).parents[2]
SCRIPT = ROOT / "experiments" / "benchmarks" / "step_against.py"
sys.path.insert(0, str(SCRIPT.parent))

import step_against  # noqa: E402


def test_an_unknown_commit_is_refused_by_name():
    with pytest.raises(ValueError, match=r"`--against`.*Received: --against 'no-such-ref'"):
        step_against.commit_of("no-such-ref")


def test_the_quotient_is_this_ratio_over_the_earlier_one():
    this = [{"keras": 2.0, "ssgd": 5.0}, {"keras": 1.0, "ssgd": 2.0}]
    earlier = [{"keras": 1.0, "ssgd": 2.0}, {"keras": 2.0, "ssgd": 5.0}]
    assert step_against.ratios(this, "ssgd") == [2.5, 2.0]
    assert step_against.ratios(earlier, "ssgd") == [2.0, 2.5]


@pytest.mark.e2e
def test_both_versions_are_timed_in_one_run(tmp_path):
    output = tmp_path / "against.json"
    env = dict(os.environ, KERAS_BACKEND="torch")
    subprocess.run(
        [sys.executable, str(SCRIPT), "--against", "HEAD", "--backend",
         "torch", "--model", "mlp", "--batch-size", "16", "--rounds", "2",
         "--steps", "1", "--methods", "ssgd", "--output", str(output)],
        check=True, env=env, cwd=ROOT, capture_output=True, timeout=300,
    )
    record = json.loads(output.read_text())
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT,
                          capture_output=True, text=True).stdout.strip()
    assert record["against"]["commit"] == head == record["this"]["commit"]
    assert record["machine"]["backend"] == "torch"
    for version in ("this", "against"):
        rounds = record["rounds"][version]
        assert len(rounds) == 2
        assert all(set(r) == {"keras", "ssgd"} and min(r.values()) > 0
                   for r in rounds)
    quotient = [
        a / b for a, b in zip(step_against.ratios(record["rounds"]["this"], "ssgd"),
                              step_against.ratios(record["rounds"]["against"], "ssgd"))
    ]
    assert record["quotient_rounds"]["ssgd"] == pytest.approx(quotient)


def test_the_median_interval_is_the_order_statistics_of_a_95_percent_band():
    # 25 rounds: the 8th and 18th values (the count below the median is
    # binomial(25, 1/2), and P(B <= 7) = 0.022 on each side).
    assert step_against.median_interval(list(range(1, 26))) == (8, 18)
    # 9 rounds: the 2nd and 8th; under 6 rounds, the range.
    assert step_against.median_interval(list(range(1, 10))) == (2, 8)
    assert step_against.median_interval([3.0, 1.0, 2.0]) == (1.0, 3.0)
