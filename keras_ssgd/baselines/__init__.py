"""The regularizers S-SGD is compared with, as models trained like it.

Each is a `keras_ssgd.PerturbedModel`: build it with the functional API,
subclass it, or get one from `keras_ssgd.wrap(model, method=...)`, exactly as
`SymmetricSGDModel`. They share its step (one optimizer update per batch,
perturbations computed functionally, skipped update on a non-finite loss,
noise from `(seed, step)`) and differ in where the gradient is measured:

| class | gradient measured at | passes | level |
|---|---|---|---|
| `WeightNoiseModel` | `W + n`, Gaussian, `||n|| = level * ||W||` | 1 | `noise_level` |
| `SmoothOutModel` | `W + u`, `u` uniform, bound `level * ||W|| / sqrt(size)` | 1 | `noise_level` |
| `DropConnectModel` | `W * mask / (1 - rate)` on dense kernels | 1 | `rate` |
| `SharpnessAwareModel` | `W + rho * g / ||g||` (SAM) | 2 | `rho` |
| `AdaptiveSharpnessAwareModel` | `W + rho * T^2 g / ||T g||`, `T = |W| + eta` (ASAM) | 2 | `rho` |
| `AdaptiveRandomPerturbationModel` | `W + e`, `e` Gaussian, per-filter scale `sigma * ||W_f||`, damped by the gradient history (ARWP) | 1 | `sigma` |
| `MixedAdaptiveRandomPerturbationModel` | `W` and `W + e` (ARWP's `e`), mixed `mix * g(W) + (1 - mix) * g(W + e)` (m-ARWP) | 2 | `sigma` |
| `MomentumSAMModel` | `W - rho * v / ||v||`, `v` the optimizer's momentum (MSAM) | 1 | `rho` |

Dropout needs no model class: put `keras.layers.Dropout` in the model (the
builders in `keras_ssgd.models` take a `dropout` rate for their dense head).
"""

from keras_ssgd.baselines.arwp import AdaptiveRandomPerturbationModel
from keras_ssgd.baselines.arwp import MixedAdaptiveRandomPerturbationModel
from keras_ssgd.baselines.asam import AdaptiveSharpnessAwareModel
from keras_ssgd.baselines.dropconnect import DropConnectModel
from keras_ssgd.baselines.msam import MomentumSAMModel
from keras_ssgd.baselines.sam import SharpnessAwareModel
from keras_ssgd.baselines.smoothout import SmoothOutModel
from keras_ssgd.baselines.weight_noise import WeightNoiseModel

__all__ = [
    "AdaptiveRandomPerturbationModel",
    "MixedAdaptiveRandomPerturbationModel",
    "AdaptiveSharpnessAwareModel",
    "DropConnectModel",
    "MomentumSAMModel",
    "SharpnessAwareModel",
    "SmoothOutModel",
    "WeightNoiseModel",
]
