"""Loss along lines and planes in weight space (paper Figs. 2 and 7)."""

import keras
import numpy as np
import tensorflow as tf

from keras_ssgd.landscape import weights as wlib


def _dataset(data, name="data", batch_size=256):
    if hasattr(data, "as_tf_dataset"):  # keras_ssgd.data.Batches
        data = data.as_tf_dataset()
    if isinstance(data, tf.data.Dataset):
        for _ in data.take(1):
            return data
        raise ValueError(f"Argument `{name}` is empty: it yields no batch.")
    if isinstance(data, (tuple, list)) and len(data) == 2:
        x, y = data
        if len(x) == 0:
            raise ValueError(f"Argument `{name}` is empty. Received 0 examples.")
        return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size)
    raise TypeError(
        f"Argument `{name}` must be a tf.data.Dataset or an (x, y) tuple. "
        f"Received: {type(data).__name__}"
    )


class _Calls:
    """A `progress` function as a bar (`add(1)` calls it)."""

    def __init__(self, function):
        self._function = function

    def add(self, count):
        for _ in range(count):
            self._function()


def _bar(points, verbose, progress):
    if progress is not None:
        return _Calls(progress)
    return keras.utils.Progbar(points, unit_name="point") if verbose else None


def interpolate(model, weights_a, weights_b, data, alphas=None,
                bn_data=None, bn_batches=None, verbose=0, progress=None):
    """Loss and error along the line `(1 - alpha) * a + alpha * b`.

    Every weight is interpolated (BatchNorm moving statistics too); with
    `bn_data` the moving statistics are then recomputed at each point from
    those training batches (`recompute_batchnorm`), which BatchNorm networks
    need for a faithful picture. `alpha` outside [0, 1] extrapolates. The
    model's weights are restored afterwards.

    Args:
        model: a compiled `keras.Model` (its loss, and `"accuracy"` for the
            error) with the architecture of both endpoints.
        weights_a, weights_b: models or `get_weights()` lists.
        data: `tf.data.Dataset` of `(x, y)` batches or an `(x, y)` tuple.
        alphas: 1-D sequence. Defaults to 25 points from -0.5 to 1.5.
        bn_data: optional training batches for BatchNorm statistics.
        bn_batches: optional int, how many of them to use.
        verbose: 0 or 1 (a Keras progress bar over the points).
        progress: optional function of no arguments, called after each
            point instead of `verbose`'s bar (one bar over several calls,
            as `ssgd-landscape` shows the train and test lines).

    Returns:
        A dict of lists: `alpha`, `loss`, and when available `accuracy` and
        `error` (the misclassification ratio).

    Example:

    <!-- example: setup
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile(
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    sgd_model = keras.models.clone_model(model)
    ssgd_model = keras.models.clone_model(model)
    x_test, y_test = np.random.rand(16, 4), np.random.randint(0, 3, size=16)
    -->

    >>> line = interpolate(model, sgd_model, ssgd_model, (x_test, y_test))
    >>> len(line["alpha"]), sorted(line)
    (25, ['accuracy', 'alpha', 'error', 'loss'])

    Reference:
    - Goodfellow, Vinyals and Saxe, "Qualitatively characterizing neural
      network optimization problems", ICLR 2015; Sung et al., Fig. 2.
    """
    a, b = wlib.weights_of(weights_a), wlib.weights_of(weights_b)
    wlib.check_compatible(model, a, b, names=["weights_a", "weights_b"])
    data = _dataset(data)
    alphas = np.linspace(-0.5, 1.5, 25) if alphas is None else np.asarray(alphas, float)
    original = model.get_weights()
    curves = {"alpha": [float(t) for t in alphas]}
    bar = _bar(len(alphas), verbose, progress)
    try:
        for t in alphas:
            point = [
                ((1 - t) * np.asarray(x, np.float64) + t * np.asarray(y, np.float64)).astype(np.asarray(x).dtype)
                for x, y in zip(a, b)
            ]
            for key, value in wlib.evaluate_at(
                model, point, data, bn_data, bn_batches
            ).items():
                curves.setdefault(key, []).append(value)
            if bar is not None:
                bar.add(1)
    finally:
        model.set_weights(original)
    return curves


def plane(model, weights_1, weights_2, weights_3, data, grid=21, margin=0.3,
          bn_data=None, bn_batches=None, verbose=0, progress=None):
    """Loss and error on the plane through three points (Garipov et al.).

    The plane's origin is point 1; its orthonormal basis (over the trainable
    weights) is `u = (w2 - w1) / ||w2 - w1||` and the normalised part of
    `w3 - w1` orthogonal to `u`. Non-trainable weights (BatchNorm
    statistics) are taken from point 1 unless `bn_data` is given, in which
    case they are recomputed at every grid point.

    Args:
        model: a compiled `keras.Model`.
        weights_1, weights_2, weights_3: models or `get_weights()` lists.
        data: `tf.data.Dataset` of `(x, y)` batches or an `(x, y)` tuple.
        grid: int (points per axis, covering the three points plus
            `margin` of their extent on each side) or a pair of 1-D arrays
            of coordinates `(xs, ys)`.
        margin: float, extra extent for an int `grid`. Defaults to `0.3`.
        bn_data, bn_batches, verbose, progress: as in `interpolate`.

    Returns:
        A dict: `points` (the three models' `(x, y)` coordinates), `xs`,
        `ys`, and `loss` (and `error`, `accuracy` when available) as
        `len(ys) x len(xs)` nested lists.

    Raises:
        ValueError: the three points are collinear (no plane), or the
            architectures differ.

    Reference:
    - Garipov, Izmailov, Podoprikhin, Vetrov and Wilson, "Loss Surfaces,
      Mode Connectivity, and Fast Ensembling of DNNs", NeurIPS 2018;
      Sung et al., Fig. 7.
    """
    w = [wlib.weights_of(p) for p in (weights_1, weights_2, weights_3)]
    wlib.check_compatible(model, *w, names=["weights_1", "weights_2", "weights_3"])
    data = _dataset(data)
    mask = wlib.trainable_mask(model)
    p1, p2, p3 = (wlib.flatten(x, mask) for x in w)
    d2, d3 = p2 - p1, p3 - p1
    n2 = np.linalg.norm(d2)
    if n2 == 0:
        raise ValueError("weights_1 and weights_2 are the same point: no plane.")
    u = d2 / n2
    v = d3 - (d3 @ u) * u
    nv = np.linalg.norm(v)
    # Relative to the spread: float32 weights on a line are off it by ~1e-7.
    if nv <= 1e-5 * max(n2, np.linalg.norm(d3)):
        raise ValueError(
            "The three points are collinear (weights_3 lies on the line "
            "through weights_1 and weights_2): they span no plane."
        )
    v /= nv
    points = [(0.0, 0.0), (float(n2), 0.0), (float(d3 @ u), float(nv))]
    if isinstance(grid, int):
        px, py = zip(*points)
        span_x, span_y = max(px) - min(px), max(py) - min(py)
        xs = np.linspace(min(px) - margin * span_x, max(px) + margin * span_x, grid)
        ys = np.linspace(min(py) - margin * span_y, max(py) + margin * span_y, grid)
    else:
        xs, ys = (np.asarray(g, float) for g in grid)
    original = model.get_weights()
    result = {"points": points, "xs": xs.tolist(), "ys": ys.tolist()}
    bar = _bar(len(xs) * len(ys), verbose, progress)
    try:
        for y in ys:
            rows = {}
            for x in xs:
                point = wlib.unflatten(p1 + x * u + y * v, w[0], mask)
                for key, value in wlib.evaluate_at(
                    model, point, data, bn_data, bn_batches
                ).items():
                    rows.setdefault(key, []).append(value)
                if bar is not None:
                    bar.add(1)
            for key, row in rows.items():
                result.setdefault(key, []).append(row)
    finally:
        model.set_weights(original)
    return result


def random_directions(model, count=1, filter_normalized=True, seed=0):
    """Random directions around `model`'s weights (Li et al. 2018).

    Each direction has one Gaussian array per weight. With
    `filter_normalized`, every filter (the slice along the last axis of a
    kernel of rank >= 2, i.e. one output unit or channel) is rescaled to the
    norm of the same filter in the model, and rank-1 weights (biases,
    BatchNorm parameters and statistics) get zero, so the picture does not
    depend on the scale invariance BatchNorm introduces.

    Args:
        model: a built `keras.Model`.
        count: int, how many directions. Defaults to `1`.
        filter_normalized: bool. Defaults to `True`.
        seed: int. Defaults to `0`.

    Returns:
        A list of `count` directions, each a list of arrays in
        `get_weights()` order (add `t * direction` to the weights).

    Reference:
    - Li, Xu, Taylor, Studer and Goldstein, "Visualizing the Loss Landscape
      of Neural Nets", NeurIPS 2018, Section 4.
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"Argument `count` must be an int >= 1. Received: count={count!r}")
    rng = np.random.default_rng(seed)
    weights = model.get_weights()
    directions = []
    for _ in range(count):
        direction = []
        for w in weights:
            d = rng.standard_normal(w.shape).astype(w.dtype)
            if filter_normalized:
                if w.ndim < 2:
                    d = np.zeros_like(w)
                else:
                    axes = tuple(range(w.ndim - 1))
                    d_norm = np.sqrt(np.sum(d.astype(np.float64) ** 2, axis=axes, keepdims=True))
                    w_norm = np.sqrt(np.sum(w.astype(np.float64) ** 2, axis=axes, keepdims=True))
                    d = (d * (w_norm / np.maximum(d_norm, 1e-30))).astype(w.dtype)
            direction.append(d)
        directions.append(direction)
    return directions


def epsilon_sharpness(model, data, epsilon=1e-3, steps=10, loss=None):
    """Keskar et al.'s epsilon-sharpness, by projected gradient ascent.

    `100 * (max L(w + d) - L(w)) / (1 + L(w))` over the box
    `|d_i| <= epsilon * (|w_i| + 1)` on the trainable weights. The maximum
    is approached with `steps` signed-gradient steps of size `box / steps`,
    each projected back onto the box (Keskar et al. used L-BFGS-B; this is a
    lower bound of the same quantity). The model's weights are restored.

    Args:
        model: a compiled `keras.Model` (or pass `loss`).
        data: `tf.data.Dataset` of `(x, y)` batches or an `(x, y)` tuple;
            the loss is the mean over all of it, in inference mode.
        epsilon: float > 0. Defaults to `1e-3`.
        steps: int >= 1. Defaults to `10`.
        loss: optional loss; defaults to the compiled loss.

    Returns:
        A float, the sharpness in percent.

    Reference:
    - Keskar, Mudigere, Nocedal, Smelyanskiy and Tang, "On Large-Batch
      Training for Deep Learning: Generalization Gap and Sharp Minima",
      ICLR 2017, Metric 2.3.
    """
    from keras_ssgd.landscape.hessian import HessianOperator

    if not epsilon > 0:
        raise ValueError(f"Argument `epsilon` must be > 0. Received: epsilon={epsilon!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"Argument `steps` must be an int >= 1. Received: steps={steps!r}")
    data = _dataset(data)
    operator = HessianOperator(model, data, loss)
    original = [v.numpy() for v in operator.variables]
    w0 = np.concatenate([o.reshape(-1).astype(np.float64) for o in original])
    box = epsilon * (np.abs(w0) + 1.0)

    def set_flat(flat):
        for v, part in zip(operator.variables, operator.split(flat)):
            v.assign(part)

    mean_loss = operator.loss_value

    try:
        base = mean_loss()
        delta = np.zeros_like(w0)
        best = base
        for _ in range(steps):
            set_flat(w0 + delta)
            gradient = operator.gradient()
            delta = np.clip(delta + np.sign(gradient) * box / steps, -box, box)
            set_flat(w0 + delta)
            best = max(best, mean_loss())
    finally:
        for v, o in zip(operator.variables, original):
            v.assign(o)
    return 100.0 * (best - base) / (1.0 + base)
