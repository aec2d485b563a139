"""The import paths that moved to `keras_ssgd.tasks`, kept for one release.

Each old path (`MOVED`) imports the module at its new path, and it is the
SAME module object under both names (`sys.modules` holds it twice), so a
change made through either name (a monkeypatch, a registry entry) is seen
through the other. The first import of an old path in a process emits a
`DeprecationWarning` naming the new one; the package itself never imports
an old path. They are removed in keras_ssgd 0.2.0.

Example:

```python
import keras_ssgd.data.mnist1d  # DeprecationWarning: use keras_ssgd.tasks.mnist1d.data
import keras_ssgd.tasks.mnist1d.data

assert keras_ssgd.data.mnist1d is keras_ssgd.tasks.mnist1d.data
```
"""

import importlib
import importlib.abc
import importlib.machinery
import os
import sys
import types
import warnings

REMOVED_IN = "0.2.0"

# Old path -> new path. A name under a moved package (`keras_ssgd.language.x`)
# that is not listed maps by its prefix, so it is never loaded a second time.
MOVED = {
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


def new_name(name):
    """The new path of the old module path `name`, or None if it did not move."""
    if name in MOVED:
        return MOVED[name]
    parent, _, child = name.rpartition(".")
    while parent:
        if parent in MOVED:
            return f"{MOVED[parent]}.{child}"
        parent, _, rest = parent.rpartition(".")
        child = f"{rest}.{child}"
    return None


def child_attribute(package, name):
    """For a package's `__getattr__`: the module `package.name` if that old
    path moved (imported through it, so it warns once), else AttributeError."""
    old = f"{package}.{name}"
    if new_name(old) is None:
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    return importlib.import_module(old)


_IMPORTLIB = os.path.dirname(importlib.__file__)
_PACKAGE = os.path.dirname(__file__)


def _importer():
    """The frame of the code that asked for the old path: the first one
    outside the import system, this module and the packages' `__getattr__`."""
    frame = sys._getframe(1)
    while frame.f_back is not None:
        path = frame.f_code.co_filename
        if not (
            path.startswith(("<frozen importlib", _IMPORTLIB))
            or path == __file__
            or (frame.f_code.co_name == "__getattr__" and path.startswith(_PACKAGE))
        ):
            break
        frame = frame.f_back
    return frame


def _warn(old, new):
    frame = _importer()
    warnings.warn_explicit(
        f"`{old}` is deprecated and will be removed in keras_ssgd "
        f"{REMOVED_IN}: import `{new}` instead (the same module).",
        DeprecationWarning,
        frame.f_code.co_filename,
        frame.f_lineno,
        module=frame.f_globals.get("__name__"),
        registry=frame.f_globals.setdefault("__warningregistry__", {}),
        module_globals=frame.f_globals,
    )


class _Alias(importlib.abc.Loader):
    """Loads an old path as the module already at its new path."""

    def __init__(self, new):
        self.new = new

    def create_module(self, spec):
        _warn(spec.name, self.new)
        module = importlib.import_module(self.new)
        # The import system gives the module this spec; exec_module puts
        # its own back.
        self.spec = module.__spec__
        return module

    def exec_module(self, module):
        module.__spec__ = self.spec  # nothing to run: imported at its new path


class _Finder(importlib.abc.MetaPathFinder):
    """Answers the old paths (ahead of the path finder, which would load the
    new file a second time under the old name)."""

    def find_spec(self, name, path=None, target=None):
        if not name.startswith("keras_ssgd."):
            return None
        new = new_name(name)
        if new is None:
            return None
        return importlib.machinery.ModuleSpec(name, _Alias(new))


class _KeepsNames(types.ModuleType):
    """A package that keeps its functions when an old path of the same name
    is imported.

    `import keras_ssgd.models.cifar_resnet` (an old path) makes the import
    system set the attribute `cifar_resnet` of `keras_ssgd.models` to that
    module, over the builder `cifar_resnet`; this keeps the builder, as it
    was before the move (the same for `keras_ssgd.language.perplexity`).
    """

    def __setattr__(self, name, value):
        current = self.__dict__.get(name)
        if (isinstance(value, types.ModuleType) and current is not None
                and not isinstance(current, types.ModuleType)):
            return
        super().__setattr__(name, value)


def keep_names(name):
    """Makes the package `name` keep its functions (`_KeepsNames`)."""
    sys.modules[name].__class__ = _KeepsNames


def install():
    """Puts the finder first on `sys.meta_path` (once)."""
    if not any(isinstance(finder, _Finder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
