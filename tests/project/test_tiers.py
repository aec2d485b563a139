"""Every test belongs to exactly one tier (tests/tiers.py), and a failure
names its tier and the command that reruns it."""

import pytest

pytestmark = pytest.mark.filterwarnings("ignore")

SUITE = """
import pytest

def test_fast():
    pass

@pytest.mark.exact
def test_exact():
    pass

@pytest.mark.slow
def test_slow_and_failing():
    assert False
"""


@pytest.fixture
def suite(pytester):
    pytester.makeconftest("pytest_plugins = ['tiers']")
    pytester.makepyfile(test_suite=SUITE)
    return pytester


def test_each_tier_runs_its_own_tests_and_fast_is_the_default(suite):
    suite.runpytest_inprocess("-p", "no:randomly").assert_outcomes(
        passed=1, deselected=2)
    suite.runpytest_inprocess("--tier", "exact").assert_outcomes(
        passed=1, deselected=2)
    suite.runpytest_inprocess("--tier", "all").assert_outcomes(
        passed=2, failed=1)


def test_a_failure_names_its_tier_and_its_rerun_command(suite):
    result = suite.runpytest_inprocess("--tier", "slow")
    result.assert_outcomes(failed=1, deselected=2)
    result.stdout.fnmatch_lines([
        "*tier slow (make test-slow): 1 failed*",
        "*rerun them: *-m pytest --tier slow -p no:randomly "
        "test_suite.py::test_slow_and_failing*",
    ])


def test_two_tier_markers_are_refused(pytester):
    pytester.makeconftest("pytest_plugins = ['tiers']")
    pytester.makepyfile(test_two="""
import pytest

@pytest.mark.exact
@pytest.mark.distributed
def test_both():
    pass
""")
    result = pytester.runpytest_inprocess()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([
        "*test_two.py::test_both has the tier markers exact, distributed: "
        "a test belongs to exactly one tier*"])


def test_an_unknown_tier_is_refused(suite):
    result = suite.runpytest_inprocess("--tier", "quick")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--tier: invalid choice: 'quick'*"])


def test_a_collection_error_is_named_under_every_tier_option(pytester):
    pytester.makeconftest("pytest_plugins = ['tiers']")
    pytester.makepyfile(test_broken="import no_such_module_anywhere\n")
    for tier in ("fast", "all"):
        result = pytester.runpytest_inprocess("--tier", tier)
        assert result.ret == pytest.ExitCode.INTERRUPTED
        result.stdout.fnmatch_lines([f"*tier {tier} (make test*): 1 failed*"])


def test_the_second_share_names_test_files_of_the_suite():
    # A file renamed away from conftest.SECOND_SHARE would run in the first
    # share again, unbalancing the side-by-side tiers without a word.
    import pathlib

    from conftest import SECOND_SHARE

    tests = pathlib.Path(__file__).parents[1]
    names = {p.name for p in tests.rglob("test_*.py")}
    assert SECOND_SHARE <= names, sorted(SECOND_SHARE - names)
