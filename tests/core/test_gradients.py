import numpy as np
import pytest
import tensorflow as tf

from keras_ssgd.gradients import mean_gradient


def test_dense_mean_is_exact_and_symmetric():
    rng = np.random.default_rng(0)
    a = tf.constant(rng.standard_normal((5, 3)), tf.float32)
    b = tf.constant(rng.standard_normal((5, 3)), tf.float32)
    np.testing.assert_array_equal(mean_gradient(a, b), (a.numpy() + b.numpy()) / 2)
    np.testing.assert_array_equal(mean_gradient(a, b), mean_gradient(b, a))


def test_sparse_gradients_stay_sparse_and_average():
    a = tf.IndexedSlices(tf.constant([[1.0, 2.0], [3.0, 4.0]]), tf.constant([0, 2]), tf.constant([4, 2]))
    b = tf.IndexedSlices(tf.constant([[5.0, 6.0]]), tf.constant([2]), tf.constant([4, 2]))
    m = mean_gradient(a, b)
    assert isinstance(m, tf.IndexedSlices)
    dense = tf.convert_to_tensor(m).numpy()
    expected = (tf.convert_to_tensor(a).numpy() + tf.convert_to_tensor(b).numpy()) / 2
    np.testing.assert_array_equal(dense, expected)


def test_none_stays_none_and_mismatches_are_refused():
    assert mean_gradient(None, None) is None
    with pytest.raises(ValueError, match="None"):
        mean_gradient(None, tf.ones(2))
