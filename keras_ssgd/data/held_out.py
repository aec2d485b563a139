"""`Data` with a validation set held out from the training data."""

import dataclasses
import numbers

from keras_ssgd.data.pipeline import Data


@dataclasses.dataclass(frozen=True)
class HeldOutData(Data):
    """A `keras_ssgd.data.Data` with `validation`.

    Args:
        validation: `tf.data.Dataset` of validation batches in order, held
            out from the training data (`--validation-split` for the
            user's data; a fixed part of the training split for the
            built-in datasets), or `None`.
    """

    validation: object = None


def train_splits(validation_percent, name="validation_percent"):
    """The tensorflow-datasets splits `(train, validation)` that hold the
    last `validation_percent` % of a dataset's `train` split out for
    validation (`validation` is `None` at 0).

    The split is by position in the prepared `train` split, which
    tensorflow-datasets shuffles once when it writes the files: the same
    examples for every run seed and every method.

    Args:
        validation_percent: int in [0, 100).
        name: the argument's name, for the error.

    Returns:
        `("train", None)` at 0, else `("train[:P%]", "train[P%:]")` with
        `P = 100 - validation_percent`.

    Raises:
        ValueError: `validation_percent` is not an int in [0, 100).

    Example:

    >>> train_splits(10)
    ('train[:90%]', 'train[90%:]')
    """
    if (isinstance(validation_percent, bool)
            or not isinstance(validation_percent, numbers.Integral)
            or not 0 <= validation_percent < 100):
        raise ValueError(
            f"Argument `{name}` must be an int in [0, 100): the percent of "
            "the training split held out for validation. "
            f"Received: {name}={validation_percent!r}"
        )
    if validation_percent == 0:
        return "train", None
    kept = 100 - int(validation_percent)
    return f"train[:{kept}%]", f"train[{kept}%:]"


def check_not_empty(size, validation_percent, train_size,
                    name="validation_percent"):
    """Raises ValueError naming `name` when `validation_percent` % of the
    training split leaves no example on one side (a tiny dataset)."""
    if size == 0 or train_size == 0:
        side, fix = (("validation", "raise it") if size == 0
                     else ("training", "lower it"))
        raise ValueError(
            f"Argument `{name}` leaves the {side} set empty "
            f"({train_size + size} training examples, {size} held out): "
            f"{fix}, or pass 0 for no validation set. "
            f"Received: {name}={validation_percent!r}"
        )
