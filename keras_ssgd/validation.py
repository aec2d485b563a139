"""Keras-style argument checks shared by the package."""

import math
import numbers


def check_noise_level(value, name="noise_level"):
    """Returns `value` as a float if it is a finite number >= 0.

    Raises:
        TypeError: `value` is not a real number (bools are refused too).
        ValueError: `value` is negative, NaN or infinite.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        if hasattr(value, "shape") and tuple(value.shape) == ():
            value = float(value)  # a NumPy or backend scalar
        else:
            raise TypeError(
                f"Argument `{name}` must be a float >= 0. "
                f"Received: {name}={value!r} (of type {type(value).__name__})"
            )
    value = float(value)
    if math.isnan(value) or math.isinf(value) or value < 0:
        raise ValueError(
            f"Argument `{name}` must be a finite float >= 0. "
            f"Received: {name}={value}"
        )
    return value


def check_choice(value, name, choices):
    """Returns `value` if it is one of `choices`, else raises ValueError."""
    if value not in choices:
        raise ValueError(
            f"Argument `{name}` must be one of {list(choices)}. "
            f"Received: {name}={value!r}"
        )
    return value


def check_seed(value, name="seed"):
    """Returns `value` if it is None or a non-negative int."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"Argument `{name}` must be None or an int. "
            f"Received: {name}={value!r} (of type {type(value).__name__})"
        )
    if value < 0:
        raise ValueError(
            f"Argument `{name}` must be >= 0. Received: {name}={value}"
        )
    return int(value)


def check_positive_int(value, name):
    """Returns `value` if it is an int > 0 (bools refused), else ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(
            f"Argument `{name}` must be an int > 0. Received: {name}={value!r}"
        )
    return int(value)


def check_rate(value, name):
    """Returns `value` as a float if it is in `[0, 1)` (a drop probability)."""
    value = check_noise_level(value, name)
    if value >= 1:
        raise ValueError(
            f"Argument `{name}` must be in [0, 1): it is a drop probability. "
            f"Received: {name}={value}"
        )
    return value


def check_every(value, name="every"):
    """Returns `value` if it is an int >= 1 or `math.inf` (never).

    Raises:
        ValueError: anything else (bools, floats other than inf, ints < 1).
    """
    if isinstance(value, float) and value == math.inf:
        return math.inf
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or value < 1
    ):
        raise ValueError(
            f"Argument `{name}` must be an int >= 1 (perturb one step in "
            f"`{name}`) or math.inf (never). Received: {name}={value!r}"
        )
    return int(value)
