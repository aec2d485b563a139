"""Curvature of the training loss: Hessian eigenvalues and trace.

Everything here uses Hessian-vector products (HVPs), never the Hessian
itself: `H v` over the whole dataset is the example-weighted sum of per-batch
HVPs, each computed by double backpropagation or forward-over-reverse
differentiation. The loss is the model's loss in inference mode
(`training=False`): BatchNorm uses its moving statistics, Dropout is off.
"""

import math

import keras
import numpy as np
import tensorflow as tf

HVP_METHODS = ("double-backprop", "forward-over-reverse")
EIGEN_METHODS = ("lanczos", "power")


def _as_dataset(data, batch_size=256):
    """`tf.data.Dataset` of `(x, y)` batches from a dataset or `(x, y)`."""
    if isinstance(data, tf.data.Dataset):
        return data
    if hasattr(data, "as_tf_dataset"):  # keras_ssgd.data.Batches
        return data.as_tf_dataset()
    if isinstance(data, (tuple, list)) and len(data) == 2:
        x, y = data
        if len(x) == 0:
            raise ValueError("Argument `data` is empty. Received 0 examples.")
        return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size)
    raise TypeError(
        "Argument `data` must be a tf.data.Dataset of (x, y) batches or an "
        f"(x, y) tuple of arrays. Received: {type(data).__name__}"
    )


def _loss_fn(model, loss):
    if loss is not None:
        return keras.losses.get(loss)
    compiled = getattr(model, "loss", None)
    if compiled is None:
        raise ValueError(
            f"Model '{model.name}' is not compiled with a loss; pass "
            "`loss=` (for example 'sparse_categorical_crossentropy')."
        )
    return keras.losses.get(compiled)


class HessianOperator:
    """`v -> H v` for the mean loss of `model` over `data`.

    Args:
        model: a built `keras.Model`.
        data: `tf.data.Dataset` of `(x, y)` batches, or an `(x, y)` tuple.
        loss: loss name or callable `(y_true, y_pred) -> per-example or mean
            loss`; `None` uses the model's compiled loss.
        variables: the variables the Hessian is taken over; defaults to
            `model.trainable_variables`.
        hvp: `"double-backprop"` (default) or `"forward-over-reverse"`.

    Vectors are flat NumPy float64 arrays over `variables` in order.
    """

    def __init__(self, model, data, loss=None, variables=None,
                 hvp="double-backprop"):
        if hvp not in HVP_METHODS:
            raise ValueError(
                f"Argument `hvp` must be one of {list(HVP_METHODS)}. "
                f"Received: hvp={hvp!r}"
            )
        self.model = model
        self.data = _as_dataset(data)
        self.loss = _loss_fn(model, loss)
        self.variables = list(variables or model.trainable_variables)
        self.shapes = [tuple(v.shape) for v in self.variables]
        self.sizes = [math.prod(s) for s in self.shapes]
        self.dim = sum(self.sizes)
        self.hvp_method = hvp
        self.num_examples = None
        self._batch_hvp = tf.function(
            self._double_backprop if hvp == "double-backprop"
            else self._forward_over_reverse,
            reduce_retracing=True,
        )
        self._batch_grad = tf.function(self._gradient, reduce_retracing=True)

    def _mean_loss(self, x, y):
        y_pred = self.model(x, training=False)
        return tf.reduce_mean(self.loss(y, y_pred))

    def _double_backprop(self, x, y, vector):
        with tf.GradientTape() as outer:
            with tf.GradientTape() as inner:
                loss = self._mean_loss(x, y)
            grads = inner.gradient(loss, self.variables)
            dot = tf.add_n([
                tf.reduce_sum(g * v) for g, v in zip(grads, vector)
            ])
        return outer.gradient(dot, self.variables)

    def _forward_over_reverse(self, x, y, vector):
        # The accumulator watches the backing tf.Variables of Keras's.
        primals = [getattr(v, "value", v) for v in self.variables]
        with tf.autodiff.ForwardAccumulator(primals, vector) as acc:
            with tf.GradientTape() as tape:
                loss = self._mean_loss(x, y)
            grads = tape.gradient(loss, self.variables)
        return acc.jvp(grads)

    def _gradient(self, x, y):
        with tf.GradientTape() as tape:
            loss = self._mean_loss(x, y)
        return loss, tape.gradient(loss, self.variables)

    def split(self, flat):
        """A flat vector as a list of tensors shaped like the variables."""
        parts, offset = [], 0
        for v, shape, size in zip(self.variables, self.shapes, self.sizes):
            parts.append(tf.constant(
                flat[offset:offset + size].reshape(shape), dtype=v.dtype
            ))
            offset += size
        return parts

    def _weighted_sum(self, per_batch):
        total, count = None, 0
        for x, y in self.data:
            n = int(tf.shape(tf.nest.flatten(x)[0])[0])
            result = per_batch(x, y)
            flat = np.concatenate([
                np.asarray(r, dtype=np.float64).reshape(-1) for r in result
            ])
            total = flat * n if total is None else total + flat * n
            count += n
        if count == 0:
            raise ValueError("Argument `data` is empty: it yields no batch.")
        self.num_examples = count
        return total / count

    def matvec(self, flat):
        """`H v` for a flat vector `v` (the mean over all examples)."""
        vector = self.split(flat)
        return self._weighted_sum(lambda x, y: self._batch_hvp(x, y, vector))

    def gradient(self):
        """The flat gradient of the mean loss."""
        return self._weighted_sum(lambda x, y: self._batch_grad(x, y)[1])


def hessian_eigenvalues(model, data, k=1, loss=None, method="lanczos",
                        iterations=None, hvp="double-backprop", seed=0,
                        variables=None):
    """The top-`k` (largest algebraic) eigenvalues of the loss Hessian.

    Args:
        model: a built `keras.Model`.
        data: `tf.data.Dataset` of `(x, y)` batches or an `(x, y)` tuple; the
            Hessian is that of the mean loss over all of it.
        k: int >= 1, how many eigenvalues. Defaults to `1`.
        loss: loss name or callable; `None` uses the compiled loss.
        method: `"lanczos"` (default; Lanczos with full
            reorthogonalisation) or `"power"` (power iteration with
            deflation; converges to the largest-magnitude eigenvalues).
        iterations: Lanczos steps or power iterations per eigenvalue.
            Defaults to `max(2k + 20, 30)` for Lanczos, `50` for power.
        hvp: `"double-backprop"` or `"forward-over-reverse"`.
        seed: int, the seed of the start vector.
        variables: the variables to take the Hessian over (default: all
            trainable variables).

    Returns:
        A NumPy array of `k` eigenvalues, largest first.

    Example:

    >>> top = hessian_eigenvalues(model, (x_train, y_train), k=1)

    Reference:
    - Lanczos, 1950; Ghorbani, Krishnan and Xiao, "An Investigation into
      Neural Net Optimization via Hessian Eigenvalue Density", ICML 2019;
      Sung et al., "S-SGD", appendix.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"Argument `k` must be an int >= 1. Received: k={k!r}")
    if method not in EIGEN_METHODS:
        raise ValueError(
            f"Argument `method` must be one of {list(EIGEN_METHODS)}. "
            f"Received: method={method!r}"
        )
    operator = HessianOperator(model, data, loss, variables, hvp)
    if k > operator.dim:
        raise ValueError(
            f"Argument `k` must be at most the number of parameters "
            f"({operator.dim}). Received: k={k}"
        )
    rng = np.random.default_rng(seed)
    if method == "power":
        return _power(operator, k, iterations or 50, rng)
    steps = min(operator.dim, iterations or max(2 * k + 20, 30))
    return _lanczos(operator, k, steps, rng)


def _lanczos(operator, k, steps, rng):
    basis = np.zeros((steps, operator.dim))
    alphas, betas = [], []
    v = rng.standard_normal(operator.dim)
    v /= np.linalg.norm(v)
    for j in range(steps):
        basis[j] = v
        w = operator.matvec(v)
        alpha = float(w @ v)
        w -= alpha * v
        if j > 0:
            w -= betas[-1] * basis[j - 1]
        # Full reorthogonalisation against every earlier vector.
        w -= basis[: j + 1].T @ (basis[: j + 1] @ w)
        alphas.append(alpha)
        beta = float(np.linalg.norm(w))
        if j == steps - 1 or beta < 1e-10:
            break
        betas.append(beta)
        v = w / beta
    m = len(alphas)
    tridiagonal = np.diag(alphas) + np.diag(betas[: m - 1], 1) + np.diag(
        betas[: m - 1], -1
    )
    values = np.linalg.eigvalsh(tridiagonal)[::-1]
    return values[:k]


def _power(operator, k, iterations, rng):
    found, vectors = [], []
    for _ in range(k):
        v = rng.standard_normal(operator.dim)
        v /= np.linalg.norm(v)
        value = 0.0
        for _ in range(iterations):
            w = operator.matvec(v)
            for lam, u in zip(found, vectors):  # deflation
                w -= lam * (u @ v) * u
            value = float(v @ w)
            norm = np.linalg.norm(w)
            if norm == 0:
                break
            v = w / norm
        found.append(value)
        vectors.append(v)
    return np.array(sorted(found, reverse=True))


def hessian_trace(model, data, samples=20, loss=None, hvp="double-backprop",
                  seed=0, variables=None):
    """Hutchinson's estimate of the Hessian trace, `E[v^T H v]`.

    Args:
        model, data, loss, hvp, variables: as in `hessian_eigenvalues`.
        samples: int >= 1, Rademacher vectors averaged. Defaults to `20`.
        seed: int, the seed of the vectors.

    Returns:
        `(estimate, standard_error)`, floats.

    Reference:
    - Hutchinson, "A stochastic estimator of the trace of the influence
      matrix for Laplacian smoothing splines", 1989.
    """
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ValueError(
            f"Argument `samples` must be an int >= 1. Received: samples={samples!r}"
        )
    operator = HessianOperator(model, data, loss, variables, hvp)
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(samples):
        v = rng.choice([-1.0, 1.0], size=operator.dim)
        values.append(float(v @ operator.matvec(v)))
    error = float(np.std(values, ddof=1) / math.sqrt(samples)) if samples > 1 else float("nan")
    return float(np.mean(values)), error
