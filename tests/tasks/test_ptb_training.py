"""PTB language-model training (Table 5): recipe, schedule, state resets,
perplexity, gradient clipping, the noise filter and the paper script."""

import importlib.util
import json
import math
import pathlib

import keras
import numpy as np
import pytest

from keras_ssgd.tasks import ptb as language
from keras_ssgd.tasks.ptb import training

EXPERIMENTS = pathlib.Path(__file__).parents[2] / "experiments" / "paper"


def load_script():
    spec = importlib.util.spec_from_file_location(
        "table5_ptb", EXPERIMENTS / "table5_ptb.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny(size="large", **changes):
    """The size's recipe on a 8-unit model, batch 2, 4 steps."""
    return language.RECIPES[size].replace(
        units=8, batch_size=2, steps=4, **changes)


def random_ids(n=200, vocab=12, seed=0):
    rng = np.random.default_rng(seed)
    return {split: rng.integers(0, vocab, n).astype("int32")
            for split in ("train", "valid", "test")}


def test_recipes_are_zarembas_and_the_papers():
    large, small = language.RECIPES["large"], language.RECIPES["small"]
    assert (large.epochs, large.lr, large.decay, large.decay_after) == (55, 1.0, 1.15, 14)
    assert (large.clipnorm, large.dropout, large.init_scale) == (10.0, 0.65, 0.04)
    assert (large.batch_size, large.steps) == (20, 35)
    assert (small.epochs, small.decay, small.decay_after, small.clipnorm) == (39, 1.2, 6, 5.0)
    assert small.dropout == 0.5 and small.size == "small"
    assert language.PAPER_TABLE5["large"] == (78.68, {0.8: 74.47, 0.9: 73.95, 1.0: 73.83})
    assert language.PAPER_TABLE5["small"] == (88.85, {0.6: 85.56, 0.7: 84.86, 0.8: 86.04})


@pytest.mark.parametrize("size, decay, after", [("large", 1.15, 14), ("medium", 1.2, 6)])
def test_schedule_holds_then_divides_every_epoch(size, decay, after):
    recipe = language.RECIPES[size]
    steps = 7
    schedule = recipe.learning_rate(steps)
    for epoch in range(recipe.epochs):
        # Zaremba et al.: lr * lr_decay ** max(i + 1 - max_epoch, 0), i 0-based.
        expected = 1.0 / decay ** max(epoch + 1 - after, 0)
        assert recipe.rate_at(epoch) == pytest.approx(expected)
        if epoch in (0, after - 1, after, after + 1, recipe.epochs - 1):
            for step in (epoch * steps, (epoch + 1) * steps - 1):  # first, last step
                assert float(schedule(step)) == pytest.approx(expected, rel=1e-6)
    assert float(schedule(after * steps - 1)) == 1.0
    assert float(schedule(after * steps)) == pytest.approx(1 / decay)


def test_schedule_edge_cases():
    assert language.zaremba_schedule(1.0, 2.0, 5, 5, 10) == 1.0  # no decay within
    at_once = language.zaremba_schedule(1.0, 2.0, 0, 3, 10)
    assert [float(at_once(e * 10)) for e in range(3)] == [0.5, 0.25, 0.125]


@pytest.mark.parametrize("changes, match", [
    ({"decay": 0.5}, "`decay` must be >= 1"),
    ({"dropout": 1.0}, "`dropout` must be in"),
    ({"clipnorm": 0.0}, "`clipnorm` must be > 0"),
    ({"epochs": 0}, "`epochs` must be an int > 0"),
    ({"decay_after": -1}, "`decay_after` must be an int >= 0"),
])
def test_bad_recipes_are_refused(changes, match):
    with pytest.raises(ValueError, match=match):
        language.RECIPES["large"].replace(**changes)


def test_unknown_size_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"one of \['small', 'medium', 'large'\]"):
        language.recipe_for("huge")


def uniform_model(vocab, batch, steps, metrics=True):
    inputs = keras.Input(batch_shape=(batch, steps), dtype="int32")
    h = keras.layers.Embedding(vocab, 4)(inputs)
    h = keras.layers.LSTM(3, return_sequences=True, stateful=True)(h)
    logits = keras.layers.Dense(vocab, kernel_initializer="zeros")(h)
    model = keras.Model(inputs, logits)
    model.compile(loss=language.sequence_cross_entropy,
                  metrics=[language.token_cross_entropy()] if metrics else None)
    return model


def test_uniform_logits_give_the_vocabulary_size():
    from keras_ssgd.tasks.ptb import data as ptb

    vocab, batch, steps = 13, 2, 5
    model = uniform_model(vocab, batch, steps)
    windows = ptb.windows(np.arange(200) % vocab, batch, steps)
    assert language.perplexity(model, windows) == pytest.approx(vocab, rel=1e-5)
    # The loss sums the word cross-entropy over the steps, mean over the batch.
    loss = model.evaluate(windows, verbose=0, return_dict=True)["loss"]
    assert loss == pytest.approx(steps * math.log(vocab), rel=1e-5)
    with pytest.raises(ValueError, match="token_cross_entropy"):
        language.perplexity(uniform_model(vocab, batch, steps, metrics=False), windows)


def test_sequence_loss_sums_over_time():
    y = np.array([[0, 1, 2], [2, 2, 0]])
    logits = np.random.default_rng(0).standard_normal((2, 3, 4)).astype("float32")
    token = keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
    summed = language.sequence_cross_entropy(y, logits)
    np.testing.assert_allclose(summed, np.sum(token, axis=1), rtol=1e-6)


class StateProbe(keras.callbacks.Callback):
    """Records the LSTM states at each epoch and evaluation start."""

    def __init__(self):
        super().__init__()
        self.at_epoch, self.at_test, self.at_end = [], [], []

    def _states(self):
        layer = language.callbacks.stateful_layers(self.model)[0]
        return np.concatenate([np.ravel(keras.ops.convert_to_numpy(s)) for s in layer.states])

    def on_epoch_begin(self, epoch, logs=None):
        self.at_epoch.append(self._states())

    def on_test_begin(self, logs=None):
        self.at_test.append(self._states())

    def on_train_batch_end(self, batch, logs=None):
        self.at_end.append(self._states())


@pytest.mark.parametrize("method, level", [
    ("sgd", None), pytest.param("ssgd", 0.5, marks=pytest.mark.slow)])
def test_states_are_zero_at_every_epoch_and_evaluation_start(method, level):
    from keras_ssgd.tasks.ptb import data as ptb

    recipe = tiny(epochs=2)
    ids = random_ids()
    base = training.build_model(recipe, 12, recipe.batch_size, seed=0)
    train = ptb.windows(ids["train"], recipe.batch_size, recipe.steps)
    model = training.compile_model(recipe, base, method, level, 0, int(train.cardinality()))
    probe = StateProbe()
    model.fit(train, epochs=2, validation_data=train.take(2), shuffle=False, verbose=0,
              callbacks=[language.ResetStates(), probe])
    assert len(probe.at_epoch) == 2 and len(probe.at_test) == 2
    for states in probe.at_epoch + probe.at_test:
        assert not np.any(states)
    assert np.any(probe.at_end[-1])  # the state did carry over within an epoch


def test_reset_states_refuses_a_model_without_state():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(loss="mse")
    with pytest.raises(ValueError, match="stateful RNN"):
        model.fit(np.zeros((4, 3)), np.zeros((4, 2)), verbose=0,
                  callbacks=[language.ResetStates()])


def test_sgd_without_momentum_clips_the_global_norm_embeddings_included():
    from keras_ssgd.tasks.ptb import data as ptb

    recipe = tiny(clipnorm=0.01, dropout=0.0)
    base = training.build_model(recipe, 12, recipe.batch_size, seed=0)
    model = training.compile_model(recipe, base, "sgd", None, 0, steps_per_epoch=10)
    assert model.optimizer.global_clipnorm == 0.01 and model.optimizer.momentum == 0.0
    assert model.optimizer.clipnorm is None
    before = [np.array(v) for v in model.trainable_variables]
    x, y = next(iter(ptb.windows(random_ids()["train"], 2, 4)))
    model.train_on_batch(x, y)
    deltas = [np.array(v) - b for v, b in zip(model.trainable_variables, before)]
    # lr 1: the whole update has the clip norm, so the (sparse) embedding
    # gradient counts in the norm too.
    assert math.sqrt(sum(float(np.sum(d**2)) for d in deltas)) == pytest.approx(0.01, rel=1e-3)
    assert np.any(deltas[0])  # the embedding moved


def test_ssgd_perturbs_every_weight_but_the_biases():
    recipe = tiny()
    base = training.build_model(recipe, 12, recipe.batch_size, seed=0)
    model = training.compile_model(recipe, base, "ssgd", 0.9, 0, steps_per_epoch=10)
    chosen = {v.path for v in model.noise_variables}
    assert chosen == {
        "embedding/embeddings", "logits/kernel",
        "lstm1/lstm_cell/kernel", "lstm1/lstm_cell/recurrent_kernel",
        "lstm2/lstm_cell/kernel", "lstm2/lstm_cell/recurrent_kernel",
    }
    assert all("bias" not in v.path for v in model.noise_variables)
    assert {v.path for v in model.trainable_variables} - chosen == {
        "lstm1/lstm_cell/bias", "lstm2/lstm_cell/bias", "logits/bias"}
    assert model.noise_level == 0.9


def test_every_method_of_a_seed_starts_from_the_same_weights():
    recipe = tiny()
    a = training.build_model(recipe, 12, 2, seed=3).get_weights()
    b = training.build_model(recipe, 12, 1, seed=3).get_weights()
    c = training.build_model(recipe, 12, 2, seed=4).get_weights()
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    assert not all(np.array_equal(u, v) for u, v in zip(a, c))
    for weight in a:  # Zaremba et al.: every parameter, biases included
        assert 0 < np.abs(weight).max() <= recipe.init_scale


def test_ssgd_learns_a_periodic_stream_embeddings_included():
    # The next word is fixed by the current one: a model that trains (its
    # sparse embedding gradient averaged over the +-n passes) gets close to
    # perplexity 1; the untrained one is at about the vocabulary size, 12.
    vocab = 12
    ids = {s: (np.arange(240) % vocab).astype("int32") for s in ("train", "valid", "test")}
    recipe = language.RECIPES["small"].replace(
        units=32, batch_size=2, steps=4, epochs=2, dropout=0.0, init_scale=0.3)
    record = training.train_run(recipe, ids, vocab, "ssgd", 0.7, seed=0, verbose=0)
    assert record["status"] == "ok"
    assert record["history"]["train_perplexity"][0] > record["history"]["train_perplexity"][1]
    assert record["test_perplexity"] < 1.5


@pytest.mark.parametrize("method, level, match", [
    ("adam", None, "`method` must be one of"),
    ("ssgd", None, "`level` must be a float"),
    ("ssgd", 0.0, "`level` must be > 0"),
    ("sgd", 0.5, "`level` must be None for SGD"),
])
def test_bad_run_arguments(method, level, match):
    with pytest.raises((ValueError, TypeError), match=match):
        training.train_run(tiny(), random_ids(), 12, method, level)


def test_a_bad_run_in_a_sweep_is_refused_before_any_training(tmp_path):
    script = load_script()
    data = script.write_smoke_data(tmp_path / "data")
    with pytest.raises(ValueError, match="`level` must be > 0"):
        language.run_sweep(tmp_path / "out", tiny(), data,
                           [("sgd", None, 0), ("ssgd", 0.0, 0)])
    assert not (tmp_path / "out").exists()


def test_smoke_run_end_to_end_and_resume(tmp_path):
    script = load_script()
    argv = ["--smoke", "--sizes", "small", "--quiet", "--output", str(tmp_path)]
    assert script.main(argv) == 0
    table = (tmp_path / "table5.md").read_text()
    assert "not a result" in table
    assert "| small | SGD |" in table and "| 88.85 |" in table
    assert "| small | S-SGD (0.6) |" in table and "| 85.56 |" in table
    results = json.loads((tmp_path / "small" / "results.json").read_text())
    assert results["config"]["recipe"]["units"] == 16
    records = {r["key"]: r for r in results["runs"]}
    assert set(records) == {"sgd-seed0", "ssgd-0.6-seed0"}
    for record in records.values():
        assert record["status"] == "ok" and record["epochs_run"] == 2
        assert 1 < record["test_perplexity"] < 2 * script.SMOKE_WORDS
        assert len(record["history"]["valid_perplexity"]) == 2
        assert record["history"]["learning_rate"] == pytest.approx([1.0, 1 / 1.2])
        assert (tmp_path / "small" / "runs" / f"{record['key']}.keras").exists()
    finished = {k: r["finished"] for k, r in records.items()}
    assert script.main(argv) == 0  # resumes: nothing is trained again
    again = json.loads((tmp_path / "small" / "results.json").read_text())
    assert {r["key"]: r["finished"] for r in again["runs"]} == finished


@pytest.mark.slow
def test_full_smoke_run_both_sizes(tmp_path):
    script = load_script()
    assert script.main(["--smoke", "--quiet", "--output", str(tmp_path)]) == 0
    table = (tmp_path / "table5.md").read_text()
    assert "| large | S-SGD (0.8) |" in table and "| 74.47 |" in table


def test_script_bad_inputs(tmp_path, capsys):
    script = load_script()
    with pytest.raises(SystemExit) as exit_info:
        script.main(["--data-dir", str(tmp_path / "nowhere"), "--output", str(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "no such folder" in err and "ptb.train.txt, ptb.valid.txt, ptb.test.txt" in err
    (tmp_path / "ptb.train.txt").write_text("a b\n")
    with pytest.raises(SystemExit):
        script.main(["--data-dir", str(tmp_path), "--output", str(tmp_path / "out")])
    assert "missing ptb.valid.txt, ptb.test.txt" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        script.main(["--sizes", "huge", "--smoke"])
    assert exit_info.value.code == 2
    assert "valid sizes: small, medium, large" in capsys.readouterr().err
    for flag in (["--seeds", "0"], ["--epochs", "0"], ["--levels", "-1"]):
        with pytest.raises(SystemExit):
            script.main(["--smoke", *flag])
        assert "error: argument" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # nothing was started


def test_script_help_covers_every_flag():
    script = load_script()
    parser, _ = script.parse([])
    for action in parser._actions:
        assert action.help, action.dest


def test_a_run_stopped_after_an_epoch_continues_to_the_run_never_stopped(
    tmp_path, monkeypatch
):
    """Fast tier (about 8 s): a 2-epoch SGD sweep of the tiny LSTM stopped
    (Ctrl-C) at the end of its first epoch continues from its checkpoint
    when run again, to the record and weights of the sweep never stopped:
    the windows are read in order and the states start from zero every
    epoch. No checkpoint remains."""
    script = load_script()
    data = script.write_smoke_data(tmp_path / "data")
    recipe = tiny(epochs=2, dropout=0.0)
    runs = [("sgd", None, 0)]
    real_fit = keras.Model.fit

    class Stop(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise KeyboardInterrupt

    def stopping_fit(self, *args, callbacks=(), initial_epoch=0, **kwargs):
        extra = [Stop()] if initial_epoch == 0 else []
        return real_fit(self, *args, callbacks=[*callbacks, *extra],
                        initial_epoch=initial_epoch, **kwargs)

    monkeypatch.setattr(keras.Model, "fit", stopping_fit)
    stopped = tmp_path / "stopped"
    with pytest.raises(KeyboardInterrupt):
        language.run_sweep(stopped, recipe, data, runs, verbose=0)
    assert (stopped / "runs" / "sgd-seed0.checkpoint.npz").exists()
    language.run_sweep(stopped, recipe, data, runs, verbose=0)
    monkeypatch.setattr(keras.Model, "fit", real_fit)
    whole = tmp_path / "whole"
    language.run_sweep(whole, recipe, data, runs, verbose=0)
    a, b = (json.loads((f / "runs" / "sgd-seed0.json").read_text())
            for f in (stopped, whole))
    assert a.pop("resumed") == 1 and "resumed" not in b
    for field in ("seconds", "finished", "model_file"):
        a.pop(field, None), b.pop(field, None)
    assert a == b
    wa, wb = (keras.saving.load_model(f / "runs" / "sgd-seed0.keras",
                                      compile=False).get_weights()
              for f in (stopped, whole))
    for u, v in zip(wa, wb):
        np.testing.assert_array_equal(u, v)
    assert not list(stopped.rglob("*.checkpoint.npz"))
