import keras
import numpy as np
import pytest
from conftest import compile_for_classification
from conftest import make_classification
from conftest import mlp

import keras_ssgd
from keras_ssgd.wrapping import SymmetricSGDWrapper


class Plain(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.hidden = keras.layers.Dense(16, activation="tanh")
        self.out = keras.layers.Dense(3)

    def call(self, x):
        return self.out(self.hidden(x))


def sequential(with_input=True):
    layers = [keras.layers.Dense(16, activation="tanh"), keras.layers.Dense(3)]
    return keras.Sequential(([keras.Input((8,))] if with_input else []) + layers)


@pytest.mark.parametrize(
    "build",
    [mlp, sequential, lambda: sequential(with_input=False), Plain],
    ids=["functional", "sequential", "sequential_unbuilt", "subclassed"],
)
def test_wrap_shares_layers_and_weights(build):
    x, y = make_classification(128)
    base = build()
    model = keras_ssgd.wrap(base, noise_level=0.4, seed=0)
    assert isinstance(model, keras_ssgd.SymmetricSGDModel)
    compile_for_classification(model)
    history = model.fit(x, y, batch_size=32, epochs=4, verbose=0).history
    assert history["loss"][-1] < history["loss"][0]
    # The base model holds the trained weights: same variables.
    assert {id(v) for v in base.weights} == {id(v) for v in model.weights}
    np.testing.assert_allclose(
        base.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6
    )


def test_built_sequential_becomes_functional_not_a_wrapper():
    base = sequential()
    model = keras_ssgd.wrap(base)
    assert not isinstance(model, SymmetricSGDWrapper)
    assert [l.name for l in model.layers[1:]] == [l.name for l in base.layers]
    unbuilt = keras_ssgd.wrap(sequential(with_input=False))
    assert isinstance(unbuilt, SymmetricSGDWrapper)


def test_functional_wrap_keeps_the_layer_graph():
    base = mlp()
    model = keras_ssgd.wrap(base)
    assert [l.name for l in model.layers] == [l.name for l in base.layers]
    assert model.name == base.name
    assert keras_ssgd.wrap(base, name="other").name == "other"


def test_functional_construction_leaves_the_class_subclassable():
    keras_ssgd.wrap(mlp())  # functional construction first

    class Net(keras_ssgd.SymmetricSGDModel):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.out = keras.layers.Dense(3)

        def call(self, x):
            return self.out(x)

    net = Net(noise_level=0.1)
    assert net(np.zeros((2, 8), "float32")).shape == (2, 3)
    assert keras_ssgd.SymmetricSGDModel.__bases__ == (keras_ssgd.PerturbedModel,)
    assert keras_ssgd.PerturbedModel.__bases__ == (keras.Model,)


@pytest.mark.parametrize("bad", [None, "model", keras.layers.Dense(3), 3])
def test_wrap_refuses_what_is_not_a_model(bad):
    with pytest.raises(TypeError, match="Argument `model` must be a `keras.Model`"):
        keras_ssgd.wrap(bad)
