"""keras_ssgd: Symmetrical SGD (S-SGD) for Keras 3.

S-SGD (Sung et al.) measures the gradient at two symmetrically perturbed
copies of the weights, `W + n` and `W - n` with `||n|| = noise_level * ||W||`
per layer, averages them, and updates the master weights `W`.

The training step runs on the TensorFlow, JAX and PyTorch backends of
Keras 3. The dataset loaders (`keras_ssgd.data`), `ssgd-train`
(`keras_ssgd.train`), the flatness tools (`keras_ssgd.landscape`) and
Horovod (`keras_ssgd.distributed`) use TensorFlow; they are imported on first
use, so `import keras_ssgd` works without it.
"""

import importlib

from keras_ssgd import backends
from keras_ssgd import baselines
from keras_ssgd import callbacks
from keras_ssgd import filters
from keras_ssgd import models
from keras_ssgd import noise
from keras_ssgd import phases
from keras_ssgd import schedules
from keras_ssgd.baselines import DropConnectModel
from keras_ssgd.baselines import SharpnessAwareModel
from keras_ssgd.baselines import SmoothOutModel
from keras_ssgd.baselines import WeightNoiseModel
from keras_ssgd.model import SymmetricSGDModel
from keras_ssgd.perturbed import PerturbedModel
from keras_ssgd.train.compare import compare
from keras_ssgd.wrap import METHODS
from keras_ssgd.wrap import SymmetricSGDWrapper
from keras_ssgd.wrap import wrap
from keras_ssgd.wrap import wrapper_class

__version__ = "0.1.0"

# Subpackages that import TensorFlow, loaded on first access.
_LAZY = ("data", "distributed", "landscape", "train")


def __getattr__(name):
    if name in _LAZY:
        module = importlib.import_module(f"keras_ssgd.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'keras_ssgd' has no attribute {name!r}")


__all__ = [
    "METHODS",
    "DropConnectModel",
    "PerturbedModel",
    "SharpnessAwareModel",
    "SmoothOutModel",
    "SymmetricSGDModel",
    "SymmetricSGDWrapper",
    "WeightNoiseModel",
    "backends",
    "baselines",
    "callbacks",
    "filters",
    "models",
    "noise",
    "phases",
    "schedules",
    "wrap",
    "wrapper_class",
]
