"""`import keras_ssgd` leaves the user's process as it was: it imports no
Keras and no TensorFlow until a name needs one, sets no environment
variable and filters no output (the commands quiet TensorFlow themselves,
tests/test_progress.py); the top level holds what a user types."""

import inspect
import os
import pathlib
import platform
import subprocess
import sys

import pytest

import keras_ssgd

ROOT = pathlib.Path(__file__).parents[2]
# TensorFlow's C++ start-up lines: oneDNN's (forced on x86-64 by
# TF_ENABLE_ONEDNN_OPTS=1), the CPU notice and absl's preamble.
START_UP = ("oneDNN", "cpu_feature_guard", "absl::InitializeLog")


def python(code, **env):
    """Runs `code` in a fresh interpreter, the user's environment without
    TF_CPP_MIN_LOG_LEVEL, plus `env`."""
    environment = {k: v for k, v in os.environ.items()
                   if k != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True,
        timeout=120, cwd=ROOT, env={**environment, **env},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_the_top_level_is_what_a_user_types():
    assert inspect.isfunction(keras_ssgd.wrap)
    assert inspect.isfunction(keras_ssgd.compare)
    assert inspect.ismodule(keras_ssgd.callbacks)
    for name in ("wrapper_class", "SymmetricSGDWrapper", "StepSharing",
                 "METHODS"):
        assert name not in keras_ssgd.__all__
        assert not hasattr(keras_ssgd, name), name
    assert set(keras_ssgd.__all__) <= set(dir(keras_ssgd))
    # The machinery, from its modules.
    from keras_ssgd.methods import METHODS
    from keras_ssgd.sharing import StepSharing  # noqa: F401
    from keras_ssgd.wrapping import SymmetricSGDWrapper  # noqa: F401
    from keras_ssgd.wrapping import wrapper_class  # noqa: F401

    assert METHODS["ssgd"].model_class is keras_ssgd.SymmetricSGDModel


def test_import_loads_no_keras_and_changes_no_environment():
    done = python(
        "import os, sys\n"
        "before = dict(os.environ)\n"
        "import keras_ssgd\n"
        "dir(keras_ssgd), keras_ssgd.__all__\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in "
        "('keras', 'tensorflow', 'jax', 'torch')]\n"
        "assert loaded == [], loaded\n"
        "assert dict(os.environ) == before\n"
        "print('OK')\n"
    )
    assert done.stdout == "OK\n"
    assert done.stderr == ""


def test_the_commands_import_no_keras_before_they_quiet_tensorflow():
    # The console scripts' targets: their import chains (the package, then
    # `train` or `landscape`) leave Keras to `main()`, which quiets
    # TensorFlow first (tests/test_progress.py).
    done = python(
        "import sys\n"
        "import keras_ssgd.train.cli, keras_ssgd.landscape.cli\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in "
        "('keras', 'tensorflow')]\n"
        "assert loaded == [], loaded\n"
    )
    assert done.stderr == ""


@pytest.mark.e2e
def test_first_use_imports_keras_as_the_user_would():
    # The same process with `import keras` alone: the same environment
    # after it (JAX, where installed, sets TF_CPP_MIN_LOG_LEVEL itself) and
    # the same TensorFlow start-up lines on standard error.
    show = "import os; print(os.environ.get('TF_CPP_MIN_LOG_LEVEL'))\n"
    plain = python("import keras\n" + show, TF_ENABLE_ONEDNN_OPTS="1")
    used = python(
        "import keras_ssgd\n"
        "keras_ssgd.SymmetricSGDModel\n"
        "assert 'keras' in __import__('sys').modules\n" + show,
        TF_ENABLE_ONEDNN_OPTS="1",
    )
    assert used.stdout == plain.stdout
    for line in START_UP:
        assert (line in used.stderr) == (line in plain.stderr), line
    if (platform.machine() in ("x86_64", "AMD64")
            and os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow"):
        assert "oneDNN" in used.stderr  # the user's TensorFlow speaks
