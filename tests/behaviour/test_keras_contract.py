"""The promises `keras.Model` makes, kept by every `PerturbedModel`.

Backend-neutral: `make test` runs this file under TensorFlow, JAX and
PyTorch. Each test fails on a step that breaks the promise it names
(losses added by layers, class hierarchy, pickling, `compute_loss`
overrides, optional inputs, subclass constructors, several outputs,
the model's state, noise filters).
"""

import pickle

import keras
import numpy as np
import pytest
from keras import ops

import keras_ssgd

BACKEND = keras.backend.backend()
# Every method `wrap()` builds (the table of keras_ssgd.methods), its level
# argument and a level that perturbs.
METHODS = {
    name: (method.level_name,
           {"rho": 0.05, "sigma": 0.02}.get(method.level_name, 0.3))
    for name, method in keras_ssgd.methods.METHODS.items() if method.wrappable
}
# Levels so small that a perturbed step matches the plain one to float
# tolerance (DropConnect's rate 1e-7 drops nothing in these sizes).
TINY = {"noise_level": 1e-7, "rate": 1e-7, "rho": 1e-7, "sigma": 1e-7}


def numpy_weights(model):
    return [ops.convert_to_numpy(v) for v in model.weights]


class AddedLoss(keras.layers.Layer):
    """Adds `scale * mean(x ** 2)` with `add_loss` during `call`."""

    def __init__(self, scale=1.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = scale

    def call(self, x):
        self.add_loss(self.scale * ops.mean(x**2))
        return x


def regularized_net(method=None, scale=1.0, **kwargs):
    """A net whose objective includes losses that layers add in `call`
    (`scale` 0 gives the same net and perturbations without them)."""
    keras.utils.set_random_seed(7)
    inputs = keras.Input((4,))
    h = keras.layers.Dense(
        3, activity_regularizer=keras.regularizers.L2(0.5 * scale)
    )(inputs)
    h = AddedLoss(0.3 * scale)(h)
    outputs = keras.layers.Dense(1)(h)
    model = keras.Model(inputs, outputs)
    if method is not None:
        model = keras_ssgd.wrap(model, method=method, seed=0, **kwargs)
    return model


def data(n=16, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 4)).astype("float32")
    y = rng.standard_normal((n, 1)).astype("float32")
    return x, y


def sgd(lr=0.01, method=None):
    """Keras's SGD; with momentum for a method that perturbs along it
    (MSAM), whose first step is then SGD's."""
    needs = method is not None and keras_ssgd.methods.METHODS[
        method].needs_momentum
    return keras.optimizers.SGD(lr, momentum=0.9 if needs else 0.0)


def one_step(model, lr=0.1, loss="mse", method=None):
    model.compile(optimizer=sgd(lr, method), loss=loss)
    x, y = data()
    history = model.fit(x, y, batch_size=16, shuffle=False, verbose=0)
    return numpy_weights(model), history.history["loss"][0]


@pytest.mark.parametrize("method", sorted(METHODS))
def test_layer_losses_are_in_the_perturbed_loss(method):
    argument, level = METHODS[method]
    x, y = data()
    reported = {}
    for scale in (0.0, 1.0):
        model = regularized_net(method, scale, **{argument: level})
        model.compile(optimizer=sgd(0.0, method), loss="mse")
        history = model.fit(x, y, batch_size=16, verbose=0)
        reported[scale] = history.history["loss"][0]
    clean = model.evaluate(x, y, verbose=0)
    added = clean - float(
        keras.losses.MeanSquaredError()(y, model.predict(x, verbose=0))
    )
    assert added > 0.05  # the layers' losses are a visible part of it
    # The same perturbations, with and without the layers' losses: the
    # reported loss carries them (a pass that dropped them gives 0 here).
    assert reported[1.0] - reported[0.0] > 0.2 * added


@pytest.mark.parametrize("method", sorted(METHODS))
def test_layer_losses_are_in_the_perturbed_gradient(method):
    argument, _ = METHODS[method]
    plain_weights, plain_loss = one_step(regularized_net())
    weights, loss = one_step(
        regularized_net(method, **{argument: TINY[argument]}), method=method)
    np.testing.assert_allclose(loss, plain_loss, rtol=1e-4)
    for w, p in zip(weights, plain_weights):
        np.testing.assert_allclose(w, p, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("level", [0.0, 1e-7])
def test_a_model_trained_by_added_losses_only(level):
    # No compiled loss: the objective is what the layers add.
    def build(wrap):
        keras.utils.set_random_seed(3)
        inputs = keras.Input((4,))
        outputs = AddedLoss()(keras.layers.Dense(2)(inputs))
        model = keras.Model(inputs, outputs)
        return keras_ssgd.wrap(model, noise_level=level, seed=0) if wrap else model

    x, _ = data()
    results = []
    for wrap in (False, True):
        model = build(wrap)
        model.compile(optimizer=keras.optimizers.SGD(0.5))
        history = model.fit(x, batch_size=16, shuffle=False, verbose=0)
        results.append((numpy_weights(model), history.history["loss"][0]))
    (plain, plain_loss), (ours, loss) = results
    assert plain_loss > 0
    np.testing.assert_allclose(loss, plain_loss, rtol=1e-5)
    for w, p in zip(ours, plain):
        np.testing.assert_allclose(w, p, rtol=1e-5, atol=1e-7)


@pytest.mark.exact
def test_level_zero_reports_the_layer_losses_as_keras_does():
    plain_weights, plain_loss = one_step(regularized_net())
    weights, loss = one_step(regularized_net("ssgd", noise_level=0.0))
    assert loss == plain_loss
    for w, p in zip(weights, plain_weights):
        np.testing.assert_array_equal(w, p)


def test_a_subclass_built_from_a_layer_graph_leaves_the_classes_alone():
    bases = {
        cls: cls.__bases__
        for cls in (keras_ssgd.PerturbedModel, keras_ssgd.SymmetricSGDModel)
    }

    class Graph(keras_ssgd.SymmetricSGDModel):
        def __init__(self, **kwargs):
            inputs = keras.Input((3,))
            super().__init__(
                inputs=inputs, outputs=keras.layers.Dense(1)(inputs), **kwargs
            )

    model = Graph(noise_level=0.2, seed=0)
    assert {cls: cls.__bases__ for cls in bases} == bases
    assert Graph.__bases__ == (keras_ssgd.SymmetricSGDModel,)
    assert isinstance(model, Graph) and len(model.layers) == 2

    # Subclassed models of the same classes still work afterwards.
    class Net(keras_ssgd.SymmetricSGDModel):
        def __init__(self, units, outputs, **kwargs):
            super().__init__(**kwargs)
            self.hidden = keras.layers.Dense(units)
            self.out = keras.layers.Dense(outputs)

        def call(self, x):
            return self.out(self.hidden(x))

    net = Net(16, 3, noise_level=0.2, seed=0)  # two positional arguments
    net.compile(optimizer="sgd", loss="mse")
    history = net.fit(np.ones((8, 3)), np.zeros((8, 3)), verbose=0)
    assert np.isfinite(history.history["loss"][0])
    model.compile(optimizer="sgd", loss="mse")
    model.fit(np.ones((8, 3)), np.zeros((8, 1)), verbose=0)


def test_functional_models_pickle():
    inputs = keras.Input((4,))
    model = keras_ssgd.SymmetricSGDModel(
        inputs, keras.layers.Dense(2)(inputs), noise_level=0.25, seed=3
    )
    x, _ = data()
    restored = pickle.loads(pickle.dumps(model))
    assert type(restored).__name__ == "SymmetricSGDModel"
    assert isinstance(restored, keras_ssgd.SymmetricSGDModel)
    assert restored.noise_level == 0.25 and restored.seed == 3
    np.testing.assert_allclose(
        restored.predict(x, verbose=0), model.predict(x, verbose=0)
    )


@pytest.mark.parametrize("level", [0.0, 0.3])
def test_compute_loss_overrides_without_training_argument(level):
    class Model(keras_ssgd.SymmetricSGDModel):
        def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None):
            self.calls = getattr(self, "calls", 0) + 1
            return ops.mean((y - y_pred) ** 2)

    inputs = keras.Input((4,))
    model = Model(inputs, keras.layers.Dense(1)(inputs), noise_level=level)
    model.compile(optimizer="sgd")
    x, y = data()
    history = model.fit(x, y, batch_size=16, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert model.calls >= 1


@pytest.mark.parametrize("level", [0.0, 0.3])
def test_optional_inputs_given_as_none(level):
    class Add(keras.layers.Layer):
        def call(self, a, b=None):
            return a if b is None else a + b

    x_in = keras.Input((4,), name="x")
    o_in = keras.Input((4,), name="o", optional=True)
    outputs = keras.layers.Dense(1)(Add()(x_in, o_in))
    model = keras_ssgd.SymmetricSGDModel(
        {"x": x_in, "o": o_in}, outputs, noise_level=level, seed=0
    )
    model.compile(optimizer="sgd", loss="mse")
    x, y = data()
    # "o" flattens first: the batch size must come from "x", not from None.
    history = model.fit({"x": x, "o": None}, y, batch_size=8, verbose=0)
    assert np.isfinite(history.history["loss"][0])


@pytest.mark.parametrize("structure", ["list", "dict"])
@pytest.mark.parametrize("method", sorted(METHODS))
def test_several_outputs(method, structure):
    argument, level = METHODS[method]
    inputs = keras.Input((4,))
    first = keras.layers.Dense(1, name="first")(inputs)
    second = keras.layers.Dense(2, name="second")(inputs)
    outputs = [first, second] if structure == "list" else {
        "first": first, "second": second
    }
    model = keras_ssgd.wrap(
        keras.Model(inputs, outputs), method=method, seed=0, **{argument: level}
    )
    x, _ = data()
    targets = [np.zeros((16, 1)), np.ones((16, 2))]
    if structure == "dict":
        targets = dict(zip(["first", "second"], targets))
    model.compile(
        optimizer=sgd(method=method),
        loss=["mse", "mse"] if structure == "list" else {
            "first": "mse", "second": "mse"
        },
        metrics=["mae", "mae"] if structure == "list" else {
            "first": "mae", "second": "mae"
        },
    )
    history = model.fit(x, targets, batch_size=8, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


def test_model_state_is_keras_model_state():
    def build(cls, **kwargs):
        inputs = keras.Input((4,))
        h = keras.layers.BatchNormalization()(keras.layers.Dense(3)(inputs))
        return cls(inputs, keras.layers.Dense(1)(h), **kwargs)

    ours = build(keras_ssgd.SymmetricSGDModel, noise_level=0.3, seed=0)
    plain = build(keras.Model)
    for model in (ours, plain):
        model.compile(optimizer="sgd", loss="mse")
    x, y = data()
    ours.fit(x, y, verbose=0)
    plain.fit(x, y, verbose=0)
    for name in ("trainable_variables", "non_trainable_variables", "weights"):
        assert [tuple(v.shape) for v in getattr(ours, name)] == [
            tuple(v.shape) for v in getattr(plain, name)
        ], name
    ours_tree, plain_tree = ours.get_state_tree(), plain.get_state_tree()
    assert sorted(ours_tree) == sorted(plain_tree)
    for group in plain_tree:
        assert [np.shape(v) for v in keras.tree.flatten(ours_tree[group])] == [
            np.shape(v) for v in keras.tree.flatten(plain_tree[group])
        ], group


def test_noise_level_changes_reach_the_compiled_step():
    # Held outside the model's state, the level still drives the step: a
    # level that blows the loss up shows at once, without a rebuild.
    inputs = keras.Input((4,))
    model = keras_ssgd.SymmetricSGDModel(
        inputs, keras.layers.Dense(1)(inputs), noise_level=1e-6, seed=0
    )
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse")
    x, y = data()
    small = model.fit(x, y, batch_size=16, verbose=0).history["loss"][0]
    model.noise_level = 50.0
    large = model.fit(x, y, batch_size=16, verbose=0).history["loss"][0]
    model.noise_level = 1e-6
    again = model.fit(x, y, batch_size=16, verbose=0).history["loss"][0]
    assert large > 10 * small
    np.testing.assert_allclose(again, small, rtol=1e-4)


def test_shipped_filters_answer_outside_selection():
    inputs = keras.Input((5, 2))
    conv = keras.layers.Conv1D(3, 2)
    lstm = keras.layers.LSTM(4)
    dense = keras.layers.Dense(1)
    keras.Model(inputs, dense(lstm(conv(inputs))))
    filters = keras_ssgd.filters
    assert filters.owning_layer(dense.kernel) is dense
    assert filters.conv_kernels(conv.kernel)
    assert not filters.conv_kernels(dense.kernel)
    assert filters.dense_kernels(dense.kernel)
    assert not filters.dense_kernels(dense.bias)
    assert filters.recurrent_kernels(lstm.cell.recurrent_kernel)
    assert not filters.recurrent_kernels(conv.kernel)
    assert filters.owning_layer(keras.Variable(np.ones((2, 2)))) is None


@pytest.mark.parametrize("frozen", [False, True])
def test_a_model_with_nothing_to_perturb_trains_as_keras_model(frozen):
    # No kernel under the default filter (BatchNorm only), or every layer
    # frozen: the perturbed branch falls back to Keras's own step.
    def build(wrap):
        keras.utils.set_random_seed(2)
        inputs = keras.Input((4,))
        if frozen:
            model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
            model.trainable = False
        else:
            model = keras.Model(
                inputs, keras.layers.BatchNormalization()(inputs)
            )
        if wrap:
            model = keras_ssgd.wrap(model, noise_level=0.3, seed=0)
        model.compile(optimizer="sgd", loss="mse")
        return model

    x, _ = data()
    y = np.ones((16, 1 if frozen else 4), "float32")
    plain = build(wrap=False)
    plain_history = plain.fit(x, y, batch_size=8, shuffle=False, verbose=0)
    model = build(wrap=True)
    with pytest.warns(UserWarning, match="no variable to perturb|trainable"):
        history = model.fit(x, y, batch_size=8, shuffle=False, verbose=0)
    np.testing.assert_allclose(
        history.history["loss"], plain_history.history["loss"], rtol=1e-6
    )
    for w, p in zip(numpy_weights(model), numpy_weights(plain)):
        np.testing.assert_allclose(w, p, rtol=1e-6)
