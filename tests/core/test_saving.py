"""`.keras` round trips for every form of SymmetricSGDModel."""

import keras
import numpy as np
import pytest
from conftest import compile_for_classification
from conftest import make_classification
from conftest import mlp

import keras_ssgd

ARGS = dict(
    noise_level=0.3,
    noise_filter=keras_ssgd.filters.dense_kernels,
    batchnorm_update="first",
    seed=17,
)


@keras.saving.register_keras_serializable(package="keras_ssgd_tests")
class Net(keras_ssgd.SymmetricSGDModel):
    def __init__(self, units=16, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.hidden = keras.layers.Dense(units, activation="tanh")
        self.out = keras.layers.Dense(3)

    def call(self, x):
        return self.out(self.hidden(x))

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable(package="keras_ssgd_tests")
class Plain(keras.Model):
    def __init__(self, units=16, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.hidden = keras.layers.Dense(units, activation="tanh")
        self.out = keras.layers.Dense(3)

    def call(self, x):
        return self.out(self.hidden(x))

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def functional():
    inputs = keras.Input((8,))
    h = keras.layers.Dense(16, activation="tanh")(inputs)
    h = keras.layers.BatchNormalization()(h)
    return keras_ssgd.SymmetricSGDModel(inputs, keras.layers.Dense(3)(h), **ARGS)


FORMS = {
    "functional": functional,
    "subclassed": lambda: Net(units=12, **ARGS),
    "wrapped_functional": lambda: keras_ssgd.wrap(mlp(batchnorm=True), **ARGS),
    "wrapped_sequential": lambda: keras_ssgd.wrap(
        keras.Sequential(
            [keras.Input((8,)), keras.layers.Dense(16), keras.layers.Dense(3)]
        ),
        **ARGS,
    ),
    "wrapped_subclassed": lambda: keras_ssgd.wrap(Plain(units=12), **ARGS),
}


@pytest.mark.parametrize("form", sorted(FORMS))
def test_save_and_load_round_trip(form, tmp_path):
    x, y = make_classification(64)
    model = FORMS[form]()
    compile_for_classification(model)
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)

    assert type(loaded).__name__ == type(model).__name__
    assert isinstance(loaded, keras_ssgd.SymmetricSGDModel)
    assert loaded.noise_level == pytest.approx(0.3)
    assert loaded.noise_filter is keras_ssgd.filters.dense_kernels
    assert loaded.batchnorm_update == "first"
    assert loaded.seed == 17
    if form in ("subclassed", "wrapped_subclassed"):
        inner = loaded if form == "subclassed" else loaded.model
        assert inner.units == 12
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6
    )
    # The loaded model is compiled again (loss and optimizer state) and
    # keeps training.
    assert loaded.compiled and loaded.loss is not None
    assert loaded.optimizer.iterations.numpy() == 2
    loaded.fit(x, y, batch_size=32, epochs=1, verbose=0)


def test_get_config_holds_every_constructor_argument():
    model = keras_ssgd.wrap(mlp(), **ARGS)
    config = model.get_config()
    for key in ("noise_level", "noise_filter", "batchnorm_update", "seed"):
        assert key in config
    assert config["noise_level"] == pytest.approx(0.3)
    restored = keras_ssgd.SymmetricSGDModel.from_config(config)
    assert restored.noise_filter is keras_ssgd.filters.dense_kernels
    assert restored.seed == 17


def test_config_records_the_current_noise_level():
    model = keras_ssgd.wrap(mlp(), noise_level=0.5)
    model.noise_level = 0.125
    assert model.get_config()["noise_level"] == 0.125


def test_wrapped_weights_load_into_the_plain_model(tmp_path):
    x, y = make_classification(64)
    base = mlp()
    model = keras_ssgd.wrap(base, noise_level=0.5, seed=0)
    compile_for_classification(model)
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    assert len(model.get_weights()) == len(base.get_weights())
    model.save_weights(tmp_path / "w.weights.h5")
    fresh = mlp()
    fresh.load_weights(tmp_path / "w.weights.h5")
    for a, b in zip(fresh.get_weights(), base.get_weights()):
        np.testing.assert_array_equal(a, b)
