"""The figures of README.md, the docs and experiments/README.md against their committed
records (`make figures`, experiments/figures.py). Fast tier, TensorFlow
only (it reads JSON; about 2 s)."""

import importlib.util
import json
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _figures():
    path = ROOT / "experiments" / "figures.py"
    spec = importlib.util.spec_from_file_location("figures", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_figure_is_generated_from_its_record_or_historical():
    problems = _figures().check_all()
    assert problems == [], "\n".join(problems)


def test_every_block_names_a_record_that_is_committed():
    figures = _figures()
    for name in figures.FILES:
        blocks = figures.BLOCK.findall((ROOT / name).read_text())
        for block in blocks:
            assert block[1] in figures.GENERATORS
    results = figures.RESULTS / "mnist1d-cnn-headline"
    for file in ("config.json", "results.json", "summary.md"):
        assert (results / file).is_file()


def test_a_stale_block_and_an_untracked_figure_are_caught(tmp_path,
                                                          monkeypatch):
    figures = _figures()
    monkeypatch.setitem(figures.GENERATORS, "demo", lambda: "93.10 +- 0.50\n")
    page = tmp_path / "page.md"
    page.write_text(
        "Intro.\n\n<!-- figures: demo -->\n92.00 +- 0.50\n<!-- /figures -->\n"
        "\nS-SGD gains 3.1 points at noise level 0.2 with TensorFlow 2.21.0."
        "\nSGD went from 91.36 to 95.00 at lr 0.2."
        "\n\n```\nx = 0.5\n```\n\n<!-- historical -->\nold 91.36\n"
        "<!-- /historical -->\n\n<!-- paper -->\n| ResNet20 | 92.17 |\n"
        "<!-- /paper -->\n"
    )
    assert figures.update(page, check=True) == ["demo"]
    assert "92.00" in page.read_text()  # --check rewrites nothing
    # Only the measured figure is flagged: not the level, the version, the
    # code block, the historical appendix or the paper's table.
    assert [value for _, value, _ in figures.untracked(page.read_text())] \
        == ["3.1", "91.36", "95.00"]
    assert figures.update(page) == ["demo"]
    assert "93.10 +- 0.50" in page.read_text()
    assert figures.update(page, check=True) == []


def test_only_complete_seeds_are_shown(tmp_path, monkeypatch):
    figures = _figures()
    folder = tmp_path / "run"
    folder.mkdir()
    planned = [f"{m}-seed{s}" for s in range(3) for m in ("sgd", "ssgd")]
    runs = [{"key": k, "seed": int(k[-1])} for k in planned[:5]]
    (folder / "results.json").write_text(json.dumps(
        {"config": {"runs": planned}, "runs": runs}))
    records, seeds, _ = figures._records(folder)
    assert seeds == [0, 1]
    assert {r["seed"] for r in records} == {0, 1}
    assert "2 of the 3 seeds planned" in figures._seeds_text(seeds, 3)


def test_an_unknown_block_is_refused_by_name():
    with pytest.raises(KeyError, match="'nope'"):
        _figures().render("nope")


def test_benchmark_records_carry_the_machine_into_the_figures(tmp_path,
                                                              monkeypatch):
    figures = _figures()
    monkeypatch.setattr(figures, "BENCHMARKS", tmp_path)
    assert figures.step_time() == "No record yet.\n"
    machine = {"processor": "x86_64", "cpus": 2, "device": "cpu",
               "backend": "jax", "jax": "0.7.1", "keras": "3.15.1",
               "python": "3.11.7"}
    (tmp_path / "step-time-mlp-jax.json").write_text(json.dumps({
        "machine": machine, "config": {"rounds": 3, "steps": 10},
        "runs": [{"model": "mlp", "batch_size": 128,
                  "images_per_second": {"keras": 5000.4},
                  "ratio_rounds": {"ssgd": [2.5, 2.1, 2.3],
                                   "ssgd_split": [1.4, 1.2, 1.3]}}],
    }))
    text = figures.step_time()
    assert "x86_64, 2 cores, device cpu; JAX 0.7.1, Keras 3.15.1" in text
    assert "| mlp | 128 | 5000 | 2.30 (2.10 - 2.50) | 1.30 (1.20 - 1.40) | - |" \
        in text


def test_code_in_list_items_and_example_setup_is_not_a_figure():
    text = ("- A step:\n\n    ```python\n    model.fit(x, lr=0.25)\n    ```\n"
            "\n<!-- example: setup\nlevel = 0.75\n-->\n\nIt gained 1.5 points.\n")
    assert [v for _, v, _ in _figures().untracked(text)] == ["1.5"]
