"""The model builders by name: each task's (`keras_ssgd.tasks`) and `mlp`.

Every builder lives with its task; this index gathers them for the
benchmarks, the experiments and `ssgd-train`'s registry. `mlp` lives here:
it belongs to no task (the smoke model of the paper scripts, and a
baseline for any flat input).

Example:

```python
base = keras_ssgd.models.cifar_resnet(20, num_classes=100)
```
"""

from keras_ssgd.models.mlp import mlp
from keras_ssgd.tasks.cifar.resnet import cifar_resnet
from keras_ssgd.tasks.cifar.vgg import cifar_vgg
from keras_ssgd.tasks.cifar.wide_resnet import wide_resnet
from keras_ssgd.tasks.imagenet.resnet import imagenet_resnet
from keras_ssgd.tasks.mnist1d.cnn import mnist1d_cnn
from keras_ssgd.tasks.mnist1d.lstm import mnist1d_lstm
from keras_ssgd.tasks.ptb.lstm import ptb_lstm
from keras_ssgd.tasks.speech.sgcn import sgcn

__all__ = [
    "cifar_resnet", "cifar_vgg", "imagenet_resnet", "mlp", "mnist1d_cnn", "mnist1d_lstm", "ptb_lstm", "sgcn", "wide_resnet",
]

