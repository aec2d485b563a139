"""Combining the passes of a step (losses, gradients), as pure functions."""

import keras
from keras import ops


def mean_gradient(a, b):
    """The mean `(a + b) / 2` of two gradients of the same variable.

    Dense gradients are averaged element-wise. Sparse gradients (for example
    the `tf.IndexedSlices` an `Embedding` produces) stay sparse: their rows
    are concatenated with halved values, which is the same update once the
    optimizer scatters them. `None` (a variable the loss does not reach in
    either pass) stays `None`.

    Halving is exact in binary floating point, so for dense gradients the
    result is bit-for-bit `(a + b) / 2` whatever the order of `a` and `b`.
    """
    if _unreached(a, b):
        return None
    if _is_sparse(a):
        return type(a)(
            values=ops.concatenate([a.values, b.values], axis=0) * 0.5,
            indices=ops.concatenate([a.indices, b.indices], axis=0),
            dense_shape=a.dense_shape,
        )
    return (a + b) * 0.5


def combine(values, weights):
    """`sum_i weights[i] * values[i]`: one variable's gradients (or the
    losses) of a step's passes, each pass weighted.

    One pass of weight 1 is its value; two of weight 0.5 are their
    `mean_gradient` (`(a + b) / 2`, exact); otherwise `weighted_sum`.
    Weights are Python floats or float32 scalars.
    """
    if len(values) != len(weights) or not 1 <= len(values) <= 2:
        raise ValueError(
            "A step combines one or two passes, one weight each. Received: "
            f"{len(values)} values and {len(weights)} weights"
        )
    if len(values) == 1 and isinstance(weights[0], float) and weights[0] == 1:
        return values[0]
    if len(values) == 1:
        return None if values[0] is None else values[0] * _as(
            weights[0], values[0]
        )
    if all(isinstance(w, float) and w == 0.5 for w in weights):
        return mean_gradient(*values)
    return weighted_sum(*values, *weights)


def weighted_sum(a, b, share_a, share_b):
    """`share_a * a + share_b * b` for two gradients of one variable.

    As `mean_gradient` (which it equals for shares of one half): sparse
    gradients stay sparse, `None` stays `None`.
    """
    if _unreached(a, b):
        return None
    if _is_sparse(a):
        return type(a)(
            values=ops.concatenate(
                [a.values * _as(share_a, a.values),
                 b.values * _as(share_b, b.values)],
                axis=0,
            ),
            indices=ops.concatenate([a.indices, b.indices], axis=0),
            dense_shape=a.dense_shape,
        )
    return a * _as(share_a, a) + b * _as(share_b, b)


def _as(share, tensor):
    """`share` (a Python float or a float32 scalar) in `tensor`'s dtype."""
    if isinstance(share, float):
        return share
    return ops.cast(share, keras.backend.standardize_dtype(tensor.dtype))


def _unreached(a, b):
    """Whether neither pass reached the variable (both gradients `None`);
    a `ValueError` when only one did."""
    if a is None and b is None:
        return True
    if a is None or b is None:
        raise ValueError(
            "Both passes must reach the same variables. Received one "
            f"gradient that is None and one that is not: a={a}, b={b}"
        )
    return False


def _is_sparse(g):
    # `tf.IndexedSlices`-like; a torch tensor also has `indices`/`values`
    # methods, but no `dense_shape`.
    return all(hasattr(g, a) for a in ("indices", "values", "dense_shape"))

