import keras
import pytest

import keras_ssgd
from keras_ssgd import filters


def mixed_model():
    inputs = keras.Input((10,), dtype="int32")
    h = keras.layers.Embedding(30, 8, name="embed")(inputs)
    h = keras.layers.Conv1D(8, 3, name="conv")(h)
    h = keras.layers.BatchNormalization(name="bn")(h)
    h = keras.layers.LSTM(6, name="lstm")(h)
    h = keras.layers.Dense(5, name="dense")(h)
    return keras.Model(inputs, h)


def selected(noise_filter):
    model = keras_ssgd.wrap(mixed_model(), noise_filter=noise_filter)
    return sorted(v.path for v in model.noise_variables)


def test_kernels_is_the_default_and_skips_rank_one():
    expected = sorted(
        [
            "embed/embeddings",
            "conv/kernel",
            "lstm/lstm_cell/kernel",
            "lstm/lstm_cell/recurrent_kernel",
            "dense/kernel",
        ]
    )
    assert selected(None) == expected
    assert selected(filters.kernels) == expected


def test_kernels_skips_biases_of_rank_two():
    # MultiHeadAttention's query, key and value biases are (heads, size)
    # and a GRU's `reset_after` bias is (2, 3 * units): biases all the same.
    inputs = keras.Input((6, 8))
    h = keras.layers.MultiHeadAttention(2, 4, name="mha")(inputs, inputs)
    h = keras.layers.GRU(3, name="gru")(h)
    model = keras_ssgd.wrap(keras.Model(inputs, h))
    ranks = {v.path: len(v.shape) for v in model.trainable_variables}
    assert ranks["mha/query/bias"] == 2 and ranks["gru/gru_cell/bias"] == 2
    assert sorted(v.path for v in model.noise_variables) == sorted([
        "mha/query/kernel", "mha/key/kernel", "mha/value/kernel",
        "mha/attention_output/kernel",
        "gru/gru_cell/kernel", "gru/gru_cell/recurrent_kernel",
    ])


def test_layer_type_filters():
    assert selected(filters.conv_kernels) == ["conv/kernel"]
    assert selected(filters.dense_kernels) == ["dense/kernel"]
    assert selected(filters.recurrent_kernels) == [
        "lstm/lstm_cell/kernel",
        "lstm/lstm_cell/recurrent_kernel",
    ]


def test_custom_filter_may_select_any_trainable_variable():
    chosen = selected(lambda v: "bias" not in v.name and v.name != "gamma")
    assert "bn/beta" in chosen
    assert "dense/bias" not in chosen


def test_owning_layer_answers_outside_selection():
    dense = keras.layers.Dense(2)
    keras.Sequential([keras.Input((3,)), dense])
    assert filters.owning_layer(dense.kernel) is dense
    assert filters.owning_layer(keras.Variable(1.0)) is None
