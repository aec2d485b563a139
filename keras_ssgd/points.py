"""The points a step measures, and the one loop that measures them.

A perturbed step measures the loss and gradients at points `W + sign * n`,
each on the batch or a slice of it and with a share of the step (`Point`).
`measure_points` runs them in order and combines them by their shares
(paper Eq. 3 for S-SGD's two points of weight 1/2):

    loss = sum_i share_i * L_i(W + sign_i * n)
    grad = sum_i share_i * grad L_i(W + sign_i * n)

S-SGD's train step (`SymmetricSGDModel`), `symmetric_gradients` and
`symmetric_value_and_grad` (`keras_ssgd.custom_step`) are each one call of
it: they differ only in how one point is measured.
"""

import contextlib

from keras import ops

from keras_ssgd import gradients as gradients_lib


class Point:
    """One measurement of a step.

    Args:
        data: `(x, y, sample_weight)`, the batch or a slice of it; `None`
            where the caller's measure knows its data (a custom step).
        sign: `+1.0` or `-1.0` (a Python float), or a traced scalar `+-1`:
            the point is `W + sign * n`.
        weight: the point's share of the step's loss and gradient, a
            Python float or a float32 scalar.
        keep_statistics: whether the pass's BatchNorm moving statistics are
            kept.
    """

    def __init__(self, data, sign, weight, keep_statistics):
        self.data = data
        self.sign = sign
        self.weight = weight
        self.keep_statistics = keep_statistics

    def values(self, weights, noise):
        """The perturbed values `W + sign * n` of the noise variables."""
        if isinstance(self.sign, float):
            if self.sign > 0:
                return [w + n for w, n in zip(weights, noise)]
            return [w - n for w, n in zip(weights, noise)]
        return [
            w + ops.cast(self.sign, w.dtype) * n
            for w, n in zip(weights, noise)
        ]


def _unnamed(name):
    return contextlib.nullcontext()


def measure_points(points, weights, noise, measure, after, scope=_unnamed):
    """Measures `points` in order and combines them by their shares.

    A point starts once the previous point's gradients exist (`after`), so
    two passes never hold their activations in memory at the same time.
    The variables are never written: `measure` evaluates the model at the
    values it is given.

    Args:
        points: the `Point`s of the step.
        weights: the values `W` of the perturbed variables.
        noise: `n`, aligned with `weights`.
        measure: `measure(point, values) -> (loss, gradients, output)`, one
            pass with the perturbed variables at `values`; `output` is
            anything the caller keeps per pass (predictions, aux).
        after: the backend's `after(dependencies, fn, *args)`: `fn(*args)`
            computed once `dependencies` exist.
        scope: `scope(name)`, a context naming the ops it encloses for the
            backend's profiler (`Backend.scope`): `ssgd_perturb`,
            `ssgd_pass_1`, `ssgd_pass_2`, ..., `ssgd_combine`. None by
            default.

    Returns:
        `(loss, gradients, outputs)`: the loss and the gradients combined
        by the points' shares, and the list of the passes' outputs.

    Example:

    >>> import numpy as np
    >>> from keras_ssgd.points import Point, measure_points
    >>> points = [Point(None, 1.0, 0.5, True), Point(None, -1.0, 0.5, True)]
    >>> def measure(point, values):  # L(w) = w^2 / 2, so grad L(w) = w
    ...     (w,) = values
    ...     return w * w / 2, [w], None
    >>> loss, (grad,), _ = measure_points(
    ...     points, [np.float32(3.0)], [np.float32(1.0)], measure,
    ...     after=lambda deps, fn, *args: fn(*args))
    >>> float(loss), float(grad)
    (5.0, 3.0)

    Reference:
    - Sung et al., "S-SGD", Eq. 3.
    """
    losses, gradients, outputs = [], [], []
    for index, point in enumerate(points, start=1):
        with scope("ssgd_perturb"):
            if gradients:
                values = after(
                    flat_tensors(gradients[-1]), point.values, weights, noise
                )
            else:
                values = point.values(weights, noise)
        with scope(f"ssgd_pass_{index}"):
            loss, grads, output = measure(point, values)
        losses.append(loss)
        gradients.append(grads)
        outputs.append(output)
    shares = [point.weight for point in points]
    with scope("ssgd_combine"):
        return gradients_lib.combine(losses, shares), [
            gradients_lib.combine(list(per_point), shares)
            for per_point in zip(*gradients)
        ], outputs


def flat_tensors(gradients):
    """The tensors of a gradient list (sparse gradients give their values),
    for the next pass's control dependencies."""
    return [getattr(g, "values", g) for g in gradients if g is not None]
