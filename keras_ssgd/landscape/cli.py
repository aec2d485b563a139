"""`ssgd-landscape`: pictures and curvature of saved models.

Takes two or three saved `.keras` models of the same architecture (for
example `runs/<key>.keras` files written by `ssgd-train`) and a dataset
name, and writes to `--output`:

- `interpolation.png` / `.json`: train and test loss and misclassification
  along the line from the first model to the second, extrapolated beyond
  both (paper Fig. 2);
- `plane.png` / `.json` (three models): train-loss contours on the plane
  through the three, with the models marked (paper Fig. 7);
- `eigenvalues.md` / `.json`: the top Hessian eigenvalues of each model on
  the training set.
"""

import argparse
import json
import pathlib
import sys


def build_parser():
    from keras_ssgd.data import DATASETS

    parser = argparse.ArgumentParser(
        prog="ssgd-landscape", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("models", nargs="+", metavar="MODEL.keras",
                        help="Two or three saved models (same architecture); "
                        "the line runs from the first to the second.")
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="mnist1d",
                        help="The data the models were trained on.")
    parser.add_argument("--output", default="results/landscape", help="Output folder.")
    parser.add_argument("--points", type=int, default=25,
                        help="Points on the line, alpha from -0.5 to 1.5.")
    parser.add_argument("--grid", type=int, default=15,
                        help="Grid points per axis of the plane.")
    parser.add_argument("--eigenvalues", type=int, default=3,
                        help="Top Hessian eigenvalues per model (0: none).")
    parser.add_argument("--no-bn-recompute", action="store_true",
                        help="Keep interpolated BatchNorm statistics instead "
                        "of recomputing them from training batches at each "
                        "point (the pictures of BatchNorm models are then "
                        "not faithful).")
    parser.add_argument("--bn-batches", type=int, default=20,
                        help="Training batches used to recompute BatchNorm statistics.")
    return parser


def main(argv=None):
    # TensorFlow's C++ start-up lines hide the command's own output.
    from keras_ssgd import native_log

    native_log.quiet_tensorflow()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not 2 <= len(args.models) <= 3:
        parser.error(f"give two or three models. Received: {len(args.models)}")
    for name, least in (("points", 2), ("grid", 2), ("bn_batches", 1)):
        if getattr(args, name) < least:
            parser.error(f"argument --{name.replace('_', '-')}: must be >= "
                         f"{least}. Received: {getattr(args, name)}")
    if args.eigenvalues < 0:
        parser.error(f"argument --eigenvalues: must be >= 0. Received: {args.eigenvalues}")
    import keras

    if keras.backend.backend() != "tensorflow":
        # The line and the plane read tf.data and TensorFlow tensors.
        parser.error(
            "ssgd-landscape needs the TensorFlow backend (KERAS_BACKEND="
            "tensorflow). Received: backend="
            f"{keras.backend.backend()!r}; for the top Hessian eigenvalue "
            "alone, ssgd-train --hessian-iterations and "
            "keras_ssgd.landscape.hessian_eigenvalues run on every backend"
        )
    missing = [m for m in args.models if not pathlib.Path(m).is_file()]
    if missing:
        parser.error(f"no such model file: {', '.join(missing)}")
    out = pathlib.Path(args.output)
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / ".write-test").write_text("")
        (out / ".write-test").unlink()
    except OSError as error:
        print(f"ssgd-landscape: error: cannot write to {out}: {error}", file=sys.stderr)
        return 2

    import numpy as np

    import keras_ssgd.wrapping  # noqa: F401  (registers the model classes)
    from keras_ssgd import data as data_lib
    from keras_ssgd import landscape

    models = [keras.models.load_model(m) for m in args.models]
    probe = models[0]
    data = data_lib.load(args.dataset, batch_size=500, seed=0)
    bn = None if args.no_bn_recompute else data.train
    names = [pathlib.Path(m).stem for m in args.models]

    print(f"Line {names[0]} -> {names[1]} ({args.points} points, train and test)")
    alphas = np.linspace(-0.5, 1.5, args.points)
    line = {"models": names[:2]}
    # One bar over the points of both lines (train, then test).
    bar = keras.utils.Progbar(2 * args.points, unit_name="point")
    for split, split_data in (("train", data.train_eval), ("test", data.test)):
        line[split] = landscape.interpolate(
            probe, models[0], models[1], split_data, alphas, bn_data=bn,
            bn_batches=args.bn_batches, progress=lambda: bar.add(1),
        )
    (out / "interpolation.json").write_text(json.dumps(line, indent=1))
    _plot_line(line, out / "interpolation.png")

    if len(models) == 3:
        print(f"Plane through {', '.join(names)} ({args.grid}x{args.grid}, train)")
        surface = landscape.plane(
            probe, *models, data.train_eval, grid=args.grid, bn_data=bn,
            bn_batches=args.bn_batches, verbose=1,
        )
        surface["models"] = names
        (out / "plane.json").write_text(json.dumps(surface, indent=1))
        _plot_plane(surface, out / "plane.png")

    if args.eigenvalues:
        table = {}
        for name, model in zip(names, models):
            print(f"Hessian eigenvalues of {name}")
            values = landscape.hessian_eigenvalues(
                model, data.train_eval, k=args.eigenvalues,
            )
            table[name] = [float(v) for v in values]
        (out / "eigenvalues.json").write_text(json.dumps(table, indent=1))
        lines = ["| model | " + " | ".join(f"lambda_{i + 1}" for i in range(args.eigenvalues)) + " |",
                 "|---|" + "---|" * args.eigenvalues]
        lines += [f"| {n} | " + " | ".join(f"{v:.4g}" for v in vals) + " |"
                  for n, vals in table.items()]
        (out / "eigenvalues.md").write_text("\n".join(lines) + "\n")
        print("\n".join(lines))
    print(f"Wrote {out}")
    return 0


def _plot_line(line, path):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for split, style in (("train", "-"), ("test", "--")):
        curve = line[split]
        ax.plot(curve["alpha"], curve["loss"], style, color="tab:blue", label=f"{split} loss")
    ax.set_xlabel(f"alpha (0: {line['models'][0]}, 1: {line['models'][1]})")
    ax.set_ylabel("loss")
    if "error" in line["train"]:
        twin = ax.twinx()
        for split, style in (("train", "-"), ("test", "--")):
            curve = line[split]
            twin.plot(curve["alpha"], [100 * e for e in curve["error"]], style,
                      color="tab:red", label=f"{split} error")
        twin.set_ylabel("misclassification (%)")
        twin.legend(loc="upper right", fontsize="small")
    ax.legend(loc="upper left", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot_plane(surface, path):
    import matplotlib

    matplotlib.use("Agg")
    import numpy as np
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(6.0, 5.0))
    loss = np.log10(np.maximum(np.array(surface["loss"]), 1e-12))
    contour = ax.contourf(surface["xs"], surface["ys"], loss, levels=20, cmap="viridis")
    fig.colorbar(contour, label="log10 train loss")
    for (x, y), name in zip(surface["points"], surface["models"]):
        ax.plot(x, y, "o", color="white", markeredgecolor="black")
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(5, 5), color="white")
    ax.set_xlabel("u (towards model 2)")
    ax.set_ylabel("v")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
