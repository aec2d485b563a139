"""Stateful RNNs: every pass of a step starts from the same state, and the
state carried to the next batch is the mean of the passes' final states."""

import keras
import numpy as np

import keras_ssgd


class TwoCleanPasses(keras_ssgd.SymmetricSGDModel):
    """Measures twice at the unperturbed weights: its carried state must be
    exactly what one plain forward pass leaves, if (and only if) the second
    pass starts from the state the first pass started from."""

    def _perturbed_gradients(self, x, y, sample_weight, noise_variables):
        weights = [v.value for v in noise_variables]
        loss, grads, _ = self._measure(
            x, y, sample_weight, noise_variables, weights, keep_statistics=True
        )
        self._measure(
            x, y, sample_weight, noise_variables, weights, keep_statistics=True
        )
        return loss, grads


def stateful_lstm(cls, **kwargs):
    keras.utils.set_random_seed(3)
    inputs = keras.Input((5, 3), batch_size=4)
    h = keras.layers.LSTM(6, stateful=True, return_sequences=True)(inputs)
    outputs = keras.layers.Dense(2)(h)
    model = cls(inputs, outputs, **kwargs)
    model.compile(
        optimizer=keras.optimizers.SGD(0.0),  # weights stay put
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def state_of(model):
    return [keras.ops.convert_to_numpy(v) for v in model.layers[1].states]


def test_the_passes_start_from_one_state_and_carry_it_on():
    rng = np.random.default_rng(0)
    x = rng.random((8, 5, 3)).astype("float32")
    y = rng.integers(0, 2, (8, 5))
    model = stateful_lstm(TwoCleanPasses, noise_level=0.1, seed=1)
    plain = stateful_lstm(keras.Model)
    plain.set_weights(model.get_weights())
    model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    plain.predict(x, batch_size=4, verbose=0)  # the same two batches, in order
    for got, expected in zip(state_of(model), state_of(plain)):
        assert np.abs(expected).sum() > 0
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_ssgd_carries_the_state_on_between_batches():
    rng = np.random.default_rng(1)
    x = rng.random((4, 5, 3)).astype("float32")
    y = rng.integers(0, 2, (4, 5))
    model = stateful_lstm(keras_ssgd.SymmetricSGDModel, noise_level=0.1, seed=1)
    model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    carried = state_of(model)
    plain = stateful_lstm(keras.Model)
    plain.set_weights(model.get_weights())
    plain.predict(x, batch_size=4, verbose=0)
    for got, clean in zip(carried, state_of(plain)):
        assert np.abs(got).sum() > 0  # the state moved on
        # The mean over W + n and W - n is the clean state to first order.
        np.testing.assert_allclose(got, clean, atol=0.02)
        assert not np.allclose(got, clean, atol=1e-7)
