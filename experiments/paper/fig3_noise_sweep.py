"""Fig. 3 of the paper: test accuracy against noise level, ResNet-20 on
CIFAR-100, 5 runs per point: S-SGD, SmoothOut, S-SGD on convolutions only
and on dense layers only, and SGD with Dropout on the dense layer.

Each curve is one `ssgd-train` folder under `--output` (resumable); the plot
`fig3.png` draws them together with SGD as the reference line.

    python experiments/paper/fig3_noise_sweep.py
    python experiments/paper/fig3_noise_sweep.py --smoke    # the pipeline in seconds
"""

import argparse
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).parents[1]))  # experiments/: _common
import _common  # noqa: E402

from keras_ssgd.train.report import plot  # noqa: E402

CURVES = {  # name -> (ssgd-train arguments)
    "S-SGD": ["--method", "ssgd:{levels}"],
    "SmoothOut": ["--method", "smoothout:{levels}"],
    "S-SGD Conv only": ["--method", "ssgd:{levels}", "--noise-filter", "conv_kernels"],
    "S-SGD Dense only": ["--method", "ssgd:{levels}", "--noise-filter", "dense_kernels"],
    "SGD+Dropout": ["--method", "dropout:{levels}"],
    "SGD": ["--method", "sgd"],
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--levels", default="0.1,0.2,0.3,0.4,0.5,0.6,0.7",
                        help="Noise levels (and dropout rates), comma-separated.")
    parser.add_argument("--dataset", default="cifar100", choices=["cifar10", "cifar100"], help="Dataset.")
    parser.add_argument("--epochs", type=int, default=175, help="Epochs (paper: 175).")
    parser.add_argument("--curves", nargs="+", choices=list(CURVES), default=list(CURVES),
                        metavar="CURVE", help="Which curves to run, of: %(choices)s.")
    _common.add_common_arguments(parser, "results/fig3")
    args = _common.finish_arguments(parser.parse_args(argv), "results/smoke/fig3")
    if args.smoke:  # one level, one epoch; the tiny model has no convolution
        args.levels, args.epochs = "0.3", 1
        args.curves = [c for c in args.curves if c != "S-SGD Conv only"]
    recipe = ["--dataset", args.dataset, "--model", args.model, "--epochs", str(args.epochs),
              *_common.PAPER_CIFAR, "--lr-schedule", "step",
              "--lr-drops", *_common.scaled_drops(args.epochs),
              "--seeds", str(args.seeds), "--hessian-iterations", "0"]
    rows = {}
    with _common.data_for(args):
        for name in args.curves:
            extra = CURVES[name]
            folder = pathlib.Path(args.output) / name.lower().replace(" ", "-").replace("+", "-")
            extra = [e.format(levels=args.levels) for e in extra]
            rows[name] = _common.run(folder, [*recipe, *extra], args.quiet)["summary"]
    # One line per curve (named as in the paper), SGD as the reference.
    curves = [dict(row, method=name, level_name="level")
              for name, summary in rows.items() for row in summary]
    pathlib.Path(args.output).mkdir(parents=True, exist_ok=True)
    plot(curves, pathlib.Path(args.output) / "fig3.png",
         title=f"{args.dataset}, {args.model}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
