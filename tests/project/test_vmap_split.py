"""`experiments/benchmarks/vmap_split.py` times a split step computed as
one batched pass against two half-batch passes; both must compute the same
step. Fast tier, about 5 s: the MLP at batch 8, its gradients once per
backend."""

import pathlib
import sys

import numpy as np
import pytest

SCRIPT = pathlib.Path(__file__).parents[2] / "experiments" / "benchmarks" / "vmap_split.py"
sys.path.insert(0, str(SCRIPT.parent))

import vmap_split  # noqa: E402


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_the_batched_split_step_is_the_two_pass_step(backend):
    pytest.importorskip(backend)
    make = vmap_split.jax_steps if backend == "jax" else vmap_split.torch_steps
    _, gradients, _ = make(8)
    assert vmap_split.difference(gradients) <= vmap_split.TOLERANCE
    two_pass, batched = gradients["two-pass"](), gradients["vmap"]()
    assert len(two_pass[0]) == len(batched[0]) == len(vmap_split.SIZES)
    # A step that is not the same is caught before any timing.
    wrong = dict(gradients, vmap=lambda: [
        [g * np.float32(1.01) for g in part] for part in batched
    ])
    with pytest.raises(RuntimeError, match="do not compute the same step"):
        vmap_split.difference(wrong)
