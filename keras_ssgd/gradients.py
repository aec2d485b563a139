"""Combining the gradients of the two S-SGD passes, as pure functions."""

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
    if a is None or b is None:
        if a is None and b is None:
            return None
        raise ValueError(
            "Both passes must reach the same variables. Received one "
            f"gradient that is None and one that is not: a={a}, b={b}"
        )
    if _is_sparse(a):
        return type(a)(
            values=ops.concatenate([a.values, b.values], axis=0) * 0.5,
            indices=ops.concatenate([a.indices, b.indices], axis=0),
            dense_shape=a.dense_shape,
        )
    return (a + b) * 0.5


def mean_gradients(grads_a, grads_b):
    """`mean_gradient` over two aligned lists of gradients."""
    if len(grads_a) != len(grads_b):
        raise ValueError(
            "Both passes must give one gradient per variable. Received "
            f"{len(grads_a)} and {len(grads_b)} gradients."
        )
    return [mean_gradient(a, b) for a, b in zip(grads_a, grads_b)]


def _is_sparse(g):
    # `tf.IndexedSlices`-like; a torch tensor also has `indices`/`values`
    # methods, but no `dense_shape`.
    return all(hasattr(g, a) for a in ("indices", "values", "dense_shape"))

