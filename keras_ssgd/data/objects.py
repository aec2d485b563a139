"""The user's data as dataset objects: `tf.data.Dataset` or `PyDataset`.

`ssgd-train --dataset package.module:function` may name a function that
returns, instead of arrays (`keras_ssgd.data.arrays`), the training and
test sets as Keras would take them in `fit()`:

- a dict `{"train": train, "test": test}`, with optionally
  `"num_classes"` and `"train_eval"` (the training set without
  augmentation, for the final training loss and the Hessian; default
  `train` itself), or
- a tuple `(train, test)` or `(train, test, num_classes)`,

where `train` and `test` are both `keras.utils.PyDataset`s (any backend)
or both `tf.data.Dataset`s (the TensorFlow backend only) of `(x, y)` or
`(x, y, sample_weight)` batches: `x` one array of inputs, `y` class ids
`0 .. num_classes - 1`. Without `num_classes`, one pass over the labels
of both sets finds it (the largest label plus one).

A generator is not accepted: `fit()` reads the training set once per
epoch, and a generator is spent after one pass; wrap it in a
`keras.utils.PyDataset`.

The data order is the user's (`runner.Config.data_order` is `"user"`):
the package cannot reshuffle a dataset object by seed. So that every
method of a seed sees the same order, the function is called again for
each run, right after `keras.utils.set_random_seed(seed)`: each run gets
fresh objects, in the state the function makes them. Then

- a `tf.data` pipeline whose `shuffle` has a fixed `seed`, or none (it
  then draws from TensorFlow's global seed, which the run's seed sets),
  gives every method the same sequence of epoch orders;
- a `PyDataset` is read as `fit(shuffle=False)` reads it: batches
  `0 .. len - 1` in order each epoch, `on_epoch_end()` between epochs
  (Keras 3 would shuffle the batch indices with Python's `random` under
  `fit(shuffle=True)`; `ssgd-train` does not ask for that). A reshuffle in
  `on_epoch_end` drawn from NumPy's or Python's global generator follows
  the run's seed too;
- anything that reads another source of randomness (the clock, a
  generator made outside the function) is not reproduced, and no check
  can tell.

`--batch-size` and `--validation-split` do not apply (the batches and
the sets are the user's), nor do the distributed engines.
"""

import dataclasses

import keras
import numpy as np

from keras_ssgd.data.user_function import DataError
from keras_ssgd.data.user_function import call_function

KINDS = ("PyDataset", "tf.data.Dataset")
USER_ORDER = "user"


@dataclasses.dataclass(frozen=True)
class UserDatasets:
    """What a check of the user's dataset objects found.

    Args:
        source: str, the `package.module:function` that makes them.
        kind: str, one of `KINDS`.
        input_shape: tuple, the shape of one example.
        num_classes: int.
        batch_size: int, the size of the first training batch.
        x_sample: array, the first two training examples.
    """

    source: str
    kind: str
    input_shape: tuple
    num_classes: int
    batch_size: int
    x_sample: np.ndarray


def kind_of(value):
    """`"PyDataset"`, `"tf.data.Dataset"`, or None for anything else
    (without importing TensorFlow)."""
    if isinstance(value, keras.utils.PyDataset):
        return "PyDataset"
    if any(cls.__module__.startswith("tensorflow") and
           cls.__name__ == "DatasetV2" for cls in type(value).__mro__):
        return "tf.data.Dataset"
    return None


def is_objects(value):
    """Whether `value` is the dict or tuple of dataset objects the module
    doc describes (its parts unchecked beyond their kind)."""
    if isinstance(value, dict):
        return "train" in value and kind_of(value["train"]) is not None
    return (isinstance(value, tuple) and len(value) in (2, 3)
            and kind_of(value[0]) is not None)


def parts(value, source):
    """`(train, test, train_eval, num_classes or None)` of `value`.

    Raises:
        DataError: the sets are missing, of different or unknown kinds, or
            TensorFlow's on another backend; the message names `source`
            and what it returned.
    """
    if isinstance(value, dict):
        unknown = sorted(set(value) - {"train", "test", "train_eval",
                                       "num_classes"})
        if "test" not in value or unknown:
            raise DataError(
                f"--dataset {source} returned a dict of dataset objects; it "
                "must hold train and test (and optionally train_eval and "
                f"num_classes). Received the keys: {', '.join(map(str, value))}"
            )
        train, test = value["train"], value["test"]
        train_eval = value.get("train_eval", train)
        num_classes = value.get("num_classes")
    else:
        train, test = value[0], value[1]
        train_eval = train
        num_classes = value[2] if len(value) == 3 else None
    kinds = [kind_of(v) for v in (train, test, train_eval)]
    if kinds[0] is None or len(set(kinds)) != 1:
        names = ", ".join(
            f"{name} {type(v).__name__}" for name, v in
            (("train", train), ("test", test), ("train_eval", train_eval))
        )
        raise DataError(
            f"--dataset {source}: the training and test sets must both be "
            "keras.utils.PyDataset or both tf.data.Dataset. Received: "
            f"{names}"
        )
    backend = keras.backend.backend()
    if kinds[0] == "tf.data.Dataset" and backend != "tensorflow":
        raise DataError(
            f"--dataset {source} returned tf.data.Dataset objects, which "
            "ssgd-train takes on the TensorFlow backend only. Received: "
            f"backend={backend!r}; return keras.utils.PyDataset objects or "
            "arrays to run on it, or set KERAS_BACKEND=tensorflow"
        )
    if num_classes is not None:
        try:
            num_classes = int(np.asarray(num_classes).reshape(()))
        except (TypeError, ValueError):
            raise DataError(
                f"--dataset {source}: num_classes must be one int. "
                f"Received: {num_classes!r}"
            ) from None
    return train, test, train_eval, num_classes


def batches_of(dataset):
    """The `(x, y)` NumPy batches of a dataset object, once through."""
    if isinstance(dataset, keras.utils.PyDataset):
        count = dataset.num_batches
        for index in range(count):
            yield _pair(dataset[index])
        return
    for batch in dataset.as_numpy_iterator():
        yield _pair(batch)


def _pair(batch):
    if not isinstance(batch, (tuple, list)) or len(batch) not in (2, 3):
        return None
    return batch[0], batch[1]


def check(value, source):
    """Checks the dataset objects `value` returned; a `UserDatasets`.

    Reads the first batch of each set (and, without `num_classes`, every
    label once).

    Raises:
        DataError: naming `source` and what is wrong.
    """
    train, test, _, num_classes = parts(value, source)
    kind = kind_of(train)
    for name, dataset in (("train", train), ("test", test)):
        _check_size(dataset, name, source)
    firsts = {}
    for name, dataset in (("train", train), ("test", test)):
        first = next(iter(batches_of(dataset)), "empty")
        if first == "empty":
            raise DataError(f"--dataset {source}: its {name} set is empty")
        if first is None:
            raise DataError(
                f"--dataset {source}: the batches of its {name} set must be "
                "(x, y) or (x, y, sample_weight) tuples"
            )
        firsts[name] = _checked_batch(first, name, source)
    (x, _), (x_test, _) = firsts["train"], firsts["test"]
    if x.shape[1:] != x_test.shape[1:]:
        raise DataError(
            f"--dataset {source}: train and test examples differ in shape: "
            f"{x.shape[1:]} and {x_test.shape[1:]}"
        )
    for name, (_, y) in firsts.items():
        if num_classes is not None and len(y) and y.max() >= num_classes:
            raise DataError(
                f"--dataset {source}: labels out of range: its {name} set "
                f"holds {int(y.max())}, for {num_classes} classes"
            )
    if num_classes is None:
        largest = max(
            int(np.max(_checked_batch(batch, name, source)[1]))
            for name, dataset in (("train", train), ("test", test))
            for batch in batches_of(dataset)
        )
        num_classes = largest + 1
    if num_classes < 2:
        raise DataError(
            f"--dataset {source}: a classification needs at least 2 "
            f"classes. Received: num_classes {num_classes}"
        )
    return UserDatasets(source, kind, tuple(x.shape[1:]), num_classes,
                        len(x), x[:2])


def _check_size(dataset, name, source):
    """A finite, known number of batches: the schedules count steps."""
    if isinstance(dataset, keras.utils.PyDataset):
        count = dataset.num_batches
        if count is None:
            raise DataError(
                f"--dataset {source}: its {name} PyDataset has no length "
                "(num_batches is None); ssgd-train needs a finite set"
            )
        return
    count = int(dataset.cardinality())
    if count < 0:
        raise DataError(
            f"--dataset {source}: its {name} tf.data.Dataset has "
            f"{'infinite' if count == -1 else 'unknown'} cardinality; "
            "ssgd-train needs a finite set of known length (for example "
            "dataset.apply(tf.data.experimental.assert_cardinality(n)))"
        )


def _checked_batch(batch, name, source):
    x, y = (np.asarray(keras.ops.convert_to_numpy(a)) for a in batch)
    if x.dtype.kind not in "biuf" or x.ndim < 2:
        raise DataError(
            f"--dataset {source}: the inputs x of its {name} batches must "
            "be one numeric array of shape (batch, ...). Received: shape "
            f"{x.shape}, dtype {x.dtype}"
        )
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or y.dtype.kind not in "biu":
        raise DataError(
            f"--dataset {source}: the labels y of its {name} batches must be "
            "integer class ids, shape (batch,) or (batch, 1). Received: "
            f"shape {y.shape}, dtype {y.dtype}"
        )
    if len(y) and y.min() < 0:
        raise DataError(
            f"--dataset {source}: labels out of range: its {name} set holds "
            f"{int(y.min())}"
        )
    return x, y


def to_data(source, checked):
    """A `keras_ssgd.data.Data` of fresh objects: calls the function of
    `source` again (see the module doc for why) and checks their kind."""
    from keras_ssgd.data.pipeline import Data

    value = call_function(source)
    if not is_objects(value):
        raise DataError(
            f"--dataset {source} returned {_describe(value)} on this call, "
            f"and {checked.kind} objects on the first"
        )
    train, test, train_eval, _ = parts(value, source)
    if kind_of(train) != checked.kind:
        raise DataError(
            f"--dataset {source} returned {kind_of(train)} objects on this "
            f"call, and {checked.kind} objects on the first"
        )
    return Data(train=train, test=test, train_eval=train_eval,
                train_size=None, input_shape=checked.input_shape,
                num_classes=checked.num_classes)


def _describe(value):
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of length {len(value)}"
    return f"a {type(value).__name__}"
