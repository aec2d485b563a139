"""What `ssgd-train` can run, by name: methods, models and datasets."""

import dataclasses

from keras_ssgd import data as data_lib
from keras_ssgd import models
from keras_ssgd.methods import METHODS  # noqa: F401  (ssgd-train's methods)
from keras_ssgd.methods import Method  # noqa: F401
from keras_ssgd.methods import register  # noqa: F401


def _mnist1d_cnn(batchnorm):
    def build(input_shape, num_classes, dropout=0.0):
        return models.mnist1d_cnn(
            batchnorm=batchnorm, length=input_shape[0],
            num_classes=num_classes, dropout=dropout,
        )

    return build


def _resnet(depth):
    def build(input_shape, num_classes, dropout=0.0):
        return models.cifar_resnet(
            depth, num_classes=num_classes, input_shape=input_shape,
            dropout=dropout,
        )

    return build


def _wide_resnet(depth, width):
    def build(input_shape, num_classes, dropout=0.0):
        return models.wide_resnet(
            depth, width, num_classes=num_classes, input_shape=input_shape,
            dropout=dropout,
        )

    return build


def _vgg(depth):
    def build(input_shape, num_classes, dropout=0.0):
        return models.cifar_vgg(
            depth, num_classes=num_classes, input_shape=input_shape,
            dropout=dropout,
        )

    return build


def _mnist1d_lstm(input_shape, num_classes, dropout=0.0):
    return models.mnist1d_lstm(
        length=input_shape[0], features=input_shape[1],
        num_classes=num_classes, dropout=dropout,
    )


def _imagenet_resnet(depth):
    # The reference recipe's weight decay (Ying et al. 2018): 1e-4.
    def build(input_shape, num_classes, dropout=0.0):
        return models.imagenet_resnet(
            depth, classes=num_classes, input_shape=input_shape,
            weight_decay=1e-4, dropout=dropout,
        )

    return build


def _mlp(input_shape, num_classes, dropout=0.0):
    return models.mlp(input_shape, num_classes=num_classes, dropout=dropout)


# name -> builder(input_shape, num_classes, dropout=0.0) -> keras.Model
MODELS = {
    "mnist1d-cnn-bn": _mnist1d_cnn(batchnorm=True),
    "mnist1d-cnn": _mnist1d_cnn(batchnorm=False),
    "mnist1d-lstm": _mnist1d_lstm,
    "mlp": _mlp,
    "resnet20": _resnet(20),
    "resnet32": _resnet(32),
    "resnet56": _resnet(56),
    "wrn28-2": _wide_resnet(28, 2),
    "wrn28-4": _wide_resnet(28, 4),
    "vgg6": _vgg(6),
    "vgg16": _vgg(16),
    "resnet18": _imagenet_resnet(18),
    "resnet50": _imagenet_resnet(50),
}

# The built-in models that add an L2 penalty of their own (their layers'
# kernel_regularizer): `--weight-decay` is refused for them.
OWN_L2 = frozenset({"resnet18", "resnet50"})

DATASETS = data_lib.DATASETS


def _sgd(schedule, config, options):
    import keras

    return keras.optimizers.SGD(schedule, momentum=config.momentum, **options)


def _adam(schedule, config, options):
    import keras

    return keras.optimizers.Adam(schedule, **options)


# `--optimizer` name -> build(schedule, config, options) -> a Keras
# optimizer (`options`: the method's and the recipe's keyword arguments).
OPTIMIZERS = {"sgd": _sgd, "adam": _adam}


def model_builder(name):
    """The builder of a built-in model name or of `package.module:function`.

    A user's builder has the signature of the built-in ones:
    `build(input_shape, num_classes, dropout=0.0) -> keras.Model`, mapping
    a batch of inputs to `num_classes` logits (no softmax: the loss is
    `SparseCategoricalCrossentropy(from_logits=True)`). `dropout`, the rate
    of a Dropout layer before the head, is needed only by `--method
    dropout`.

    Raises:
        ValueError (`user.UserCodeError`): `name` is neither a built-in
            model nor an importable `package.module:function`.
    """
    from keras_ssgd import user_code as user

    if name in MODELS:
        return MODELS[name]
    if user.is_function_spec(name):
        return user.load_function(name, "--model")
    raise user.UserCodeError(
        f"--model: invalid choice: {name!r} (choose from "
        f"{', '.join(map(repr, MODELS))}, or package.module:function for "
        "your own builder)"
    )


@dataclasses.dataclass(frozen=True)
class Recipe:
    """The defaults of a dataset: the paper's recipe, or the prototype's."""

    model: str
    epochs: int
    batch_size: int
    lr: float
    lr_schedule: str
    lr_drops: tuple = ()
    steps_per_execution: int = 1


# CIFAR: paper Section 4.1 (175 epochs, batch 128, lr 0.1 / 10 at 75, 125).
RECIPES = {
    "mnist1d": Recipe("mnist1d-cnn-bn", 60, 100, 0.05, "cosine", (), 8),
    "cifar10": Recipe("resnet20", 175, 128, 0.1, "step", (75, 125)),
    "cifar100": Recipe("resnet20", 175, 128, 0.1, "step", (75, 125)),
    # ImageNet: paper Section 5.1 (batch 1024, 90 epochs) with Ying et al.'s
    # rate, 0.1 per 256 images, /10 at 30, 60, 80 (without its 5-epoch
    # warm-up, which experiments/paper/table3_imagenet.py adds).
    "imagenet2012": Recipe("resnet50", 90, 1024, 0.4, "step", (30, 60, 80)),
}

# The user's data (.npz, module:function, tfds:NAME): a small generic start;
# every field can be set on the command line.
USER_RECIPE = Recipe("mlp", 20, 128, 0.05, "cosine", (), 1)


def recipe_for(dataset):
    """The default recipe of a dataset name (the user's data: USER_RECIPE)."""
    return RECIPES.get(dataset, USER_RECIPE)
