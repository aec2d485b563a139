"""Table 4 of the paper: Adam against S-SGD Adam for the Simple Gated ConvNet.

The paper's recipe (Section 5.2): the SGCN of Lee et al. (2019), 12 layers
of 190 or 300 units, 1-D depthwise ("time-depth") convolutions and gated
linear units, a character CTC loss, trained on WSJ si-284 with Adam and
with S-SGD Adam; word error rate with greedy decoding. It states no learning
rate, batch size, epoch count, noise level, features or test set; this
script's defaults for those are choices, not the paper's: Adam at 1e-3,
batch 32, 50 epochs, noise level 0.25 on every kernel (the level the paper
uses for ImageNet), 40 log-mel energies with their first and second
differences, the test split given by `--test-split` (eval92 by convention).
The model's parameter counts differ from the paper's (see
`keras_ssgd.tasks.speech.sgcn`).

Every (units, method, seed) run starts from the same initial weights for
both methods and sees its data reshuffled every epoch. After each epoch the
greedy-decoding WER and CER on the test split are logged (`--eval-every`);
the table reports the WER of the final weights. Runs are written to
`OUTPUT/runs/*.json` as they finish and skipped when the command is run
again (resume); `table4.md` sets the measured WER next to the paper's,
`table4.json` holds the recipe and every run's history.

    python experiments/paper/table4_sgcn.py --data-dir /data/wsj-fbank \\
        --train-split si284 --test-split eval92
    python experiments/paper/table4_sgcn.py --data librispeech      # tfds, downloads
    python experiments/paper/table4_sgcn.py --smoke      # generated features, seconds

WSJ is licensed (LDC93S6B, LDC94S13B) and not in tensorflow-datasets: give
it as features on disk, one `ID.npy` of float32 `(frames, features)` per
utterance plus a `transcripts.txt` of "ID words" lines in each split folder
(see `keras_ssgd.tasks.speech.data`).
"""

import argparse
import json
import pathlib
import sys
import time

# Table 4: units -> (stated parameters, Adam WER, S-SGD Adam WER).
PAPER = {190: ("1.09M", 21.66, 19.90), 300: ("2.24M", 18.30, 16.87)}
METHODS = ("adam", "ssgd")
SMOKE_WORDS = ("the", "cat", "sat", "on", "a", "mat", "dog", "ran")


def parse(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--data", choices=["folder", "librispeech"], default="folder",
                        help="Features on disk under --data-dir (WSJ), or LibriSpeech "
                        "through tensorflow-datasets.")
    parser.add_argument("--data-dir", default="data/wsj",
                        help="With --data folder: the folder of split sub-folders "
                        "(transcripts.txt + ID.npy). With --data librispeech: the "
                        "tensorflow-datasets data folder (default ~/tensorflow_datasets "
                        "if this one does not exist).")
    parser.add_argument("--train-split", default=None,
                        help="Training split (default: 'train' for a folder, "
                        "'train_clean100' for LibriSpeech; WSJ: si284).")
    parser.add_argument("--test-split", default=None,
                        help="Split decoded for the WER (default: 'test' for a folder, "
                        "'dev_clean' for LibriSpeech; WSJ: eval92).")
    parser.add_argument("--units", type=int, nargs="+", default=sorted(PAPER),
                        help="Units per layer; one model per value (Table 4: 190, 300).")
    parser.add_argument("--depth", type=int, default=12, help="Gated layers (paper: 12).")
    parser.add_argument("--kernel-size", type=int, default=15,
                        help="Width of the time convolutions (not stated in the paper).")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS),
                        help="adam: plain Adam; ssgd: S-SGD Adam.")
    parser.add_argument("--noise-level", type=float, default=0.25,
                        help="S-SGD noise level (not stated in the paper for speech).")
    parser.add_argument("--lr", type=float, default=1e-3,
                        help="Adam learning rate (not stated in the paper).")
    parser.add_argument("--batch-size", type=int, default=32,
                        help="Utterances per batch (not stated in the paper).")
    parser.add_argument("--epochs", type=int, default=50,
                        help="Epochs (not stated in the paper).")
    parser.add_argument("--eval-every", type=int, default=1,
                        help="Decode the test split every this many epochs (and after "
                        "the last).")
    parser.add_argument("--seeds", type=int, default=1,
                        help="Runs per point (the paper reports one; seeds 0..N-1).")
    parser.add_argument("--output", default="results/table4", help="Output folder.")
    parser.add_argument("--quiet", action="store_true", help="No progress bars.")
    parser.add_argument("--smoke", action="store_true",
                        help="Generate tiny feature files under OUTPUT/smoke-data and run the "
                        "whole pipeline on them: 16-unit 2-layer models, 2 epochs, batch 4 "
                        "(seconds, not a result).")
    args = parser.parse_args(argv)
    for name in ("depth", "kernel_size", "batch_size", "epochs", "eval_every", "seeds"):
        if getattr(args, name) < 1:
            parser.error(f"argument --{name.replace('_', '-')}: must be >= 1, "
                         f"got {getattr(args, name)}")
    if any(u < 1 for u in args.units):
        parser.error(f"argument --units: every value must be >= 1, got {args.units}")
    if not args.noise_level >= 0:
        parser.error(f"argument --noise-level: must be >= 0, got {args.noise_level}")
    if not args.lr > 0:
        parser.error(f"argument --lr: must be > 0, got {args.lr}")
    default_splits = {"folder": ("train", "test"), "librispeech": ("train_clean100", "dev_clean")}
    args.train_split = args.train_split or default_splits[args.data][0]
    args.test_split = args.test_split or default_splits[args.data][1]
    return parser, args


def write_smoke_data(folder, seed=0, features=12):
    """Tiny feature folders `train/` (16 utterances) and `test/` (4) whose
    frames are noisy codes of the transcript's characters."""
    import numpy as np

    from keras_ssgd.tasks.speech import ctc as speech

    rng = np.random.default_rng(seed)
    codes = rng.normal(size=(speech.NUM_CLASSES, features))
    for split, count in (("train", 16), ("test", 4)):
        where = folder / split
        where.mkdir(parents=True, exist_ok=True)
        lines = []
        for i in range(count):
            text = " ".join(rng.choice(SMOKE_WORDS, size=rng.integers(2, 4)))
            ids = np.repeat(speech.encode_text(text), 3)  # 3 frames per character
            frames = codes[ids] + 0.1 * rng.normal(size=(len(ids), features))
            np.save(where / f"utt{i:03d}.npy", frames.astype("float32"))
            lines.append(f"utt{i:03d} {text}")
        (where / "transcripts.txt").write_text("\n".join(lines) + "\n")
    return folder


def load_data(args, data_dir):
    """The `keras_ssgd.data.Data` of the run, or exits with the loader's message."""
    from keras_ssgd.tasks.speech import data as speech_data

    if args.data == "librispeech":
        return speech_data.load_librispeech(
            batch_size=args.batch_size, seed=0, train_split=args.train_split,
            test_split=args.test_split,
            data_dir=str(data_dir) if data_dir.is_dir() else None,
        )
    return speech_data.load_speech_folder(
        data_dir, batch_size=args.batch_size, seed=0,
        train_split=args.train_split, test_split=args.test_split,
    )


def train_one(data, units, method, seed, recipe, verbose, saved=None):
    """Trains one model; returns its record (history and final WER/CER).

    With `saved` (the run's checkpoint file, as `ssgd-train` writes them:
    `keras_ssgd.train.checkpoint`) the run in progress is saved at the end
    of every epoch, and a run stopped before continues from the file. The
    training order comes from `tf.data`, which the checkpoint does not hold,
    so a resumed run continues correctly but not bit for bit; its record
    says how often it was resumed (`resumed`).
    """
    import keras
    import numpy as np

    import keras_ssgd
    from keras_ssgd.tasks.speech import ctc as speech
    from keras_ssgd import checkpoint

    keras.utils.set_random_seed(seed)  # the same initial weights for both methods
    model = keras_ssgd.models.sgcn(
        units, depth=recipe["depth"], num_features=data.input_shape[-1],
        num_classes=data.num_classes, kernel_size=recipe["kernel_size"],
    )
    parameters = model.count_params()
    if method == "ssgd":
        model = keras_ssgd.wrap(model, noise_level=recipe["noise_level"], seed=seed)
    model.compile(optimizer=keras.optimizers.Adam(recipe["lr"]), loss=speech.ctc_loss())
    callbacks = [keras.callbacks.TerminateOnNaN(),
                 speech.GreedyWER(data.test, every=recipe["eval_every"],
                                  epochs=recipe["epochs"])]
    saving = None
    if saved is not None:
        key = saved.name[: -len(checkpoint.SUFFIX)]
        restore = None
        if saved.exists():
            restore = checkpoint.read(saved, key, lambda old: "" if old == recipe
                                      else "the recipe differs")
        # After GreedyWER, whose logs it keeps.
        saving = checkpoint.Checkpointing(saved, key, recipe, restore=restore)
        callbacks.append(saving)
    start = time.time()
    history = model.fit(
        data.train, epochs=recipe["epochs"], verbose=verbose, shuffle=False,
        callbacks=callbacks,
        initial_epoch=0 if saving is None or saving.restore is None
        else saving.restore.epoch,
    )
    seconds = time.time() - start
    logged = history.history if saving is None else saving.history
    losses = logged.get("loss", [])
    diverged = not losses or not np.isfinite(losses[-1])
    final = None if diverged else speech.evaluate(model, data.test)
    return {
        "units": units, "method": method, "seed": seed, "parameters": parameters,
        "diverged": diverged, "seconds": seconds,
        "test_wer": None if final is None else final["wer"],
        "test_cer": None if final is None else final["cer"],
        "test_utterances": None if final is None else final["utterances"],
        "history": {k: [float(v) for v in vs] for k, vs in logged.items()},
        **({"resumed": saving.resumed} if saving is not None and saving.resumed
           else {}),
    }


def summarize(runs):
    """One row per (units, method): mean/std WER (%) over the finished runs."""
    import numpy as np

    rows = []
    for units in sorted({r["units"] for r in runs}):
        for method in METHODS:
            chosen = [r for r in runs if r["units"] == units and r["method"] == method]
            if not chosen:
                continue
            wers = [100 * r["test_wer"] for r in chosen if not r["diverged"]]
            rows.append({
                "units": units, "method": method, "runs": len(chosen),
                "diverged": len(chosen) - len(wers), "parameters": chosen[0]["parameters"],
                "wer_mean": float(np.mean(wers)) if wers else None,
                "wer_std": float(np.std(wers)) if wers else None,
            })
    return rows


def table(rows, depth, smoke):
    """The Markdown table of `rows` next to the paper's numbers."""
    header = ("| model | method | params (built) | params (paper) | WER % measured "
              "(mean +- std, runs) | WER % paper |")
    lines = [header, "|---|---|---|---|---|---|"]
    for row in rows:
        stated, adam, ssgd = PAPER.get(row["units"], ("", "", ""))
        measured = "diverged" if row["wer_mean"] is None else (
            f"{row['wer_mean']:.2f} +- {row['wer_std']:.2f} ({row['runs']})")
        label = "Adam" if row["method"] == "adam" else "S-SGD Adam"
        paper = adam if row["method"] == "adam" else ssgd
        if depth != 12:
            stated, paper = "", ""
        lines.append(f"| {depth}x{row['units']} SGCN | {label} | "
                     f"{row['parameters'] / 1e6:.3f}M | {stated} | {measured} | {paper} |")
    note = "Smoke run on generated data: not a result.\n\n" if smoke else ""
    return note + "\n".join(lines) + "\n"


def main(argv=None):
    from keras_ssgd import store
    from keras_ssgd import checkpoint

    parser, args = parse(argv)
    if args.smoke and args.output == parser.get_default("output"):
        args.output = "results/smoke/table4"  # never mixed with real runs
    root = pathlib.Path(args.output)
    data_dir = pathlib.Path(args.data_dir)
    if args.smoke:
        data_dir = write_smoke_data(root / "smoke-data")
        args.data, args.train_split, args.test_split = "folder", "train", "test"
        args.units, args.depth, args.kernel_size = [16], 2, 3
        args.epochs, args.batch_size, args.eval_every = 2, 4, 1
    recipe = {k: getattr(args, k) for k in (
        "data", "train_split", "test_split", "depth", "kernel_size", "noise_level",
        "lr", "batch_size", "epochs", "eval_every", "smoke")}
    recipe["data_dir"] = str(data_dir)
    runs_dir = root / "runs"
    config = root / "config.json"
    if config.exists() and json.loads(config.read_text()) != recipe:
        parser.exit(2, f"{parser.prog}: error: {root} holds runs of another recipe "
                    f"({config}); use another --output.\n")
    try:
        data = load_data(args, data_dir)
    except (FileNotFoundError, ValueError, RuntimeError) as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    runs_dir.mkdir(parents=True, exist_ok=True)
    config.write_text(json.dumps(recipe, indent=2) + "\n")
    runs = []
    for units in args.units:
        for method in args.methods:
            for seed in range(args.seeds):
                path = runs_dir / f"{args.depth}x{units}-{method}-seed{seed}.json"
                if path.exists():
                    runs.append(json.loads(path.read_text()))
                    continue
                saved = path.with_name(path.stem + checkpoint.SUFFIX)
                try:
                    record = train_one(data, units, method, seed, recipe,
                                       verbose=0 if args.quiet else 2,
                                       saved=saved)
                except store.StoreError as error:  # a damaged checkpoint
                    parser.exit(2, f"{parser.prog}: error: {error}\n")
                store.atomic_write_text(path, json.dumps(record, indent=2) + "\n")
                saved.unlink(missing_ok=True)  # the run is finished
                runs.append(record)
    rows = summarize(runs)
    text = table(rows, args.depth, args.smoke)
    store.atomic_write_text(root / "table4.md", text)
    store.atomic_write_text(root / "table4.json", json.dumps(
        {"recipe": recipe, "paper": {str(k): v for k, v in PAPER.items()},
         "summary": rows, "runs": runs}, indent=2) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
