import numpy as np
import pytest

from keras_ssgd import data as data_lib


def epoch_labels(dataset):
    return np.concatenate([y.numpy() for _, y in dataset])


def test_mnist1d_standard_split_offline():
    data = data_lib.load("mnist1d", batch_size=100, seed=0)
    assert (data.train_size, data.input_shape, data.num_classes) == (4000, (40, 1), 10)
    assert data.steps_per_epoch == 40
    x, y = next(iter(data.test))
    assert x.shape == (100, 40, 1) and x.dtype == "float32"
    assert y.dtype == "int32"
    labels = epoch_labels(data.train)
    assert len(labels) == 4000
    assert set(np.unique(labels)) == set(range(10))


def test_order_changes_every_epoch_and_repeats_per_seed():
    x = np.arange(50, dtype="float32")[:, None]
    y = np.arange(50, dtype="int32")
    run = data_lib.batches(x, y, batch_size=10, seed=3)
    first, second = epoch_labels(run), epoch_labels(run)
    assert sorted(first) == list(range(50))
    assert not np.array_equal(first, second)
    again = data_lib.batches(x, y, batch_size=10, seed=3)
    np.testing.assert_array_equal(epoch_labels(again), first)
    np.testing.assert_array_equal(epoch_labels(again), second)
    in_order = data_lib.batches(x, y, batch_size=10, shuffle=False)
    np.testing.assert_array_equal(epoch_labels(in_order), y)


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, None])
def test_bad_batch_size(bad):
    with pytest.raises(ValueError, match="Argument `batch_size`"):
        data_lib.batches(np.zeros((4, 1)), np.zeros(4), batch_size=bad)


def test_mismatched_lengths():
    with pytest.raises(ValueError, match=r"len\(x\)=4, len\(y\)=3"):
        data_lib.batches(np.zeros((4, 1)), np.zeros(3), batch_size=2)


def test_unknown_dataset():
    with pytest.raises(ValueError, match="Argument `name`.*name='mnist'"):
        data_lib.load("mnist")
