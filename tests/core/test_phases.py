import keras
import numpy as np
import pytest

from keras_ssgd.phases import PhasePlan


def test_parse_table1_plans():
    plan = PhasePlan.parse("75 - 25S - 25S")
    assert plan.phases == ((75, False), (25, True), (25, True))
    assert str(plan) == "75-25S-25S"
    assert plan.epochs == 125
    assert plan.boundaries == (75, 100)
    assert plan.cost() == 175  # the same budget as 75-50-50
    assert PhasePlan.parse("37S-25S-25S").cost() == 174
    assert [plan.noisy(e) for e in (0, 74, 75, 99, 100, 124)] == [
        False, False, True, True, True, True,
    ]
    assert PhasePlan.parse(plan) is plan


@pytest.mark.parametrize("bad", ["", "75--25", "75-x", "0-25S", "75-25s", 75, None])
def test_bad_plans(bad):
    with pytest.raises(ValueError, match="Argument `plan`.*Received: plan="):
        PhasePlan.parse(bad)


def test_learning_rate_drops_at_boundaries():
    plan = PhasePlan.parse("3-2S-2S")
    schedule = plan.learning_rate_schedule(0.1, steps_per_epoch=10)
    assert isinstance(
        schedule, keras.optimizers.schedules.PiecewiseConstantDecay
    )
    lrs = [float(schedule(step)) for step in (0, 29, 31, 49, 51, 69)]
    np.testing.assert_allclose(lrs, [0.1, 0.1, 0.01, 0.01, 0.001, 0.001])


def test_one_phase_plan_has_a_constant_rate():
    assert PhasePlan.parse("20S").learning_rate_schedule(0.1, 10) == 0.1
