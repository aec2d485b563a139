"""constraints.txt pins, for each package the project declares, one
version inside the range setup.py declares for it (so `make`'s installs
and a user's `pip install -e ".[cpu]"` agree), and `make` passes it to
pip."""

import ast
import pathlib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = pathlib.Path(__file__).parents[2]


def declared():
    """`{name: [Requirement]}` of setup.py's install_requires and
    extras."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    setup = next(node for node in ast.walk(tree) if isinstance(node, ast.Call)
                 and getattr(node.func, "id", None) == "setup")
    keywords = {k.arg: ast.literal_eval(k.value) for k in setup.keywords
                if k.arg in ("install_requires", "extras_require")}
    lines = list(keywords["install_requires"])
    for extra in keywords["extras_require"].values():
        lines.extend(extra)
    found = {}
    for line in lines:
        requirement = Requirement(line)
        found.setdefault(canonicalize_name(requirement.name), []).append(
            requirement)
    return found


def pins():
    found = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            requirement = Requirement(line)
            (spec,) = requirement.specifier
            assert spec.operator == "==", line
            found[canonicalize_name(requirement.name)] = spec.version
    return found


def test_every_pin_is_inside_the_declared_ranges():
    ranges = declared()
    outside = {
        name: (version, [str(r.specifier) for r in ranges.get(name, [])])
        for name, version in pins().items()
        if name in ranges and not all(
            r.specifier.contains(version, prereleases=True)
            for r in ranges[name])
    }
    assert outside == {}


def test_the_backends_and_keras_are_pinned():
    assert {"keras", "tensorflow-cpu", "jax", "torch"} <= set(pins())


def test_make_installs_through_the_constraints():
    makefile = (ROOT / "Makefile").read_text()
    assert "CONSTRAINTS ?= constraints.txt" in makefile
    assert "PIP_INSTALL = $(PY) -m pip install --quiet -c $(CONSTRAINTS)" in (
        makefile)
    # Every install of the project (and its extras) goes through it.
    installs = [line.strip() for line in makefile.splitlines()
                if '-e "' in line]
    assert len(installs) >= 3
    assert all(line.startswith("$(PIP_INSTALL) ") for line in installs)
