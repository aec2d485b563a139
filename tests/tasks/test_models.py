"""The model builders: parameter counts from the papers, shapes, dropout."""

import keras
import numpy as np
import pytest

from keras_ssgd import models
from keras_ssgd.train.registry import MODELS


@pytest.mark.parametrize(
    "build, params",
    [
        (lambda: models.cifar_resnet(20), 0.27e6),
        (lambda: models.cifar_resnet(56), 0.86e6),
        (lambda: models.wide_resnet(28, 2), 1.47e6),
        (lambda: models.wide_resnet(28, 4), 5.85e6),
        (lambda: models.cifar_vgg(16), 15.0e6),
    ],
    ids=["resnet20", "resnet56", "wrn28-2", "wrn28-4", "vgg16"],
)
def test_parameter_counts_match_the_papers(build, params):
    assert build().count_params() == pytest.approx(params, rel=0.02)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_registry_builds_every_model_with_and_without_dropout(name):
    shape = (40, 1) if name.startswith("mnist1d") or name == "mlp" else (32, 32, 3)
    plain = MODELS[name](shape, 7)
    with_dropout = MODELS[name](shape, 7, dropout=0.3)
    assert plain.output_shape == (None, 7)
    assert any(isinstance(l, keras.layers.Dropout) for l in with_dropout.layers)
    assert not any(isinstance(l, keras.layers.Dropout) for l in plain.layers)
    assert [w.shape for w in plain.weights] == [w.shape for w in with_dropout.weights]
    x = np.zeros((2, *shape), "float32")
    assert plain(x).shape == (2, 7)


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: models.wide_resnet(27), "6n \\+ 4"),
        (lambda: models.wide_resnet(28, 0), "`width` must be an int >= 1"),
        (lambda: models.cifar_vgg(11), "must be one of \\[6, 16\\]"),
        (lambda: models.cifar_resnet(21), "6n \\+ 2"),
        (lambda: models.mnist1d_cnn(dropout=1.0), "`dropout` must be in \\[0, 1\\)"),
    ],
)
def test_bad_arguments(build, message):
    with pytest.raises(ValueError, match=message):
        build()
