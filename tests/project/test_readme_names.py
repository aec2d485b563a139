"""Every `keras_ssgd.X` name that README.md mentions resolves."""

import importlib
import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"
_NAME = re.compile(r"\bkeras_ssgd(?:\.[A-Za-z_][A-Za-z0-9_]*)+")


def names_in(text):
    """The dotted `keras_ssgd.` names of `text`, sorted, without repeats."""
    return sorted(set(_NAME.findall(text)))


def resolve(name):
    """The object a dotted name stands for: attributes, then submodules."""
    parts = name.split(".")
    obj = importlib.import_module(parts[0])
    for i, part in enumerate(parts[1:], start=1):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            obj = importlib.import_module(".".join(parts[:i + 1]))
    return obj


def test_import():
    import keras_ssgd

    for name in keras_ssgd.__all__:
        assert getattr(keras_ssgd, name) is not None, name


def test_readme_mentions_names():
    assert "keras_ssgd.wrap" in names_in(README.read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    "name", names_in(README.read_text(encoding="utf-8"))
)
def test_readme_name_resolves(name):
    resolve(name)


def test_unknown_name_fails():
    with pytest.raises(ImportError):
        resolve("keras_ssgd.no_such_name")


def _relative_links(text):
    """The relative link targets of Markdown `text`, without anchors."""
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    return sorted({
        t.split("#")[0] for t in targets
        if not re.match(r"[a-z]+:", t) and not t.startswith("#")
    } - {""})


def test_readme_links_exist():
    root = README.parent
    missing = [
        t for t in _relative_links(README.read_text(encoding="utf-8"))
        if not (root / t).exists()
    ]
    assert not missing, f"README.md links to missing files: {missing}"
