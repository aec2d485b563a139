"""Model builders used by the benchmarks and experiments."""

from keras_ssgd.models.cifar_resnet import cifar_resnet
from keras_ssgd.models.mnist1d_cnn import mnist1d_cnn

__all__ = ["cifar_resnet", "mnist1d_cnn"]
