"""Packaging for keras_ssgd."""

import pathlib

from setuptools import find_packages
from setuptools import setup

HERE = pathlib.Path(__file__).parent

setup(
    name="keras_ssgd",
    version="0.1.0",
    description=(
        "Symmetrical SGD (S-SGD): flat-minima training for Keras 3 "
        "(TensorFlow, JAX and PyTorch backends)"
    ),
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["keras_ssgd", "keras_ssgd.*"]),
    python_requires=">=3.10",
    # The Keras range CI tests: 3.14 (make test-keras-floor) to 3.15 (make
    # test); older releases drop constructor arguments on reload, newer ones
    # are untested.
    # SciPy: the verdict's t quantiles (scipy.stats). mnist1d: the default
    # dataset of `ssgd-train` (generated offline), so the README's first
    # command runs after any install line.
    install_requires=["keras>=3.14,<3.16", "numpy", "matplotlib", "scipy",
                      "mnist1d>=0.0.2"],
    entry_points={
        "console_scripts": [
            "ssgd-train=keras_ssgd.train.cli:main",
            "ssgd-landscape=keras_ssgd.landscape.cli:main",
        ],
    },
    extras_require={
        # TensorFlow 2.21 is the backend; pick the build for the machine.
        "cpu": ["tensorflow-cpu==2.21.*"],
        "gpu": ["tensorflow[and-cuda]==2.21.*"],
        "tf": ["tensorflow==2.21.*"],
        # The other backends of the training step. `jax` from PyPI runs on
        # the CPU (install jax[cuda12] on a GPU machine). torch: the range
        # the package supports, so an install keeps the user's torch; CI
        # pins the release it tests (constraints.txt's `torch==2.13.0`, a CPU
        # build the CI machine keeps at hand).
        "jax": ["jax>=0.10"],
        "torch": ["torch>=2.13"],
        # Dataset loaders: MNIST-1D (generated offline), tfds (CIFAR,
        # ImageNet, LibriSpeech; tfds builds LibriSpeech with
        # importlib_resources, which it does not declare) and keras-cv (the
        # ImageNet ResNets).
        "data": [
            "mnist1d>=0.0.2", "tensorflow-datasets>=4.9", "keras-cv==0.9.*",
            "importlib_resources",
        ],
        "test": [
            "pytest>=7", "pytest-randomly>=3.15", "mnist1d>=0.0.2",
            "tensorflow-datasets>=4.9", "keras-cv==0.9.*",
            # Holm's correction is checked against statsmodels' own.
            "statsmodels",
            # `ssgd-train --tensorboard` (tensorflow-cpu does not bring it).
            "tensorboard",
        ],
        # KerasHub's task models (docs/guides/keras-hub.md). keras-hub
        # pulls in tensorflow-text, which installs the full `tensorflow`
        # package beside tensorflow-cpu: on a CPU-only machine, `make hub`
        # installs the same releases without it (constraints.txt).
        "hub": ["keras-hub>=0.32"],
        # TensorBoard logs (`ssgd-train --tensorboard`).
        "tensorboard": ["tensorboard"],
        # The documentation site: `make docs` (mkdocs.yml).
        "docs": [
            "mkdocs==1.6.1", "mkdocs-material==9.8.2",
            "mkdocstrings[python]==1.0.8", "mkdocstrings-python==2.0.11",
        ],
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
