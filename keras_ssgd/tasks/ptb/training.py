"""Training the PTB language models with SGD or S-SGD, run by run."""

import math
import pathlib
import statistics
import time

import keras

from keras_ssgd import checkpoint as checkpoint_lib
from keras_ssgd import filters
from keras_ssgd.tasks.ptb import data as ptb
from keras_ssgd.tasks.ptb.callbacks import ResetStates
from keras_ssgd.tasks.ptb.lstm import ptb_lstm
from keras_ssgd.tasks.ptb.perplexity import from_cross_entropy
from keras_ssgd.tasks.ptb.perplexity import perplexity
from keras_ssgd.tasks.ptb.perplexity import sequence_cross_entropy
from keras_ssgd.tasks.ptb.perplexity import token_cross_entropy
from keras_ssgd.store import RunStore
from keras_ssgd.validation import check_choice
from keras_ssgd.validation import check_noise_level
from keras_ssgd.validation import check_seed
from keras_ssgd.wrapping import wrap

METHODS = ("sgd", "ssgd")


def run_key(method, level, seed):
    """The file name of a run: `sgd-seed0`, `ssgd-0.8-seed0`."""
    level = "" if level is None else f"-{level:g}"
    return f"{method}{level}-seed{seed}"


def check_run(method, level, seed):
    """Checks one run's arguments; returns the level (a float, or None for
    SGD)."""
    check_choice(method, "method", METHODS)
    check_seed(seed)
    if method == "sgd":
        if level is not None:
            raise ValueError(
                f"Argument `level` must be None for SGD. Received: level={level!r}"
            )
        return None
    level = check_noise_level(level, "level")
    if level == 0:
        raise ValueError("Argument `level` must be > 0 for S-SGD. Received: level=0")
    return level


def build_model(recipe, vocab_size, batch_size, seed):
    """The plain stateful LSTM of `recipe`; its weights come from `seed`."""
    keras.utils.set_random_seed(seed)
    return ptb_lstm(
        recipe.size, vocab_size=vocab_size, batch_size=batch_size,
        steps=recipe.steps, dropout=recipe.dropout,
        init_scale=recipe.init_scale, num_layers=recipe.num_layers,
        units=recipe.units,
    )


def compile_model(recipe, base, method, level, seed, steps_per_epoch):
    """`base` wrapped for `method` and compiled with the recipe.

    SGD trains `base` itself; S-SGD wraps it (`keras_ssgd.wrap`) with the
    noise on every weight but the biases: the `kernels` filter, which
    selects the embeddings, the LSTM kernels and recurrent kernels and the
    softmax kernel (Sung et al., Section 5.3). The optimizer is SGD without
    momentum on `recipe.learning_rate`, clipping the global gradient norm
    (the embeddings' sparse gradient included) to `recipe.clipnorm`.

    Args:
        recipe: a `PTBRecipe`.
        base: the model of `build_model`.
        method: `"sgd"` or `"ssgd"`.
        level: float > 0, the S-SGD noise level (None for SGD).
        seed: int, the seed of the noise.
        steps_per_epoch: int, windows per epoch (for the schedule).

    Returns:
        The compiled model to `fit()` (`base`, or the S-SGD model sharing
        its weights).

    Example:

    >>> from keras_ssgd.tasks.ptb.recipe import RECIPES
    >>> base = build_model(RECIPES["small"], 10000, 20, seed=0)
    >>> model = compile_model(RECIPES["small"], base, "ssgd", 1.0, 0, 1327)
    >>> type(model).__name__
    'SymmetricSGDModel'

    Reference:
    - Zaremba, Sutskever and Vinyals, arXiv:1409.2329; Sung et al.,
      Section 5.3 and Table 5.
    """
    if method == "sgd":
        model = base
    else:
        model = wrap(base, noise_level=level, noise_filter=filters.kernels,
                     seed=seed)
    optimizer = keras.optimizers.SGD(
        recipe.learning_rate(steps_per_epoch), momentum=0.0,
        global_clipnorm=recipe.clipnorm,
    )
    model.compile(optimizer=optimizer, loss=sequence_cross_entropy,
                  metrics=[token_cross_entropy()])
    return model


def train_run(recipe, ids, vocab_size, method="sgd", level=None, seed=0,
              verbose=1, model_path=None, checkpoint=None, restore=None):
    """Trains one model and returns its record (a JSON-ready dict).

    The windows are read in order every epoch (no shuffling: the state
    carries over), from zero states at each epoch start and at each
    validation. After training, the validation and test perplexities are
    measured on a copy of the model with `recipe.eval_batch_size` rows (1:
    each split is one stream). A run whose loss becomes NaN or infinite is
    stopped and recorded with `status: "diverged"`.

    Args:
        recipe: a `PTBRecipe`.
        ids: dict of the `train`, `valid`, `test` id arrays
            (`keras_ssgd.tasks.ptb.data.ptb_ids`).
        vocab_size: int.
        method: `"sgd"` or `"ssgd"`. Defaults to `"sgd"`.
        level: float > 0, the S-SGD noise level; None for SGD.
        seed: int, the seed of the initial weights, dropout and noise.
        verbose: int, `fit()`'s verbosity. Defaults to `1`.
        model_path: path or None, where to save the trained plain model.
        checkpoint: path or None, where the run in progress is saved at the
            end of every epoch (`keras_ssgd.checkpoint`). The windows are
            read in order and the states start from zero every epoch, so a
            run continued from it is the run never stopped.
        restore: a `keras_ssgd.checkpoint.State` read from `checkpoint`,
            to continue a stopped run; None to start from the beginning.

    Returns:
        A dict: `key`, `method`, `level`, `seed`, `status`, `seconds`,
        `epochs_run`, `history` (per epoch: `loss`, `train_perplexity`
        as `fit()` measured it, at the perturbed weights for S-SGD and
        with dropout on; `valid_perplexity` on the training batch layout;
        `learning_rate`), and the final `valid_perplexity` and
        `test_perplexity` (clean weights, `recipe.eval_batch_size` rows).

    Example:

    <!-- example: skip
    needs Mikolov's PTB files and hours of training (Table 5).
    -->

    >>> ids, vocab = keras_ssgd.tasks.ptb.data.ptb_ids("simple-examples/data")
    >>> record = train_run(RECIPES["large"], ids, len(vocab), "ssgd", 1.0)
    """
    level = check_run(method, level, seed)
    train = ptb.windows(ids["train"], recipe.batch_size, recipe.steps)
    valid = ptb.windows(ids["valid"], recipe.batch_size, recipe.steps)
    steps_per_epoch = int(train.cardinality())
    base = build_model(recipe, vocab_size, recipe.batch_size, seed)
    model = compile_model(recipe, base, method, level, seed, steps_per_epoch)
    callbacks = [ResetStates(), keras.callbacks.TerminateOnNaN()]
    saving = None
    if checkpoint is not None:
        saving = checkpoint_lib.Checkpointing(
            checkpoint, run_key(method, level, seed), recipe.to_json(),
            restore=restore,
        )
        callbacks.append(saving)
    start = time.perf_counter()
    history = model.fit(
        train, epochs=recipe.epochs, validation_data=valid, shuffle=False,
        callbacks=callbacks, verbose=verbose,
        initial_epoch=0 if restore is None else restore.epoch,
    )
    seconds = time.perf_counter() - start
    logs = history.history if saving is None else saving.history
    losses = logs.get("loss", [])
    epochs_run = len(losses)
    record = {
        "key": run_key(method, level, seed),
        "method": method,
        "level": level,
        "seed": seed,
        "size": recipe.size,
        "seconds": seconds,
        "epochs_run": epochs_run,
        "passes_per_step": 1 if method == "sgd" else 2,
        "history": {
            "loss": [_finite(v) for v in losses],
            "train_perplexity": [from_cross_entropy(v) for v in logs.get("cross_entropy", [])],
            "valid_perplexity": [from_cross_entropy(v) for v in logs.get("val_cross_entropy", [])],
            "learning_rate": [recipe.rate_at(e) for e in range(epochs_run)],
        },
    }
    if saving is not None and saving.resumed:
        record["resumed"] = saving.resumed
    if epochs_run < recipe.epochs or not all(math.isfinite(v) for v in losses):
        record.update(status="diverged", valid_perplexity=None, test_perplexity=None)
        return record
    evaluator = build_model(recipe, vocab_size, recipe.eval_batch_size, seed)
    evaluator.set_weights(base.get_weights())
    evaluator.compile(loss=sequence_cross_entropy, metrics=[token_cross_entropy()])
    for split in ("valid", "test"):
        windows = ptb.windows(ids[split], recipe.eval_batch_size, recipe.steps)
        record[f"{split}_perplexity"] = perplexity(evaluator, windows)
    record["status"] = "ok" if math.isfinite(record["test_perplexity"]) else "diverged"
    if model_path is not None:
        base.save(model_path)
        record["model_file"] = str(model_path)
    return record


def summarize(records):
    """Per (method, level): runs, mean and std of the perplexities."""
    groups = {}
    for r in records:
        groups.setdefault((r["method"], r["level"]), []).append(r)
    rows = []
    for (method, level), runs in sorted(
        groups.items(), key=lambda item: (item[0][0], item[0][1] or 0.0)
    ):
        ok = [r for r in runs if r["status"] == "ok"]
        row = {"method": method, "level": level, "runs": len(ok),
               "diverged": len(runs) - len(ok)}
        for split in ("valid", "test"):
            values = [r[f"{split}_perplexity"] for r in ok]
            row[f"{split}_perplexity_mean"] = statistics.fmean(values) if values else None
            row[f"{split}_perplexity_std"] = (
                statistics.stdev(values) if len(values) > 1 else 0.0 if values else None
            )
        rows.append(row)
    return rows


def run_sweep(folder, recipe, data_dir, runs, verbose=1, save_models=True):
    """Trains `runs` into `folder`, one record file per finished run.

    A folder that already holds runs of the same recipe is continued: the
    finished runs are kept and skipped, and a run stopped in progress
    continues from its checkpoint (`runs/<key>.checkpoint.npz`, written at
    the end of every epoch and deleted when the run's record is written).
    `results.json` (the recipe, every record and `summarize()`) is
    rewritten after each run.

    Args:
        folder: path of the run folder (`keras_ssgd.store.RunStore`).
        recipe: a `PTBRecipe`.
        data_dir: folder with `ptb.{train,valid,test}.txt`.
        runs: list of `(method, level, seed)`.
        verbose: int, `fit()`'s verbosity.
        save_models: bool, save each trained model (`runs/<key>.keras`).

    Returns:
        The summary rows of `summarize()`.

    Raises:
        FileNotFoundError: a PTB file is missing (before any training).
        keras_ssgd.store.StoreError: the folder holds another recipe
            or cannot be written, or a checkpoint is damaged or another
            run's (before any training).
    """
    ids, vocabulary = ptb.ptb_ids(data_dir)
    for run in runs:  # checked before anything is trained
        check_run(*run)
    keys = [run_key(*run) for run in runs]
    config = {"recipe": {**recipe.to_json(), "vocab_size": len(vocabulary)},
              "runs": keys}
    folder = pathlib.Path(folder)
    store = RunStore(folder, config, resume=(folder / "config.json").exists())
    done = store.done()
    todo = [(run, key) for run, key in zip(runs, keys) if key not in done]
    # Every checkpoint is checked before anything is trained.
    held = {
        key: checkpoint_lib.read(
            store.checkpoint_path(key), key,
            lambda saved: "" if saved == recipe.to_json()
            else "the PTB recipe differs",
        )
        for _, key in todo if store.checkpoint_path(key).exists()
    }
    for (method, level, seed), key in todo:
        record = train_run(
            recipe, ids, len(vocabulary), method, level, seed, verbose=verbose,
            model_path=store.model_path(key) if save_models else None,
            checkpoint=store.checkpoint_path(key), restore=held.get(key),
        )
        record["finished"] = time.time()
        store.save(record)
        store.checkpoint_path(key).unlink(missing_ok=True)
        store.write_results(summarize(store.records()))
    summary = summarize(store.records())
    store.write_results(summary)
    return summary


def _finite(value):
    return float(value) if value is not None and math.isfinite(value) else None
