"""`experiments/benchmarks/step_profile.py`: the parts of an S-SGD step
found in each backend's profiler output. The pure parts (matching a name to
a part, nested events' self time) in the fast tier; the script itself on
each backend in the e2e tier (about 10 s a backend: a small MLP, 2 profiled
steps)."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).parents[2]
SCRIPT = ROOT / "experiments" / "benchmarks" / "step_profile.py"
sys.path.insert(0, str(SCRIPT.parent))

import step_profile  # noqa: E402


def test_a_name_belongs_to_the_part_in_its_scope_path():
    # TensorFlow op names, JAX metadata and PyTorch ranges all carry it.
    assert step_profile.part_of(
        "StatefulPartitionedCall/ssgd_pass_2/dense/MatMul:MatMul"
    ) == "ssgd_pass_2"
    assert step_profile.part_of(
        "jit(train_step)/transpose(jvp(ssgd_pass_1))/dot_general"
    ) == "ssgd_pass_1"
    assert step_profile.part_of("ssgd_draw") == "ssgd_draw"
    assert step_profile.part_of("sequential/dense/MatMul:MatMul") == "other"
    assert step_profile.part_of(None) == "other"


def test_nested_events_count_their_own_time_once():
    # A conditional (0-10) holding a fusion (2-9), beside an op (12-15) and
    # on another thread an op (0-4): self times 3, 7, 3 and 4.
    events = [
        {"name": "cond", "pid": 1, "tid": 1, "ts": 0.0, "dur": 10.0},
        {"name": "fusion", "pid": 1, "tid": 1, "ts": 2.0, "dur": 7.0},
        {"name": "after", "pid": 1, "tid": 1, "ts": 12.0, "dur": 3.0},
        {"name": "other thread", "pid": 1, "tid": 2, "ts": 0.0, "dur": 4.0},
    ]
    times = {e["name"]: t for e, t in step_profile._self_times(events)}
    assert times == {"cond": 3.0, "fusion": 7.0, "after": 3.0,
                     "other thread": 4.0}


@pytest.mark.e2e
@pytest.mark.parametrize("backend", ["tensorflow", "jax", "torch"])
def test_the_profile_finds_every_pass_and_the_draw(backend, tmp_path):
    output = tmp_path / "profile.json"
    env = dict(os.environ, KERAS_BACKEND=backend)
    subprocess.run(
        [sys.executable, str(SCRIPT), "--backend", backend, "--model", "mlp",
         "--batch-size", "16", "--steps", "2", "--output", str(output)],
        check=True, env=env, cwd=ROOT, capture_output=True, timeout=300,
    )
    record = json.loads(output.read_text())
    ours, plain = record["parts"]["ssgd"], record["parts"]["keras"]
    for part in ("ssgd_draw", "ssgd_scale", "ssgd_pass_1", "ssgd_pass_2"):
        assert ours.get(part, 0) > 0, (part, ours)
    # Keras's own step has none of the parts.
    assert set(plain) <= {"other"} and plain["other"] > 0
    assert record["wall_ms"]["ssgd"] > 0


def test_the_figures_show_the_parts_the_profile_reports():
    sys.path.insert(0, str(ROOT / "experiments"))
    import figures

    assert figures.STEP_PARTS == step_profile.PARTS
