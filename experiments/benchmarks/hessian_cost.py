"""What curvature costs: one Hessian-vector product against one gradient,
and the top eigenvalue of the MNIST-1D CNN on the full training set.

Both HVP methods are timed against a plain gradient on the same batches, in
alternating rounds (medians of per-round ratios; the machine is shared and
noisy), after a warm-up that traces every function. Then the top Hessian
eigenvalue (Lanczos, 20 steps) of a trained MNIST-1D CNN over its 3500
training signals is timed end to end. The record, with the machine and the
versions, goes to `experiments/results/benchmarks/` (`make figures`).

    python experiments/benchmarks/hessian_cost.py
"""

import argparse
import json
import os
import pathlib
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_ssgd  # noqa: E402
from keras_ssgd.landscape import HessianOperator  # noqa: E402
from keras_ssgd.landscape import hessian_eigenvalues  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).parent))  # step_time
import step_time  # noqa: E402  (machine(), RECORDS)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="Alternating rounds.")
    parser.add_argument("--batchnorm", action="store_true", help="The BatchNorm CNN.")
    parser.add_argument(
        "--output", default=None,
        help="The JSON record, with the machine and the versions (default "
        "experiments/results/benchmarks/hessian-cost[-bn].json, committed; "
        "`make figures` reads it).")
    args = parser.parse_args()

    keras.utils.set_random_seed(0)
    data = keras_ssgd.data.load("mnist1d", batch_size=500, seed=0)
    model = keras_ssgd.models.mnist1d_cnn(batchnorm=args.batchnorm)
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(data.train, epochs=10, verbose=0)

    operators = {
        name: HessianOperator(model, data.train_eval, hvp=name)
        for name in ("double-backprop", "forward-over-reverse")
    }
    rng = np.random.default_rng(0)
    vector = rng.standard_normal(operators["double-backprop"].dim)
    gradient = operators["double-backprop"].gradient
    for op in operators.values():  # trace
        op.matvec(vector)
    gradient()

    def timed(fn):
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    ratios = {name: [] for name in operators}
    for _ in range(args.rounds):
        g = timed(gradient)
        for name, op in operators.items():
            ratios[name].append(timed(lambda op=op: op.matvec(vector)) / g)
    start = time.perf_counter()
    top = hessian_eigenvalues(model, data.train_eval, k=1, iterations=20)
    eigen_seconds = time.perf_counter() - start
    result = {
        "machine": step_time.machine(),
        "hvp_over_gradient_median": {k: statistics.median(v) for k, v in ratios.items()},
        "hvp_over_gradient_rounds": ratios,
        "top_eigenvalue": float(top[0]),
        "top_eigenvalue_seconds": eigen_seconds,
        "parameters": operators["double-backprop"].dim,
        "examples": operators["double-backprop"].num_examples,
        "batchnorm": args.batchnorm,
    }
    print(json.dumps({k: v for k, v in result.items() if k != "hvp_over_gradient_rounds"}, indent=1))
    path = pathlib.Path(args.output or step_time.RECORDS / (
        "hessian-cost" + ("-bn" if args.batchnorm else "") + ".json"))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
