"""Equal compute: the budgets of a comparison, the stretched schedule, and
the cheap baselines (EMA, SWA, every-k) as `ssgd-train` runs them."""

import json

import keras
import numpy as np
import pytest

import keras_ssgd
from keras_ssgd.train import cli
from keras_ssgd.train import plan
from keras_ssgd.train import runner
from keras_ssgd.train.registry import METHODS
from test_compare import _data
from test_compare import build


def build_bn(input_shape, num_classes, dropout=0.0):
    inputs = keras.Input(input_shape)
    x = keras.layers.Dense(8, activation="relu")(inputs)
    x = keras.layers.BatchNormalization()(x)
    return keras.Model(inputs, keras.layers.Dense(num_classes)(x))


def _specs(methods, budget, epochs=10, every=4):
    _, specs, _, _ = plan.make_plan(
        "mlp", "mnist1d", methods=methods, seeds=1, epochs=epochs,
        budget=budget, every=every,
    )
    return [
        (s.method, epochs if s.epochs is None else s.epochs, s.budgets)
        for s in specs
    ]


def test_equal_passes_gives_one_pass_methods_twice_the_epochs():
    methods = ["sgd", "ssgd", "ssgd-split", "ema", "ssgd-every"]
    assert _specs(methods, "passes") == [
        ("sgd", 20, ("passes",)),
        ("ssgd", 10, ("passes",)),
        ("ssgd-split", 20, ("passes",)),
        ("ema", 20, ("passes",)),
        ("ssgd-every", 16, ("passes",)),  # 1.25 passes: 20 / 1.25
    ]
    # Every run gets the same passes: epochs x passes per step.
    for method, epochs, _ in _specs(methods, "passes"):
        assert epochs * METHODS[method].passes_at(4) == 20
    assert _specs(methods, "epochs") == [
        (m, 10, ("epochs",)) for m in methods
    ]
    both = _specs(methods, "both")
    assert ("ssgd", 10, ("epochs", "passes")) in both
    assert ("sgd", 10, ("epochs",)) in both and ("sgd", 20, ("passes",)) in both
    assert len(both) == 9
    # Without a two-pass method, nothing is stretched.
    assert _specs(["sgd", "ema"], "passes") == [
        ("sgd", 10, ("passes",)), ("ema", 10, ("passes",))]


@pytest.mark.parametrize("kwargs, message", [
    ({"budget": "flops"}, "Argument `budget` must be one of"),
    ({"every": 0}, "Argument `every` must be an int > 0"),
    ({"budget": "passes", "phases": "2-1S"}, "Argument `budget` must be "
     "'epochs' with phases"),
])
def test_bad_budget_arguments_are_refused_by_name(kwargs, message):
    with pytest.raises(plan.ArgumentError, match=message):
        plan.make_plan("mlp", "mnist1d", methods=["sgd", "ssgd"], **kwargs)


def test_the_command_takes_budget_and_every():
    config, specs, _ = cli.parse([
        "--model", "mlp", "--method", "sgd", "--method", "sam-every",
        "--method", "ssgd", "--epochs", "4", "--seeds", "1", "--budget",
        "both", "--every", "2",
    ])
    assert (config.budget, config.every) == ("both", 2)
    assert [(s.key, s.budgets) for s in specs] == [
        ("sgd-seed0", ("epochs",)), ("sgd-8ep-seed0", ("passes",)),
        ("sam-every-0.05-seed0", ("epochs",)),
        ("sam-every-0.05-5ep-seed0", ("passes",)),  # 8 / 1.5, rounded
        ("ssgd-0.2-seed0", ("epochs", "passes")),
    ]


@pytest.mark.parametrize("schedule, drops", [
    ("cosine", ()), ("step", (4, 7)), ("sgdr", ()), ("constant", ()),
])
def test_the_stretched_schedule_ends_at_the_same_learning_rate(schedule,
                                                               drops):
    config = runner.Config("mnist1d", "mlp", 10, 100, 0.1, "sgd", 0.9,
                           schedule, drops)
    steps = 7
    plain = runner.learning_rate(config, steps)
    stretched = runner.learning_rate(config, steps, epochs=20)

    def at(lr, step):
        return float(lr(step)) if callable(lr) else lr

    assert at(stretched, 0) == pytest.approx(at(plain, 0))
    # The same fraction of the run gives the same rate: the shape is
    # stretched, not cut.
    for step in (14, 28, 29, 35, 49, 50, 63, 69, 70):
        assert at(stretched, 2 * step) == pytest.approx(
            at(plain, step), rel=1e-5, abs=1e-7)
    if schedule == "step":
        assert [float(stretched(s)) for s in (56, 57, 98, 99)] == \
            pytest.approx([0.1, 0.01, 0.01, 0.001])
    if schedule == "cosine":  # not cut at the plain run's end
        assert at(stretched, 70) > 0.04


def test_an_equal_passes_sweep_records_equal_passes(tmp_path):
    result = keras_ssgd.compare(
        build, _data(), methods=["sgd", "ssgd", "ssgd-every"], seeds=1,
        epochs=2, batch_size=16, hessian_iterations=0, budget="both",
        every=2, output=tmp_path / "r",
    )
    records = {r["key"]: r for r in result.results["runs"]}
    assert sorted(records) == [
        "sgd-4ep-seed0", "sgd-seed0", "ssgd-0.2-seed0",
        "ssgd-every-0.2-3ep-seed0", "ssgd-every-0.2-seed0",
    ]
    for key, r in records.items():
        assert r["epochs_run"] == r["epochs"]
        if "passes" in r["budgets"]:  # 4 epochs x 1 pass = 2 x 2 (~3 x 1.5)
            assert r["epochs"] * r["passes_per_step"] == pytest.approx(
                4, abs=0.5)
    assert records["ssgd-every-0.2-seed0"]["passes_per_step"] == 1.5
    assert records["sgd-4ep-seed0"]["budgets"] == ["passes"]
    assert records["ssgd-0.2-seed0"]["budgets"] == ["epochs", "passes"]
    assert "| epochs | budget |" in result.table
    assert "| sgd | - | 4 | equal passes |" in result.table
    budgets = [(v["method"], v["budget"]) for v in result.verdicts]
    assert ("ssgd", "epochs") in budgets and ("ssgd", "passes") in budgets
    on_disk = json.loads((tmp_path / "r" / "results.json").read_text())
    assert on_disk["verdicts"] == result.results["verdicts"]
    assert str(result).startswith(
        "Budget: both, equal epochs (2) and equal passes")
    assert "Budget: both" in (tmp_path / "r" / "summary.md").read_text()


def _train(method, level, builder, extra_callbacks=(), epochs=3,
           tmp_path=None):
    config, _, _, arrays = plan.make_plan(
        builder, _data(), methods=["sgd"], seeds=1, epochs=epochs,
        batch_size=16, hessian_iterations=0, lr_schedule="constant",
    )
    spec = runner.RunSpec(method, level, 0)
    path = tmp_path / f"{method}.keras"
    record = runner.train(config, spec, verbose=0, model_path=path,
                          builder=builder, arrays=arrays,
                          extra_callbacks=extra_callbacks)
    return record, keras.saving.load_model(path)


class _Steps(keras.callbacks.Callback):
    """The trainable weights after every step (TensorFlow: current)."""

    def __init__(self):
        super().__init__()
        self.weights = []
        self.epochs = []

    def on_train_batch_end(self, batch, logs=None):
        self.weights.append([np.array(v) for v in
                             self.model.trainable_variables])

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append([np.array(v) for v in
                            self.model.trainable_variables])


def test_ema_is_evaluated_on_the_average_of_the_weights(tmp_path):
    steps = _Steps()
    _train("sgd", None, build, [steps], tmp_path=tmp_path)
    record, model = _train("ema", 0.9, build, tmp_path=tmp_path)
    # Keras's rule: the first step copies, then a 0.9 moving average.
    average = steps.weights[0]
    for weights in steps.weights[1:]:
        average = [0.9 * a + 0.1 * w for a, w in zip(average, weights)]
    for got, want in zip(model.trainable_variables, average):
        np.testing.assert_allclose(np.array(got), want, rtol=1e-5, atol=1e-6)
    assert not np.allclose(np.array(model.trainable_variables[0]),
                           steps.weights[-1][0])
    assert record["passes_per_step"] == 1


def test_swa_averages_epochs_and_recomputes_batchnorm(tmp_path):
    steps = _Steps()
    _train("sgd", None, build_bn, [steps], epochs=4, tmp_path=tmp_path)
    record, model = _train("swa", 0.5, build_bn, epochs=4, tmp_path=tmp_path)
    # The end-of-epoch weights of epochs 2 and 3 (from half of 4).
    average = [(a + b) / 2 for a, b in zip(*steps.epochs[2:])]
    for got, want in zip(model.trainable_variables, average):
        np.testing.assert_allclose(np.array(got), want, rtol=1e-5, atol=1e-6)
    # The BatchNorm statistics are those of the averaged weights over the
    # training set (three batches of 16), not the last training step's.
    x = _data()["x_train"]
    hidden = keras.Model(model.inputs, model.layers[1].output)
    means = [np.array(hidden(x[i:i + 16])).mean(axis=0)
             for i in range(0, 48, 16)]
    bn = model.layers[2]
    np.testing.assert_allclose(np.array(bn.moving_mean), np.mean(means, 0),
                               rtol=1e-4, atol=1e-5)
    assert record["test_accuracy"] is not None


@pytest.mark.exact
@pytest.mark.parametrize("method, level", [("ema", 0.0), ("swa", 0.67)])
def test_level_0_of_the_averages_is_sgd_bit_for_bit(method, level, tmp_path):
    # EMA momentum 0 averages nothing; SWA from epoch 2 of 3 averages the
    # last epoch's weights alone (no BatchNorm to recompute).
    _, plain = _train("sgd", None, build, tmp_path=tmp_path)
    _, averaged = _train(method, level, build, tmp_path=tmp_path)
    for a, b in zip(averaged.weights, plain.weights):
        np.testing.assert_array_equal(np.array(a), np.array(b))


def test_ema_recomputes_batchnorm_for_the_average(tmp_path):
    _, model = _train("ema", 0.9, build_bn, tmp_path=tmp_path)
    x = _data()["x_train"]
    hidden = keras.Model(model.inputs, model.layers[1].output)
    means = [np.array(hidden(x[i:i + 16])).mean(axis=0)
             for i in range(0, 48, 16)]
    np.testing.assert_allclose(np.array(model.layers[2].moving_mean),
                               np.mean(means, 0), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("method", ["ema", "swa"])
def test_a_fraction_level_of_one_or_more_is_refused_by_name(method):
    with pytest.raises(plan.ArgumentError, match=r"must be in \[0, 1\)"):
        plan.make_plan("mlp", "mnist1d", methods=[f"{method}:1.0"])
