"""The package layout: the task modules' old import paths are gone,
`import keras_ssgd` loads no command line and no engine, every
`keras_ssgd` name the README uses resolves, and the layout written in
`keras_ssgd.tasks` names every module."""

import importlib
import pathlib
import re
import sys
import warnings

import pytest

import keras_ssgd

ROOT = pathlib.Path(__file__).parents[2]
PACKAGE = ROOT / "keras_ssgd"

# The task modules' paths before they moved into `keras_ssgd.tasks`.
OLD_PATHS = (
    "keras_ssgd.data.mnist1d",
    "keras_ssgd.data.cifar",
    "keras_ssgd.data.imagenet",
    "keras_ssgd.data.ptb",
    "keras_ssgd.data.speech",
    "keras_ssgd.models.mnist1d_cnn",
    "keras_ssgd.models.sequence",
    "keras_ssgd.models.cifar_resnet",
    "keras_ssgd.models.wide_resnet",
    "keras_ssgd.models.vgg",
    "keras_ssgd.models.imagenet_resnet",
    "keras_ssgd.models.ptb_lstm",
    "keras_ssgd.models.sgcn",
    "keras_ssgd.language",
    "keras_ssgd.language.callbacks",
    "keras_ssgd.language.perplexity",
    "keras_ssgd.language.recipe",
    "keras_ssgd.language.training",
    "keras_ssgd.speech",
)


@pytest.mark.parametrize("old", sorted(OLD_PATHS))
def test_an_old_path_is_gone(old):
    # Never released, so not kept: the ordinary error of a missing module.
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module(old)


def test_missing_attributes_are_attribute_errors():
    import keras_ssgd.data
    from keras_ssgd.tasks import ptb

    for module in (keras_ssgd, keras_ssgd.data, keras_ssgd.models, ptb):
        with pytest.raises(AttributeError, match="has no attribute 'nothing'"):
            module.nothing  # noqa: B018
    assert callable(ptb.train_run) and "train_run" in ptb.__all__


@pytest.mark.e2e
def test_import_keras_ssgd_loads_no_command_line_and_no_engine():
    import subprocess

    done = subprocess.run(
        [sys.executable, "-c", "import keras_ssgd, sys; print(sorted(m for m "
         "in sys.modules if m.startswith(('keras_ssgd.train', "
         "'keras_ssgd.distributed'))))"],
        capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"
    assert callable(keras_ssgd.compare)  # loaded on first use


def resolve(dotted):
    """The object `dotted` names: its longest importable module prefix,
    then attributes."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            value = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError:
            continue
        for part in parts[i:]:
            value = getattr(value, part)
        return value
    raise ModuleNotFoundError(dotted)


def readme_names():
    text = (ROOT / "README.md").read_text()
    names = set(re.findall(r"\bkeras_ssgd(?:\.[A-Za-z_]\w*)+", text))
    for module, imported in re.findall(
            r"^\s*from (keras_ssgd(?:\.\w+)*) import ([\w, ]+)$", text, re.M):
        names |= {f"{module}.{n.split(' as ')[0].strip()}"
                  for n in imported.split(",") if n.strip()}
    return sorted(names)


def test_every_name_the_readme_uses_resolves():
    names = readme_names()
    assert "keras_ssgd.models.mnist1d_cnn" in names
    unresolved = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        for name in names:
            try:
                resolve(name)
            except (ImportError, AttributeError) as error:
                unresolved.append(f"{name}: {error}")
    assert unresolved == []


def test_the_layout_names_every_module():
    layout = importlib.import_module("keras_ssgd.tasks").__doc__
    top = [p.stem if p.is_file() else f"{p.name}/"
           for p in PACKAGE.iterdir()
           if (p.suffix == ".py" and not p.name.startswith("_"))
           or (p.is_dir() and (p / "__init__.py").exists())]
    assert "tasks/" in top and "model" in top
    missing = [name for name in top if name != "tasks/"
               and not re.search(rf"^    {re.escape(name)}\s", layout, re.M)]
    assert missing == []
    for task in sorted(p for p in (PACKAGE / "tasks").iterdir() if p.is_dir()
                       and (p / "__init__.py").exists()):
        line = re.search(rf"^    {task.name}/\s.*(?:\n {{19}}.*)*", layout, re.M)
        assert line, task.name
        modules = [p.stem for p in task.glob("*.py") if p.name != "__init__.py"]
        assert modules and all(m in line.group(0) for m in modules), task.name


def test_the_architecture_page_draws_the_layers_contract():
    import configparser

    contract = configparser.ConfigParser()
    contract.read(ROOT / ".importlinter")
    layers = [line.strip().removeprefix("keras_ssgd.") for line in
              contract["importlinter:contract:layers"]["layers"].split()]
    page = (ROOT / "docs" / "architecture.md").read_text()
    picture = page.split("```text\n", 1)[1].split("```", 1)[0]
    drawn = [line.split()[0].rstrip("/") for line in picture.splitlines()
             if line and not line.startswith(" ")]
    assert drawn == layers
