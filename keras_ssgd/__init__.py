"""keras_ssgd: Symmetrical SGD (S-SGD) for Keras 3.

S-SGD (Sung et al.) measures the gradient at two symmetrically perturbed
copies of the weights, `W + n` and `W - n` with `||n|| = noise_level * ||W||`
per selected variable (the paper says per layer: see `keras_ssgd.noise`),
averages them, and updates the master weights `W`.

The training step runs on the TensorFlow, JAX and PyTorch backends of
Keras 3, and so does `ssgd-train` (`keras_ssgd.train`) on MNIST-1D and the
user's arrays.

What a user types is here: `SymmetricSGDModel`, `wrap`, `PerturbedModel`,
the baselines (`SharpnessAwareModel`, ...), `callbacks`, `compare`, and the
data and model builders (`data`, `models`). Every other module is reached
by its own name (`keras_ssgd.filters`, `keras_ssgd.methods`,
`keras_ssgd.landscape`, ...).

Every name loads on first access: `import keras_ssgd` imports neither Keras
nor TensorFlow, sets no environment variable and leaves standard error
alone. Touching a model class or `wrap` registers every class a saved
keras_ssgd model may name, so `keras.saving.load_model` finds them.
"""

import importlib
import importlib.util

__version__ = "0.1.0"

# Each public name and the module that defines it.
_NAMES = {
    "SymmetricSGDModel": "keras_ssgd.model",
    "PerturbedModel": "keras_ssgd.perturbed",
    "wrap": "keras_ssgd.wrapping",
    "AdaptiveRandomPerturbationModel": "keras_ssgd.baselines",
    "AdaptiveSharpnessAwareModel": "keras_ssgd.baselines",
    "DropConnectModel": "keras_ssgd.baselines",
    "MixedAdaptiveRandomPerturbationModel": "keras_ssgd.baselines",
    "MomentumSAMModel": "keras_ssgd.baselines",
    "SharpnessAwareModel": "keras_ssgd.baselines",
    "SmoothOutModel": "keras_ssgd.baselines",
    "WeightNoiseModel": "keras_ssgd.baselines",
    # The Python form of ssgd-train.
    "compare": "keras_ssgd.train.compare",
}
# The public submodules.
_MODULES = ("callbacks", "data", "models")

__all__ = [*_NAMES, *_MODULES]


def __getattr__(name):
    if name in _NAMES:
        # `wrapping` registers every model class and wrapper with Keras's
        # saving, whichever name is touched first.
        importlib.import_module("keras_ssgd.wrapping")
        value = getattr(importlib.import_module(_NAMES[name]), name)
    elif not name.startswith("__") and importlib.util.find_spec(
            f"{__name__}.{name}") is not None:
        # A submodule, public or not: `keras_ssgd.filters` as after
        # `import keras_ssgd.filters`.
        value = importlib.import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(
            f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted({*globals(), *__all__})
