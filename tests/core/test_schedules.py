import keras
import numpy as np
import pytest

from keras_ssgd.schedules import SGDR


def test_sgdr_restarts_at_10_30_70_epochs():
    schedule = SGDR(steps_per_epoch=5)
    lr = lambda epoch: float(schedule(int(epoch * 5)))  # noqa: E731
    assert lr(0) == pytest.approx(0.1)
    assert lr(5) == pytest.approx(0.05, rel=1e-5)  # half of the first period
    assert lr(9.8) < 0.001
    for restart in (10, 30, 70):
        assert lr(restart) == pytest.approx(0.1)
        assert lr(restart - 0.2) < 0.001
    assert lr(20) == pytest.approx(0.05, rel=1e-5)  # half of the 20-epoch period


def test_sgdr_is_keras_cosine_decay_restarts_and_round_trips():
    schedule = SGDR(0.2, steps_per_epoch=7, first_period_epochs=3, t_mul=1.5)
    assert isinstance(schedule, keras.optimizers.schedules.CosineDecayRestarts)
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(schedule)
    )
    assert isinstance(restored, SGDR)
    assert restored.get_config() == schedule.get_config()
    steps = np.arange(0, 100, 7)
    np.testing.assert_allclose(
        [float(schedule(s)) for s in steps], [float(restored(s)) for s in steps]
    )


@pytest.mark.parametrize("bad", [None, 0, -3, 2.5, True])
def test_sgdr_needs_steps_per_epoch(bad):
    with pytest.raises(ValueError, match="Argument `steps_per_epoch`"):
        SGDR(steps_per_epoch=bad)


def test_sgdr_refuses_bad_period():
    with pytest.raises(ValueError, match="first_period_epochs=0"):
        SGDR(steps_per_epoch=3, first_period_epochs=0)
