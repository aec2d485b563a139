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
