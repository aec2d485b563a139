"""The user's own code by name: `package.module:function`.

`ssgd-train --model mypackage.models:build` and `--dataset
mydata:load` name a function the way entry points do: a module importable
from the current folder or the installed environment, a colon, then the
function (a dotted path inside the module, such as `Builders.small`, is
allowed). Nothing here imports TensorFlow.
"""

import importlib
import inspect
import os
import re
import sys

# `package.module:function` (dotted names on both sides).
_SPEC = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


class UserCodeError(ValueError):
    """A `module:function` that cannot be used; the message says why."""


def is_function_spec(text):
    """Whether `text` has the form `package.module:function`."""
    return isinstance(text, str) and bool(_SPEC.match(text))


def spec_of(function):
    """`module:qualname` of a Python function, for the recipe."""
    module = getattr(function, "__module__", None) or "?"
    name = getattr(function, "__qualname__", None) or getattr(
        function, "__name__", type(function).__name__
    )
    return f"{module}:{name}"


def load_function(spec, flag):
    """The function `spec` (`package.module:function`) names.

    The current folder is put first on `sys.path` (as `python -m` does), so
    a module next to the data works without installing it.

    Args:
        spec: str, `package.module:function`.
        flag: str, the option for messages (`--model`, `--dataset`).

    Returns:
        The callable.

    Raises:
        UserCodeError: `spec` is malformed, the module cannot be found or
            fails to import, the function is missing or is not callable.
            The message names `spec`.
    """
    if not is_function_spec(spec):
        raise UserCodeError(
            f"{flag} must be package.module:function. Received: {spec!r}"
        )
    module_name, _, attribute = spec.partition(":")
    folder = os.getcwd()
    if folder not in sys.path and "" not in sys.path:
        sys.path.insert(0, folder)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        missing = error.name or ""
        if module_name == missing or module_name.startswith(missing + "."):
            raise UserCodeError(
                f"{flag} {spec}: no module named {missing!r} in the current "
                f"folder ({folder}) or the Python environment. Received: "
                f"{spec!r}"
            ) from None
        raise UserCodeError(
            f"{flag} {spec}: importing module {module_name!r} failed: "
            f"{error}. Received: {spec!r}"
        ) from error
    except Exception as error:  # the user's module raised while importing
        raise UserCodeError(
            f"{flag} {spec}: importing module {module_name!r} failed: "
            f"{type(error).__name__}: {error}. Received: {spec!r}"
        ) from error
    target = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise UserCodeError(
                f"{flag} {spec}: module {module_name!r} "
                f"({getattr(module, '__file__', None) or 'built in'}) has no "
                f"function {attribute!r}. Received: {spec!r}"
            )
        target = getattr(target, part)
    if not callable(target):
        raise UserCodeError(
            f"{flag} {spec}: {attribute!r} in module {module_name!r} is not "
            f"a function (it is a {type(target).__name__}). Received: "
            f"{spec!r}"
        )
    return target


def accepts(function, *args):
    """Whether `function(*args)` binds (by signature; True if unknown)."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):  # some builtins have no signature
        return True
    try:
        signature.bind(*args)
    except TypeError:
        return False
    return True
