"""The paper-reproduction scripts: every `--smoke` mode, end to end on
generated data (tfds mock data, or MNIST-1D generated offline), and their
refusals of unknown names. The longest smoke tests are marked slow; CI runs
every script's smoke pipeline with `make smoke`."""

import importlib.util
import json
import pathlib

import pytest

EXPERIMENTS = pathlib.Path(__file__).parents[2] / "experiments" / "paper"


def load(name):
    spec = importlib.util.spec_from_file_location(name, EXPERIMENTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def smoke(script, tmp_path, *args):
    pytest.importorskip("tensorflow_datasets")
    code = load(script).main(["--smoke", "--output", str(tmp_path), *args])
    assert code == 0


def recipe(folder):
    return json.loads((folder / "config.json").read_text())["recipe"]


@pytest.mark.slow  # its pipeline runs in CI through `make smoke`
def test_table2_smoke_runs_the_paper_recipe_and_writes_the_table(tmp_path):
    smoke("table2_cifar", tmp_path)
    table = (tmp_path / "table2.md").read_text()
    assert "| resnet20 (as mlp) | SGD | cifar10 |" in table and "| 92.17 |" in table
    assert "| resnet20 (as mlp) | S-SGD (0.5) | cifar10 |" in table and "| 92.62 |" in table
    used = recipe(tmp_path / "cifar10-resnet20")
    assert used["lr"] == 0.1 and used["batch_size"] == 128 and used["model"] == "mlp"
    assert used["lr_schedule"] == "step" and used["lr_drops"] == [1]


def test_table1_smoke_runs_an_sgd_and_an_s_sgd_plan(tmp_path):
    smoke("table1_budget", tmp_path)
    table = (tmp_path / "table1.md").read_text()
    assert "| 1-1S | 1-1S | 3 | cifar10 |" in table and "| 2 | 2 | 2 | cifar10 |" in table


def test_table1_scales_the_paper_plans_without_exceeding_the_budget():
    table1 = load("table1_budget")
    scaled = {p: table1.scale_plan(p, 60) for p in table1.PLANS}
    assert [str(p) for p in scaled.values()] == [
        "26-17-17", "12S-8S-8S", "26-17-8S", "26-8S-17", "26-8S-8S"]
    assert all(p.cost() <= 60 for p in scaled.values())
    assert [str(table1.scale_plan(p, 175)) for p in table1.PLANS] == list(table1.PLANS)
    with pytest.raises(ValueError, match="Argument `budget` must be an int > 0. Received: budget=0"):
        table1.scale_plan("75-50-50", 0)


@pytest.mark.slow  # its pipeline runs in CI through `make smoke`
def test_fig3_smoke_draws_every_curve_the_tiny_model_has(tmp_path):
    smoke("fig3_noise_sweep", tmp_path)
    assert (tmp_path / "fig3.png").stat().st_size > 0
    folders = sorted(p.name for p in tmp_path.iterdir() if p.is_dir())
    assert folders == ["s-sgd", "s-sgd-dense-only", "sgd", "sgd-dropout", "smoothout"]


def test_fig4_smoke_draws_both_panels(tmp_path):
    smoke("fig4_convergence", tmp_path)
    assert (tmp_path / "fig4.png").stat().st_size > 0
    assert recipe(tmp_path)["epoch_eval"] is True


@pytest.mark.slow  # its pipeline runs in CI through `make smoke`
def test_fig5_smoke_runs_every_method(tmp_path):
    smoke("fig5_large_batch", tmp_path)
    table = (tmp_path / "fig5.md").read_text()
    for method in ("SGD", "SGDR", "S-SGD", "S-SGDR"):
        assert f"| 16 | {method} |" in table


@pytest.mark.slow  # its pipeline runs in CI through `make smoke`
def test_lstm_smoke_trains_the_lstm_with_both_methods(tmp_path):
    smoke("mnist1d_lstm", tmp_path)
    table = (tmp_path / "lstm.md").read_text()
    assert "| sgd | - |" in table and "| ssgd | 0.1 |" in table
    assert recipe(tmp_path)["model"] == "mnist1d-lstm"


@pytest.mark.parametrize("script", ["table1_budget", "fig3_noise_sweep", "fig4_convergence",
                                    "fig5_large_batch", "mnist1d_lstm"])
def test_an_unknown_model_lists_the_valid_ones(script, capsys):
    with pytest.raises(SystemExit) as exit_:
        load(script).main(["--model", "resnet21"])
    assert exit_.value.code == 2
    error = capsys.readouterr().err
    assert "invalid choice: 'resnet21'" in error
    assert "mnist1d-lstm" in error and "resnet20" in error


@pytest.mark.parametrize("script, flag, valid", [
    ("table2_cifar", "--models", "wrn28-2"),
    ("fig3_noise_sweep", "--curves", "SmoothOut"),
    ("fig5_large_batch", "--methods", "S-SGDR"),
    ("table1_budget", "--datasets", "mnist1d"),
])
def test_an_unknown_experiment_lists_the_valid_ones(script, flag, valid, capsys):
    with pytest.raises(SystemExit) as exit_:
        load(script).main([flag, "nonsense"])
    assert exit_.value.code == 2
    error = capsys.readouterr().err
    assert "invalid choice: 'nonsense'" in error and valid in error


def test_a_bad_plan_is_refused_before_any_run(tmp_path, capsys):
    with pytest.raises(SystemExit):
        load("table1_budget").main(["--plans", "75-x", "--output", str(tmp_path)])
    assert "Received: plan='75-x'" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def _demo():
    path = EXPERIMENTS.parent / "demo.py"
    spec = importlib.util.spec_from_file_location("demo", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_demo_concludes_from_the_verdicts_it_computed():
    from keras_ssgd.train import verdict

    records = []
    for s in range(3):
        for method, level, acc, budgets, epochs in [
            ("sgd", None, 80.0 + s, ["epochs"], 60),
            ("sgd", None, 82.0 + 1.5 * s, ["passes"], 120),
            ("ssgd", 0.2, 82.0 + s + 0.1 * s * s, ["epochs", "passes"], 60),
        ]:
            records.append({
                "key": f"{method}-{epochs}-{s}", "method": method,
                "level": level, "level_name": "noise_level", "seed": s,
                "status": "ok", "test_accuracy": acc, "budgets": budgets,
                "epochs": epochs, "passes_per_step": 2 if level else 1,
            })
    text = _demo().conclusion(verdict.verdicts(records))
    # The primary line (equal epochs) unadjusted, the other adjusted.
    assert text == ("ssgd: better than sgd at equal epochs; no "
                    "difference shown at equal passes (adjusted)")
    assert _demo().conclusion([]).startswith("no verdict")


@pytest.mark.slow  # make demo's pipeline, end to end
def test_the_demo_runs_both_budgets_end_to_end(tmp_path, capsys):
    demo = _demo()
    demo.MODELS = demo.MODELS[:1]  # the model run at both budgets
    code = demo.main(["--epochs", "1", "--seeds", "1", "--output",
                      str(tmp_path)])
    assert code == 0
    out = capsys.readouterr().out
    assert "== mnist1d-cnn: the CNN without BatchNorm, equal epochs and " \
        "equal passes" in out
    assert "== mnist1d-cnn, the CNN without BatchNorm: ssgd: " in out
    assert "at equal passes" in out
    records = json.loads((tmp_path / "mnist1d-cnn" / "results.json")
                         .read_text())["runs"]
    # K = 2 configurations each: two learning rates.
    assert sorted(r["key"] for r in records) == [
        "sgd-lr0.1-2ep-seed0", "sgd-lr0.1-seed0", "sgd-lr0.2-2ep-seed0",
        "sgd-lr0.2-seed0", "ssgd-0.1-lr0.1-seed0", "ssgd-0.1-lr0.2-seed0"]


@pytest.mark.slow
def test_equal_compute_smoke_runs_both_budgets_on_both_models(tmp_path, capsys):
    """Slow tier: the four models' folders, each method at its first
    configuration and both budgets (16 configurations, the MLP, 1 epoch);
    about 60 s on 2 busy CPU cores."""
    path = EXPERIMENTS.parent / "benchmarks" / "equal_compute.py"
    spec = importlib.util.spec_from_file_location("equal_compute", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--smoke", "--quiet", "--output", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for model in module.MODELS:
        results = json.loads((tmp_path / model / "results.json").read_text())
        budgets = {tuple(r["budgets"]) for r in results["runs"]}
        assert budgets == {("epochs",), ("passes",), ("epochs", "passes")}
        assert recipe(tmp_path / model)["budget"] == "both"
    assert "best 2-pass pick" in out
