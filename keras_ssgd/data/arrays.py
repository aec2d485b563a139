"""The user's own classification data as NumPy arrays.

Three sources, each named by one string (`ssgd-train --dataset`,
`keras_ssgd.data.load`):

- `path/to/data.npz`: a NumPy archive (`numpy.savez`) holding `x_train`,
  `y_train`, `x_test` and `y_test`, and optionally `num_classes`;
- `package.module:function`: a function, called with no arguments,
  importable from the current folder or the environment, returning
  - a dict with the keys of the `.npz` (`num_classes` optional), or
  - a tuple `((x_train, y_train), (x_test, y_test))`, the form of
    `keras.datasets.*.load_data()`, or
  - a flat tuple `(x_train, y_train, x_test, y_test)`, or
  - dataset objects instead of arrays: `{"train": ..., "test": ...}` or
    `(train, test)`, both `keras.utils.PyDataset` or both
    `tf.data.Dataset` (TensorFlow backend), used as they are, their order
    the user's (`keras_ssgd.data.objects`);
- `tfds:NAME`: a supervised tensorflow-datasets classification set (image
  or other feature plus a `ClassLabel`), its `train` split for training
  and its `test` split (else `validation`) for testing, read whole into
  memory from `data_dir`; images are scaled to [0, 1]. It needs TensorFlow
  and tensorflow-datasets.

Inputs are cast to float32 as they are (scale them yourself; only tfds
images are scaled). Labels are class ids `0 .. num_classes - 1`, shape
`(n,)` or `(n, 1)`; `num_classes` is the largest label plus one when not
given. The training order is reshuffled every epoch from the run's seed
(`keras_ssgd.data.batches`), the same order for every method.

Reading and checking the arrays needs NumPy only (`tfds:NAME` aside), and
so do the batches `to_data` builds: they run on every Keras backend.
"""

import dataclasses
import functools
import hashlib
import inspect
import os

import numpy as np

from keras_ssgd.data.user_function import DataError
from keras_ssgd.data.user_function import call_function

KEYS = ("x_train", "y_train", "x_test", "y_test")
TFDS_PREFIX = "tfds:"


@dataclasses.dataclass(frozen=True, eq=False)
class Arrays:
    """Checked training and test arrays.

    Args:
        x_train, y_train, x_test, y_test: arrays; `x` float32, `y` int32
            class ids, one dimension.
        num_classes: int.
        source: str, where they came from (for messages).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    source: str = "arrays"

    @property
    def input_shape(self):
        return tuple(self.x_train.shape[1:])

    @functools.cached_property
    def digest(self):
        """A short SHA-256 of the arrays: the recipe names the data by it."""
        h = hashlib.sha256()
        for array in (self.x_train, self.y_train, self.x_test, self.y_test):
            h.update(f"{array.dtype}{array.shape}".encode())
            h.update(np.ascontiguousarray(array).tobytes())
        h.update(str(self.num_classes).encode())
        return h.hexdigest()[:16]

    def split(self, validation_split):
        """`(train, validation)`: the last `validation_split` of the
        training arrays held out (Keras's `validation_split` convention,
        before any shuffling)."""
        count = int(round(len(self.x_train) * validation_split))
        if validation_split and not 0 < count < len(self.x_train):
            raise DataError(
                f"--validation-split {validation_split} of the "
                f"{len(self.x_train)} training examples of --dataset "
                f"{self.source} leaves "
                f"{count} for validation and {len(self.x_train) - count} for "
                "training; both need at least one."
            )
        keep = len(self.x_train) - count
        return (self.x_train[:keep], self.y_train[:keep],
                self.x_train[keep:], self.y_train[keep:])


def is_source(name):
    """Whether `name` names arrays of the user's: `.npz`, `tfds:`, or
    `module:function`."""
    from keras_ssgd.user_code import is_function_spec

    return isinstance(name, str) and (
        name.startswith(TFDS_PREFIX) or name.lower().endswith(".npz")
        or is_function_spec(name)
    )


def read(name, data_dir=None):
    """The checked `Arrays` of the source `name` (see the module doc).

    Read once per process (a `.npz` again when the file changes). A
    function that returns dataset objects instead
    (`keras_ssgd.data.objects`) gives their `objects.UserDatasets`.

    Raises:
        DataError: the source cannot be read, lacks a key, or holds arrays
            that do not fit together; the message names `name`.
    """
    if name.startswith(TFDS_PREFIX):
        return _read_tfds(name[len(TFDS_PREFIX):], data_dir)
    if name.lower().endswith(".npz"):
        try:
            stat = os.stat(name)
        except OSError as error:
            raise DataError(
                f"--dataset {name}: cannot read the file: "
                f"{error.strerror or error}. Received: {name!r}"
            ) from None
        return _read_npz(name, stat.st_mtime_ns, stat.st_size)
    return _read_function(name)


def from_value(value, source):
    """`Arrays` from a dict or tuple of arrays (see the module doc)."""
    num_classes = None
    if isinstance(value, dict) or hasattr(value, "files"):  # NpzFile too
        keys = list(value.keys()) if isinstance(value, dict) else list(value.files)
        missing = [k for k in KEYS if k not in keys]
        if missing:
            raise DataError(
                f"--dataset {source}: missing {', '.join(missing)}; it must "
                f"hold {', '.join(KEYS)} (and optionally num_classes). "
                f"Received the keys: {', '.join(keys) or 'none'}"
            )
        parts = [value[k] for k in KEYS]
        if "num_classes" in keys:
            num_classes = value["num_classes"]
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(
        isinstance(v, (tuple, list)) and len(v) == 2 for v in value
    ):
        (x_train, y_train), (x_test, y_test) = value
        parts = [x_train, y_train, x_test, y_test]
    elif isinstance(value, (tuple, list)) and len(value) == 4:
        parts = list(value)
    else:
        generator = inspect.isgenerator(value) or inspect.isgeneratorfunction(
            value)
        raise DataError(
            f"--dataset {source} must give a dict with {', '.join(KEYS)}, "
            "a tuple ((x_train, y_train), (x_test, y_test)) or a tuple "
            "(x_train, y_train, x_test, y_test) of arrays, or the training "
            "and test sets as dataset objects: {'train': ..., 'test': ...} "
            "or (train, test), both keras.utils.PyDataset or both "
            "tf.data.Dataset. Received: "
            f"{type(value).__name__}"
            + (f" of length {len(value)}" if isinstance(value, (tuple, list))
               else "")
            + (" (a generator is spent after one epoch: wrap it in a "
               "keras.utils.PyDataset)" if generator else "")
        )
    return check(*parts, num_classes=num_classes, source=source)


def check(x_train, y_train, x_test, y_test, num_classes=None,
          source="arrays"):
    """Checks and converts four arrays; returns `Arrays`.

    Raises:
        DataError: naming `source` and the array at fault.
    """
    x = {}
    for key, value in (("x_train", x_train), ("x_test", x_test)):
        try:
            array = np.asarray(value)
        except Exception as error:
            raise DataError(
                f"--dataset {source}: {key} is not an array: {error}"
            ) from None
        if array.dtype.kind not in "biuf" or array.ndim < 2 or not len(array):
            raise DataError(
                f"--dataset {source}: {key} must be a numeric array of shape "
                "(examples, ...), one example per row. Received: "
                f"shape {array.shape}, dtype {array.dtype}"
            )
        array = array.astype("float32", copy=False)
        if not np.isfinite(array).all():
            raise DataError(
                f"--dataset {source}: {key} holds NaN or infinite values"
            )
        x[key] = array
    if x["x_train"].shape[1:] != x["x_test"].shape[1:]:
        raise DataError(
            f"--dataset {source}: x_train and x_test examples differ in "
            f"shape: {x['x_train'].shape[1:]} and {x['x_test'].shape[1:]}"
        )
    y = {}
    for key, value, inputs in (("y_train", y_train, "x_train"),
                               ("y_test", y_test, "x_test")):
        array = np.asarray(value)
        if array.ndim == 2 and array.shape[1] == 1:
            array = array[:, 0]
        if array.ndim != 1:
            raise DataError(
                f"--dataset {source}: {key} must hold one class id per "
                f"example, shape (n,) or (n, 1). Received: shape "
                f"{array.shape}" + (
                    " (one-hot labels? pass their argmax)"
                    if array.ndim == 2 else "")
            )
        if len(array) != len(x[inputs]):
            raise DataError(
                f"--dataset {source}: {inputs} has {len(x[inputs])} examples "
                f"but {key} has {len(array)} labels"
            )
        if array.dtype.kind not in "biuf" or (
            array.dtype.kind == "f" and not np.all(np.mod(array, 1) == 0)
        ):
            raise DataError(
                f"--dataset {source}: {key} must hold integer class ids. "
                f"Received: dtype {array.dtype}, first values "
                f"{array[:5].tolist()}"
            )
        y[key] = array.astype("int64")
    largest = int(max(y["y_train"].max(), y["y_test"].max()))
    smallest = int(min(y["y_train"].min(), y["y_test"].min()))
    if num_classes is None:
        num_classes = largest + 1
    else:
        try:
            num_classes = int(np.asarray(num_classes).reshape(()))
        except (TypeError, ValueError):
            raise DataError(
                f"--dataset {source}: num_classes must be one int. Received: "
                f"{num_classes!r}"
            ) from None
    if smallest < 0 or largest >= num_classes:
        key = next(k for k in ("y_train", "y_test")
                   if y[k].min() < 0 or y[k].max() >= num_classes)
        bad = y[key][(y[key] < 0) | (y[key] >= num_classes)]
        raise DataError(
            f"--dataset {source}: labels out of range: {key} holds "
            f"{int(bad[0])} ({len(bad)} labels outside 0 .. "
            f"{num_classes - 1}, for {num_classes} classes)"
        )
    if num_classes < 2:
        raise DataError(
            f"--dataset {source}: a classification needs at least 2 "
            f"classes. Received: num_classes {num_classes}"
        )
    return Arrays(x["x_train"], y["y_train"].astype("int32"), x["x_test"],
                  y["y_test"].astype("int32"), num_classes, source)


def to_data(arrays, batch_size=128, seed=None, drop_remainder=False,
            validation_split=0.0):
    """A `keras_ssgd.data.Data` of `arrays` (NumPy batches, any backend).

    The training batches are reshuffled every epoch from `seed`, as for
    the built-in datasets. With `validation_split`, the last fraction of
    the training arrays is held out as `Data.validation`.
    """
    from keras_ssgd.data.held_out import HeldOutData
    from keras_ssgd.data.pipeline import batches

    x, y, x_val, y_val = arrays.split(validation_split)
    return HeldOutData(
        train=batches(x, y, batch_size, seed=seed,
                      drop_remainder=drop_remainder),
        test=batches(arrays.x_test, arrays.y_test, batch_size, shuffle=False),
        train_eval=batches(x, y, batch_size, shuffle=False),
        train_size=len(x),
        input_shape=arrays.input_shape,
        num_classes=arrays.num_classes,
        validation=(batches(x_val, y_val, batch_size, shuffle=False)
                    if len(x_val) else None),
    )


def load(name, batch_size=128, seed=None, drop_remainder=False,
         data_dir=None, validation_split=0.0):
    """`to_data(read(name, data_dir), ...)`: the user's data, ready for
    `fit()`; for dataset objects, fresh ones from the function
    (`objects.to_data`; the other arguments do not apply)."""
    from keras_ssgd.data import objects

    source = read(name, data_dir)
    if isinstance(source, objects.UserDatasets):
        return objects.to_data(name, source)
    return to_data(source, batch_size=batch_size, seed=seed,
                   drop_remainder=drop_remainder,
                   validation_split=validation_split)


@functools.lru_cache(maxsize=4)
def _read_npz(path, mtime_ns, size):
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [k for k in KEYS if k not in archive.files]
            if missing:
                raise DataError(
                    f"--dataset {path}: missing {', '.join(missing)}; a "
                    f".npz must hold {', '.join(KEYS)} (and optionally "
                    f"num_classes). Received the keys: "
                    f"{', '.join(archive.files) or 'none'}"
                )
            return from_value({k: archive[k] for k in archive.files}, path)
    except DataError:
        raise
    except Exception as error:  # not a zip, pickled objects, ...
        raise DataError(
            f"--dataset {path}: not a readable .npz file "
            f"({type(error).__name__}: {error}). Received: {path!r}"
        ) from None


@functools.lru_cache(maxsize=4)
def _read_function(spec):
    from keras_ssgd.data import objects

    value = call_function(spec)
    if objects.is_objects(value):
        return objects.check(value, spec)
    return from_value(value, spec)


@functools.lru_cache(maxsize=4)
def _read_tfds(name, data_dir):
    source = TFDS_PREFIX + name
    try:
        import tensorflow  # noqa: F401
        import tensorflow_datasets as tfds
    except ImportError as error:
        raise DataError(
            f"--dataset {source} needs TensorFlow and tensorflow-datasets "
            f"({error}); install them (pip install tensorflow "
            "tensorflow-datasets), or give the data as a .npz or a "
            "package.module:function"
        ) from None
    if not name:
        raise DataError(
            f"--dataset tfds:NAME needs a dataset name. Received: {source!r}"
        )
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as error:
        raise DataError(
            f"--dataset {source}: no such tensorflow-datasets set "
            f"({type(error).__name__}: {_first_line(error)})"
        ) from None
    info = builder.info
    keys = getattr(info, "supervised_keys", None)
    if not keys or len(keys) < 2 or not isinstance(keys[0], str):
        raise DataError(
            f"--dataset {source}: not a supervised set (no (input, label) "
            "keys in its info); ssgd-train needs a classification set"
        )
    label = info.features[keys[1]]
    num_classes = getattr(label, "num_classes", None)
    if num_classes is None:
        raise DataError(
            f"--dataset {source}: its label {keys[1]!r} is not a ClassLabel;"
            " ssgd-train needs a classification set"
        )
    splits = set(info.splits.keys()) if info.splits else set()
    test_split = "test" if "test" in splits else (
        "validation" if "validation" in splits else "test")
    try:
        train, test = tfds.load(
            name, split=["train", test_split], as_supervised=True,
            data_dir=data_dir,
        )
    except Exception as error:
        raise DataError(
            f"--dataset {source}: loading its train and {test_split} splits "
            f"from {data_dir or '~/tensorflow_datasets'} failed "
            f"({type(error).__name__}: {_first_line(error)})"
        ) from None
    image = type(info.features[keys[0]]).__name__ == "Image"
    parts = []
    for split in (train, test):
        xs, ys = [], []
        for x, y in tfds.as_numpy(split.batch(1024)):
            xs.append(x)
            ys.append(y)
        if not xs:
            raise DataError(f"--dataset {source}: a split is empty")
        x = np.concatenate(xs)
        parts += [x.astype("float32") / 255.0 if image else x,
                  np.concatenate(ys)]
    return check(*parts, num_classes=num_classes, source=source)


def _first_line(error):
    lines = str(error).strip().splitlines()
    return lines[0] if lines else ""
