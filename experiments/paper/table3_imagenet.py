"""Table 3 of the paper: SGD against S-SGD (noise level 0.25) for ResNet-18
and ResNet-50 on ImageNet, top-1 and top-5 accuracy.

The paper's recipe (Section 5.1): batch 1024 (128 on each of 8 Cloud TPU
cores), 90 epochs, "learning rate scheduling from (Ying et al., 2018)",
S-SGD noise level 0.25, the mean of three runs. The rest is not in the
paper; it is Ying et al.'s Cloud TPU ResNet reference recipe, used here:
learning rate 0.1 per 256 images (0.4 at batch 1024), reached linearly from
0 over the first 5 epochs, divided by 10 at epochs 30, 60 and 80; SGD with
momentum 0.9; weight decay 1e-4 (an L2 penalty on the convolution and dense
weights, not on BatchNorm); the Inception-style random crop to 224 and a
horizontal flip for training, resize to 256 and a central 224 crop for
evaluation (`keras_ssgd.data.load_imagenet`). The models are keras-cv's
ResNet v1 backbones with a dense head (`keras_ssgd.models.imagenet_resnet`).
Both methods of a seed start from the same weights and see the same data
order. The test set is ImageNet's 50,000-image validation set.

Each (model, method, seed) run writes `runs/<key>.json` under `--output`
when it ends and checkpoints every epoch (`runs/<key>.checkpoint.npz`, as
`ssgd-train` does: `keras_ssgd.checkpoint`): run the same command again to
continue after an interruption. A continued run keeps the history of its
earlier epochs; ImageNet's `tf.data` order is not held, so it continues
correctly but not bit for bit, and its record says `resumed`. At the end
`table3.md` sets the measured means next to the paper's numbers and
`results.json` holds every run.

    python experiments/paper/table3_imagenet.py --manual-dir /data/imagenet
    python experiments/paper/table3_imagenet.py --models resnet18 --data-dir /data/tfds
    python experiments/paper/table3_imagenet.py --smoke        # mock data, seconds

ImageNet cannot be downloaded automatically: `--manual-dir` must hold
ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar from image-net.org (the
first run converts them into `--data-dir`, several hours), unless
`--data-dir` already holds tensorflow-datasets' prepared `imagenet2012`.
"""

import argparse
import json
import math
import os
import pathlib
import statistics
import sys
import tempfile
import time

# Before TensorFlow loads (through Keras): no C++ start-up log lines.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

# The paper's Table 3: model -> {method: (top-1, top-5)}, mean of 3 runs.
PAPER = {
    "resnet18": {"sgd": (70.24, 89.43), "ssgd": (70.42, 89.57)},
    "resnet50": {"sgd": (76.11, 93.04), "ssgd": (76.38, 93.13)},
}
DEPTHS = {"resnet18": 18, "resnet50": 50}
# The paper (batch, epochs, noise level, runs) and Ying et al.'s reference
# recipe (the rest), as described above.
RECIPE = {
    "batch_size": 1024,
    "epochs": 90,
    "noise_level": 0.25,
    "seeds": 3,
    "lr_per_256_images": 0.1,
    "warmup_epochs": 5,
    "drop_epochs": [30, 60, 80],
    "drop_factor": 0.1,
    "momentum": 0.9,
    "weight_decay": 1e-4,
    "image_size": 224,
}
# --smoke: the whole pipeline on tfds mock data, tiny images, a few steps.
SMOKE = {"examples": 8, "batch_size": 4, "epochs": 1, "image_size": 32,
         "models": ["resnet18"], "seeds": 1}


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be an int > 0. Received: {text!r}")
    return value


def _level(text):
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(
            f"must be a finite number >= 0. Received: {text!r}")
    return value


def parse(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("--models", nargs="+", choices=list(PAPER), default=None,
                        help="Models of Table 3 to run (default: both; "
                        "resnet18 with --smoke).")
    parser.add_argument("--seeds", type=_positive_int, default=None,
                        help="Runs per point, seeds 0..N-1 (default: 3, the paper's; 1 "
                        "with --smoke).")
    parser.add_argument("--epochs", type=_positive_int, default=None,
                        help="Epochs (default: 90, the paper's). The warm-up and the drops "
                        "scale with it: 5/90, 30/90, 60/90 and 80/90 of it.")
    parser.add_argument("--batch-size", type=_positive_int, default=None,
                        help="Global batch (default: 1024, the paper's). The learning rate "
                        "is 0.1 per 256 images of it.")
    parser.add_argument("--noise-level", type=_level, default=RECIPE["noise_level"],
                        help="S-SGD noise level (default: 0.25, the paper's).")
    parser.add_argument("--data-dir", default=None,
                        help="tensorflow-datasets' data folder, where the "
                        "prepared imagenet2012 is or will be (default: "
                        "$TFDS_DATA_DIR or ~/tensorflow_datasets).")
    parser.add_argument("--manual-dir", default=None,
                        help="Folder holding ILSVRC2012_img_train.tar and "
                        "ILSVRC2012_img_val.tar, needed until the data are "
                        "prepared (default: <data-dir>/downloads/manual).")
    parser.add_argument("--image-size", type=_positive_int, default=None,
                        help="Side of the training and test crops (default: 224; "
                        "32 with --smoke).")
    parser.add_argument("--mirrored", action="store_true",
                        help="Train on all local GPUs with "
                        "tf.distribute.MirroredStrategy (BatchNorm statistics "
                        "per device, as on the paper's TPU cores).")
    parser.add_argument("--no-save-weights", action="store_true",
                        help="Do not save each trained model's weights "
                        "(runs/<key>.weights.h5).")
    parser.add_argument("--output", default=None,
                        help="Results folder (default: results/table3, or "
                        "results/table3-smoke with --smoke).")
    parser.add_argument("--smoke", action="store_true",
                        help="Run the whole pipeline on tensorflow-datasets' "
                        "mock data (random images), 32x32 crops, batch 4, one "
                        "epoch, eagerly: a check that everything runs, not a "
                        "result.")
    parser.add_argument("--quiet", action="store_true", help="No progress bars.")
    args = parser.parse_args(argv)
    base = SMOKE if args.smoke else RECIPE
    args.models = args.models or (SMOKE["models"] if args.smoke else list(PAPER))
    args.seeds = args.seeds or base["seeds"]
    args.epochs = args.epochs or base["epochs"]
    args.batch_size = args.batch_size or base["batch_size"]
    args.image_size = args.image_size or base["image_size"]
    args.output = args.output or ("results/table3-smoke" if args.smoke else "results/table3")
    return args


def main(argv=None):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = parse(argv)
    if not args.smoke:
        return _run_all(args)
    import tensorflow_datasets as tfds

    # Mock data need the manual folder's two files to exist (empty is
    # enough: the mock never opens them).
    with tempfile.TemporaryDirectory() as folder:
        manual = pathlib.Path(folder, "manual")
        manual.mkdir()
        for name in ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar"):
            (manual / name).touch()
        args.data_dir, args.manual_dir = folder, str(manual)
        with tfds.testing.mock_data(
            num_examples=SMOKE["examples"], policy=tfds.testing.MockPolicy.USE_CODE
        ):
            return _run_all(args)


def _run_all(args):
    from keras_ssgd import checkpoint
    from keras_ssgd import store

    root = pathlib.Path(args.output)
    (root / "runs").mkdir(parents=True, exist_ok=True)
    # Finished runs are reused only under the same recipe.
    recipe = {k: v for k, v in _recipe(args).items() if k not in ("models", "seeds")}
    recipe["smoke"] = args.smoke
    stored = root / "config.json"
    if stored.exists() and json.loads(stored.read_text()) != recipe:
        print(f"table3_imagenet.py: error: {root} holds runs of another recipe "
              f"({stored}); choose another --output. Received: {recipe}",
              file=sys.stderr)
        return 2
    stored.write_text(json.dumps(recipe, indent=1))
    records = []
    for model in args.models:
        for seed in range(args.seeds):
            for method in ("sgd", "ssgd"):
                level = f"-{args.noise_level:g}" if method == "ssgd" else ""
                key = f"{model}-{method}{level}-seed{seed}"
                path = root / "runs" / f"{key}.json"
                if path.exists():
                    records.append(json.loads(path.read_text()))
                    continue
                print(f"\n{key}", flush=True)
                try:
                    record = train(args, model, method, seed, key, root, recipe)
                except (FileNotFoundError, store.StoreError) as error:
                    print(f"table3_imagenet.py: error: {error}", file=sys.stderr)
                    return 2
                store.atomic_write_text(path, json.dumps(record, indent=1))
                # The run is finished: its checkpoint goes.
                (root / "runs" / f"{key}{checkpoint.SUFFIX}").unlink(
                    missing_ok=True)
                records.append(record)
                print(f"  {key}: {_describe(record)}", flush=True)
    rows = summarize(records, args.noise_level)
    table = table_markdown(rows, args)
    store.atomic_write_text(root / "results.json", json.dumps(
        {"recipe": _recipe(args), "smoke": args.smoke, "summary": rows,
         "runs": records}, indent=1))
    store.atomic_write_text(root / "table3.md", table)
    print("\n" + table)
    return 0


def train(args, model_name, method, seed, key, root, recipe):
    """One run; returns its record (JSON-ready)."""
    import tensorflow as tf

    import keras_ssgd
    from keras_ssgd import checkpoint
    from keras_ssgd.data import load_imagenet
    from keras_ssgd.models import imagenet_resnet

    keras.utils.set_random_seed(seed)
    data = load_imagenet(
        batch_size=args.batch_size, seed=seed, data_dir=args.data_dir,
        manual_dir=args.manual_dir, image_size=args.image_size,
    )
    steps = data.steps_per_epoch
    scale = args.epochs / RECIPE["epochs"]
    schedule = WarmupStepDecay(
        peak=RECIPE["lr_per_256_images"] * args.batch_size / 256,
        warmup_steps=round(RECIPE["warmup_epochs"] * scale * steps),
        boundaries=[round(e * scale * steps) for e in RECIPE["drop_epochs"]],
        factor=RECIPE["drop_factor"],
    )
    strategy = tf.distribute.MirroredStrategy() if args.mirrored else tf.distribute.get_strategy()
    with strategy.scope():
        # The same seed gives both methods the same initial weights.
        keras.utils.set_random_seed(seed)
        base = imagenet_resnet(
            DEPTHS[model_name], classes=data.num_classes, input_shape=data.input_shape,
            weight_decay=RECIPE["weight_decay"],
        )
        model = base if method == "sgd" else keras_ssgd.wrap(
            base, noise_level=args.noise_level, seed=seed)
        model.compile(
            optimizer=keras.optimizers.SGD(schedule, momentum=RECIPE["momentum"]),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=[keras.metrics.SparseCategoricalAccuracy(name="top1"),
                     keras.metrics.SparseTopKCategoricalAccuracy(5, name="top5")],
            # A smoke run's few steps would be mostly graph tracing.
            run_eagerly=args.smoke,
        )
    saved = root / "runs" / f"{key}{checkpoint.SUFFIX}"
    restore = None
    if saved.exists():
        restore = checkpoint.read(saved, key, lambda old: "" if old == recipe
                                  else "the recipe differs")
    saving = checkpoint.Checkpointing(saved, key, recipe, restore=restore)
    callbacks = [keras.callbacks.TerminateOnNaN(), saving]
    start = time.perf_counter()
    history = model.fit(data.train, epochs=args.epochs, callbacks=callbacks,
                        verbose=0 if args.quiet else 1,
                        initial_epoch=0 if restore is None else restore.epoch,
                        shuffle=False)  # the pipeline reshuffles per epoch
    seconds = time.perf_counter() - start
    logged = saving.history
    losses = logged.get("loss", [])
    record = {
        "key": key, "model": model_name, "method": method,
        "noise_level": args.noise_level if method == "ssgd" else None,
        "seed": seed, "epochs_run": len(losses), "seconds": seconds,
        "devices": [d.name for d in tf.config.list_logical_devices()],
        "history": {k: [float(x) for x in v] for k, v in logged.items()},
        **({"resumed": saving.resumed} if saving.resumed else {}),
    }
    if not losses or not all(math.isfinite(x) for x in losses):
        record.update(status="diverged", top1=None, top5=None, test_loss=None)
        return record
    result = model.evaluate(data.test, verbose=0, return_dict=True)
    record.update(status="ok", top1=100.0 * float(result["top1"]),
                  top5=100.0 * float(result["top5"]), test_loss=float(result["loss"]))
    if not (args.no_save_weights or args.smoke):
        weights = root / "runs" / f"{key}.weights.h5"
        base.save_weights(weights)
        record["weights_file"] = str(weights)
    return record


def summarize(records, noise_level):
    """Mean and standard deviation of top-1 / top-5 per (model, method)."""
    rows = []
    for model in PAPER:
        for method in ("sgd", "ssgd"):
            runs = [r for r in records if r["model"] == model and r["method"] == method
                    and (method == "sgd" or r["noise_level"] == noise_level)]
            if not runs:
                continue
            ok = [r for r in runs if r["status"] == "ok"]
            row = {"model": model, "method": method, "runs": len(ok),
                   "diverged": len(runs) - len(ok),
                   "noise_level": noise_level if method == "ssgd" else None}
            for metric in ("top1", "top5"):
                values = [r[metric] for r in ok]
                row[f"{metric}_mean"] = statistics.fmean(values) if values else None
                row[f"{metric}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
            rows.append(row)
    return rows


def table_markdown(rows, args):
    """The measured numbers next to the paper's, as a markdown table."""
    lines = []
    if args.smoke:
        lines += [("Smoke run on random mock images: the numbers below check "
                   "the pipeline and mean nothing."), ""]
    lines += [("| model | method | top-1 measured | top-5 measured | top-1 paper "
               "| top-5 paper |"), "|---|---|---|---|---|---|"]
    for row in rows:
        paper_top1, paper_top5 = PAPER[row["model"]][row["method"]]
        if row["method"] == "ssgd" and row["noise_level"] != RECIPE["noise_level"]:
            paper_top1 = paper_top5 = "-"  # the paper has only 0.25
        label = "SGD" if row["method"] == "sgd" else f"S-SGD ({row['noise_level']:g})"
        cells = [
            "diverged" if row[f"{m}_mean"] is None
            else f"{row[f'{m}_mean']:.2f} +- {row[f'{m}_std']:.2f} ({row['runs']})"
            for m in ("top1", "top5")
        ]
        lines.append(f"| {row['model']} | {label} | {cells[0]} | {cells[1]} "
                     f"| {paper_top1} | {paper_top5} |")
    drops = ", ".join(f"{e * args.epochs / RECIPE['epochs']:g}"
                      for e in RECIPE["drop_epochs"])
    lines.append("")
    lines.append(
        f"Recipe: {args.epochs} epochs, batch {args.batch_size}, images "
        f"{args.image_size}x{args.image_size}, lr "
        f"{RECIPE['lr_per_256_images'] * args.batch_size / 256:g} after a "
        f"linear warm-up, /10 at epochs {drops}, momentum "
        f"{RECIPE['momentum']}, weight decay {RECIPE['weight_decay']:g}."
    )
    return "\n".join(lines) + "\n"


def _recipe(args):
    recipe = dict(RECIPE)
    recipe.update(batch_size=args.batch_size, epochs=args.epochs,
                  noise_level=args.noise_level, seeds=args.seeds,
                  image_size=args.image_size, models=args.models)
    return recipe


def _describe(record):
    if record["status"] != "ok":
        return "diverged"
    return (f"top-1 {record['top1']:.2f}%, top-5 {record['top5']:.2f}% "
            f"({record['seconds']:.0f} s)")


class WarmupStepDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from 0 to `peak` over `warmup_steps`, then `peak`
    times `factor` after each of `boundaries` (Keras's
    `PiecewiseConstantDecay`: the drop applies from the step after the
    boundary): the Cloud TPU ResNet schedule.

    Args:
        peak: float. The rate at the end of the warm-up.
        warmup_steps: int >= 0.
        boundaries: list of ints, the steps of the drops.
        factor: float. Defaults to `0.1`.

    Example:

    >>> schedule = WarmupStepDecay(0.4, 5 * 1251, [30 * 1251, 60 * 1251, 80 * 1251])

    Reference:
    - Goyal et al. 2017, Section 2.2 (gradual warm-up); Ying et al. 2018.
    """

    def __init__(self, peak, warmup_steps, boundaries, factor=0.1):
        self.peak = float(peak)
        self.warmup_steps = int(warmup_steps)
        self.boundaries = [int(b) for b in boundaries]
        self.factor = float(factor)
        self.steps = keras.optimizers.schedules.PiecewiseConstantDecay(
            self.boundaries,
            [self.peak * self.factor**i for i in range(len(self.boundaries) + 1)],
        )

    def __call__(self, step):
        from keras import ops

        step = ops.cast(step, "float32")
        decayed = ops.cast(self.steps(step), "float32")
        if not self.warmup_steps:
            return decayed
        warm = self.peak * step / self.warmup_steps
        return ops.where(step < self.warmup_steps, warm, decayed)

    def get_config(self):
        return {"peak": self.peak, "warmup_steps": self.warmup_steps,
                "boundaries": self.boundaries, "factor": self.factor}


if __name__ == "__main__":
    sys.exit(main())
