"""keras_ssgd: Symmetrical SGD (S-SGD) for Keras 3.

S-SGD (Sung et al.) measures the gradient at two symmetrically perturbed
copies of the weights, `W + n` and `W - n` with `||n|| = noise_level * ||W||`
per selected variable (the paper says per layer: see `keras_ssgd.noise`),
averages them, and updates the master weights `W`.

The training step runs on the TensorFlow, JAX and PyTorch backends of
Keras 3, and so does `ssgd-train` (`keras_ssgd.train`) on MNIST-1D and the
user's arrays. CIFAR and ImageNet (`keras_ssgd.data`), the flatness tools
(`keras_ssgd.landscape`) and Horovod (`keras_ssgd.distributed`) use
TensorFlow; they are imported on first use, so `import keras_ssgd` works
without it.
"""

import importlib
import os

# TensorFlow's C++ start-up lines (oneDNN, cpu_feature_guard, absl's "All
# log messages before absl::InitializeLog()") hide the commands' own output.
# Warnings and errors still print; a value the user set is kept. It has to
# be set before TensorFlow is first imported (below, through Keras), and
# every command of the package imports this package first.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Some of those lines (oneDNN's, absl's) ignore TF_CPP_MIN_LOG_LEVEL and are
# written by the shared libraries as they load: Keras (and TensorFlow, where
# it is the backend) is imported here with them filtered.
from keras_ssgd import native_log  # noqa: E402

native_log.import_quietly("keras")

from keras_ssgd import backends  # noqa: E402
from keras_ssgd import baselines  # noqa: E402
from keras_ssgd import callbacks  # noqa: E402
from keras_ssgd import filters  # noqa: E402
from keras_ssgd import methods  # noqa: E402
from keras_ssgd import models  # noqa: E402
from keras_ssgd import noise  # noqa: E402
from keras_ssgd import phases  # noqa: E402
from keras_ssgd import schedules  # noqa: E402
from keras_ssgd import sharing  # noqa: E402
from keras_ssgd.baselines import AdaptiveRandomPerturbationModel  # noqa: E402
from keras_ssgd.baselines import AdaptiveSharpnessAwareModel  # noqa: E402
from keras_ssgd.baselines import MixedAdaptiveRandomPerturbationModel  # noqa: E402
from keras_ssgd.baselines import MomentumSAMModel  # noqa: E402
from keras_ssgd.baselines import DropConnectModel  # noqa: E402
from keras_ssgd.baselines import SharpnessAwareModel  # noqa: E402
from keras_ssgd.baselines import SmoothOutModel  # noqa: E402
from keras_ssgd.baselines import WeightNoiseModel  # noqa: E402
from keras_ssgd.model import SymmetricSGDModel  # noqa: E402
from keras_ssgd.perturbed import PerturbedModel  # noqa: E402
from keras_ssgd.sharing import StepSharing  # noqa: E402
from keras_ssgd.wrap import METHODS  # noqa: E402
from keras_ssgd.wrap import SymmetricSGDWrapper  # noqa: E402
from keras_ssgd.wrap import wrap  # noqa: E402
from keras_ssgd.wrap import wrapper_class  # noqa: E402

__version__ = "0.1.0"

# Subpackages that import TensorFlow, loaded on first access.
_LAZY = ("data", "distributed", "landscape", "train")


def __getattr__(name):
    if name in _LAZY:
        module = importlib.import_module(f"keras_ssgd.{name}")
        globals()[name] = module
        return module
    if name == "compare":
        # The Python form of ssgd-train: `import keras_ssgd` loads neither the
        # command line nor an engine.
        from keras_ssgd.train.compare import compare

        globals()[name] = compare
        return compare
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "METHODS",
    "AdaptiveRandomPerturbationModel",
    "AdaptiveSharpnessAwareModel",
    "MixedAdaptiveRandomPerturbationModel",
    "MomentumSAMModel",
    "DropConnectModel",
    "PerturbedModel",
    "SharpnessAwareModel",
    "SmoothOutModel",
    "StepSharing",
    "SymmetricSGDModel",
    "SymmetricSGDWrapper",
    "WeightNoiseModel",
    "backends",
    "baselines",
    "callbacks",
    "filters",
    "methods",
    "models",
    "noise",
    "phases",
    "schedules",
    "sharing",
    "wrap",
    "wrapper_class",
]
