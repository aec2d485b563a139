"""`every=k`: the perturbed step on one step in k, Keras's own between.

The branch of each step is picked from the optimizer's step counter before
the step runs, so the every-k form must equal, bit for bit, the same model
whose level is switched to 0 on the other steps; `every=1` is the method
itself and `every=math.inf` is `keras.Model`. Runs on every backend.
"""

import math

import keras
import numpy as np
import pytest
from conftest import assert_bit_identical
from conftest import compile_for_classification
from conftest import make_classification
from conftest import mlp
from conftest import weights_of

import keras_ssgd

LEVELS = {"ssgd": ("noise_level", 0.3), "sam": ("rho", 0.2)}


def _model(method, every=1, batchnorm=False, seed=3):
    keras.utils.set_random_seed(0)
    base = mlp(batchnorm=batchnorm)
    argument, level = LEVELS[method]
    kwargs = {argument: level, "every": every}
    if method != "sam":
        kwargs["seed"] = seed
    return keras_ssgd.wrap(base, method=method, **kwargs)


def _fit(model, epochs=2, callbacks=(), **fit):
    x, y = make_classification(80)  # 5 steps of 16 per epoch
    compile_for_classification(model)
    history = model.fit(
        x, y, batch_size=16, epochs=epochs, shuffle=False, verbose=0,
        callbacks=list(callbacks), **fit,
    )
    return weights_of(model), history.history


class _LevelOnStepsOf(keras.callbacks.Callback):
    """Sets the level to 0 on the steps outside one in `k`, by hand."""

    def __init__(self, k, level, steps_per_epoch=5):
        super().__init__()
        self.k, self.level, self.steps = k, level, steps_per_epoch
        self.epoch = 0
        self.perturbed = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        step = self.epoch * self.steps + batch
        on = step % self.k == 0
        self.model.noise_level = self.level if on else 0.0
        if on:
            self.perturbed.append(step)


@pytest.mark.parametrize("method", sorted(LEVELS))
def test_every_k_is_the_method_with_level_0_between(method):
    weights, history = _fit(_model(method, every=3))
    by_hand = _LevelOnStepsOf(3, LEVELS[method][1])
    expected, expected_history = _fit(_model(method), callbacks=[by_hand])
    assert by_hand.perturbed == [0, 3, 6, 9]
    assert_bit_identical(weights, expected)
    assert history == expected_history
    # ... and not plain training: the perturbed steps ran.
    plain, _ = _fit(_model(method, every=math.inf))
    assert not np.array_equal(weights[0], plain[0])


@pytest.mark.parametrize("method", sorted(LEVELS))
def test_every_1_is_the_method(method):
    weights, history = _fit(_model(method, every=1, batchnorm=True))
    default, default_history = _fit(_model(method, batchnorm=True))
    assert_bit_identical(weights, default)
    assert history == default_history
    # ... which is not one step in 3.
    other, _ = _fit(_model(method, every=3, batchnorm=True))
    assert not np.array_equal(weights[0], other[0])


@pytest.mark.exact
@pytest.mark.parametrize("method", sorted(LEVELS))
def test_every_infinity_is_keras_bit_for_bit(method):
    keras.utils.set_random_seed(0)
    plain_weights, plain_history = _fit(mlp(batchnorm=True))
    weights, history = _fit(_model(method, every=math.inf, batchnorm=True))
    assert_bit_identical(weights, plain_weights)
    assert history == plain_history


def test_the_count_goes_on_across_fits_and_a_saved_model(tmp_path):
    # 5 steps per epoch, k = 3: the second epoch starts mid-cycle (step 5).
    whole, _ = _fit(_model("ssgd", every=3), epochs=2)

    model = _model("ssgd", every=3)
    _fit(model, epochs=1)
    path = tmp_path / "half.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.every == 3
    x, y = make_classification(80)
    loaded.fit(x, y, batch_size=16, epochs=2, initial_epoch=1,
               shuffle=False, verbose=0)
    assert_bit_identical(weights_of(loaded), whole)


def test_passes_per_step_and_config():
    model = _model("ssgd", every=4)
    assert model.passes_per_step == 1.25
    assert model.get_config()["every"] == 4
    assert _model("ssgd").passes_per_step == 2
    assert _model("ssgd", every=math.inf).passes_per_step == 1
    assert _model("sam", every=2).passes_per_step == 1.5
    split = keras_ssgd.wrap(mlp(), noise_level=0.2, split_batch=True, every=4)
    assert split.passes_per_step == 1


@pytest.mark.parametrize("every", [0, -2, 2.5, True, "3", None])
def test_a_bad_every_is_refused_by_name(every):
    with pytest.raises(ValueError, match=r"`every`.*Received: every="):
        keras_ssgd.wrap(mlp(), noise_level=0.2, every=every)


def test_every_needs_one_step_per_execution():
    model = _model("ssgd", every=2)
    x, y = make_classification(32)
    compile_for_classification(model, steps_per_execution=2)
    with pytest.raises(ValueError, match="steps_per_execution=1"):
        model.fit(x, y, batch_size=16, verbose=0)
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 0
