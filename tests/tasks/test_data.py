import numpy as np
import pytest

from keras_ssgd import data as data_lib


def epoch_labels(dataset):
    return np.concatenate([np.asarray(y) for _, y in dataset])


def test_mnist1d_standard_split_offline():
    data = data_lib.load("mnist1d", batch_size=100, seed=0)
    # 500 of the 4000 training signals held out for validation.
    assert (data.train_size, data.input_shape, data.num_classes) == (3500, (40, 1), 10)
    assert data.steps_per_epoch == 35
    x, y = next(iter(data.test))
    assert x.shape == (100, 40, 1) and x.dtype == "float32"
    assert y.dtype == "int32"
    labels = epoch_labels(data.train)
    assert len(labels) == 3500
    assert set(np.unique(labels)) == set(range(10))
    assert len(epoch_labels(data.validation)) == 500


def test_mnist1d_validation_is_one_fixed_draw_for_every_run_seed():
    from keras_ssgd.tasks.mnist1d.data import _generate

    x_all = _generate(42)[0]
    held = [np.concatenate([np.asarray(x) for x, _ in
                            data_lib.load("mnist1d", seed=seed).validation])
            for seed in (0, 1, 7)]
    assert all(np.array_equal(held[0], h) for h in held[1:])
    # Disjoint from the training signals, and together they are all 4000.
    train = np.concatenate([np.asarray(x) for x, _ in
                            data_lib.load("mnist1d", seed=0).train_eval])
    both = np.concatenate([train, held[0]])
    assert len(both) == 4000
    assert len(np.unique(both.reshape(4000, -1), axis=0)) == len(
        np.unique(x_all.reshape(4000, -1), axis=0))
    # The draw is a function of the data seed: a permutation's first 500.
    from keras_ssgd.tasks.mnist1d.data import validation_indices

    expected = x_all[validation_indices(4000, 500, 42)]
    assert np.array_equal(held[0], expected)
    # All 4000 on request; a bad size is refused by name.
    assert data_lib.load("mnist1d", validation_size=0).train_size == 4000
    with pytest.raises(ValueError, match="validation_size=4000"):
        data_lib.load("mnist1d", validation_size=4000)


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


def cifar(name="cifar10", **kwargs):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=48):
        return data_lib.load(name, batch_size=16, seed=0, **kwargs)


def epoch_images(dataset):
    return np.concatenate([np.asarray(x) for x, _ in dataset])


@pytest.mark.parametrize("name, classes", [("cifar10", 10), ("cifar100", 100)])
def test_cifar_from_tfds_mock_data(name, classes):
    data = cifar(name)
    assert (data.train_size, data.input_shape, data.num_classes) == (48, (32, 32, 3), classes)
    assert data.steps_per_epoch == 3
    x, y = next(iter(data.train))
    assert x.shape == (16, 32, 32, 3) and x.dtype == "float32"
    assert y.dtype == "int32"
    labels = np.concatenate([epoch_labels(data.train), epoch_labels(data.test)])
    assert labels.min() >= 0 and labels.max() < classes


def test_cifar_is_normalised_per_channel():
    test = epoch_images(cifar().test)
    np.testing.assert_allclose(test.mean(axis=(0, 1, 2)), 0.0, atol=0.05)
    np.testing.assert_allclose(test.std(axis=(0, 1, 2)), 1.0, atol=0.05)


def test_cifar_augmentation_pads_crops_and_flips_each_epoch():
    plain = cifar(augment=False)
    a, b = epoch_images(plain.train), epoch_images(plain.train)
    # Without augmentation the same images come back, in a new order.
    np.testing.assert_allclose(np.sort(a.ravel()), np.sort(b.ravel()), atol=1e-6)
    augmented = cifar()
    a, b = epoch_images(augmented.train), epoch_images(augmented.train)
    assert not np.allclose(np.sort(a.ravel()), np.sort(b.ravel()), atol=1e-3)
    # Zero padding shows up as constant borders after normalisation.
    assert a.mean() < plain_mean(plain) - 0.05


def plain_mean(data):
    return epoch_images(data.train).mean()


def test_cifar_bad_arguments():
    with pytest.raises(ValueError, match="name='cifar20'"):
        data_lib.load_cifar("cifar20")
    with pytest.raises(ValueError, match="batch_size=0"):
        data_lib.load_cifar("cifar10", batch_size=0)


# Validation sets held out of the tfds training splits (CIFAR, ImageNet).
# tfds mock data serves `num_examples` for any split string, slices
# included, so the tests check the split strings asked for, and the
# slicing itself is tensorflow-datasets'.


def test_train_splits_hold_out_the_last_percent():
    from keras_ssgd.data.held_out import train_splits

    assert train_splits(10) == ("train[:90%]", "train[90%:]")
    assert train_splits(1) == ("train[:99%]", "train[99%:]")
    assert train_splits(0) == ("train", None)
    for bad in (-1, 100, 2.5, True, "10"):
        with pytest.raises(ValueError, match=(
                rf"Argument `validation_percent` must be an int in \[0, 100\).*"
                rf"Received: validation_percent={bad!r}")):
            train_splits(bad)


def recording_tfds_load(monkeypatch):
    import tensorflow_datasets as tfds

    asked = []
    load = tfds.load

    def record(name, split, **kwargs):
        asked.append(list(split))
        return load(name, split=split, **kwargs)

    monkeypatch.setattr(tfds, "load", record)
    return asked


def test_cifar_holds_out_the_last_5000_training_images(monkeypatch):
    asked = recording_tfds_load(monkeypatch)
    data = cifar()
    assert asked == [["train[:90%]", "test", "train[90%:]"]]
    assert data.validation is not None
    x, y = next(iter(data.validation))
    assert x.shape == (16, 32, 32, 3) and y.dtype == "int32"
    # Validation images are normalised, never augmented: two reads agree.
    np.testing.assert_array_equal(epoch_images(data.validation),
                                  epoch_images(data.validation))


def test_cifar_without_validation(monkeypatch):
    asked = recording_tfds_load(monkeypatch)
    data = cifar(validation_percent=0)
    assert asked == [["train", "test"]] and data.validation is None
    with pytest.raises(ValueError, match="validation_percent=100"):
        data_lib.load_cifar("cifar10", validation_percent=100)


def test_an_empty_validation_set_is_refused():
    from keras_ssgd.data.held_out import check_not_empty

    with pytest.raises(ValueError, match=(
            r"Argument `validation_percent` leaves the validation set empty "
            r"\(12 training examples, 0 held out\): raise it.*"
            r"Received: validation_percent=1")):
        check_not_empty(0, 1, 12)
    with pytest.raises(ValueError, match="leaves the training set empty"):
        check_not_empty(5, 99, 0)
    check_not_empty(1, 10, 9)
