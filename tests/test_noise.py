import keras
import numpy as np
import pytest
from keras import ops

from keras_ssgd import noise


@pytest.mark.parametrize("level", [0.1, 0.5, 1.3])
def test_noise_has_fixed_norm_relative_to_each_weight(level):
    rng = np.random.default_rng(1)
    shapes = [(3, 3, 4, 8), (8, 10), (5, 7, 2), (20, 4)]
    weights = [
        ops.convert_to_tensor(rng.standard_normal(s) * (i + 1), "float32")
        for i, s in enumerate(shapes)
    ]
    n = noise.symmetric_noise(weights, level, seed=3)
    for w, ni in zip(weights, n):
        assert tuple(ni.shape) == tuple(w.shape)
        expected = level * np.linalg.norm(np.array(w))
        np.testing.assert_allclose(
            np.linalg.norm(np.array(ni)), expected, rtol=1e-5
        )


def test_noise_direction_is_not_the_weight_direction():
    w = [ops.ones((40, 40))]
    n = np.array(noise.symmetric_noise(w, 0.5, seed=0)[0]).ravel()
    cosine = n.sum() / (np.linalg.norm(n) * 40)
    assert abs(cosine) < 0.1  # a random direction, not a rescaled W
    assert np.std(n) > 0


def test_zero_weight_gets_zero_noise():
    n = noise.symmetric_noise([ops.zeros((4, 4))], 0.5, seed=0)[0]
    np.testing.assert_array_equal(np.array(n), np.zeros((4, 4)))


def test_same_seed_same_noise_and_generator_advances():
    w = [ops.ones((6, 6)), ops.ones((6,  2))]
    a = noise.symmetric_noise(w, 0.5, seed=11)
    b = noise.symmetric_noise(w, 0.5, seed=11)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(np.array(x), np.array(y))
    gen = keras.random.SeedGenerator(11)
    first = noise.symmetric_noise(w, 0.5, seed=gen)
    second = noise.symmetric_noise(w, 0.5, seed=gen)
    assert not np.allclose(np.array(first[0]), np.array(second[0]))


def test_float16_weights_keep_their_dtype():
    w = [ops.ones((8, 8), dtype="float16") * 300]
    n = noise.symmetric_noise(w, 0.5, seed=0)[0]
    assert keras.backend.standardize_dtype(n.dtype) == "float16"
    np.testing.assert_allclose(
        np.linalg.norm(np.array(n, dtype="float64")), 0.5 * 300 * 8, rtol=1e-3
    )


def test_empty_list():
    assert noise.symmetric_noise([], 0.5, seed=0) == []
