"""Every private Keras name the package relies on (keras_ssgd._keras_compat)
is there in the installed Keras; a change fails naming the version and the
member. Runs on the three backends."""

import importlib

import keras
import numpy as np
import pytest

from keras_ssgd import _keras_compat as compat


def _model():
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    model.compile("sgd", "mse")
    model.fit(np.zeros((4, 3)), np.zeros((4, 2)), verbose=0)
    return model


def _lookup(kind, where):
    if kind == "module":
        return where()
    if kind in ("model", "jax-model"):
        if kind == "jax-model" and keras.backend.backend() != "jax":
            pytest.skip("a member of Keras's JAX trainer")
        return getattr(_model(), where)
    if kind == "batchnorm":
        return getattr(keras.layers.BatchNormalization(), where)
    if kind == "tensorboard":
        return getattr(keras.callbacks.TensorBoard(), where)
    if kind in ("optimizer", "adam"):
        optimizer = (keras.optimizers.Adam() if kind == "adam"
                     else keras.optimizers.SGD(momentum=0.9))
        optimizer.build([keras.Variable(np.zeros(2))])
        return getattr(optimizer, where)
    pytest.importorskip(kind)
    module, _, path = where.partition(":")
    value = importlib.import_module(module)
    for part in path.split("."):
        value = getattr(value, part)
    return value


@pytest.mark.parametrize("name, kind, where", compat.MEMBERS,
                         ids=[member[0] for member in compat.MEMBERS])
def test_private_keras_member_is_there(name, kind, where):
    try:
        value = _lookup(kind, where)
    except (AttributeError, ImportError) as error:
        pytest.fail(f"Keras {keras.__version__} has no `{name}`, which "
                    f"keras_ssgd/_keras_compat.py relies on: {error}")
    assert value is not None, f"Keras {keras.__version__}: `{name}` is None"


def test_no_keras_src_outside_the_compat_module():
    import pathlib
    import re

    package = pathlib.Path(compat.__file__).parent
    users = sorted(
        str(path.relative_to(package)) for path in package.rglob("*.py")
        if path.name != "_keras_compat.py"
        and re.search(r"^\s*(from|import) keras\.src\b", path.read_text(),
                      re.M))
    assert users == []


@pytest.mark.parametrize("optimizer, sign", [
    (lambda: keras.optimizers.SGD(0.1, momentum=0.9), 1.0),
    (lambda: keras.optimizers.Adam(0.1), -1.0),
    (lambda: keras.optimizers.AdamW(0.1), -1.0),
    (lambda: keras.optimizers.LossScaleOptimizer(
        keras.optimizers.SGD(0.1, momentum=0.9)), 1.0),
])
def test_first_moment_is_the_momentum_and_points_downhill(optimizer, sign):
    # One step on the loss w . [1, -2]: the gradient is [1, -2], so the
    # weights move along [-1, 2], and sign * moment points that way.
    optimizer = optimizer()
    w = keras.Variable(np.zeros(2, "float32"))
    optimizer.build([w])
    # (A LossScaleOptimizer is read through its inner optimizer, which takes
    # the step here: its own eager `apply` does not run on JAX.)
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    inner.apply([keras.ops.convert_to_tensor([1.0, -2.0])], [w])
    moment, found = compat.first_moment(optimizer, w)
    assert found == sign and compat.keeps_first_moment(optimizer)
    direction = sign * keras.ops.convert_to_numpy(moment.value)
    assert direction[0] < 0 < direction[1]
    np.testing.assert_allclose(direction / np.abs(direction).max(),
                               [-0.5, 1.0], rtol=1e-5)


def test_no_first_moment_without_momentum():
    for optimizer in (keras.optimizers.SGD(0.1), keras.optimizers.RMSprop()):
        w = keras.Variable(np.zeros(2, "float32"))
        optimizer.build([w])
        assert compat.first_moment(optimizer, w) is None
        assert not compat.keeps_first_moment(optimizer)
