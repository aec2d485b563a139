"""`keras_ssgd.compare`: the Python form of `ssgd-train`.

`compare()` checks its arguments (`plan.make_plan`), then `sweep()` trains
the runs and writes the run folder; `ssgd-train` turns its options into
the same Python values and runs the same two steps (with signals and the
distributed engines on top).
"""

import dataclasses
import datetime
import json
import os
import pathlib
import sys
import time


@dataclasses.dataclass
class Comparison:
    """What a sweep produced.

    Attributes:
        folder: `pathlib.Path`, the run folder.
        rows: the summary, one dict per method and level
            (`report.summarize`).
        verdicts: one dict per method and level against SGD
            (`verdict.verdicts`), each with its sentence in `text`.
        results: the content of `results.json` (a JSON-ready dict).
        plot_path: `pathlib.Path` of `accuracy.png`, or None when no run
            finished.
    """

    folder: pathlib.Path
    rows: list
    verdicts: list
    results: dict
    plot_path: pathlib.Path = None

    @property
    def table(self):
        """The summary table, Markdown (readable on a terminal too)."""
        from keras_ssgd.train import report

        return "\n".join(report.table(self.rows))

    def __str__(self):
        from keras_ssgd.train import report

        recipe = self.results.get("config", {}).get("recipe", {})
        lines = [report.budget_line(recipe), "", self.table]
        if self.verdicts:
            from keras_ssgd.train import verdict

            lines += ["", verdict.explanation()]
            lines += [f"  {v['text']}" for v in self.verdicts]
        return "\n".join(lines)


def default_output():
    """`results/<date-time>`."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return os.path.join("results", stamp)


def sweep(config, specs, output, resume=False, verbose=0, distribution=None,
          builder=None, arrays=None, log=print, required=(), progress=None,
          primary=None, tensorboard=False, checkpoint_every=None):
    """Trains the runs of `specs` not already in `output`; a `Comparison`.

    The run folder holds one record per finished run (see `store`); the
    table, the verdicts, `results.json`, `summary.md`, `accuracy.png`
    (test accuracy against level) and `curves.png` (each method's pick's
    learning curves, mean and band over seeds) cover every run in it. On `KeyboardInterrupt` (or any other
    `BaseException` that is not an `Exception`, such as the command's
    SIGTERM) the files are written for the finished runs, then the
    exception propagates.

    Args:
        config: `runner.Config`, the recipe.
        specs: list of `runner.RunSpec`.
        output: str or path, the run folder.
        resume: bool. Continue or extend a folder with the same recipe;
            a run stopped in progress continues from its checkpoint
            (`runs/<key>.checkpoint.npz`, written at the end of every
            epoch and removed once the run's record is written).
        verbose: int, Keras's `fit` verbosity.
        distribution: a `distribution` object, or None (one device).
        builder: the model builder, if not the one `config.model` names.
        arrays: `data.arrays.Arrays`, if not the data `config.dataset`
            names.
        log: function of one string, for the header line.
        required: the fields every stored record must hold.
        progress: a file for the progress line of each run
            (`progress.SweepProgress`: rewritten in place on a terminal,
            one line per finished run elsewhere), or None for none.
        primary: the method of the primary comparison (`verdict.verdicts`),
            or None for the first method other than SGD in `specs`.
        tensorboard: bool. Write each run's TensorBoard logs to
            `output/tensorboard/<run key>/`
            (`tensorboard_logs.tensorboard_callbacks`).
        checkpoint_every: int or None. Also checkpoint a run in progress
            after every that many batches of an epoch
            (`runner.train`).

    Raises:
        store.StoreError: the folder cannot be used.
    """
    from keras_ssgd.train import report
    from keras_ssgd.train import runner
    from keras_ssgd.train import tensorboard_logs
    from keras_ssgd.train import verdict as verdict_lib
    from keras_ssgd.train.registry import METHODS
    from keras_ssgd.store import RunStore
    from keras_ssgd.store import atomic_write_text

    if tensorboard:
        tensorboard_logs.require_tensorboard()
    plan = {"recipe": config.to_json(), "runs": [spec.key for spec in specs]}
    store = RunStore(output, plan, resume=resume,
                     defaults=runner.Config.defaults(), required=required)
    done = store.done()
    todo = [spec for spec in specs if spec.key not in done]
    # The runs in progress when the last invocation stopped, each checked
    # before any training (a damaged checkpoint is refused, naming it).
    restores = (_checkpoints(store, todo, done,
                             1 if distribution is None else distribution.size)
                if resume else {})
    # The plan's order (ties between configurations go to the first): the
    # runs of this invocation, then those of earlier ones in the folder.
    order = list(store.config.get("runs", []))
    if primary is None:
        primary = next((s.method for s in specs
                        if s.method != verdict_lib.REFERENCE), None)

    def summarize(records):
        return (report.summarize(records, METHODS, order),
                verdict_lib.verdicts(records, primary=primary, order=order))

    log(
        f"ssgd-train: {config.dataset}, {config.model}, {config.epochs} "
        f"epochs, batch {config.batch_size}, {config.optimizer} lr "
        f"{config.lr:g} ({config.lr_schedule}"
        f"{', phases ' + config.phases if config.phases else ''}); "
        f"{len(specs)} runs, {len(specs) - len(todo)} already done"
        f"{f', {len(restores)} to continue' if restores else ''}; "
        f"results in {store.folder}"
    )

    def finish():
        rows, verdicts = summarize(store.records())
        store.write_results(rows, verdicts)
        atomic_write_text(
            store.folder / "summary.md",
            report.summary_markdown(config.to_json(), rows, verdicts),
        )
        paths = draw(store.folder, rows, verdicts, store.records(), order,
                     title=f"{config.dataset}, {config.model}")
        plot_path = paths[0] if paths else None
        results = json.loads(
            (store.folder / "results.json").read_text(encoding="utf-8")
        )
        return Comparison(store.folder, rows, verdicts, results, plot_path)

    bar = None
    if progress is not None:
        from keras_ssgd.train.progress import SweepProgress

        bar = SweepProgress(
            todo, [spec.epochs_of(config) for spec in todo], stream=progress,
            costs=[runner.passes_per_step(METHODS[spec.method],
                                          config.phase_plan, config.every)
                   for spec in todo],
            # Keras's own bars (verbose 1) would break a line in place.
            in_place=False if verbose else None,
        )
    try:
        for i, spec in enumerate(todo):
            record = runner.train(
                config, spec, verbose=verbose,
                model_path=store.model_path(spec.key),
                distribution=distribution, builder=builder, arrays=arrays,
                extra_callbacks=([bar.start(i, _first_epoch(restores, spec))]
                                 if bar else []),
                logging_callbacks=(
                    tensorboard_logs.tensorboard_callbacks(
                        store.folder / "tensorboard" / spec.key, config, spec)
                    if tensorboard else []),
                checkpoint=store.checkpoint_path(spec.key),
                restore=restores.get(spec.key),
                checkpoint_every=checkpoint_every,
            )
            record["finished"] = time.time()
            store.save(record)
            # The record is written: the run in progress is no more.
            store.checkpoint_path(spec.key).unlink(missing_ok=True)
            store.write_results(*summarize(store.records()))
            if bar is not None:
                bar.finish(i, record)
    except Exception:
        raise
    except BaseException:  # Ctrl-C, SIGTERM: keep what is finished
        finish()
        raise
    return finish()


def _first_epoch(restores, spec):
    """The epoch run `spec` starts at: its checkpoint's, else 0."""
    held = restores.get(spec.key)
    return 0 if held is None else held.epoch


def _checkpoints(store, todo, done, workers=1):
    """`{key: checkpoint.State}` of the runs of `todo` stopped in progress
    (`train.checkpoint`); the checkpoints of finished runs (left by a stop
    between a record and its checkpoint's removal) are removed."""
    from keras_ssgd import checkpoint

    for key in done:
        store.checkpoint_path(key).unlink(missing_ok=True)
    return {
        spec.key: checkpoint.read(store.checkpoint_path(spec.key), spec.key,
                                  store.recipe_changes, workers=workers)
        for spec in todo if store.checkpoint_path(spec.key).exists()
    }


def draw(folder, rows, verdicts, records, order, title):
    """Draws a run folder's plots: `accuracy.png` (test accuracy against
    level, with the verdicts) and `curves.png` (the learning curves of each
    method's pick), each written atomically. Returns the paths written
    (none without a finished run)."""
    from keras_ssgd.store import atomic_path
    from keras_ssgd.train import report

    folder = pathlib.Path(folder)
    if not rows:
        return []
    paths = [folder / "accuracy.png"]
    with atomic_path(paths[0]) as tmp:
        report.plot(rows, tmp, title=title, verdicts=verdicts)
    if report.curve_picks(records, order):
        paths.append(folder / "curves.png")
        with atomic_path(paths[1]) as tmp:
            report.plot_curves(records, tmp, order=order, title=title)
    return paths


def replot(folder):
    """Redraws the plots of a run folder from its `results.json` (its
    summary, verdicts and records), training nothing; returns the paths
    written.

    Raises:
        store.StoreError: the folder has no readable `results.json`.
    """
    from keras_ssgd.store import StoreError

    path = pathlib.Path(folder) / "results.json"
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
        recipe = results["config"]["recipe"]
        rows, records = results["summary"], results["runs"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        text = (f"{path} is not a finished run folder's results "
                f"({type(error).__name__}: {error})")
        raise StoreError(lambda words: text) from None
    return draw(folder, rows, results.get("verdicts"), records,
                results["config"].get("runs", []),
                title=f"{recipe['dataset']}, {recipe['model']}")


def compare(build_model, data, methods=None, seeds=3,
            epochs=None, noise_levels=None, output=None, resume=False,
            verbose=0, *, batch_size=None, lr=None, optimizer="sgd",
            momentum=0.9, lr_schedule=None, lr_drops=None, phases=None,
            steps_per_execution=None, noise_filter=None,
            eval_every_epoch=False, hessian_iterations=20, data_dir=None,
            validation_split=0.0, budget="epochs", every=5, weight_decay=0.0,
            primary=None, checkpoint_every=None):
    """Trains methods on a model and data, several seeds each; compares them.

    Every method starts, per seed, from the same initial weights and sees
    the same data order (reshuffled each epoch from the seed). The result
    holds the table (mean and spread of validation and test accuracy per
    configuration) and, for each method's pick (its configuration with
    the best mean validation accuracy), the verdict against SGD's pick:
    the per-seed paired difference of test accuracy, its mean, a Student t
    interval with n - 1 degrees of freedom, and the seeds on which it was
    better; the first method's line is primary (95%, unadjusted), the
    others are adjusted together (Holm); "no difference shown" when the
    interval contains 0 or only one seed ran.
    The run folder gets `results.json`, `summary.md`, `accuracy.png` and
    one record and model per run, as with `ssgd-train`.

    Args:
        build_model: a builder `build(input_shape, num_classes,
            dropout=0.0) -> keras.Model` giving `num_classes` logits, or
            the name of one (`"mlp"`, `"mnist1d-cnn-bn"`, ...,
            `"package.module:function"`).
        data: a dataset name (`"mnist1d"`, `"cifar10"`, ...), a path to a
            `.npz`, `"package.module:function"`, `"tfds:NAME"` (see
            `keras_ssgd.data.arrays`), or the arrays themselves: a dict
            with `x_train`, `y_train`, `x_test`, `y_test` (and optionally
            `num_classes`), or `((x_train, y_train), (x_test, y_test))`.
            A `"package.module:function"` may return dataset objects
            instead (`keras_ssgd.data.objects`: `PyDataset`s, or
            `tf.data.Dataset`s on TensorFlow); it is called again for each
            run, and their order is the user's (`data_order: "user"`).
        methods: method names, `"name:level,level@lr,lr"` strings (levels
            and learning rates of the method's own), `(name, levels)`
            pairs or `(name, levels, lrs)` triples (see `ssgd-train
            --help`). Defaults to SGD and S-SGD. A method given several
            configurations (levels times learning rates) is run at each;
            its pick, the one with the best mean validation accuracy, is
            what the verdicts compare, so several configurations need a
            validation set (built into MNIST-1D, CIFAR and ImageNet; the
            user's arrays need `validation_split`).
        seeds: int N (seeds 0 .. N-1), a range string `"10-14"`, or an
            iterable of seeds. Defaults to `3`.
        epochs: int, or None for the data's recipe.
        noise_levels: levels for the methods without their own.
        output: the run folder; default `results/<date-time>`.
        resume: bool. Continue or extend `output` (same recipe): finished
            runs are skipped, a run stopped in progress continues from its
            checkpoint (the end of its last finished epoch, or with
            `checkpoint_every` its last checkpoint within an epoch) to the
            result it would have had, and the results of all runs
            combine.
        verbose: 0 silent; 1 a progress line per run (run i of N,
            method, level, seed, epoch, loss, accuracy, time left for the
            run and the sweep), rewritten in place on a terminal, one line
            per finished run elsewhere (a log, a notebook); 2 Keras's
            progress bars too. Defaults to `0`.
        batch_size: int > 0, or None for the data's recipe (100 for
            MNIST-1D, 128 for CIFAR and the user's arrays).
        lr: float > 0, the initial learning rate, or a list of them (a
            grid every method without rates of its own is run at: see
            `methods`), or None for the recipe's.
        optimizer: `"sgd"` (with `momentum`) or `"adam"`. Defaults to
            `"sgd"`.
        momentum: float in [0, 1). Defaults to `0.9`.
        lr_schedule: `"cosine"`, `"step"`, `"sgdr"`, `"constant"`, or
            None for the recipe's.
        lr_drops: epochs of the /10 drops of the step schedule, or None.
        phases: a Table 1 phase plan such as `"75-25S-25S"`, or None.
        steps_per_execution: int > 0, or None for the recipe's.
        noise_filter: which variables the perturbation methods perturb
            (`"kernels"`, `"conv_kernels"`, `"dense_kernels"`,
            `"recurrent_kernels"`, `"all_trainable"`), or None for each
            method's own.
        eval_every_epoch: bool. Evaluate the test (or validation) set
            after every epoch. Defaults to `False`.
        hessian_iterations: int >= 0, Lanczos vectors (ARPACK's `ncv`)
            for the top Hessian eigenvalue of each final model (0 skips
            it). Defaults to `20`.
        data_dir: the tensorflow-datasets folder, with `data="tfds:NAME"`.
        validation_split: float in [0, 1): with the user's arrays, the
            last fraction of the training set held out. Defaults to `0.0`.
        budget: what every method gets the same of: `"epochs"` (the
            default; S-SGD and SAM then cost twice SGD), `"passes"`
            (forward/backward passes: each method trains
            `round(epochs * most / passes)` epochs, `most` the passes per
            step of the costliest method compared, so a one-pass method
            beside S-SGD trains twice the epochs, its learning-rate
            schedule stretched, not cut), or `"both"` (the runs of both,
            a verdict at each). Not with `phases`.
        every: int > 0, the `k` of the every-k methods (`"ssgd-every"`,
            `"sam-every"`: the method on one step in `k`). Defaults to `5`.
        weight_decay: float >= 0, Keras's decoupled weight decay of the
            optimizer (0: none). Refused for a model that adds its own
            penalty (the ImageNet ResNets). Defaults to `0.0`.
        primary: the method of the primary comparison, read unadjusted
            against SGD at equal epochs; every other verdict line is
            adjusted for multiple comparisons (Holm). Defaults to the
            first method other than SGD.
        checkpoint_every: int or None. With `output`, also checkpoint the
            run in progress after every that many batches of an epoch (a
            multiple of `steps_per_execution`), so that
            `resume=True` continues from there; MNIST-1D and in-memory
            arrays. Defaults to the end of every epoch only.
            (`ssgd-train`'s options are these arguments, with dashes.)

    Returns:
        A `Comparison`: `table`, `verdicts`, `rows`, `results` (the JSON),
        `plot_path` and `folder`; `str()` of it is the table and the
        verdicts.

    Raises:
        ValueError: an argument is not usable (the message names it), the
            data or model cannot be used, or `output` cannot be used.

    Example:

    Your own arrays (here small random ones, so it runs in seconds; a
    real comparison takes 5 seeds or more and the full training):

    ```python
    import numpy as np

    import keras_ssgd

    rng = np.random.default_rng(0)
    data = {
        "x_train": rng.normal(size=(200, 8)),
        "y_train": rng.integers(0, 3, size=200),
        "x_test": rng.normal(size=(100, 8)),
        "y_test": rng.integers(0, 3, size=100),
    }
    result = keras_ssgd.compare(
        "mlp", data, methods=["sgd", "ssgd:0.2"], seeds=2, epochs=1,
        hessian_iterations=0, output="results/mlp",
    )
    print(result)  # the table, then one verdict per method and level:
    # ssgd 0.2 vs sgd: <mean> pt [<low>, <high>], better on <k> of 2 seeds: ...
    assert len(result.verdicts) == 1
    ```

    The same on MNIST-1D: `keras_ssgd.compare("mlp", "mnist1d",
    methods=["sgd", "ssgd:0.2"], seeds=5, epochs=20)`.

    Reference:
    - Sung et al., "S-SGD: Symmetrical Stochastic Gradient Descent with
      Weight Noise Injection for Reaching Flat Minima".
    - Student's paired t interval for the verdict (`keras_ssgd.train.verdict`).
    """
    from keras_ssgd.store import StoreError
    from keras_ssgd.train import checks
    from keras_ssgd.train import plan
    from keras_ssgd.train import report

    # This function's own arguments; `make_plan` checks the comparison's.
    checks.boolean(resume, "resume")
    if isinstance(verbose, bool) or verbose not in (0, 1, 2):
        raise checks.ArgumentError("verbose", "must be 0, 1 or 2", verbose)
    if output is not None and not isinstance(output, (str, os.PathLike)):
        raise checks.ArgumentError("output", "must be a folder (a str or a "
                                   "path) or None", output)
    if output is None and resume:
        raise checks.ArgumentError("resume", "needs `output`, the folder of "
                                   "the run to continue", resume)
    config, specs, builder, arrays = plan.make_plan(
        build_model, data, methods=methods, seeds=seeds, epochs=epochs,
        noise_levels=noise_levels, batch_size=batch_size, lr=lr,
        optimizer=optimizer, momentum=momentum, lr_schedule=lr_schedule,
        lr_drops=lr_drops, phases=phases,
        steps_per_execution=steps_per_execution, noise_filter=noise_filter,
        eval_every_epoch=eval_every_epoch,
        hessian_iterations=hessian_iterations, data_dir=data_dir,
        validation_split=validation_split, budget=budget, every=every,
        weight_decay=weight_decay,
    )
    primary = plan.check_primary(primary, specs)
    checkpoint_every = plan.check_checkpoint_every(checkpoint_every, config)
    if output is None:
        output = default_output()
    log = print if verbose else (lambda text: None)
    try:
        return sweep(
            config, specs, output, resume=resume, verbose=max(verbose - 1, 0),
            builder=builder, arrays=arrays, log=log,
            required=report.RECORD_FIELDS,
            progress=sys.stdout if verbose else None, primary=primary,
            checkpoint_every=checkpoint_every,
        )
    except StoreError as error:
        # A run folder's error in this function's arguments.
        raise ValueError(
            error.worded(resume="resume=True", output="output")
        ) from None
