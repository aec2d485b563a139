"""Table 5 of the paper: SGD against S-SGD for LSTM language models on PTB.

The paper's recipe (Section 5.3, after Zaremba et al. 2014): word-level
PTB (10k words), stateful LSTMs unrolled 35 steps, batch 20, SGD without
momentum at learning rate 1, gradients clipped by global norm, dropout on
the non-recurrent connections only; S-SGD perturbs every weight but the
biases (embeddings, LSTM kernels and recurrent kernels, softmax kernel).

- large: 2 x 1500, dropout 0.65, init +-0.04, 55 epochs, lr / 1.15 per
  epoch after epoch 14, clip 10; S-SGD levels 0.8, 0.9, 1.0.
- small: 1 x 300 (Hubara et al.). The paper gives no recipe for it; this
  script uses Zaremba's medium one (dropout 0.5, init +-0.05, 39 epochs,
  lr / 1.2 per epoch after epoch 6, clip 5); S-SGD levels 0.6, 0.7, 0.8.

Test (and validation) perplexity is measured after the last epoch, each
split read as one stream (batch 1). Each size is one run folder under
`--output`, written run by run and resumable: run the same command again
after an interruption. `table5.md` sets the measured perplexities next to
the paper's, `table5.json` holds them all.

    python experiments/paper/table5_ptb.py --data-dir simple-examples/data
    python experiments/paper/table5_ptb.py --data-dir simple-examples/data --sizes small
    python experiments/paper/table5_ptb.py --smoke      # generated data, seconds

The data are the `data/` folder of Mikolov's simple-examples.tgz
(`ptb.train.txt`, `ptb.valid.txt`, `ptb.test.txt`).
"""

import argparse
import json
import pathlib
import sys

SMOKE_WORDS = 60  # vocabulary of the generated smoke files


def parse(argv=None):
    from keras_ssgd.tasks.ptb import PAPER_TABLE5
    from keras_ssgd.tasks.ptb import RECIPES

    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--data-dir", default="data/ptb",
                        help="Folder holding ptb.train.txt, ptb.valid.txt and ptb.test.txt.")
    parser.add_argument("--sizes", nargs="+", default=list(PAPER_TABLE5),
                        help=f"Model sizes to run, of {list(RECIPES)} (Table 5: large, small).")
    parser.add_argument("--levels", type=float, nargs="+", default=None,
                        help="S-SGD noise levels for every size (default: the paper's, "
                        "large 0.8 0.9 1.0, small 0.6 0.7 0.8).")
    parser.add_argument("--no-sgd", action="store_true", help="Skip the SGD baseline.")
    parser.add_argument("--seeds", type=int, default=1,
                        help="Runs per point (the paper does not say; seeds 0..N-1).")
    parser.add_argument("--epochs", type=int, default=None,
                        help="Epochs (default: the recipe's, large 55, small 39).")
    parser.add_argument("--output", default=None,
                        help="Folder of run folders (default: results/table5, or "
                        "results/smoke/table5 with --smoke).")
    parser.add_argument("--no-save-models", action="store_true",
                        help="Do not save the trained models (a large one is 264 MB).")
    parser.add_argument("--quiet", action="store_true", help="No progress bars.")
    parser.add_argument("--smoke", action="store_true",
                        help="Generate tiny ptb.*.txt files under OUTPUT/smoke-data and run "
                        "the whole pipeline on them with 16-unit models, 2 epochs, the "
                        "first level of each size, quiet (seconds, not a result).")
    args = parser.parse_args(argv)
    if args.output is None:
        args.output = "results/smoke/table5" if args.smoke else "results/table5"
    if args.smoke:
        args.quiet = True
    unknown = [s for s in args.sizes if s not in RECIPES]
    if unknown:
        parser.error(f"argument --sizes: unknown size {unknown[0]!r}; "
                     f"valid sizes: {', '.join(RECIPES)}")
    if args.seeds < 1:
        parser.error(f"argument --seeds: must be >= 1, got {args.seeds}")
    if args.epochs is not None and args.epochs < 1:
        parser.error(f"argument --epochs: must be >= 1, got {args.epochs}")
    if args.levels is not None and any(not level > 0 for level in args.levels):
        parser.error(f"argument --levels: every level must be > 0, got {args.levels}")
    return parser, args


def write_smoke_data(folder, seed=0):
    """Tiny random `ptb.{train,valid,test}.txt` files in `folder`."""
    import numpy as np

    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(SMOKE_WORDS - 2)] + ["<unk>"]
    folder.mkdir(parents=True, exist_ok=True)
    for split, lines in (("train", 120), ("valid", 30), ("test", 30)):
        text = "\n".join(" ".join(rng.choice(words, size=rng.integers(3, 9)))
                         for _ in range(lines))
        (folder / f"ptb.{split}.txt").write_text(text + "\n")
    return folder


def check_data_dir(folder):
    """None if the three files are there, else the message saying what is
    expected where."""
    from keras_ssgd.tasks.ptb.data import FILES

    missing = [name for name in FILES.values() if not (folder / name).is_file()]
    if not folder.is_dir():
        return (f"--data-dir {folder}: no such folder. Expected a folder holding "
                f"{', '.join(FILES.values())} (the data/ folder of Mikolov's "
                "simple-examples.tgz).")
    if missing:
        return (f"--data-dir {folder}: missing {', '.join(missing)}. Expected "
                f"{', '.join(FILES.values())} there (the data/ folder of Mikolov's "
                "simple-examples.tgz).")
    return None


def main(argv=None):
    from keras_ssgd.tasks.ptb import PAPER_TABLE5
    from keras_ssgd.tasks.ptb import recipe_for
    from keras_ssgd.tasks.ptb import run_sweep
    from keras_ssgd.store import StoreError

    parser, args = parse(argv)
    root = pathlib.Path(args.output)
    data_dir = pathlib.Path(args.data_dir)
    if args.smoke:
        data_dir = write_smoke_data(root / "smoke-data")
    problem = check_data_dir(data_dir)
    if problem:
        parser.exit(2, f"{parser.prog}: error: {problem}\n")
    plans = []
    for size in args.sizes:
        recipe = recipe_for(size)
        paper = PAPER_TABLE5.get(size)
        levels = args.levels or (sorted(paper[1]) if paper else [])
        if args.smoke:
            recipe = recipe.replace(units=16, epochs=2, decay_after=1, batch_size=4,
                                    steps=5)
            levels = levels[:1]
        if args.epochs is not None:
            recipe = recipe.replace(epochs=args.epochs)
        runs = [("sgd", None, seed) for seed in range(args.seeds) if not args.no_sgd]
        runs += [("ssgd", float(level), seed) for level in levels
                 for seed in range(args.seeds)]
        plans.append((size, recipe, runs))
    table = {}
    for size, recipe, runs in plans:
        try:
            table[size] = run_sweep(
                root / size, recipe, data_dir, runs, verbose=0 if args.quiet else 2,
                save_models=not args.no_save_models,
            )
        except StoreError as error:
            words = error.worded(resume="--resume", output="--output")
            parser.exit(2, f"{parser.prog}: error: {words}\n")
    rows = [
        ("| model | method | valid perplexity | test perplexity (measured) | runs "
         "| test perplexity (paper) |"),
        "|---|---|---|---|---|---|",
    ]
    for size, summary in table.items():
        sgd, ssgd = PAPER_TABLE5.get(size, (None, {}))
        for row in summary:
            label = "SGD" if row["level"] is None else f"S-SGD ({row['level']:g})"
            paper = sgd if row["level"] is None else ssgd.get(row["level"])
            rows.append(
                f"| {size} | {label} | {_cell(row, 'valid')} | {_cell(row, 'test')} | "
                f"{row['runs']} | {'' if paper is None else paper} |"
            )
    root.mkdir(parents=True, exist_ok=True)
    note = ("Smoke run on generated data: not a result.\n\n" if args.smoke else "")
    (root / "table5.md").write_text(note + "\n".join(rows) + "\n")
    (root / "table5.json").write_text(json.dumps(
        {"smoke": args.smoke, "paper": {k: [v[0], {str(l): p for l, p in v[1].items()}]
                                        for k, v in PAPER_TABLE5.items()},
         "measured": table}, indent=2) + "\n")
    print(note + "\n".join(rows))
    return 0


def _cell(row, split):
    mean = row[f"{split}_perplexity_mean"]
    if mean is None:
        return "diverged"
    if row["runs"] == 1:
        return f"{mean:.2f}"
    return f"{mean:.2f} +- {row[f'{split}_perplexity_std']:.2f}"


if __name__ == "__main__":
    sys.exit(main())
