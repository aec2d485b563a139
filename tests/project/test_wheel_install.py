"""The README's install line, from a built wheel into a fresh virtual
environment, then the README's first commands and its "Three ways to use
it" examples, run there: what a newcomer types works with what
`pip install keras_ssgd[cpu]` installs, and nothing from this checkout.

e2e tier: the wheel is built (`pip wheel`, no network), installed with
its `cpu` extra through constraints.txt, and the commands run in a
temporary folder (about 2 minutes, most of it installing TensorFlow)."""

import os
import pathlib
import re
import shutil
import subprocess
import sys
import textwrap

import pytest

import doc_examples

ROOT = pathlib.Path(__file__).parents[2]
SECTION = "## Three ways to use it"

# Stand-ins for the user's files the README names.
MYMODELS = textwrap.dedent("""\
    import keras


    def build(input_shape, num_classes, dropout=0.0):
        return keras.Sequential([
            keras.Input(input_shape),
            keras.layers.Flatten(),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(num_classes),
        ])
    """)


def readme_python_examples():
    """The Python fences of the README's "Three ways to use it"."""
    text = (ROOT / "README.md").read_text()
    start = text.index(SECTION)
    end = text.index("\n## ", start + len(SECTION))
    first = text[:start].count("\n") + 1
    last = text[:end].count("\n") + 1
    return [e for e in doc_examples.markdown_examples()
            if e.path == "README.md" and first <= e.line <= last
            and e.skip is None]


def readme_commands():
    """The `ssgd-train` lines of the README's "Three ways to use it"."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index(SECTION):]
    section = section[:section.index("\n## ", 1)]
    return [line.split("#", 1)[0].split() for line in section.splitlines()
            if line.startswith("ssgd-train ")]


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "*.egg-info", "__pycache__", ".pytest_cache",
        "experiments", "tests", "docs", "docker"))
    dist = work / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
         "--no-build-isolation", "-w", str(dist), str(source)],
        check=True, timeout=600)
    (wheel,) = dist.glob("keras_ssgd-*.whl")
    env_dir = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(env_dir)], check=True,
                   timeout=300)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "-c",
         str(ROOT / "constraints.txt"), f"{wheel}[cpu]"],
        check=True, timeout=1200)
    return env_dir


def run(venv, args, cwd, timeout=600):
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "KERAS_BACKEND")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, (args, done.stdout[-3000:],
                                  done.stderr[-3000:])
    return done


@pytest.mark.e2e
def test_the_installed_package_comes_from_the_wheel(venv, tmp_path):
    done = run(venv, [str(venv / "bin" / "python"), "-c",
                      "import keras_ssgd; print(keras_ssgd.__file__)"],
               cwd=tmp_path)
    assert str(venv) in done.stdout and str(ROOT) not in done.stdout


@pytest.mark.e2e
def test_ssgd_train_help_runs(venv, tmp_path):
    done = run(venv, [str(venv / "bin" / "ssgd-train"), "--help"],
               cwd=tmp_path)
    assert "--method" in done.stdout


@pytest.mark.e2e
def test_the_readme_commands_run_for_one_epoch(venv, tmp_path):
    commands = readme_commands()
    assert len(commands) == 2
    # The user's model and data of the second command, generated.
    (tmp_path / "mymodels.py").write_text(MYMODELS)
    import numpy as np

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "data.npz",
             x_train=rng.normal(size=(60, 8)).astype("float32"),
             y_train=rng.integers(0, 3, 60),
             x_test=rng.normal(size=(20, 8)).astype("float32"),
             y_test=rng.integers(0, 3, 20))
    for i, command in enumerate(commands):
        run(venv, [str(venv / "bin" / command[0]), *command[1:],
                   "--epochs", "1", "--seeds", "1", "--quiet",
                   "--output", str(tmp_path / f"out{i}")], cwd=tmp_path)
        assert (tmp_path / f"out{i}" / "results.json").exists()


@pytest.mark.e2e
def test_the_readme_examples_run(venv, tmp_path):
    examples = readme_python_examples()
    assert len(examples) == 2
    for example in examples:
        script = tmp_path / f"readme_{example.line}.py"
        script.write_text(
            "import keras\nimport numpy as np\n\nimport keras_ssgd\n\n"
            + (example.setup or "") + "\n" + example.code)
        run(venv, [str(venv / "bin" / "python"), str(script)], cwd=tmp_path)
