"""Bad input is refused with the argument's name and value, before training."""

import math

import keras
import numpy as np
import pytest
from conftest import compile_for_classification
from conftest import make_classification
from conftest import mlp
from conftest import weights_of

import keras_ssgd


@pytest.mark.parametrize(
    "value, error, message",
    [
        (-0.1, ValueError, "noise_level=-0.1"),
        (math.nan, ValueError, "noise_level=nan"),
        (math.inf, ValueError, "noise_level=inf"),
        ("0.5", TypeError, "noise_level='0.5'"),
        (True, TypeError, "noise_level=True"),
        (None, TypeError, "noise_level=None"),
    ],
)
def test_bad_noise_level(value, error, message):
    with pytest.raises(error, match=f"Argument `noise_level`.*{message}"):
        keras_ssgd.wrap(mlp(), noise_level=value)
    model = keras_ssgd.wrap(mlp(), noise_level=0.5)
    with pytest.raises(error, match=message):
        model.noise_level = value
    assert model.noise_level == 0.5


def test_numpy_scalars_are_accepted():
    model = keras_ssgd.wrap(mlp(), noise_level=np.float32(0.25))
    assert model.noise_level == 0.25


def test_bad_batchnorm_update():
    with pytest.raises(ValueError, match="`batchnorm_update`.*batchnorm_update='second'"):
        keras_ssgd.wrap(mlp(), batchnorm_update="second")


@pytest.mark.parametrize(
    "seed, error", [(-1, ValueError), (1.5, TypeError), ("7", TypeError)]
)
def test_bad_seed(seed, error):
    with pytest.raises(error, match="Argument `seed`"):
        keras_ssgd.wrap(mlp(), seed=seed)


def test_bad_filter_type():
    with pytest.raises(TypeError, match="Argument `noise_filter`.*noise_filter=3"):
        keras_ssgd.wrap(mlp(), noise_filter=3)


def test_filter_selecting_nothing_fails_before_any_update():
    x, y = make_classification(64)
    model = keras_ssgd.wrap(mlp(), noise_filter=keras_ssgd.filters.conv_kernels)
    compile_for_classification(model)
    start = weights_of(model)
    with pytest.raises(ValueError, match="`noise_filter` selects no trainable variable.*conv_kernels"):
        model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    for a, b in zip(start, weights_of(model)):
        np.testing.assert_array_equal(a, b)


def test_noise_variables_of_an_unbuilt_model():
    class Net(keras_ssgd.SymmetricSGDModel):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.out = keras.layers.Dense(3)

        def call(self, x):
            return self.out(x)

    with pytest.raises(ValueError, match="not built yet"):
        _ = Net().noise_variables
