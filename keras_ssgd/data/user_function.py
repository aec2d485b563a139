"""The user's data function (`package.module:function`), called, and the
error that names the user's data.

`keras_ssgd.data.arrays` (arrays) and `keras_ssgd.data.objects` (dataset
objects) both read what such a function returns; this module is below
both.
"""

from keras_ssgd.user_code import load_function


class DataError(ValueError):
    """The user's data cannot be used; the message names the value."""


def call_function(spec):
    """What the function `spec` (`package.module:function`) returns when
    called with no arguments.

    Raises:
        DataError: it cannot be imported, or it raises; the message names
            `spec`.
    """
    function = load_function(spec, "--dataset")
    try:
        return function()
    except Exception as error:
        raise DataError(
            f"--dataset {spec}: calling it failed: {type(error).__name__}: "
            f"{error}"
        ) from error
