"""The suite's tiers: every test belongs to exactly one, and each tier has
one command.

A test's tier is its tier marker (`@pytest.mark.exact`, ...), none for the
fast tier; the files under `tests/conformance/` are the conformance tier.
A test with two tier markers is a collection error. `--tier NAME` (default
`fast`) runs one tier and deselects the rest; `--tier all` runs every
tier's tests at once. When a test fails, the summary names its tier, the
tier's command, and the command that reruns the failed tests alone.
"""

import os
import shlex
import sys

import pytest

# tier: (the command that runs it, what it holds)
TIERS = {
    "fast": ("make test",
             "the step's contract, the split form, the CLI in-process, every "
             "public entry point; TensorFlow, then the backend-neutral files "
             "under JAX and PyTorch"),
    "e2e": ("make test-e2e",
            "real `ssgd-train` processes: exit codes, signals, entry points, "
            "backends without TensorFlow"),
    "slow": ("make test-slow", "long training runs and the longest smoke tests"),
    "examples": ("make test-examples",
                 "every Python example of the README, the docs and the "
                 "docstrings"),
    "exact": ("make test-exact",
              "bit-for-bit claims, under oneDNN off and on, one CPU and every "
              "CPU, on the three backends"),
    "distributed": ("make test-distributed",
                    "several processes or devices per test: Horovod, "
                    "MultiWorkerMirroredStrategy, keras.distribution"),
    "image": ("make docker-cpu test-image",
              "the built CPU image run: its entrypoint, a training run as its "
              "user, two Horovod ranks, its versions"),
    "conformance": ("make test-conformance",
                    "Keras's own model and trainer tests (tests/conformance/)"),
}
MARKED = [tier for tier in TIERS if tier not in ("fast", "conformance")]


def pytest_addoption(parser):
    parser.addoption(
        "--tier", default="fast", choices=[*TIERS, "all"],
        help="run one tier of the suite (default: fast, `make test`); "
        "`all` runs every tier")


def pytest_configure(config):
    for tier in MARKED:
        config.addinivalue_line(
            "markers", f"{tier}: tier `{tier}`, {TIERS[tier][1]} "
            f"({TIERS[tier][0]})")


def tier_of(item):
    """The tier of a collected test; a UsageError if it has two."""
    marked = [tier for tier in MARKED if item.get_closest_marker(tier)]
    # Keras's own tests, collected through tests/conformance/harness.py.
    if any(os.sep + "conformance" + os.sep in str(getattr(node, "path", ""))
           for node in item.listchain()):
        marked.append("conformance")
    if len(marked) > 1:
        raise pytest.UsageError(
            f"{item.nodeid} has the tier markers {', '.join(marked)}: a test "
            "belongs to exactly one tier (tests/tiers.py)")
    return marked[0] if marked else "fast"


def pytest_collection_modifyitems(config, items):
    wanted = config.getoption("tier")
    tiers = {item.nodeid: tier_of(item) for item in items}
    config.stash[_TIERS] = tiers
    if wanted == "all":
        return
    selected = [item for item in items if tiers[item.nodeid] == wanted]
    deselected = [item for item in items if tiers[item.nodeid] != wanted]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = selected


_TIERS = pytest.StashKey[dict]()


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    failed = [r.nodeid for key in ("failed", "error")
              for r in terminalreporter.stats.get(key, [])
              if getattr(r, "nodeid", "")]
    if not failed:
        return
    tiers = config.stash.get(_TIERS, {})
    by_tier = {}
    for nodeid in dict.fromkeys(failed):
        by_tier.setdefault(tiers.get(nodeid, config.getoption("tier")),
                           []).append(nodeid)
    env = " ".join(f"{name}={os.environ[name]}" for name in
                   ("KERAS_BACKEND", "TF_ENABLE_ONEDNN_OPTS")
                   if name in os.environ)
    python = shlex.quote(os.path.relpath(sys.executable))
    write = terminalreporter.write_line
    terminalreporter.section("failed tiers")
    for tier, nodeids in by_tier.items():
        command = TIERS[tier][0] if tier in TIERS else "make test-all"
        write(f"tier {tier} ({command}): {len(nodeids)} failed")
        rerun = " ".join(shlex.quote(n) for n in nodeids[:20])
        write(f"  rerun them: {env + ' ' if env else ''}{python} -m pytest "
              f"--tier {tier} -p no:randomly {rerun}")
