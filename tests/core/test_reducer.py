"""The gradient-reducer hook that data parallelism plugs into."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_ssgd
from conftest import compile_for_classification
from conftest import make_classification
from conftest import mlp


class CountingReducer:
    """Identity, counting its calls (as a variable, inside the step)."""

    def __init__(self):
        self.calls = None
        self.sizes = []

    def __call__(self, gradients, finite):
        if self.calls is None:
            with tf.init_scope():
                self.calls = tf.Variable(0)
        self.calls.assign_add(1)
        self.sizes = [int(np.prod(g.shape)) for g in gradients if g is not None]
        return gradients, finite


def train(reducer, steps=6):
    x, y = make_classification(96)
    keras.utils.set_random_seed(0)
    model = keras_ssgd.wrap(mlp(), noise_level=0.4, seed=3)
    model.gradient_reducer = reducer
    compile_for_classification(model)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    return model


def test_reducer_runs_once_per_step_on_one_gradient(op_determinism):
    reducer = CountingReducer()
    model = train(reducer)
    assert int(reducer.calls.numpy()) == 6  # one call per step, both passes included
    assert sum(reducer.sizes) == model.count_params()  # one gradient's worth
    plain = train(None)
    for a, b in zip(model.get_weights(), plain.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_reducer_turns_xla_off_with_a_warning():
    model = keras_ssgd.wrap(mlp(), noise_level=0.4, seed=3)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", jit_compile=True)
    with pytest.warns(UserWarning, match="no XLA kernel, so jit_compile is set to False"):
        model.gradient_reducer = CountingReducer()
    assert model.jit_compile is False


def test_reducer_must_be_callable():
    model = keras_ssgd.wrap(mlp(), noise_level=0.4)
    with pytest.raises(TypeError, match="`gradient_reducer` must be None or a callable"):
        model.gradient_reducer = "horovod"
