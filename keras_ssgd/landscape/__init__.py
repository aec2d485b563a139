"""Flatness tools: the curvature and shape of the loss around trained weights.

Everything works on any compiled Keras model and any `tf.data` or NumPy
`(x, y)` data. The Hessian tools run on the TensorFlow, JAX and PyTorch
backends (NumPy batches need no TensorFlow); the line, the plane and the
sharpness use TensorFlow.

- `interpolate(model, a, b, data, alphas)`: loss and error along a line
  (paper Fig. 2), extrapolating beyond both ends.
- `plane(model, w1, w2, w3, data, grid)`: the plane through three models
  (paper Fig. 7, after Garipov et al.).
- `random_directions(model, filter_normalized=True)`: Li et al.'s directions.
- `hessian_eigenvalues(model, data, k)`: top Hessian eigenvalues (Lanczos or
  power iteration on Hessian-vector products); `hessian_trace` (Hutchinson).
- `epsilon_sharpness(model, data, epsilon)`: Keskar et al.'s measure.
- `recompute_batchnorm(model, data)`: BatchNorm statistics for new weights.
  Without it, pictures of BatchNorm networks show stale statistics, not the
  landscape: pass `bn_data=` (training batches) to `interpolate` and
  `plane`.
"""

import importlib

# Each name is imported on first use: the line, the plane and the BatchNorm
# statistics read tf.data, so the Hessian tools work without TensorFlow,
# and `ssgd-landscape` (`landscape.cli`) quiets TensorFlow before Keras is
# first imported.
_LAZY = {
    "HessianOperator": "keras_ssgd.landscape.hessian",
    "hessian_eigenvalues": "keras_ssgd.landscape.hessian",
    "hessian_trace": "keras_ssgd.landscape.hessian",
    "epsilon_sharpness": "keras_ssgd.landscape.geometry",
    "interpolate": "keras_ssgd.landscape.geometry",
    "plane": "keras_ssgd.landscape.geometry",
    "random_directions": "keras_ssgd.landscape.geometry",
    "recompute_batchnorm": "keras_ssgd.landscape.weights",
}


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(
        f"module 'keras_ssgd.landscape' has no attribute {name!r}"
    )


__all__ = [
    "HessianOperator",
    "epsilon_sharpness",
    "hessian_eigenvalues",
    "hessian_trace",
    "interpolate",
    "plane",
    "random_directions",
    "recompute_batchnorm",
]
