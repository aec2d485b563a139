"""Flatness tools: the curvature and shape of the loss around trained weights.

- `hessian_eigenvalues(model, data, k)`: top Hessian eigenvalues (Lanczos or
  power iteration on Hessian-vector products).
- `hessian_trace(model, data)`: Hutchinson's trace estimate.
"""

from keras_ssgd.landscape.hessian import HessianOperator
from keras_ssgd.landscape.hessian import hessian_eigenvalues
from keras_ssgd.landscape.hessian import hessian_trace

__all__ = ["HessianOperator", "hessian_eigenvalues", "hessian_trace"]
