"""The MNIST-1D LSTM classifier and what S-SGD perturbs in it."""

import keras
import numpy as np
import pytest

import keras_ssgd
from keras_ssgd.models import mnist1d_lstm
from keras_ssgd.train.registry import MODELS


def test_reads_a_sequence_and_outputs_logits():
    model = mnist1d_lstm(units=8)
    assert model.input_shape == (None, 40, 1)
    assert model.output_shape == (None, 10)
    # LSTM: 4 * (8 * (1 + 8) + 8); classifier: 8 * 10 + 10.
    assert model.count_params() == 4 * (8 * 9 + 8) + 90


def test_registry_builds_it_for_the_dataset_shape():
    model = MODELS["mnist1d-lstm"]((40, 1), 10, dropout=0.2)
    assert model.output_shape == (None, 10)
    assert "dropout" in [layer.name for layer in model.layers]


def test_default_filter_perturbs_both_kernels_but_never_a_bias():
    model = keras_ssgd.wrap(mnist1d_lstm(units=8), noise_level=0.2)
    paths = sorted(v.path for v in model.noise_variables)
    assert paths == ["logits/kernel", "lstm/lstm_cell/kernel",
                     "lstm/lstm_cell/recurrent_kernel"]
    biases = [v.path for v in model.trainable_variables if "bias" in v.path]
    assert biases and not set(biases) & set(paths)


def test_symmetric_step_trains_it():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 40, 1)).astype("float32")
    y = rng.integers(0, 10, size=32)
    model = keras_ssgd.wrap(mnist1d_lstm(units=8), noise_level=0.2, seed=0)
    model.compile(
        "sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    before = [np.array(v) for v in model.noise_variables]
    history = model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    after = [np.array(v) for v in model.noise_variables]
    # The weights moved, and by a step (no perturbation was left in them).
    for old, new in zip(before, after):
        assert 0 < np.abs(new - old).max() < 0.1


@pytest.mark.parametrize("argument", ["units", "length", "features", "num_classes"])
def test_bad_sizes_are_refused(argument):
    with pytest.raises(ValueError, match=f"Argument `{argument}` must be a positive int. "
                       f"Received: {argument}=0"):
        mnist1d_lstm(**{argument: 0})
