"""The conformance harness: Keras's own tests, run against SymmetricSGDModel.

See conftest.py in this folder for what it does and how to run it. This
module holds the parts: the substitution (`Substitution`), the
instrumentation of the package's step (`Recorder`), the single table of
Keras tests that cannot apply (`NOT_APPLICABLE`), the collector of the
fetched modules (`KerasSuite`) and the pytest plugin that ties them
together and prints the summary (`Plugin`).
"""

import fnmatch
import functools
import importlib
import importlib.metadata
import importlib.util
import inspect
import json
import pathlib
import re
import sys
import time
import types

import pytest

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
RESULTS = ROOT / "build" / "conformance"


def _fetch_module():
    spec = importlib.util.spec_from_file_location(
        "keras_ssgd_fetch_keras_tests", HERE / "fetch_keras_tests.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fetch = _fetch_module()

# ---------------------------------------------------------------------------
# The single table of Keras tests that cannot apply.
#
# (test id pattern, conditions, action, reason). The pattern is matched
# (fnmatch) against the id below the cache folder, "models/model_test.py::
# ModelTest::test_x". An entry applies when all its conditions hold:
# "ssgd" (the models are SymmetricSGDModel), "noisy" (noise_level > 0),
# "split" (their default is `split_batch=True`), a
# backend name, or "no-<module>" (an optional module is not installed).
# Action "xfail": the test runs, marked xfail(strict=True), so the suite
# fails if it passes (XPASS) and the table cannot go stale. Action "skip":
# it does not run (used where running it only proves the missing module is
# missing).
#
# A failure caused by a bug in keras_ssgd is not a reason to be here: those
# fail, and are listed in the summary and in the report.
# ---------------------------------------------------------------------------
NOT_APPLICABLE = [
    # At a level > 0 the reported loss is the mean over the perturbed
    # points and the weights move by the averaged perturbed gradient: these
    # compare them with constants computed for plain SGD.
    # (`_eager`, `_graph_fn`, `_jit`; not `_without_training_*`)
    ("trainers/trainer_test.py::TestTrainer::test_on_batch_methods_[egj]*",
     {"ssgd", "noisy"}, "xfail",
     "compares train_on_batch losses with constants of plain SGD (16.0, "
     "15.158, ...)"),
    ("trainers/trainer_test.py::TestTrainer::test_nested_inputs",
     {"ssgd", "noisy"}, "xfail",
     "compares the fit loss with the constant 16.0 of plain SGD"),
    ("trainers/trainer_test.py::TestTrainer::test_loss_weights",
     {"ssgd", "noisy"}, "xfail",
     "compares the fit losses with constants of plain SGD"),
    # The split form measures the two halves of a batch at W + n and W - n
    # and refuses a batch of one example, as documented.
    ("trainers/trainer_test.py::TestTrainer::test_retracing",
     {"ssgd", "noisy", "split"}, "xfail",
     "fits with batch_size=1, which split_batch=True refuses (documented)"),
    ("trainers/trainer_test.py::TestTrainer::test_loss_scaling_prevents_underflow",
     {"ssgd", "noisy", "split"}, "xfail",
     "fits with batch_size=1, which split_batch=True refuses (documented)"),
    ("trainers/trainer_test.py::TestTrainer::"
     "test_callbacks_can_update_state_at_batch_boundary",
     {"ssgd", "noisy", "split"}, "xfail",
     "fits with batch_size=1, which split_batch=True refuses (documented)"),
    # torch's DataLoader batches one example by default. Where the batch
    # size is static (JAX) the split form refuses it; on TensorFlow it is
    # dynamic and the example is measured at both points instead.
    ("trainers/trainer_test.py::TestTrainer::"
     "test_fit_with_data_adapter_torch_dataloader_iterable*",
     {"ssgd", "noisy", "split", "jax"}, "xfail",
     "fits batches of one (DataLoader's default batch_size=1), which "
     "split_batch=True refuses where the batch size is static"),
    ("trainers/trainer_test.py::TestTrainer::test_fit_with_data_adapter_grain_*",
     {"no-grain"}, "skip",
     "needs the optional package `grain`, not installed here (fails the "
     "same way against plain keras.Model)"),
]

# Optional modules some Keras tests need: "no-<name>" is a condition.
OPTIONAL_MODULES = ("grain",)


def not_applicable(short_id, conditions):
    """`(action, reason)` of the table entry for a test, or None."""
    for pattern, when, action, reason in NOT_APPLICABLE:
        if set(when) <= conditions and fnmatch.fnmatchcase(short_id, pattern):
            return action, reason
    return None


# Keras's pytest settings (its pyproject.toml), applied to its tests only.
KERAS_FILTERWARNINGS = (
    "error",
    "ignore::DeprecationWarning",
    "ignore::ImportWarning",
    "ignore::RuntimeWarning",
    "ignore::PendingDeprecationWarning",
    "ignore::FutureWarning",
    "ignore::UserWarning",
    "ignore:Custom mask layers require a config",
)

# The default `seed` of the substituted models (see Substitution).
NOISE_SEED = 1234

TRAINER_CLASSES = {
    "tensorflow": ("keras.src.backend.tensorflow.trainer", "TensorFlowTrainer"),
    "jax": ("keras.src.backend.jax.trainer", "JAXTrainer"),
    "torch": ("keras.src.backend.torch.trainer", "TorchTrainer"),
}


# ---------------------------------------------------------------------------
# Substitution
# ---------------------------------------------------------------------------
class Substitution:
    """Makes the models of Keras's tests SymmetricSGDModel instances.

    Faithful rather than clever: every object a test builds is constructed
    by keras_ssgd's own classes, unmodified.

    - `Model` (and `keras.Model`, `models.Model`, `keras.models.Model`) is
      `keras_ssgd.SymmetricSGDModel` itself: `Model(inputs, outputs)` gives
      the package's functional variant, `class M(Model)` a subclass of
      SymmetricSGDModel, `Model.from_config` its classmethod.
    - `Functional(...)` (functional_test builds models with it) calls
      `SymmetricSGDModel(...)`; `isinstance(x, Functional)` keeps Keras's
      meaning. `keras.src.Functional`, subclassed in trainer_test, is the
      class `SymmetricSGDModel(inputs, outputs)` instantiates.
    - `Sequential` is `SymmetricSGDSequential`, one of the two classes the
      harness adds: `class SymmetricSGDSequential(SymmetricSGDModel,
      Sequential)` (registered as serializable, for the save/load tests),
      so `train_step`, `make_train_function`, `get_config` and the
      constructor are the package's, and layer stacking is Keras's. (The
      package's own route for a Sequential model is `keras_ssgd.wrap()`,
      which gives a functional model: that would change what the Sequential
      tests test.)
    - `Trainer` in trainer_test is `SymmetricSGDTrainer`. A model there is
      Keras's backend `Trainer` mixed into a layer
      (`class ExampleModel(Trainer, layers.Dense)`, then
      `layers.Dense.__init__(self, ...)` and `Trainer.__init__(self)`): not a
      `keras.Model`. SymmetricSGDTrainer is a SymmetricSGDModel subclass
      that adds nothing to the model; it keeps the two properties of
      Keras's mixin that a `keras.Model` base would break: the layer's own
      methods are not shadowed by `keras.Model`'s (`call`, `layers`,
      `from_config`, ... resolve as if `Model` were not in the MRO), and
      `Trainer.__init__(self)` on a constructed layer leaves the layer as
      it was (the package's `__init__` runs, then what its second
      `Layer.__init__` reset -- name, dtype policy, input spec -- is put
      back). Everything the package defines runs unchanged.
    - The models' default `noise_level` is the run's level, and their
      default `seed` is `NOISE_SEED` (`PerturbedModel.__init__`'s keyword
      defaults are set at runtime). A fixed seed makes two models built the
      same way train the same way (the package's noise is a function of
      the seed and the step), so the Keras tests that compare two training
      runs (`steps_per_execution`, `steps_per_epoch`, ...) still check
      something at a level > 0.

    The names are swapped where the test modules see them: the source
    attributes are patched while a test module is imported (so module-level
    class statements pick them up), restored at once, and the test module's
    globals `keras` and `models` are replaced by proxies of those modules
    with the substitutes. Keras's own modules never see a substitute.
    """

    def __init__(self, level, backend, split=False):
        import keras
        import keras_ssgd
        from keras.src import models as src_models
        from keras.src.models import functional as src_functional
        from keras.src.models import model as src_model
        from keras.src.models import sequential as src_sequential
        from keras_ssgd.perturbed import PerturbedModel

        self.keras = keras
        self.level = level
        self.model = keras_ssgd.SymmetricSGDModel
        self.keras_functional = src_functional.Functional
        self.functional_class = _functional_class_of(self.model, keras)
        self.functional = _functional_alias(
            self.model, self.keras_functional, self.functional_class
        )
        self.sequential = _sequential_class(self.model, keras)
        self.trainer = _trainer_class(self.model)
        trainer_module, trainer_name = TRAINER_CLASSES[backend]
        self.trainer_module = importlib.import_module(trainer_module)
        self.trainer_name = trainer_name
        self.patches = [
            (src_model, "Model", self.model),
            (src_models, "Model", self.model),
            (src_functional, "Functional", self.functional),
            (src_models, "Functional", self.functional),
            (src_sequential, "Sequential", self.sequential),
            (src_models, "Sequential", self.sequential),
            (self.trainer_module, trainer_name, self.trainer),
        ]
        self.models_proxy = _proxy(src_models, {
            "Model": self.model,
            "Functional": self.functional,
            "Sequential": self.sequential,
        })
        self.public_models_proxy = _proxy(keras.models, {
            "Model": self.model,
            "Sequential": self.sequential,
        })
        self.src_proxy = _proxy(keras.src, {
            "Model": self.model,
            "Functional": self.functional_class,
            "Sequential": self.sequential,
            "models": self.models_proxy,
        })
        self.keras_proxy = _proxy(keras, {
            "Model": self.model,
            "Sequential": self.sequential,
            "models": self.public_models_proxy,
            "src": self.src_proxy,
        })
        defaults = PerturbedModel.__init__.__kwdefaults__
        if not defaults or not {"noise_level", "seed"} <= set(defaults):
            raise RuntimeError(
                "PerturbedModel.__init__ has no keywords `noise_level` and "
                "`seed` any more: update the harness (Substitution)."
            )
        self._defaults = defaults
        self._saved_defaults = dict(defaults)
        defaults.update(noise_level=level, seed=NOISE_SEED)
        self._split_defaults = None
        if split:
            split_defaults = self.model.__init__.__kwdefaults__
            if not split_defaults or "split_batch" not in split_defaults:
                raise RuntimeError(
                    "SymmetricSGDModel.__init__ has no keyword `split_batch`: "
                    "--conformance-split cannot apply."
                )
            self._split_defaults = split_defaults
            self._saved_split = split_defaults["split_batch"]
            split_defaults["split_batch"] = True

    def restore(self):
        self._defaults.update(self._saved_defaults)
        if self._split_defaults is not None:
            self._split_defaults["split_batch"] = self._saved_split

    def import_module(self, load, path):
        """Runs `load()` (pytest's import of the test module at `path`) with
        the source names patched, then rebinds the module's globals."""
        _import_keras_modules_of(path)  # before the patch: they keep Keras's
        saved = [(m, n, getattr(m, n)) for m, n, _ in self.patches]
        before = set(sys.modules)
        try:
            for module, name, value in self.patches:
                setattr(module, name, value)
            test_module = load()
        finally:
            for module, name, value in saved:
                setattr(module, name, value)
        self._check_isolated(set(sys.modules) - before, test_module)
        self.rebind(test_module)
        return test_module

    def _check_isolated(self, imported, test_module):
        """No module imported while the names were patched (other than the
        test module) may have kept a substitute."""
        substitutes = {id(value) for _, _, value in self.patches}
        for name in imported:
            module = sys.modules.get(name)
            if module is None or module is test_module:
                continue
            leaked = [k for k, v in vars(module).items() if id(v) in substitutes]
            if leaked:
                raise RuntimeError(
                    f"{name} was imported while the harness patched Keras's "
                    f"names and kept {leaked}: import it before the test "
                    "modules (Substitution)."
                )

    def rebind(self, test_module):
        namespace = vars(test_module)
        for name, value in list(namespace.items()):
            if value is self.keras:
                namespace[name] = self.keras_proxy
            elif value is self.keras.src:
                namespace[name] = self.src_proxy
            elif value is self.models_proxy.__wrapped__:
                namespace[name] = self.models_proxy
            elif value is self.keras.models:
                namespace[name] = self.public_models_proxy


def _import_keras_modules_of(path):
    """Imports the Keras modules a test module imports (the ones it can)."""
    import ast

    names = set()
    for node in ast.walk(ast.parse(pathlib.Path(path).read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    import keras

    others = {f"keras.src.backend.{b}" for b in
              ("tensorflow", "jax", "torch", "numpy", "openvino")}
    others.discard(f"keras.src.backend.{keras.backend.backend()}")
    for name in sorted(names):
        if name.split(".")[0] != "keras" or any(
            name == o or name.startswith(o + ".") for o in others
        ):
            continue  # not Keras; another backend's (imported conditionally)
        try:
            importlib.import_module(name)
        except ImportError:
            pass  # a name, not a module; or another backend's module


def _proxy(module, overrides):
    """A module object that reads as `module`, with `overrides` on top."""

    class Proxy(types.ModuleType):
        def __getattr__(self, name):
            return getattr(module, name)

    proxy = Proxy(module.__name__, module.__doc__)
    proxy.__wrapped__ = module
    for name, value in overrides.items():
        setattr(proxy, name, value)
    return proxy


def _functional_class_of(model_class, keras):
    """The class `model_class(inputs, outputs)` instantiates."""
    inputs = keras.Input((1,))
    model = model_class(inputs, keras.layers.Identity()(inputs))
    return type(model)


def _functional_alias(model_class, keras_functional, functional_class):
    """`Functional` for the tests: calling it builds `model_class(...)`."""

    class FunctionalAlias(type):
        def __call__(cls, *args, **kwargs):
            return model_class(*args, **kwargs)

        def __instancecheck__(cls, instance):
            return isinstance(instance, keras_functional)

        def __subclasscheck__(cls, subclass):
            return issubclass(subclass, keras_functional)

        def __eq__(cls, other):  # `type(model) == Functional`
            return other is cls or other is keras_functional

        def __hash__(cls):
            return hash(keras_functional)

        def __getattr__(cls, name):  # from_config, ...
            return getattr(functional_class, name)

    return FunctionalAlias("Functional", (), {"__module__": __name__})


def _sequential_class(model_class, keras):
    from keras.src.models.sequential import Sequential

    name = f"{model_class.__name__}Sequential"
    cls = type(name, (model_class, Sequential), {
        "__module__": __name__,
        "__doc__": f"`Sequential` trained by `{model_class.__name__}`'s "
                   "step (the conformance harness's class).",
    })
    return keras.saving.register_keras_serializable(
        package="keras_ssgd_conformance"
    )(cls)


def _trainer_class(model_class):
    """`Trainer` for trainer_test's layer-mixin models (see Substitution)."""
    from keras.src.models.model import Model

    keep = {"__init__", "__new__", "__doc__", "__module__", "__qualname__",
            "__dict__", "__weakref__"}

    class Absent:
        """An attribute the class does not have (instance values allowed)."""

        def __init__(self, name):
            self.name = name

        def __get__(self, instance, owner=None):
            raise AttributeError(self.name)

    class Trainer(model_class):
        def __init_subclass__(cls, **kwargs):
            super().__init_subclass__(**kwargs)
            mro = [c for c in cls.__mro__ if c is not Model]
            position = cls.__mro__.index(Model)
            for name in Model.__dict__:
                if name in keep:
                    continue
                owner = next((c for c in mro if name in c.__dict__), None)
                if owner is not None and cls.__mro__.index(owner) < position:
                    continue  # the class or the package defines it: as is
                setattr(cls, name, owner.__dict__[name] if owner is not None
                        else Absent(name))

        def __init__(self, *args, **kwargs):
            layer_state = dict(vars(self)) if "_tracker" in vars(self) else None
            super().__init__(*args, **kwargs)
            if layer_state is not None:
                vars(self).update(layer_state)

    Trainer.__name__ = Trainer.__qualname__ = f"{model_class.__name__[:-5]}Trainer"
    Trainer.__module__ = __name__
    return Trainer


# ---------------------------------------------------------------------------
# Instrumentation
# ---------------------------------------------------------------------------
class Recorder:
    """Records, per test, which training steps ran.

    Wraps at runtime (the package is not modified):
    - `PerturbedModel.train_step`: the package's training step ran (its
      override of `keras.Model.train_step`, called through its own
      `make_train_function`). At level 0 it hands the computation to
      `keras.Model.train_step`, by design. On TensorFlow and JAX "ran"
      means traced into the compiled train function that `fit` /
      `train_on_batch` then execute.
    - `PerturbedModel._step`: the package's own step (measure, reduce,
      update), which runs at level > 0 (and with a gradient reducer).
    - `PerturbedModel._perturbed_step`: its perturbed passes.
    - The backend trainer's `train_step`: Keras's own step ran, on a
      PerturbedModel (its fallback for models with no variable to perturb)
      or on a plain model.
    """

    def __init__(self, backend, trainer_mixin=None):
        from keras.src.models.functional import Functional
        from keras.src.models.sequential import Sequential
        from keras_ssgd.perturbed import PerturbedModel

        def kind(model):
            if trainer_mixin is not None and isinstance(model, trainer_mixin):
                return "model:trainer-mixin"
            if isinstance(model, Sequential):
                return "model:sequential"
            if isinstance(model, Functional):
                return "model:functional"
            return "model:subclassed"

        module, name = TRAINER_CLASSES[backend]
        trainer = getattr(importlib.import_module(module), name)
        self.current = None
        self.log = {}
        self.patched = []
        self._wrap(PerturbedModel, "train_step", "ssgd_train_step", tag=kind)
        self._wrap(PerturbedModel, "_step", "ssgd_step")
        self._wrap(PerturbedModel, "_perturbed_step", "perturbed")
        self._wrap(
            trainer, "train_step", "keras_train_step",
            tag=lambda model: "keras_train_step_on_perturbed"
            if isinstance(model, PerturbedModel) else None,
        )

    def _wrap(self, cls, attribute, key, tag=None):
        original = cls.__dict__.get(attribute)
        if original is None:
            raise RuntimeError(
                f"{cls.__name__}.{attribute} is gone: update the harness "
                "(Recorder)."
            )
        recorder = self

        @functools.wraps(original)
        def wrapper(model, *args, **kwargs):
            if recorder.current is not None:
                seen = recorder.log.setdefault(recorder.current, set())
                seen.add(key)
                if tag is not None and tag(model):
                    seen.add(tag(model))
            return original(model, *args, **kwargs)

        setattr(cls, attribute, wrapper)
        self.patched.append((cls, attribute, original))

    def restore(self):
        for cls, attribute, original in reversed(self.patched):
            setattr(cls, attribute, original)


# ---------------------------------------------------------------------------
# Collection
# ---------------------------------------------------------------------------
class KerasModule(pytest.Module):
    """A fetched Keras test module, imported through the substitution."""

    def _getobj(self):
        plugin = self.config.pluginmanager.get_plugin(Plugin.NAME)
        load = super()._getobj
        if plugin.substitution is None:
            return load()
        return plugin.substitution.import_module(load, self.path)


class KerasSuite(pytest.File):
    """Collects the fetched Keras test modules (or one explaining skip)."""

    def collect(self):
        plugin = self.config.pluginmanager.get_plugin(Plugin.NAME)
        if plugin.missing:
            yield Unavailable.from_parent(
                self, name="keras_tests_not_fetched", reason=plugin.missing
            )
            return
        for name in plugin.manifest["files"]:
            path = plugin.folder / name
            if name.startswith("trainers/") and not _has_jax():
                yield Unavailable.from_parent(
                    self, name=name, reason=(
                        f"Keras's {name} imports jax, which is not "
                        "installed: run `make .venv/.backends`."
                    ),
                )
                continue
            yield KerasModule.from_parent(self, path=path)


class Unavailable(pytest.Item):
    """Stands for tests that cannot be collected here; skips with why."""

    def __init__(self, *, reason, **kwargs):
        super().__init__(**kwargs)
        self.reason = reason

    def runtest(self):
        pytest.skip(self.reason)

    def reportinfo(self):
        return self.path, None, self.name


# ---------------------------------------------------------------------------
# The plugin
# ---------------------------------------------------------------------------
class Plugin:
    NAME = "keras_ssgd_conformance"

    def __init__(self, config, model, level, profile="full", split=False):
        import keras

        self.config = config
        self.model = model  # "ssgd" or "keras"
        self.level = level
        self.profile = profile  # see PROFILES
        self.split = split  # SymmetricSGDModel(split_batch=True) by default
        self.backend = keras.backend.backend()
        self.version = fetch.installed_version()
        self.folder = fetch.cache_dir(self.version)
        self.manifest = fetch.fetched(self.version)
        self.missing = None
        if self.manifest is None:
            self.missing = (
                f"Keras's own tests for keras=={self.version} are not "
                f"fetched (no complete {self.folder.relative_to(ROOT)}/"
                f"{fetch.MANIFEST}): run `python "
                "tests/conformance/fetch_keras_tests.py` (needs network or "
                "--source SDIST)."
            )
        self.substitution = None
        self.recorder = None
        self.results = {}
        self.started = time.time()
        self.conditions = {self.backend} | {
            f"no-{name}" for name in OPTIONAL_MODULES
            if importlib.util.find_spec(name) is None
        }
        if model == "ssgd":
            self.conditions.add("ssgd")
            if level > 0:
                self.conditions.add("noisy")
            if split:
                self.conditions.add("split")

    # Setup and teardown of the patches -------------------------------------
    def start(self):
        if self.missing:
            return
        if self.model == "ssgd":
            self.substitution = Substitution(
                self.level, self.backend, self.split
            )
        self.recorder = Recorder(
            self.backend,
            self.substitution.trainer if self.substitution else None,
        )

    def pytest_unconfigure(self, config):
        if self.recorder is not None:
            self.recorder.restore()
        if self.substitution is not None:
            self.substitution.restore()

    # Collection ------------------------------------------------------------
    def short_id(self, item):
        try:
            path = item.path.relative_to(self.folder)
        except ValueError:
            return item.nodeid
        return "::".join([path.as_posix()] + item.nodeid.split("::")[1:])

    def pytest_configure(self, config):
        config.addinivalue_line(
            "markers",
            "requires_trainable_backend: mark test for trainable backend only",
        )
        config.addinivalue_line(
            "markers",
            "multi_device: mark test for running with multiple devices only",
        )

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, session, config, items):
        kept, dropped = select(items, self.profile)
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = kept
        multiple_devices = _has_multiple_devices(self.backend)
        for item in items:
            if isinstance(item, Unavailable):
                continue
            # Keras's conftest.py and pyproject.toml (not in its sdist).
            for spec in KERAS_FILTERWARNINGS:
                item.add_marker(pytest.mark.filterwarnings(spec))
            if "multi_device" in item.keywords and not multiple_devices:
                item.add_marker(pytest.mark.skip(reason="Requires multiple devices"))
            entry = not_applicable(self.short_id(item), self.conditions)
            if entry:
                action, reason = entry
                reason = f"[conformance table] {reason}"
                if action == "skip":
                    item.add_marker(pytest.mark.skip(reason=reason))
                else:
                    item.add_marker(pytest.mark.xfail(reason=reason, strict=True))

    # Running ---------------------------------------------------------------
    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item, nextitem):
        if self.recorder is not None:
            self.recorder.current = item.nodeid
        try:
            return (yield)
        finally:
            if self.recorder is not None:
                self.recorder.current = None

    def pytest_runtest_logreport(self, report):
        entry = self.results.setdefault(report.nodeid, {
            "outcome": None, "duration": 0.0,
        })
        entry["duration"] += report.duration
        outcome = None
        if report.when == "call" or (report.when == "setup" and not report.passed):
            if hasattr(report, "wasxfail"):
                outcome = "xpassed" if report.passed else "xfailed"
                entry["reason"] = report.wasxfail
            elif report.skipped:
                outcome = "skipped"
                longrepr = report.longrepr
                if isinstance(longrepr, tuple):
                    entry["reason"] = longrepr[2]
            else:
                outcome = report.outcome
        elif report.when == "teardown" and report.failed:
            outcome = "failed"
        if outcome is not None:
            if entry["outcome"] not in ("failed",):
                entry["outcome"] = outcome
            if report.failed:
                entry["error"] = _tail(report.longreprtext, 25)

    # Report ----------------------------------------------------------------
    def label(self):
        if self.model == "ssgd":
            split = "-split" if self.split else ""
            return f"ssgd-{self.backend}-level{self.level:g}{split}"
        return f"keras-{self.backend}"

    def pytest_terminal_summary(self, terminalreporter):
        if self.missing:
            terminalreporter.write_sep("=", "keras_ssgd conformance")
            terminalreporter.write_line(f"SKIPPED: {self.missing}")
            return
        log = self.recorder.log if self.recorder else {}
        records = {}
        for nodeid, entry in self.results.items():
            if entry["outcome"] is None:
                continue
            item_id = self.short_id_of(nodeid)
            records[item_id] = dict(entry, steps=sorted(log.get(nodeid, ())))
        baseline = self.load_baseline()
        RESULTS.mkdir(parents=True, exist_ok=True)
        path = RESULTS / f"{self.label()}.json"
        # A run of some tests (-k, a profile) updates theirs, keeps the rest.
        previous = {}
        try:
            data = json.loads(path.read_text())
            if data.get("keras") == self.version:
                previous = data["tests"]
        except (OSError, ValueError, KeyError):
            pass
        path.write_text(json.dumps({
            "keras": self.version, "backend": self.backend,
            "model": self.model, "level": self.level,
            "last_run_seconds": round(time.time() - self.started, 1),
            "tests": {**previous, **records},
        }, indent=1, sort_keys=True))
        summary = summarize(records, baseline, self.model)
        tr = terminalreporter
        what = (
            f"SymmetricSGDModel at noise_level={self.level:g}"
            + (", split_batch=True" if self.split else "")
            if self.model == "ssgd" else "plain keras.Model (baseline)"
        )
        tr.write_sep(
            "=", f"keras_ssgd conformance: {what}, backend {self.backend}, "
            f"Keras {self.version}"
        )
        for line in summary:
            tr.write_line(line)
        tr.write_line(f"results: {path.relative_to(ROOT)}")

    def short_id_of(self, nodeid):
        head, _, rest = nodeid.partition("::")
        try:
            rel = (ROOT / head).resolve().relative_to(self.folder)
        except ValueError:
            return nodeid
        return rel.as_posix() + ("::" + rest if rest else "")

    def load_baseline(self):
        if self.model != "ssgd":
            return None
        path = RESULTS / f"keras-{self.backend}.json"
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        if data.get("keras") != self.version:
            return None
        return data["tests"]


PROFILES = ("full", "quick", "train", "quick-train")
# `.fit(`, ..., or `"fit"` as a parameter (`getattr(model, method)(...)`).
TRAINING_CALLS = re.compile(
    r"\.(fit|train_on_batch|train_step)\(|[\"'](fit|train_on_batch)[\"']"
)


def select(items, profile):
    """`(kept, dropped)` for a profile (see conftest.py)."""
    if profile in ("train", "quick-train"):
        items, dropped = _split(items, _trains)
    else:
        dropped = []
    if profile in ("quick", "quick-train"):
        items, more = _quick(items)
        dropped += more
    return items, dropped


def _split(items, keep):
    kept = [item for item in items if keep(item)]
    return kept, [item for item in items if not keep(item)]


def _trains(item):
    """Whether the test's code calls `fit`, `train_on_batch` or
    `train_step` (read from its source)."""
    function = getattr(item, "obj", None)
    function = getattr(function, "__wrapped__", function)
    try:
        source = inspect.getsource(function)
    except (TypeError, OSError):
        return True  # keep what cannot be read
    return bool(TRAINING_CALLS.search(source))


def _quick(items):
    """Of each parameterized family of a Keras test (absl
    `named_parameters`/`product`: one test method, many variants), the
    first variant and the first whose name says `jit` (the XLA-compiled
    train function); every test without variants."""
    kept, dropped, seen = [], [], {}
    for item in items:
        function = getattr(item, "obj", None)
        original = getattr(function, "__wrapped__", None)
        if original is None:
            kept.append(item)
            continue
        family = (item.parent.nodeid, original.__name__)
        variant = item.name[len(original.__name__):]
        taken = seen.setdefault(family, set())
        tag = "jit" if "jit" in variant.split("_") else "first"
        if not taken or (tag == "jit" and "jit" not in taken):
            taken.add(tag)
            kept.append(item)
        else:
            dropped.append(item)
    return kept, dropped


def summarize(records, baseline, model):
    """The lines of the end-of-session summary."""
    count = lambda outcome: sum(  # noqa: E731
        1 for r in records.values() if r["outcome"] == outcome
    )
    passed = [r for r in records.values() if r["outcome"] == "passed"]
    lines = [
        f"tests run: {len(records)}; passed {len(passed)}, failed "
        f"{count('failed')}, errors {count('error')}, skipped "
        f"{count('skipped')}, xfailed {count('xfailed')}, xpassed "
        f"{count('xpassed')}",
    ]
    if model == "ssgd":
        ran = [r for r in passed if "ssgd_train_step" in r["steps"]]
        own = [r for r in passed if "ssgd_step" in r["steps"]]
        perturbed = [r for r in passed if "perturbed" in r["steps"]]
        fallback = [
            r for r in ran if "keras_train_step_on_perturbed" in r["steps"]
        ]
        kinds = {}
        for r in ran:
            for step in r["steps"]:
                if step.startswith("model:"):
                    kinds[step[6:]] = kinds.get(step[6:], 0) + 1
        lines.append(
            "passed tests that ran keras_ssgd's training step "
            f"(PerturbedModel.train_step): {len(ran)}; its own step "
            f"(PerturbedModel._step): {len(own)}; its perturbed passes: "
            f"{len(perturbed)}; handed to keras.Model.train_step (level 0, "
            f"or nothing to perturb) in {len(fallback)}"
        )
        lines.append(
            "  models that ran it, by kind (a test may build several): "
            + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))
        )
    else:
        trained = [r for r in passed if "keras_train_step" in r["steps"]]
        lines.append(f"passed tests that ran Keras's train_step: {len(trained)}")
    skipped = {}
    for r in records.values():
        if r["outcome"] in ("skipped", "xfailed"):
            reason = r.get("reason", "")
            skipped[reason] = skipped.get(reason, 0) + 1
    for reason, n in sorted(skipped.items(), key=lambda kv: -kv[1]):
        lines.append(f"  skipped/xfailed x{n}: {reason}")
    failed = sorted(
        k for k, r in records.items()
        if r["outcome"] in ("failed", "error", "xpassed")
    )
    if baseline is not None and failed:
        own = [k for k in failed if baseline.get(k, {}).get("outcome") != "failed"]
        keras_too = [k for k in failed if k not in own]
        if keras_too:
            lines.append(
                "failing against plain keras.Model too (fails in Keras "
                "itself here):"
            )
            lines.extend(f"  {k}" for k in keras_too)
        if own:
            lines.append(
                "FAILING against SymmetricSGDModel only (bugs in keras_ssgd, "
                "or the table):"
            )
            lines.extend(f"  {k}" for k in own)
    elif failed:
        lines.append(
            "failed (no baseline run of this backend to compare with: run "
            "with --conformance-model=keras first):"
            if model == "ssgd" else "failed:"
        )
        lines.extend(f"  {k}" for k in failed)
    return lines


def _tail(text, n):
    return "\n".join(text.rstrip().splitlines()[-n:])


def _has_jax():
    return importlib.util.find_spec("jax") is not None


def _has_multiple_devices(backend):
    if backend == "jax":
        import jax

        return jax.device_count() > 1
    if backend == "torch":
        import torch

        return torch.cuda.is_available() and torch.cuda.device_count() > 1
    return False
