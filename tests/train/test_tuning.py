"""The same tuning effort for every method: learning-rate grids, weight
decay, and where several configurations need a validation set. Fast tier
(no training; under a second)."""

import numpy as np
import pytest

from keras_ssgd.train import plan
from keras_ssgd.train import runner


def _plan(**kwargs):
    kwargs.setdefault("build_model", "mnist1d-cnn")
    kwargs.setdefault("data", "mnist1d")
    kwargs.setdefault("seeds", 2)
    return plan.make_plan(**kwargs)


def test_an_lr_grid_reaches_every_method_and_counts_configurations():
    config, specs, _, _ = _plan(
        methods=["sgd", "ssgd:0.1,0.2", "sam:0.05@0.2"], lr=[0.05, 0.1])
    assert config.lr == 0.05  # the first rate is the recipe's
    found = plan.configurations(
        [(s.method, s.level, s.lr or config.lr, s.seed) for s in specs])
    assert found == {
        "sgd": [(None, 0.05), (None, 0.1)],
        "ssgd": [(0.1, 0.05), (0.1, 0.1), (0.2, 0.05), (0.2, 0.1)],
        "sam": [(0.05, 0.2)],  # its own rate, in place of the grid
    }
    keys = {s.key for s in specs}
    # Grid points never share a key; the recipe's rate is the plain key.
    assert len(keys) == len(specs) == 2 * (2 + 4 + 1)
    assert {"sgd-seed0", "sgd-lr0.1-seed0", "ssgd-0.2-lr0.1-seed1",
            "sam-0.05-lr0.2-seed0"} <= keys
    # Each run trains at its own rate.
    spec = next(s for s in specs if s.key == "sgd-lr0.1-seed0")
    assert spec.config_of(config).lr == 0.1


def test_the_summary_counts_each_methods_configurations():
    from keras_ssgd.train import report
    from keras_ssgd.train.registry import METHODS

    records = [
        {"key": f"{m}-{lv}-{lr}-{s}", "method": m, "level": lv, "lr": lr,
         "level_name": None if lv is None else "noise_level", "seed": s,
         "status": "ok", "seconds": 1.0, "train_loss": 0.1,
         "validation_accuracy": 90.0 + 10 * lr + (lv or 0),
         "test_accuracy": 80.0}
        for m, lv in (("sgd", None), ("ssgd", 0.1), ("ssgd", 0.2))
        for lr in (0.05, 0.1) for s in range(2)]
    rows = report.summarize(records, METHODS)
    picked = [(r["method"], r["level"], r["lr"], r["candidates"])
              for r in rows if r["picked"]]
    assert picked == [("sgd", None, 0.1, 2), ("ssgd", 0.2, 0.1, 4)]
    table = "\n".join(report.table(rows))
    assert "| lr |" in table and "validation accuracy (%)" in table
    assert table.count("pick of") == 2


def test_several_configurations_need_a_validation_set():
    data = {"x_train": np.zeros((40, 3)), "y_train": np.arange(40) % 2,
            "x_test": np.zeros((10, 3)), "y_test": np.arange(10) % 2}
    with pytest.raises(plan.ArgumentError) as error:
        _plan(build_model="mlp", data=data, methods=["sgd", "ssgd:0.1,0.2"])
    assert "validation_split" in str(error.value)
    assert "--validation-split" in error.value.cli()
    assert "ssgd" in str(error.value)
    # With a validation split, or one configuration each, it plans.
    _plan(build_model="mlp", data=data, methods=["sgd", "ssgd:0.1,0.2"],
          validation_split=0.25)
    _plan(build_model="mlp", data=data, methods=["sgd", "ssgd:0.1"])


def test_weight_decay_is_keras_decoupled_decay_by_hand():
    import keras

    config = runner.Config("mnist1d", "mlp", 1, 10, 0.1, "sgd", 0.0,
                           "constant", (), weight_decay=0.5)
    optimizer = runner.make_optimizer(
        config, runner.RunSpec("sgd", None, 0), 0.1)
    w = keras.Variable(np.array([1.0, -2.0], dtype="float32"))
    optimizer.apply([keras.ops.convert_to_tensor(
        np.array([2.0, 1.0], dtype="float32"))], [w])
    # w <- w - lr * wd * w, then w <- w - lr * g.
    expected = np.array([1.0, -2.0]) * (1 - 0.1 * 0.5) - 0.1 * np.array(
        [2.0, 1.0])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(w), expected,
                               rtol=1e-6)
    # None by default.
    plain = runner.make_optimizer(
        runner.Config("mnist1d", "mlp", 1, 10, 0.1, "sgd", 0.0, "constant",
                      ()), runner.RunSpec("sgd", None, 0), 0.1)
    assert not plain.weight_decay


def test_weight_decay_is_refused_where_the_model_has_its_own_l2():
    pytest.importorskip("keras_cv")
    with pytest.raises(plan.ArgumentError, match="own L2") as error:
        plan.make_plan("resnet50", "mnist1d", methods=["sgd"], seeds=1,
                       weight_decay=1e-4)
    assert "weight_decay=0.0001" in str(error.value)


def test_weight_decay_is_refused_for_a_users_model_with_a_regularizer():
    import keras

    def build(input_shape, num_classes, dropout=0.0):
        return keras.Sequential([
            keras.Input(input_shape),
            keras.layers.Dense(num_classes,
                               kernel_regularizer=keras.regularizers.L2(1e-4)),
        ])

    data = {"x_train": np.zeros((40, 3)), "y_train": np.arange(40) % 2,
            "x_test": np.zeros((10, 3)), "y_test": np.arange(10) % 2}
    with pytest.raises(plan.ArgumentError, match="weight regularizer"):
        _plan(build_model=build, data=data, methods=["sgd"],
              weight_decay=1e-4)
    _plan(build_model=build, data=data, methods=["sgd"])  # 0: accepted


def test_a_bad_lr_grid_and_primary_are_refused_by_name():
    with pytest.raises(plan.ArgumentError, match=r"lr=\[\]"):
        _plan(methods=["sgd"], lr=[])
    with pytest.raises(plan.ArgumentError, match="lr=-0.1"):
        _plan(methods=["sgd"], lr=[0.1, -0.1])
    _, specs, _, _ = _plan(methods=["sgd", "ssgd:0.2"])
    with pytest.raises(plan.ArgumentError, match="primary='sam'"):
        plan.check_primary("sam", specs)
    assert plan.check_primary("ssgd", specs) == "ssgd"
