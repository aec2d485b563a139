"""Model builders used by the benchmarks and experiments."""

from keras_ssgd.models.cifar_resnet import cifar_resnet
from keras_ssgd.models.mlp import mlp
from keras_ssgd.models.mnist1d_cnn import mnist1d_cnn

__all__ = ["cifar_resnet", "mlp", "mnist1d_cnn"]
