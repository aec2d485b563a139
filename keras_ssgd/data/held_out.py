"""`Data` with a validation set held out from the training data."""

import dataclasses

from keras_ssgd.data.pipeline import Data


@dataclasses.dataclass(frozen=True)
class HeldOutData(Data):
    """A `keras_ssgd.data.Data` with `validation`.

    Args:
        validation: `tf.data.Dataset` of validation batches in order, held
            out from the training data (`--validation-split`), or `None`.
    """

    validation: object = None
