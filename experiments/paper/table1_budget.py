"""Table 1 of the paper: ResNet-20 on CIFAR-10/100 with the compute budget
of 175 SGD epochs spent on different phase plans (`S` = S-SGD, which costs
two SGD epochs per epoch; the learning rate drops by 10 at each boundary).

With `--budget B` the paper's plans are scaled from 175 to B epochs: an SGD
phase of n epochs becomes round(n * B / 175), an S-SGD phase floor(n * B /
175) (so a plan never costs more than the SGD plan, as 37S does in the
paper). At B = 60 the plans are 26-17-17, 12S-8S-8S, 26-17-8S, 26-8S-17
and 26-8S-8S. On MNIST-1D the dataset's recipe applies (batch 100, SGD
momentum 0.9, learning rate 0.05, /10 at each phase boundary).

    python experiments/paper/table1_budget.py --datasets cifar10
    python experiments/paper/table1_budget.py --datasets mnist1d --model mnist1d-cnn \\
        --budget 60 --noise-level 0.2
    python experiments/paper/table1_budget.py --smoke
"""

import argparse
import math
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).parents[1]))  # experiments/: _common
import _common  # noqa: E402

PLANS = {  # plan -> paper (CIFAR-10, CIFAR-100)
    "75-50-50": (92.17, 68.26),
    "37S-25S-25S": (91.70, 67.89),
    "75-50-25S": (92.33, 69.32),
    "75-25S-50": (92.06, 68.99),
    "75-25S-25S": (92.55, 69.57),
}
PAPER_BUDGET = 175
DATASETS = ("cifar10", "cifar100", "mnist1d")


def scale_plan(plan, budget):
    """The plan scaled from the paper's 175-epoch budget to `budget`.

    Args:
        plan: str or `PhasePlan`, in Table 1 notation.
        budget: int > 0, the SGD epochs of the scaled budget.

    Returns:
        The scaled `PhasePlan` (SGD phases rounded, S-SGD phases rounded
        down, each at least one epoch); the same plan at 175.

    Example:

    >>> str(scale_plan("75-25S-25S", 60))
    '26-8S-8S'
    """
    from keras_ssgd.phases import PhasePlan

    if not isinstance(budget, int) or isinstance(budget, bool) or budget <= 0:
        raise ValueError(f"Argument `budget` must be an int > 0. Received: budget={budget!r}")
    plan = PhasePlan.parse(plan)
    scale = budget / PAPER_BUDGET
    return PhasePlan(tuple(
        (max(1, math.floor(n * scale) if noisy else round(n * scale)), noisy)
        for n, noisy in plan.phases))


def recipe(dataset):
    """The `ssgd-train` recipe arguments of a dataset (the plan sets the
    epochs and the learning-rate drops)."""
    if dataset == "mnist1d":
        return ["--batch-size", "100", "--lr", "0.05", "--optimizer", "sgd",
                "--momentum", "0.9", "--steps-per-execution", "8"]
    return list(_common.PAPER_CIFAR)


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--plans", nargs="+", default=list(PLANS),
                        help="Phase plans (Table 1 notation, at the paper's 175-epoch budget).")
    parser.add_argument("--datasets", nargs="+", default=["cifar10", "cifar100"],
                        choices=DATASETS, help="Datasets.")
    parser.add_argument("--budget", type=int, default=PAPER_BUDGET,
                        help="SGD-epoch budget the plans are scaled to.")
    parser.add_argument("--noise-level", default="0.5", help="S-SGD level in the S phases.")
    _common.add_common_arguments(parser, "results/table1")
    args = _common.finish_arguments(parser.parse_args(argv), "results/smoke/table1")
    if args.budget <= 0:
        parser.error(f"argument --budget: must be an int > 0. Received: {args.budget}")
    for text in args.plans:
        try:
            scale_plan(text, args.budget)
        except ValueError as error:
            parser.error(f"argument --plans: {error}")
    if args.smoke:  # two short plans, one of them with an S phase
        args.plans, args.datasets, args.budget = ["1-1S", "2"], ["cifar10"], PAPER_BUDGET
    return args


def main(argv=None):
    args = parse(argv)
    rows = ["| plan | run as | cost (SGD epochs) | dataset | measured (mean +- std, runs) | paper |",
            "|---|---|---|---|---|---|"]
    with _common.data_for(args):
        for plan_text in args.plans:
            plan = scale_plan(plan_text, args.budget)
            noisy = any(s for _, s in plan.phases)
            method = f"ssgd:{args.noise_level}" if noisy else "sgd"
            for dataset in args.datasets:
                folder = pathlib.Path(args.output) / f"{dataset}-{plan}"
                summary = _common.run(folder, [
                    "--dataset", dataset, "--model", args.model, *recipe(dataset),
                    "--phases", str(plan), "--method", method, "--seeds", str(args.seeds),
                    "--hessian-iterations", "0"], args.quiet)["summary"][0]
                paper = PLANS.get(plan_text.replace(" ", ""), (None, None))
                reference = {"cifar10": paper[0], "cifar100": paper[1]}.get(dataset)
                measured = "diverged" if summary["test_accuracy_mean"] is None else (
                    f"{summary['test_accuracy_mean']:.2f} +- "
                    f"{summary['test_accuracy_std']:.2f} ({summary['runs']})")
                rows.append(f"| {plan_text} | {plan} | {plan.cost()} | {dataset} | "
                            f"{measured} | {reference if reference is not None else '-'} |")
    pathlib.Path(args.output).mkdir(parents=True, exist_ok=True)
    (pathlib.Path(args.output) / "table1.md").write_text("\n".join(rows) + "\n")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
