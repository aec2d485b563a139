r"""Conformance suite: Keras's own Model/Functional/Sequential/trainer tests,
run against `keras_ssgd.SymmetricSGDModel`.

`SymmetricSGDModel` overrides `keras.Model.train_step`. At `noise_level=0` it
must behave exactly like `keras.Model`; at a level > 0 everything that does
not compare exact numbers must still work. Keras's own tests of its model
classes and trainers check that, with models built by the package.

What runs
---------
The test modules of the *installed* Keras version's source distribution
(`fetch_keras_tests.py`, cached in `build/keras-tests/<version>/`):
`models/model_test.py`, `functional_test.py`, `sequential_test.py`,
`cloning_test.py` and `trainers/trainer_test.py`, with Keras's pytest
settings (its conftest markers, its `filterwarnings`), which its sdist does
not ship. Every model those tests build is a `SymmetricSGDModel` (see
`harness.Substitution` for how, and why that way): `Model`, `Functional`,
`Sequential`, `keras.Model`, subclassed models, and trainer_test's
`Trainer`-mixed-into-a-layer models.

Modes
-----
- `--conformance-model=ssgd --conformance-level=0` (the default): must pass
  wherever the same test passes against plain `keras.Model`.
- `--conformance-level=0.1`: tests that compare trained numbers with
  constants of plain SGD fail by design; they are listed, with the reason,
  in `harness.NOT_APPLICABLE`, the one table of tests that cannot apply
  (xfail, strict: a test that passes there fails the run, so the table
  cannot go stale). Everything else must pass. The substituted models get
  a fixed default `seed`, so the tests that compare two training runs
  (`steps_per_execution=3` against 1, ...) check that the noise is a
  function of (seed, step).
- `--conformance-split` (with a level > 0): the models default to S-SGD's
  split form, `split_batch=True`. Tests that fit batches of one example
  are in the table: the split form refuses them, as documented.
- `--conformance-model=keras`: the baseline, the same tests against plain
  Keras (nothing substituted). Its results
  (`build/conformance/keras-<backend>.json`) let a later `ssgd` run of the
  same backend tell "fails in Keras itself here" from "fails against
  SymmetricSGDModel only" in its summary. CI does not need it.

Profiles (`--conformance-profile`): `full` (default, 323 tests), `train`
(the tests whose code calls `fit`, `train_on_batch` or `train_step`: 166),
`quick` (one variant of each parameterized test, plus one `jit` variant:
180), `quick-train` (both: 68, the CI profile).

At the end of a session the summary says how many tests passed, how many of
those ran the package's `PerturbedModel.train_step` (instrumented at
runtime; at level 0 it hands the computation to `keras.Model.train_step`
by design), its own step `PerturbedModel._step` and its perturbed passes,
by kind of model; what was skipped or xfailed and why; and which failures
are the package's. Results go to `build/conformance/<label>.json`.

How to run (from the repository root)
--------------------------------------
    .venv/bin/python tests/conformance/fetch_keras_tests.py
    .venv/bin/python -m pytest -q -p no:randomly tests/conformance \
        --conformance-model=keras                        # baseline
    .venv/bin/python -m pytest -q -p no:randomly tests/conformance
    .venv/bin/python -m pytest -q -p no:randomly tests/conformance \
        --conformance-level=0.1
    KERAS_BACKEND=jax .venv/bin/python -m pytest -q -p no:randomly \
        tests/conformance --conformance-level=0.1
    KERAS_BACKEND=torch .venv/bin/python -m pytest -q -p no:randomly \
        tests/conformance --conformance-profile=train --conformance-level=0.1

`-p no:randomly`: Keras runs its tests in file order; the project's
pytest-randomly would shuffle them and reseed the random modules per test.
Select tests with `-k` (passing a path under `build/keras-tests/` directly
would run Keras's tests without the harness).

Time on the 2-core development machine (shared, so upper bounds): fetch 5 s
(then 0.1 s); `full` about 6-16 min per run (TensorFlow 9 min at level 0,
JAX 6-7 min, PyTorch 11 min, level 0.1 slower); `quick-train` 2-3 min per
run (TensorFlow 125 s at level 0, 180 s at 0.1; JAX 143 s; PyTorch
154 s).

Collection
----------
The suite runs only when `tests/conformance` (or a path in it) is named on
the command line: the default `pytest` run (testpaths = tests) loads this
conftest but collects nothing here (no file is named `test_*.py`, and the
Keras modules are collected only on request). When the tests are not
fetched, it reports one skipped test that says how to fetch them; when jax
is not installed, trainer_test.py (which imports it) is one skipped test.
"""

import importlib.util
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
HARNESS = HERE / "harness.py"
_MODULE = "keras_ssgd_conformance_harness"


def pytest_addoption(parser):
    group = parser.getgroup("keras_ssgd conformance (tests/conformance)")
    group.addoption(
        "--conformance-model", choices=("ssgd", "keras"), default="ssgd",
        help="ssgd: Keras's tests with SymmetricSGDModel substituted "
        "(default); keras: the same tests against plain Keras (baseline).",
    )
    group.addoption(
        "--conformance-level", type=float, default=0.0,
        help="the noise_level of the substituted models (default 0).",
    )
    group.addoption(
        "--conformance-profile", default="full",
        choices=("full", "quick", "train", "quick-train"),
        help="full: every fetched test (default); quick: of each "
        "parameterized test one variant (and one `jit` variant); train: the "
        "tests whose code trains (fit, train_on_batch, train_step); "
        "quick-train: both.",
    )
    group.addoption(
        "--conformance-split", action="store_true",
        help="the substituted models default to split_batch=True (S-SGD's "
        "split form; with a level > 0).",
    )


def _requested(config):
    """Whether the command line names this folder or a path in it."""
    for arg in config.args:
        path = pathlib.Path(config.invocation_params.dir, arg.split("::")[0])
        try:
            path.resolve().relative_to(HERE)
        except (ValueError, OSError):
            continue
        return True
    return False


def _harness():
    if _MODULE not in sys.modules:
        spec = importlib.util.spec_from_file_location(_MODULE, HARNESS)
        module = importlib.util.module_from_spec(spec)
        sys.modules[_MODULE] = module
        spec.loader.exec_module(module)
    return sys.modules[_MODULE]


def pytest_configure(config):
    if not _requested(config):
        return
    harness = _harness()
    plugin = harness.Plugin(
        config,
        config.getoption("--conformance-model", "ssgd"),
        config.getoption("--conformance-level", 0.0),
        config.getoption("--conformance-profile", "full"),
        config.getoption("--conformance-split", False),
    )
    config.pluginmanager.register(plugin, harness.Plugin.NAME)
    plugin.start()


def pytest_collect_file(file_path, parent):
    if file_path != HARNESS:
        return None
    plugin = parent.config.pluginmanager.get_plugin(_harness().Plugin.NAME) \
        if _MODULE in sys.modules else None
    if plugin is None:
        return None
    return _harness().KerasSuite.from_parent(parent, path=file_path)
