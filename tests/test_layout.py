"""The package layout: the task modules' old import paths are the new
modules themselves (with a DeprecationWarning), nothing in the project
imports an old path, every `keras_ssgd` name the README uses resolves, and
the layout written in `keras_ssgd.tasks` names every module."""

import ast
import importlib
import pathlib
import re
import sys
import warnings

import pytest

import keras_ssgd
from keras_ssgd import _moved

ROOT = pathlib.Path(__file__).parents[1]
PACKAGE = ROOT / "keras_ssgd"

# Every module that moved, at its old and new path (`_moved.MOVED` must
# hold exactly these: a new entry there needs its line here).
OLD_TO_NEW = {
    "keras_ssgd.data.mnist1d": "keras_ssgd.tasks.mnist1d.data",
    "keras_ssgd.data.cifar": "keras_ssgd.tasks.cifar.data",
    "keras_ssgd.data.imagenet": "keras_ssgd.tasks.imagenet.data",
    "keras_ssgd.data.ptb": "keras_ssgd.tasks.ptb.data",
    "keras_ssgd.data.speech": "keras_ssgd.tasks.speech.data",
    "keras_ssgd.models.mnist1d_cnn": "keras_ssgd.tasks.mnist1d.cnn",
    "keras_ssgd.models.sequence": "keras_ssgd.tasks.mnist1d.lstm",
    "keras_ssgd.models.cifar_resnet": "keras_ssgd.tasks.cifar.resnet",
    "keras_ssgd.models.wide_resnet": "keras_ssgd.tasks.cifar.wide_resnet",
    "keras_ssgd.models.vgg": "keras_ssgd.tasks.cifar.vgg",
    "keras_ssgd.models.imagenet_resnet": "keras_ssgd.tasks.imagenet.resnet",
    "keras_ssgd.models.ptb_lstm": "keras_ssgd.tasks.ptb.lstm",
    "keras_ssgd.models.sgcn": "keras_ssgd.tasks.speech.sgcn",
    "keras_ssgd.language": "keras_ssgd.tasks.ptb",
    "keras_ssgd.language.callbacks": "keras_ssgd.tasks.ptb.callbacks",
    "keras_ssgd.language.perplexity": "keras_ssgd.tasks.ptb.perplexity",
    "keras_ssgd.language.recipe": "keras_ssgd.tasks.ptb.recipe",
    "keras_ssgd.language.training": "keras_ssgd.tasks.ptb.training",
    "keras_ssgd.speech": "keras_ssgd.tasks.speech.ctc",
}


def test_the_moved_table_is_the_list_of_old_paths():
    assert _moved.MOVED == OLD_TO_NEW


def fresh_import(monkeypatch, old):
    """Imports `old` as a first import would (the old name, and those below
    it, out of `sys.modules`); returns the module and the warnings."""
    with warnings.catch_warnings():  # the parent's own warning, if old
        warnings.simplefilter("ignore", DeprecationWarning)
        importlib.import_module(old.rpartition(".")[0])
    for name in [n for n in sys.modules if n == old or n.startswith(old + ".")]:
        if name in OLD_TO_NEW:
            monkeypatch.delitem(sys.modules, name)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = importlib.import_module(old)
    return module, caught


@pytest.mark.parametrize("old", sorted(OLD_TO_NEW))
def test_an_old_path_is_the_new_module_and_warns(monkeypatch, old):
    new = importlib.import_module(OLD_TO_NEW[old])
    module, caught = fresh_import(monkeypatch, old)
    assert module is new
    assert sys.modules[old] is new
    assert new.__name__ == OLD_TO_NEW[old]
    assert new.__spec__.name == OLD_TO_NEW[old]  # the alias leaves no trace
    messages = [str(w.message) for w in caught
                if issubclass(w.category, DeprecationWarning)]
    assert messages == [
        f"`{old}` is deprecated and will be removed in keras_ssgd 0.2.0: "
        f"import `{OLD_TO_NEW[old]}` instead (the same module)."
    ]
    # The warning names the importing line, not the import system.
    assert [w.filename for w in caught
            if issubclass(w.category, DeprecationWarning)] == [__file__]
    parent, _, child = old.rpartition(".")
    parent = importlib.import_module(parent)
    if child not in getattr(parent, "__all__", ()):  # not a builder's name
        assert getattr(parent, child) is new


def test_the_old_attribute_paths_resolve_without_an_import():
    import keras_ssgd.data
    import keras_ssgd.models

    assert keras_ssgd.language is importlib.import_module("keras_ssgd.tasks.ptb")
    assert keras_ssgd.speech is importlib.import_module("keras_ssgd.tasks.speech.ctc")
    assert keras_ssgd.data.mnist1d is importlib.import_module("keras_ssgd.tasks.mnist1d.data")
    assert keras_ssgd.models.sequence is importlib.import_module("keras_ssgd.tasks.mnist1d.lstm")
    with pytest.raises(AttributeError, match="has no attribute 'nothing'"):
        keras_ssgd.data.nothing  # noqa: B018
    with pytest.raises(AttributeError, match="has no attribute 'nothing'"):
        keras_ssgd.nothing  # noqa: B018


def test_importing_an_old_model_module_keeps_the_builder(monkeypatch):
    fresh_import(monkeypatch, "keras_ssgd.models.cifar_resnet")
    from keras_ssgd.models.cifar_resnet import cifar_resnet

    assert keras_ssgd.models.cifar_resnet is cifar_resnet
    assert callable(keras_ssgd.models.cifar_resnet)


def test_a_patch_through_the_old_path_is_seen_at_the_new_one(monkeypatch):
    import keras_ssgd.data

    fresh_import(monkeypatch, "keras_ssgd.data.mnist1d")
    old = sys.modules["keras_ssgd.data.mnist1d"]
    calls = []
    monkeypatch.setattr(old, "load_mnist1d", lambda **kwargs: calls.append(kwargs))
    from keras_ssgd.tasks.mnist1d import data

    assert data.load_mnist1d is old.load_mnist1d
    keras_ssgd.data.load("mnist1d", batch_size=7)  # the registry looks it up
    assert calls == [{"batch_size": 7}]


def test_the_ptb_names_of_the_old_language_package(monkeypatch):
    from keras_ssgd.tasks import ptb
    perplexity_module = importlib.import_module("keras_ssgd.tasks.ptb.perplexity")

    assert ptb.perplexity is perplexity_module.perplexity  # the function
    # (also once the old path of the module is imported)
    fresh_import(monkeypatch, "keras_ssgd.language.perplexity")

    assert ptb.perplexity is perplexity_module.perplexity
    assert callable(ptb.train_run) and "train_run" in ptb.__all__
    with pytest.raises(AttributeError):
        ptb.nothing  # noqa: B018


def old_imports(path):
    """The old paths `path`'s import statements name."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [node.module]
            if node.module.startswith("keras_ssgd") and not _moved.new_name(node.module):
                # `from package import name`: an old module unless `name` is
                # one of the package's own (a builder of keras_ssgd.models).
                public = getattr(importlib.import_module(node.module), "__all__", ())
                names += [f"{node.module}.{a.name}" for a in node.names
                          if a.name not in public]
        else:
            continue
        found += [f"{path.relative_to(ROOT)}:{node.lineno}: {n}"
                  for n in names if _moved.new_name(n) is not None]
    return found


def test_the_project_imports_no_old_path():
    files = [p for folder in ("keras_ssgd", "experiments", "tests")
             for p in (ROOT / folder).rglob("*.py")
             if p != pathlib.Path(__file__) and "conformance" not in p.parts]
    assert len(files) > 50
    assert [hit for p in files for hit in old_imports(p)] == []


def test_the_import_scan_finds_an_old_path(tmp_path):
    # The scan above can fail: it sees each form of import.
    (tmp_path / "x.py").write_text(
        "import keras_ssgd.speech\n"
        "from keras_ssgd.data import ptb\n"
        "from keras_ssgd.language.recipe import RECIPES\n"
        "from keras_ssgd.data import load\n"
        "from keras_ssgd.models import cifar_resnet\n"
    )
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        hits = old_imports(tmp_path / "x.py")
    finally:
        ROOT = saved
    assert hits == ["x.py:1: keras_ssgd.speech", "x.py:2: keras_ssgd.data.ptb",
                    "x.py:3: keras_ssgd.language.recipe"]


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
