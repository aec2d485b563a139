"""Fig. 5 of the paper: large-batch ResNet-20 on CIFAR-10 with SGD, SGDR,
S-SGD and S-SGDR at global batches of 1K, 2K, 4K and 16K, data parallel over
4 GPUs with Horovod (per-device BatchNorm; the other hyperparameters as in
single-GPU training, so the learning rate is not scaled). SGD and S-SGD use
the 175-epoch step schedule, SGDR and S-SGDR 300 epochs of cosine with warm
restarts (first period 10, doubling). Run it under Horovod:

    horovodrun -np 4 python experiments/paper/fig5_large_batch.py
    python experiments/paper/fig5_large_batch.py --smoke    # the pipeline in seconds, no Horovod
"""

import argparse
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).parents[1]))  # experiments/: _common
import _common  # noqa: E402

METHODS = {  # name -> (method, schedule, epochs)
    "SGD": ("sgd", "step", 175),
    "SGDR": ("sgd", "sgdr", 300),
    "S-SGD": ("ssgd:{level}", "step", 175),
    "S-SGDR": ("ssgd:{level}", "sgdr", 300),
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1024, 2048, 4096, 16384],
                        help="Global batch sizes.")
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS),
                        help="Methods.")
    parser.add_argument("--noise-level", default="0.5", help="S-SGD noise level.")
    parser.add_argument("--epochs-scale", type=float, default=1.0,
                        help="Multiply the epochs (175 / 300) by this, for short runs.")
    parser.add_argument("--distributed", default="horovod", choices=["horovod", "mirrored", "none"],
                        help="How to spread each run (paper: Horovod, 4 GPUs).")
    _common.add_common_arguments(parser, "results/fig5", seeds=1)
    args = _common.finish_arguments(parser.parse_args(argv), "results/smoke/fig5")
    if args.smoke:  # every method, one small batch, one epoch, one process
        args.batch_sizes, args.epochs_scale, args.distributed = [16], 0.001, "none"
    with _common.data_for(args):
        return _run(args)


def _run(args):
    table = ["| batch | method | test accuracy |", "|---|---|---|"]
    for batch in args.batch_sizes:
        for name in args.methods:
            method, schedule, epochs = METHODS[name]
            epochs = max(1, round(epochs * args.epochs_scale))
            command = ["--dataset", "cifar10", "--model", args.model,
                       "--batch-size", str(batch), "--lr", "0.1", "--epochs", str(epochs),
                       "--lr-schedule", schedule, "--seeds", str(args.seeds),
                       "--method", method.format(level=args.noise_level),
                       "--distributed", args.distributed, "--hessian-iterations", "0"]
            if schedule == "step":
                command += ["--lr-drops", *_common.scaled_drops(epochs)]
            if args.distributed == "horovod":
                command.append("--no-scale-lr")
            folder = pathlib.Path(args.output) / f"batch{batch}-{name.lower()}"
            results = _common.run(folder, command, args.quiet)
            if results is None:
                continue  # not rank 0
            row = results["summary"][0]
            accuracy = "diverged" if row["test_accuracy_mean"] is None else (
                f"{row['test_accuracy_mean']:.2f} +- {row['test_accuracy_std']:.2f}")
            table.append(f"| {batch} | {name} | {accuracy} |")
    if len(table) > 2:
        (pathlib.Path(args.output) / "fig5.md").write_text("\n".join(table) + "\n")
        print("\n".join(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
