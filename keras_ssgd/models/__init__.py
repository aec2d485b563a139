"""Model builders used by the benchmarks and experiments."""

from keras_ssgd.models.cifar_resnet import cifar_resnet
from keras_ssgd.models.imagenet_resnet import imagenet_resnet
from keras_ssgd.models.mlp import mlp
from keras_ssgd.models.mnist1d_cnn import mnist1d_cnn
from keras_ssgd.models.ptb_lstm import ptb_lstm
from keras_ssgd.models.sgcn import sgcn
from keras_ssgd.models.sequence import mnist1d_lstm
from keras_ssgd.models.vgg import cifar_vgg
from keras_ssgd.models.wide_resnet import wide_resnet

__all__ = [
    "cifar_resnet", "cifar_vgg", "imagenet_resnet", "mlp", "mnist1d_cnn", "mnist1d_lstm", "ptb_lstm", "sgcn", "wide_resnet",
]
