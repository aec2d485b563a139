"""`keras_ssgd.callbacks.StochasticWeightAveraging`: the model ends `fit()`
at the average of its end-of-epoch weights from epoch `start` on, with its
BatchNorm statistics recomputed for them.

Backend-neutral: `make test` runs this file under TensorFlow, JAX and
PyTorch. The expected weights and statistics are computed here from the
end-of-epoch weights that a callback of the test records during the same
`fit()`.
"""

import warnings

import keras
import numpy as np
import pytest
from keras import ops

import keras_ssgd
from keras_ssgd.callbacks import StochasticWeightAveraging

EPOCHS = 4
BATCH = 16


def data(n=64, features=6, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, features)).astype("float32")
    y = rng.standard_normal((n, 2)).astype("float32")
    return x, y


def net(batchnorm=False, features=6):
    inputs = keras.Input((features,))
    h = keras.layers.Dense(5, activation="tanh")(inputs)
    if batchnorm:
        h = keras.layers.BatchNormalization(name="bn")(h)
    outputs = keras.layers.Dense(2)(h)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    return model


def numpy_list(variables):
    return [ops.convert_to_numpy(v) for v in variables]


class Recorder(keras.callbacks.Callback):
    """The trainable weights at the end of each epoch."""

    def __init__(self):
        super().__init__()
        self.epochs = []

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append(numpy_list(self.model.trainable_variables))


def train(model, swa, epochs=EPOCHS, extra=(), **kwargs):
    """`fit()` with a `Recorder` (before `swa`); returns the recorder."""
    x, y = data()
    recorder = Recorder()
    model.fit(
        x, y, batch_size=BATCH, epochs=epochs, shuffle=False, verbose=0,
        callbacks=[recorder, *extra, swa], **kwargs,
    )
    return recorder


def average(snapshots):
    """The float64 mean of lists of arrays, cast to float32."""
    return [
        np.mean(np.stack([s[i].astype("float64") for s in snapshots]), axis=0)
        .astype("float32")
        for i in range(len(snapshots[0]))
    ]


def assert_weights(actual, expected):
    assert len(actual) == len(expected)
    for i, (a, e) in enumerate(zip(actual, expected)):
        np.testing.assert_allclose(
            a, e, rtol=1e-6, atol=1e-7, err_msg=f"weight {i} differs"
        )


def batches_of(x, sizes):
    out, i = [], 0
    for size in sizes:
        out.append(x[i:i + size])
        i += size
    return out


# --- The average of the end-of-epoch weights. -----------------------------


@pytest.mark.parametrize("start, first", [(0, 0), (2, 2), (0.5, 2), (0.75, 3)])
def test_the_weights_are_the_average_from_start(start, first):
    model = net()
    swa = StochasticWeightAveraging(start=start)
    recorder = train(model, swa)
    assert len(recorder.epochs) == EPOCHS
    assert swa.start_epoch == first
    assert swa.averaged_epochs == EPOCHS - first
    assert_weights(
        numpy_list(model.trainable_variables), average(recorder.epochs[first:])
    )


def test_the_average_is_not_the_last_weights_nor_another_start():
    # The comparisons above can fail: the weights move from epoch to epoch,
    # so different starts give different averages.
    finals = {}
    for start in (0, 0.5):
        keras.utils.set_random_seed(0)
        model = net()
        recorder = train(model, StochasticWeightAveraging(start=start))
        finals[start] = numpy_list(model.trainable_variables)
    last = recorder.epochs[-1]
    for a, b, c in zip(finals[0], finals[0.5], last):
        assert not np.allclose(a, b, rtol=1e-4, atol=1e-6)
        assert not np.allclose(b, c, rtol=1e-4, atol=1e-6)


def test_a_wrapped_model_ends_at_its_average():
    keras.utils.set_random_seed(0)
    model = keras_ssgd.wrap(net(), noise_level=0.3, seed=0)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    swa = StochasticWeightAveraging(start=1)
    recorder = train(model, swa)
    assert swa.averaged_epochs == EPOCHS - 1
    assert_weights(
        numpy_list(model.trainable_variables), average(recorder.epochs[1:])
    )


def test_each_fit_starts_a_new_average():
    model = net()
    swa = StochasticWeightAveraging(start=1)
    train(model, swa)
    recorder = train(model, swa, epochs=3)
    assert swa.averaged_epochs == 2
    assert_weights(
        numpy_list(model.trainable_variables), average(recorder.epochs[1:])
    )


def test_initial_epoch_counts_in_the_epochs():
    # Epochs 2 and 3 run; start=0.75 of epochs=4 is epoch 3.
    model = net()
    swa = StochasticWeightAveraging(start=0.75)
    recorder = train(model, swa, initial_epoch=2)
    assert len(recorder.epochs) == 2
    assert swa.averaged_epochs == 1
    assert_weights(numpy_list(model.trainable_variables), recorder.epochs[-1])


def test_a_fraction_is_rounded_down_to_an_epoch():
    swa = StochasticWeightAveraging(start=0.57)
    swa.set_model(net())
    swa.set_params({"epochs": 100})
    swa.on_train_begin()
    assert swa.start_epoch == 57  # 0.57 * 100 is 56.99999999999999
    swa.set_params({"epochs": 10})
    swa.on_train_begin()
    assert swa.start_epoch == 5


def test_training_stopped_before_start_keeps_the_last_weights():
    model = net()
    stop = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: setattr(model, "stop_training", True)
    )
    swa = StochasticWeightAveraging(start=2)
    with pytest.warns(UserWarning, match=r"after epoch 0 .*start=2"):
        recorder = train(model, swa, extra=[stop])
    assert len(recorder.epochs) == 1
    assert swa.averaged_epochs == 0
    assert_weights(numpy_list(model.trainable_variables), recorder.epochs[0])


# --- BatchNorm statistics of the averaged weights. -------------------------


class Batches(keras.utils.PyDataset):
    def __init__(self, batches):
        super().__init__()
        self.batches = batches

    def __len__(self):
        return len(self.batches)

    def __getitem__(self, index):
        return self.batches[index]


def batchnorm_data(kind, x, y, sizes):
    xs, ys = batches_of(x, sizes), batches_of(y, sizes)
    if kind == "x":
        return xs
    if kind == "xy":
        return list(zip(xs, ys))
    if kind == "pydataset":
        return Batches(list(zip(xs, ys)))
    tf = pytest.importorskip("tensorflow")
    # Unequal batches: 64 rows in batches of 24 (24, 24, 16).
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(sizes[0])


@pytest.mark.parametrize("kind", ["x", "xy", "pydataset", "tf.data"])
def test_batchnorm_statistics_are_recomputed_for_the_average(kind):
    x, y = data()
    # Unequal batches: each batch's statistics count once, whatever its size.
    sizes = [24, 24, 16]
    model = net(batchnorm=True)
    layer = model.get_layer("bn")
    swa = StochasticWeightAveraging(
        start=1, batchnorm_data=batchnorm_data(kind, x, y, sizes)
    )
    recorder = train(model, swa)
    assert swa.averaged_epochs == EPOCHS - 1
    assert_weights(
        numpy_list(model.trainable_variables), average(recorder.epochs[1:])
    )
    assert layer.momentum == 0.99  # restored

    # The BN layer's inputs under the averaged weights, batch by batch.
    inputs = keras.Model(model.input, layer.input)
    means, variances = [], []
    for batch in batches_of(x, sizes):
        h = ops.convert_to_numpy(inputs(batch)).astype("float64")
        means.append(h.mean(axis=0))
        variances.append(h.var(axis=0))  # biased, as Keras's ops.moments
    np.testing.assert_allclose(
        ops.convert_to_numpy(layer.moving_mean), np.mean(means, axis=0),
        rtol=1e-5, atol=1e-6,
    )
    np.testing.assert_allclose(
        ops.convert_to_numpy(layer.moving_variance),
        np.mean(variances, axis=0), rtol=1e-5, atol=1e-6,
    )
    # Not the statistics of training's moving averages, nor of all the rows
    # at once (a weighted average of the batches), nor unbiased variances.
    whole = ops.convert_to_numpy(inputs(x)).astype("float64")
    assert not np.allclose(
        ops.convert_to_numpy(layer.moving_mean), whole.mean(axis=0),
        rtol=1e-5, atol=1e-6,
    )
    unbiased = [v * n / (n - 1) for v, n in zip(variances, sizes)]
    assert not np.allclose(
        ops.convert_to_numpy(layer.moving_variance),
        np.mean(unbiased, axis=0), rtol=1e-5, atol=1e-6,
    )


def test_the_statistics_pass_changes_no_other_state():
    inputs = keras.Input((6,))
    h = keras.layers.Dense(5, activation="tanh")(inputs)
    h = keras.layers.Dropout(0.2, seed=1)(h)
    h = keras.layers.BatchNormalization(name="bn")(h)
    frozen = keras.layers.BatchNormalization(name="frozen")
    model = keras.Model(inputs, keras.layers.Dense(2)(frozen(h)))
    frozen.trainable = False
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    x, y = data()
    bn = model.get_layer("bn")
    statistics = {id(bn.moving_mean), id(bn.moving_variance)}
    before = {}

    def keep(epoch, logs):
        before.update({
            id(v): ops.convert_to_numpy(v)
            for v in model.non_trainable_variables if id(v) not in statistics
        })

    swa = StochasticWeightAveraging(start=0, batchnorm_data=[x[:32], x[32:]])
    recorder = keras.callbacks.LambdaCallback(on_epoch_end=keep)
    train(model, swa, extra=[recorder])
    others = [v for v in model.non_trainable_variables
              if id(v) not in statistics]
    assert len(others) >= 3  # the frozen layer's statistics, Dropout's seed
    for v in others:
        np.testing.assert_array_equal(ops.convert_to_numpy(v), before[id(v)])
    assert frozen.momentum == bn.momentum == 0.99


# --- Argument errors, before any training. --------------------------------


@pytest.mark.parametrize("start, error, received", [
    (-1, ValueError, "start=-1"),
    (1.0, ValueError, "start=1.0"),
    (1.5, ValueError, "start=1.5"),
    (-0.25, ValueError, "start=-0.25"),
    (float("nan"), ValueError, "start=nan"),
    ("0.5", TypeError, "start='0.5'"),
    (True, TypeError, "start=True"),
    (None, TypeError, "start=None"),
])
def test_a_bad_start_is_refused(start, error, received):
    with pytest.raises(error, match=r"Argument `start`.*" + received):
        StochasticWeightAveraging(start=start)


def test_numpy_numbers_are_accepted():
    assert StochasticWeightAveraging(start=np.int64(2)).start == 2
    assert StochasticWeightAveraging(start=np.float32(0.5)).start == 0.5


def test_a_start_past_the_last_epoch_is_refused_before_training():
    model = net()
    weights = numpy_list(model.weights)
    swa = StochasticWeightAveraging(start=EPOCHS)
    with pytest.raises(ValueError, match=r"Argument `start`.*epochs=4.*"
                       r"Received: start=4"):
        train(model, swa)
    assert_weights(numpy_list(model.weights), weights)


def test_batchnorm_without_data_is_refused_before_training():
    model = net(batchnorm=True)
    weights = numpy_list(model.weights)
    swa = StochasticWeightAveraging(start=1)
    with pytest.raises(ValueError, match=r"Argument `batchnorm_data` is "
                       r"required.*\bbn\b.*Received: batchnorm_data=None"):
        train(model, swa)
    assert_weights(numpy_list(model.weights), weights)


def test_a_model_without_batchnorm_needs_no_data():
    swa = StochasticWeightAveraging(start=3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(net(), swa)
    assert swa.averaged_epochs == 1
    assert not [
        w for w in caught if "StochasticWeightAveraging" in str(w.message)
    ]


@pytest.mark.parametrize("bad", [np.zeros((8, 6)), {"x": np.zeros((8, 6))}, 3])
def test_batchnorm_data_must_be_batches(bad):
    with pytest.raises(TypeError, match=r"Argument `batchnorm_data`.*"
                       r"Received: batchnorm_data of type"):
        StochasticWeightAveraging(batchnorm_data=bad)


def test_an_endless_pydataset_is_refused():
    class Endless(keras.utils.PyDataset):
        @property
        def num_batches(self):
            return None

        def __getitem__(self, index):
            return np.zeros((4, 6), "float32")

    with pytest.raises(ValueError, match=r"Argument `batchnorm_data` must be "
                       r"finite.*Received: batchnorm_data="):
        StochasticWeightAveraging(batchnorm_data=Endless())


def test_an_empty_batchnorm_data_is_an_error_after_averaging():
    model = net(batchnorm=True)
    layer = model.get_layer("bn")
    swa = StochasticWeightAveraging(start=2, batchnorm_data=iter([]))
    with pytest.raises(ValueError, match=r"Argument `batchnorm_data` yields "
                       r"no batch.*Received: batchnorm_data="):
        recorder = Recorder()
        x, y = data()
        model.fit(x, y, batch_size=BATCH, epochs=EPOCHS, shuffle=False,
                  verbose=0, callbacks=[recorder, swa])
    # The weights are averaged; the statistics are training's, untouched.
    assert_weights(
        numpy_list(model.trainable_variables), average(recorder.epochs[2:])
    )
    assert layer.momentum == 0.99
    assert not np.allclose(ops.convert_to_numpy(layer.moving_mean), 0)


def test_renorm_is_refused_before_training():
    inputs = keras.Input((6,))
    h = keras.layers.BatchNormalization(renorm=True, name="rn")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2)(h))
    model.compile(optimizer="sgd", loss="mse")
    swa = StochasticWeightAveraging(batchnorm_data=[data()[0]])
    with pytest.raises(ValueError, match=r"renorm=True.*\['rn'\]"):
        train(model, swa)
