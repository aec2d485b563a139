"""Curvature of the training loss: Hessian eigenvalues and trace.

Everything here uses Hessian-vector products (HVPs): `H v` over the whole
dataset is the example-weighted sum of per-batch HVPs, each computed by
double backpropagation or forward-over-reverse differentiation, with the
backend's own automatic differentiation (`keras_ssgd.landscape.hvp`:
TensorFlow, JAX or PyTorch). The eigenvalues are SciPy's
(`scipy.sparse.linalg.eigsh`, ARPACK) over those products; only a Hessian
with no more parameters than the Lanczos vectors asked for is formed, from
one HVP per parameter. The loss is the model's loss in inference mode
(`training=False`): BatchNorm uses its moving statistics, Dropout is off.

The data is read the same way on every backend: an `(x, y)` tuple of
arrays (cut into batches of 256), a `keras.utils.PyDataset` of `(x, y)`
batches (such as `keras_ssgd.data.Batches`, read by index), or a
`tf.data.Dataset` of `(x, y)` batches (its tensors as NumPy arrays off
TensorFlow). Sample weights, if the batches carry them, are ignored.
"""

import inspect
import math

import keras
import numpy as np
from scipy.sparse.linalg import ArpackNoConvergence
from scipy.sparse.linalg import LinearOperator
from scipy.sparse.linalg import eigsh

from keras_ssgd.landscape.hvp import HVP_METHODS
from keras_ssgd.landscape.hvp import batch_hvp
from keras_ssgd.landscape.hvp import mean_loss
from keras_ssgd.landscape.hvp import positions

EIGEN_METHODS = ("lanczos", "power")
# ARPACK's stopping rule: each wanted Ritz value's error estimate at most
# this times its magnitude.
_TOLERANCE = 1e-6
# SciPy >= 1.15 takes the generator of ARPACK's restart vectors.
_EIGSH_TAKES_RNG = "rng" in inspect.signature(eigsh).parameters


def _is_tf_dataset(data):
    return any(
        cls.__module__.startswith("tensorflow") and cls.__name__.endswith(
            "DatasetV2")
        for cls in type(data).__mro__
    )


def _check_data(data):
    """Raises `TypeError` for data that cannot be read again and again."""
    if _is_tf_dataset(data) or isinstance(data, keras.utils.PyDataset):
        return
    if isinstance(data, (tuple, list)) and len(data) == 2:
        x, y = data
        if len(x) == 0:
            raise ValueError("Argument `data` is empty. Received 0 examples.")
        return
    raise TypeError(
        "Argument `data` must be an (x, y) tuple of arrays, a "
        "keras.utils.PyDataset of (x, y) batches or a tf.data.Dataset of "
        f"(x, y) batches. Received: {type(data).__name__}"
    )


def batches_of(data, batch_size=256):
    """The `(x, y)` batches of `data` (see the module doc), once through."""
    if isinstance(data, (tuple, list)):
        x, y = data
        for start in range(0, len(x), batch_size):
            yield (keras.tree.map_structure(
                lambda a: a[start:start + batch_size], x),
                y[start:start + batch_size])
        return
    if isinstance(data, keras.utils.PyDataset):
        count = data.num_batches
        if count is None:
            raise ValueError(
                "Argument `data` must be a finite PyDataset (num_batches "
                f"is None). Received: {type(data).__name__}"
            )
        for index in range(count):
            yield data[index][:2]
        return
    if keras.backend.backend() == "tensorflow":
        for batch in data:
            yield tuple(batch)[:2]
        return
    for batch in data.as_numpy_iterator():
        yield tuple(batch)[:2]


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
        data: an `(x, y)` tuple of arrays, a `keras.utils.PyDataset` of
            `(x, y)` batches, or a `tf.data.Dataset` of `(x, y)` batches.
        loss: loss name or callable `(y_true, y_pred) -> per-example or mean
            loss`; `None` uses the model's compiled loss.
        variables: the variables the Hessian is taken over; defaults to
            `model.trainable_variables`.
        hvp: `"double-backprop"` (default) or `"forward-over-reverse"`.

    Vectors are flat NumPy float64 arrays over `variables` in order. It
    runs on the TensorFlow, JAX and PyTorch backends.
    """

    def __init__(self, model, data, loss=None, variables=None,
                 hvp="double-backprop"):
        if hvp not in HVP_METHODS:
            raise ValueError(
                f"Argument `hvp` must be one of {list(HVP_METHODS)}. "
                f"Received: hvp={hvp!r}"
            )
        _check_data(data)
        self.model = model
        self.data = data
        self.loss = _loss_fn(model, loss)
        self.variables = list(variables or model.trainable_variables)
        positions(model, self.variables)  # each one of the model's
        self.shapes = [tuple(v.shape) for v in self.variables]
        self.sizes = [math.prod(s) for s in self.shapes]
        self.dim = sum(self.sizes)
        self.hvp_method = hvp
        self.num_examples = None
        self._batch = batch_hvp(model, self.loss, self.variables, hvp)

    def split(self, flat):
        """A flat vector as a list of NumPy arrays shaped like the
        variables (in their dtypes)."""
        parts, offset = [], 0
        for v, shape, size in zip(self.variables, self.shapes, self.sizes):
            parts.append(np.asarray(
                flat[offset:offset + size].reshape(shape), dtype=v.dtype
            ))
            offset += size
        return parts

    def _weighted_sum(self, per_batch):
        total, count = None, 0
        for x, y in batches_of(self.data):
            n = int(keras.tree.flatten(x)[0].shape[0])
            result = per_batch(x, y)
            flat = np.concatenate([
                np.asarray(keras.ops.convert_to_numpy(r),
                           dtype=np.float64).reshape(-1)
                for r in result
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
        return self._weighted_sum(
            lambda x, y: self._batch.hvp(x, y, vector))

    def gradient(self):
        """The flat gradient of the mean loss."""
        return self._weighted_sum(self._batch.gradient)

    def loss_value(self):
        """The mean loss over all examples, a float."""
        return float(self._weighted_sum(lambda x, y: [mean_loss(
            self.loss, y, self.model(x, training=False))])[0])


def hessian_eigenvalues(model, data, k=1, loss=None, method="lanczos",
                        iterations=None, hvp="double-backprop", seed=0,
                        variables=None):
    """The top-`k` (largest algebraic) eigenvalues of the loss Hessian.

    `method="lanczos"` is ARPACK's implicitly restarted Lanczos method
    (`scipy.sparse.linalg.eigsh` with `which="LA"`) over a
    `scipy.sparse.linalg.LinearOperator` whose product is `H v` in float64,
    from the fixed start vector that `seed` draws. It stops once each of
    the top `k` Ritz values has an error estimate at most `1e-6` times its
    magnitude (about the precision of the float32 products). When the
    model has no more parameters `n` than the Lanczos vectors
    (`iterations`, at least `2k + 1`; so also whenever `2k >= n`), the
    Hessian itself is formed instead from the `n` HVPs of the unit
    vectors, no more than one Lanczos pass would take, and
    `numpy.linalg.eigvalsh` gives its eigenvalues exactly.

    Args:
        model: a built `keras.Model`.
        data: an `(x, y)` tuple of arrays, a `keras.utils.PyDataset` of
            `(x, y)` batches (such as `keras_ssgd.data.Batches`) or a
            `tf.data.Dataset` of `(x, y)` batches; the Hessian is that of
            the mean loss over all of it.
        k: int >= 1, how many eigenvalues, at most the number of
            parameters. Defaults to `1`.
        loss: loss name or callable; `None` uses the compiled loss.
        method: `"lanczos"` (default; ARPACK's implicitly restarted
            Lanczos, above) or `"power"` (power iteration with deflation;
            converges to the largest-magnitude eigenvalues).
        iterations: int >= 1, or `None` for the default. For `"lanczos"`,
            the number of Lanczos vectors ARPACK keeps (`ncv` of `eigsh`;
            at least `2k + 1`, as ARPACK advises): one pass costs one HVP per
            vector (and one for the start vector), as many plain Lanczos
            steps would, and is the whole cost when the top `k` have
            converged by then, as they usually do for `k = 1` and 20
            vectors. Otherwise ARPACK restarts, keeping its best `k`
            directions and adding at most `iterations - k` vectors each
            time, for at most about `max(10 * iterations, 300)` HVPs more
            (`maxiter` of `eigsh`). Defaults to `max(2k + 20, 30)`. For
            `"power"`, the power iterations per eigenvalue; defaults to
            `50`.
        hvp: `"double-backprop"` or `"forward-over-reverse"`.
        seed: int, the seed of the start vector (and of any restart
            vector ARPACK asks for, on SciPy >= 1.15).
        variables: the variables to take the Hessian over (default: all
            trainable variables).

    Returns:
        A NumPy array of `k` eigenvalues (float64), largest first.

    Raises:
        ValueError: an argument is out of range, or the data is empty.
        RuntimeError: ARPACK did not converge within its restarts (a
            larger `iterations` converges in fewer).

    Example:

    A linear model with the mean squared error: the Hessian is
    `2 X^T X / N`, here `diag(1, 4)` (two parameters: formed from two
    HVPs, exactly).

    >>> model = keras.Sequential(
    ...     [keras.Input((2,)), keras.layers.Dense(1, use_bias=False)])
    >>> model.compile(loss="mse")
    >>> x = np.array([[1.0, 0.0], [0.0, 2.0]], "float32")
    >>> y = np.zeros((2, 1), "float32")
    >>> hessian_eigenvalues(model, (x, y), k=2).round(4)
    array([4., 1.]...)

    Reference:
    - Lanczos, 1950; Lehoucq, Sorensen and Yang, "ARPACK Users' Guide:
      Solution of Large-Scale Eigenvalue Problems with Implicitly
      Restarted Arnoldi Methods", SIAM, 1998; SciPy,
      `scipy.sparse.linalg.eigsh`
      (https://docs.scipy.org/doc/scipy/reference/generated/scipy.sparse.linalg.eigsh.html);
      Ghorbani, Krishnan and Xiao, "An Investigation into Neural Net
      Optimization via Hessian Eigenvalue Density", ICML 2019; Sung et
      al., "S-SGD", appendix.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"Argument `k` must be an int >= 1. Received: k={k!r}")
    if method not in EIGEN_METHODS:
        raise ValueError(
            f"Argument `method` must be one of {list(EIGEN_METHODS)}. "
            f"Received: method={method!r}"
        )
    if iterations is not None and (
            isinstance(iterations, bool) or not isinstance(iterations, int)
            or iterations < 1):
        raise ValueError(
            "Argument `iterations` must be None or an int >= 1. "
            f"Received: iterations={iterations!r}"
        )
    operator = HessianOperator(model, data, loss, variables, hvp)
    if k > operator.dim:
        raise ValueError(
            f"Argument `k` must be at most the number of parameters "
            f"({operator.dim}). Received: k={k}"
        )
    if method == "power":
        return _power(operator, k, iterations or 50,
                      np.random.default_rng(seed))
    vectors = max(iterations or max(2 * k + 20, 30), 2 * k + 1)
    if vectors >= operator.dim:
        return _explicit_eigenvalues(operator, k)
    return _arpack_eigenvalues(operator, k, vectors, seed, iterations)


def _explicit_eigenvalues(operator, k):
    """The top `k` eigenvalues of the Hessian formed from its columns, the
    HVPs of the unit vectors (exact; `n` products)."""
    columns = []
    for i in range(operator.dim):
        unit = np.zeros(operator.dim)
        unit[i] = 1.0
        columns.append(operator.matvec(unit))
    hessian = np.stack(columns, axis=1)
    # Symmetric up to the round-off of the float32 products.
    return np.linalg.eigvalsh((hessian + hessian.T) / 2)[::-1][:k]


def _arpack_eigenvalues(operator, k, vectors, seed, iterations):
    """The top `k` eigenvalues by `eigsh` over `vectors` Lanczos vectors
    (`2k < vectors < n`), within about `max(10 * vectors, 300)` HVPs of
    restarts."""
    products = 0

    def matvec(v):
        nonlocal products
        products += 1
        return np.asarray(
            operator.matvec(np.asarray(v, np.float64).reshape(-1)),
            dtype=np.float64)

    n = operator.dim
    hessian = LinearOperator((n, n), matvec=matvec, dtype=np.float64)
    rng = np.random.default_rng(seed)
    start = rng.standard_normal(n)
    # `maxiter` counts passes, the first included; a restart adds at most
    # `vectors - k` products.
    passes = 1 + math.ceil(max(10 * vectors, 300) / (vectors - k))
    options = {"rng": rng} if _EIGSH_TAKES_RNG else {}
    try:
        values = eigsh(hessian, k=k, which="LA", ncv=vectors, v0=start,
                       tol=_TOLERANCE, maxiter=passes,
                       return_eigenvectors=False, **options)
    except ArpackNoConvergence as error:
        raise RuntimeError(
            f"The top {k} Hessian eigenvalues did not converge (ARPACK, "
            f"relative tolerance {_TOLERANCE:g}; {len(error.eigenvalues)} "
            f"of {k} did) in {products} Hessian-vector products, {passes} "
            f"passes over {vectors} Lanczos vectors. Pass a larger "
            f"`iterations` (more Lanczos vectors converge in fewer "
            f"restarts). Received: iterations={iterations!r}"
        ) from None
    return np.sort(values)[::-1]


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
