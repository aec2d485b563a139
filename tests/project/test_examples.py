"""Every Python example of the README, the docs, experiments/README.md and
the docstrings runs (tests/project/doc_examples.py says how they are
collected and marked)."""

import pytest

import doc_examples as examples

# Every example, about 45 s on 2 cores: `make test-examples`.
pytestmark = pytest.mark.examples

EXAMPLES = examples.all_examples()


def _param(example):
    marks = (
        [pytest.mark.skip(reason=f"{example.id}: {example.skip}")]
        if example.skip else []
    )
    return pytest.param(example, id=example.id, marks=marks)


@pytest.mark.parametrize("example", [_param(e) for e in EXAMPLES])
def test_example_runs(example, tmp_path, monkeypatch):
    # Files an example writes (models, result folders) go to a temporary
    # folder.
    monkeypatch.chdir(tmp_path)
    examples.run(example)
