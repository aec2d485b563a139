"""Fig. 4 of the paper: test accuracy per epoch of SGD and S-SGD, ResNet-20
on CIFAR-10, 175 epochs (paper recipe), mean over runs; `fig4.png` has the
two panels of the paper (epochs 0-90 and 100-175).

    python experiments/paper/fig4_convergence.py
    python experiments/paper/fig4_convergence.py --smoke    # the pipeline in seconds
"""

import argparse
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).parents[1]))  # experiments/: _common
import _common  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--noise-level", default="0.5", help="S-SGD noise level.")
    parser.add_argument("--dataset", default="cifar10", choices=["cifar10", "cifar100"], help="Dataset.")
    parser.add_argument("--epochs", type=int, default=175, help="Epochs (paper: 175).")
    _common.add_common_arguments(parser, "results/fig4")
    args = _common.finish_arguments(parser.parse_args(argv), "results/smoke/fig4")
    if args.smoke:  # two epochs: both panels get a point
        args.epochs = 2
    with _common.data_for(args):
        results = _common.run(args.output, [
            "--dataset", args.dataset, "--model", args.model, "--epochs", str(args.epochs),
            *_common.PAPER_CIFAR, "--lr-schedule", "step",
            "--lr-drops", *_common.scaled_drops(args.epochs), "--seeds", str(args.seeds),
            "--method", "sgd", "--method", f"ssgd:{args.noise_level}",
            "--eval-every-epoch", "--hessian-iterations", "0"], args.quiet)
    if results is not None:
        plot(results["runs"], pathlib.Path(args.output) / "fig4.png", args.epochs)
    return 0


def plot(runs, path, epochs):
    import matplotlib

    matplotlib.use("Agg")
    import numpy as np
    from matplotlib import pyplot as plt

    curves = {}
    for run in runs:
        if run["status"] == "ok":
            label = "SGD" if run["level"] is None else f"S-SGD ({run['level']:g})"
            curves.setdefault(label, []).append(run["history"]["val_accuracy"])
    split = min(epochs, max(1, round(epochs * 90 / 175)))
    fig, axes = plt.subplots(1, 2, figsize=(9.6, 3.8))
    for label, histories in curves.items():
        mean = 100 * np.mean(np.array(histories), axis=0)
        x = np.arange(1, len(mean) + 1)
        axes[0].plot(x[:split], mean[:split], label=label)
        axes[1].plot(x[split:], mean[split:], label=label)
    for ax, title in zip(axes, ("beginning and middle", "final stage")):
        ax.set_xlabel("epoch")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
