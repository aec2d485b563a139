import keras
import numpy as np
import pytest
from conftest import compile_for_classification
from conftest import make_classification
from conftest import mlp

import keras_ssgd
from keras_ssgd.callbacks import NoiseSchedule


class Recorder(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.levels = []

    def on_epoch_end(self, epoch, logs=None):
        self.levels.append(self.model.noise_level)


def fit(model, callbacks, epochs):
    x, y = make_classification(64)
    compile_for_classification(model)
    return model.fit(x, y, batch_size=32, epochs=epochs, verbose=0, callbacks=callbacks)


def test_phase_plan_switches_noise_on_and_off():
    model = keras_ssgd.wrap(mlp(), noise_level=0.9, seed=0)
    recorder = Recorder()
    history = fit(model, [NoiseSchedule("2-1S-1", noise_level=0.4), recorder], 4)
    assert recorder.levels == [0.0, 0.0, pytest.approx(0.4), 0.0]
    assert history.history["noise_level"] == recorder.levels


def test_callable_schedule():
    model = keras_ssgd.wrap(mlp(), seed=0)
    recorder = Recorder()
    fit(model, [NoiseSchedule(lambda epoch: 0.1 * epoch), recorder], 3)
    np.testing.assert_allclose(recorder.levels, [0.0, 0.1, 0.2], rtol=1e-6)


def test_plan_shorter_than_fit_is_refused_before_training():
    model = keras_ssgd.wrap(mlp(), seed=0)
    with pytest.raises(ValueError, match="covers 3 epochs.*epochs=4"):
        fit(model, [NoiseSchedule("2-1S", noise_level=0.5)], 4)
    assert model.optimizer.iterations.numpy() == 0


def test_bad_schedule_values_name_the_epoch():
    model = keras_ssgd.wrap(mlp(), seed=0)
    with pytest.raises(ValueError, match=r"schedule\(1\)=-1.0"):
        fit(model, [NoiseSchedule(lambda epoch: -1.0 * epoch)], 2)


def test_constructor_errors():
    with pytest.raises(ValueError, match="`noise_level` is required"):
        NoiseSchedule("75-25S")
    with pytest.raises(ValueError, match="only used with a phase plan"):
        NoiseSchedule(lambda e: 0.1, noise_level=0.3)
    with pytest.raises(ValueError, match="Argument `plan`"):
        NoiseSchedule("75-x", noise_level=0.3)


def test_plain_model_is_refused():
    with pytest.raises(TypeError, match="needs a SymmetricSGDModel"):
        fit(mlp(), [NoiseSchedule(lambda e: 0.1)], 1)
