"""Table 1 of the paper: ResNet-20 on CIFAR-10/100 with the compute budget
of 175 SGD epochs spent on different phase plans (`S` = S-SGD, which costs
two SGD epochs per epoch; the learning rate drops by 10 at each boundary).

    python experiments/table1_budget.py --datasets cifar10
"""

import argparse
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import _common  # noqa: E402

PLANS = {  # plan -> paper (CIFAR-10, CIFAR-100)
    "75-50-50": (92.17, 68.26),
    "37S-25S-25S": (91.70, 67.89),
    "75-50-25S": (92.33, 69.32),
    "75-25S-50": (92.06, 68.99),
    "75-25S-25S": (92.55, 69.57),
}


def main(argv=None):
    from keras_ssgd.phases import PhasePlan

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--plans", nargs="+", default=list(PLANS), help="Phase plans (Table 1 notation).")
    parser.add_argument("--datasets", nargs="+", default=["cifar10", "cifar100"],
                        choices=["cifar10", "cifar100"], help="Datasets.")
    parser.add_argument("--noise-level", default="0.5", help="S-SGD level in the S phases.")
    parser.add_argument("--model", default="resnet20", help="Model (paper: resnet20).")
    parser.add_argument("--seeds", type=int, default=5, help="Runs per plan.")
    parser.add_argument("--output", default="results/table1", help="Folder of run folders.")
    parser.add_argument("--quiet", action="store_true", help="No progress bars.")
    args = parser.parse_args(argv)
    rows = ["| plan | cost (SGD epochs) | dataset | measured | paper |", "|---|---|---|---|---|"]
    for plan_text in args.plans:
        plan = PhasePlan.parse(plan_text)
        noisy = any(s for _, s in plan.phases)
        method = f"ssgd:{args.noise_level}" if noisy else "sgd"
        for dataset in args.datasets:
            folder = pathlib.Path(args.output) / f"{dataset}-{plan}"
            summary = _common.run(folder, [
                "--dataset", dataset, "--model", args.model, *_common.PAPER_CIFAR,
                "--phases", str(plan), "--method", method, "--seeds", str(args.seeds),
                "--hessian-iterations", "0"], args.quiet)["summary"][0]
            paper = PLANS.get(str(plan), (None, None))[0 if dataset == "cifar10" else 1]
            measured = "diverged" if summary["test_accuracy_mean"] is None else (
                f"{summary['test_accuracy_mean']:.2f} +- {summary['test_accuracy_std']:.2f}")
            rows.append(f"| {plan} | {plan.cost()} | {dataset} | {measured} | {paper} |")
    pathlib.Path(args.output).mkdir(parents=True, exist_ok=True)
    (pathlib.Path(args.output) / "table1.md").write_text("\n".join(rows) + "\n")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
