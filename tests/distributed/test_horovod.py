"""Horovod data parallelism, run under `horovodrun --gloo -np 2` on the CPU.

Skipped, with the reason, when Horovod with TensorFlow ops is not installed
(`docker/install_horovod.sh` builds it; `make test` runs it first).
"""

import os
import pathlib
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from keras_ssgd.distributed import horovod as ssgd_hvd

pytestmark = [pytest.mark.distributed, pytest.mark.skipif(
    not ssgd_hvd.available() or shutil.which(
        "horovodrun", path=os.path.dirname(sys.executable)
    ) is None,
    reason="Horovod with TensorFlow ops is not installed "
    "(run docker/install_horovod.sh)",
)]

PROGRAM = pathlib.Path(__file__).with_name("horovod_program.py")


def horovodrun(case, out, timeout=240):
    horovodrun = os.path.join(os.path.dirname(sys.executable), "horovodrun")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    start = time.monotonic()
    done = subprocess.run(
        [horovodrun, "--gloo", "-np", "2", "-H", "localhost:2",
         sys.executable, str(PROGRAM), case, str(out)],
        capture_output=True, text=True, timeout=timeout, env=env,
    )
    return done, time.monotonic() - start


def load(path):
    with np.load(path) as arrays:
        return [arrays[k] for k in sorted(arrays.files, key=lambda k: int(k.split("_")[1]))]


def check(done):
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.mark.parametrize(
    "case, atol", [("equivalence", 1e-6), ("syncbn", 1e-5)]
)
def test_two_ranks_at_half_batch_equal_one_process_at_noise_zero(
    case, atol, tmp_path
):
    # "syncbn": with synchronized BatchNorm the moving statistics match too.
    done, _ = horovodrun(case, tmp_path)
    check(done)
    distributed = load(tmp_path / "distributed.npz")
    reference = load(tmp_path / "reference.npz")
    assert len(distributed) == len(reference)
    for a, b in zip(distributed, reference):
        np.testing.assert_allclose(a, b, atol=atol, rtol=0)


@pytest.mark.parametrize("case", ["per-rank", "shared"])
def test_ranks_hold_identical_weights_and_draw_noise_per_rank(case, tmp_path):
    done, _ = horovodrun(case, tmp_path)
    check(done)
    for a, b in zip(load(tmp_path / "weights0.npz"), load(tmp_path / "weights1.npz")):
        np.testing.assert_array_equal(a, b)
    seeds = [load(tmp_path / f"seed{r}.npz")[0] for r in (0, 1)]
    noise = [load(tmp_path / f"noise{r}.npz") for r in (0, 1)]
    if case == "shared":
        assert seeds[0] == seeds[1]
        for a, b in zip(*noise):
            np.testing.assert_array_equal(a, b)
    else:
        assert seeds[1] == seeds[0] + 1
        assert not np.allclose(noise[0][0], noise[1][0])


def test_the_one_pass_peers_under_two_ranks(tmp_path):
    # MSAM perturbs along the optimizer's momentum, which the averaged
    # gradients keep the same on every rank: 2 ranks equal one process on
    # the global batch. ARWP and m-ARWP keep identical weights on the ranks.
    done, _ = horovodrun("peers", tmp_path)
    check(done)
    for method in ("msam", "arwp", "marwp"):
        for a, b in zip(load(tmp_path / f"{method}0.npz"),
                        load(tmp_path / f"{method}1.npz")):
            np.testing.assert_array_equal(a, b)
    for a, b in zip(load(tmp_path / "msam0.npz"),
                    load(tmp_path / "msam-reference.npz")):
        np.testing.assert_allclose(a, b, atol=1e-6, rtol=0)


def test_rank_pairs_equal_the_split_step_on_the_global_batch(tmp_path):
    # Rank 0 measures its half of each global batch at W + n, rank 1 its
    # half at W - n, from one noise: the split step of one process.
    done, _ = horovodrun("pairs", tmp_path)
    check(done)
    distributed = load(tmp_path / "distributed.npz")
    reference = load(tmp_path / "reference.npz")
    for a, b in zip(distributed, reference):
        np.testing.assert_allclose(a, b, atol=1e-6, rtol=0)
    for a, b in zip(load(tmp_path / "weights0.npz"),
                    load(tmp_path / "weights1.npz")):
        np.testing.assert_array_equal(a, b)
    # One pass per rank per step, one noise per pair, one gradient sent.
    for rank in (0, 1):
        passes, seed, sent, gradient = load(tmp_path / f"passes{rank}.npz")
        assert passes == 1 and seed == 7
        assert sent == gradient


def test_pairs_refuse_an_odd_number_of_ranks():
    # One process is one rank: an odd number.
    script = (
        "import keras, keras_ssgd, warnings\n"
        "from keras_ssgd.distributed import horovod as h\n"
        "m = keras_ssgd.wrap(keras.Sequential([keras.Input((3,)), "
        "keras.layers.Dense(2)]), noise_level=0.1, split_batch=True)\n"
        "try:\n"
        "    h.distribute(m, pairs=True)\n"
        "except ValueError as e:\n"
        "    print('ERROR', e)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True,
        timeout=120, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
    )
    assert "ERROR Argument `pairs=True` needs an even number" in done.stdout, (
        done.stdout + done.stderr[-2000:]
    )
    assert "Received: pairs=True with 1 worker(s)" in done.stdout


def test_backup_and_restore_continue_the_same_trajectory(tmp_path):
    done, _ = horovodrun("resume", tmp_path)
    check(done)
    for rank in (0, 1):
        assert load(tmp_path / f"iterations{rank}.npz")[0] == 4 * 4
        for a, b in zip(load(tmp_path / f"straight{rank}.npz"),
                        load(tmp_path / f"resumed{rank}.npz")):
            np.testing.assert_allclose(a, b, atol=1e-6, rtol=0)


def test_a_dead_rank_ends_the_job_with_an_error_quickly(tmp_path):
    done, seconds = horovodrun("dies", tmp_path, timeout=180)
    assert done.returncode != 0
    started = min(float((tmp_path / f"started{r}").read_text()) for r in (0, 1))
    assert time.time() - started < 60, (seconds, done.stderr[-2000:])
    assert not (tmp_path / "done0.json").exists()


def test_ssgd_train_under_horovodrun_writes_one_result(tmp_path):
    horovodrun = os.path.join(os.path.dirname(sys.executable), "horovodrun")
    out = tmp_path / "run"
    done = subprocess.run(
        [horovodrun, "--gloo", "-np", "2", "-H", "localhost:2",
         os.path.join(os.path.dirname(sys.executable), "ssgd-train"),
         "--distributed", "horovod", "--model", "mlp", "--epochs", "1",
         "--seeds", "1", "--method", "sgd", "--method", "ssgd:0.3",
         "--method", "ssgd-split:0.3", "--quiet", "--output", str(out)],
        capture_output=True, text=True, timeout=300,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
    )
    check(done)
    import json

    results = json.loads((out / "results.json").read_text())
    runs = {r["method"]: r for r in results["runs"]}
    assert [r["workers"] for r in results["runs"]] == [2, 2, 2]
    assert {r["status"] for r in results["runs"]} == {"ok"}
    # ssgd-split runs as the pair form on 2 ranks: one pass per rank.
    assert runs["ssgd-split"]["pairs"] and runs["ssgd-split"]["passes_per_step"] == 1
    assert not runs["ssgd"]["pairs"] and runs["ssgd"]["passes_per_step"] == 2


def test_ssgd_train_killed_on_both_ranks_resumes_to_the_run_never_stopped(
        tmp_path):
    """Two ranks of `ssgd-train` (S-SGD's pair form: ranks 0 and 1 measure
    at `W + n` and `W - n`), both killed with SIGKILL in the middle of
    their second epoch, then continued by `horovodrun ... --resume`: rank 0
    wrote the checkpoint of the first epoch and both ranks restore it. The
    record and the weights are those of the run never stopped, bit for
    bit. About 60 s on 2 CPU cores (three `horovodrun` jobs)."""
    import json

    from conftest import assert_same_runs

    from keras_ssgd import kill_points

    horovodrun = os.path.join(os.path.dirname(sys.executable), "horovodrun")
    command = [
        horovodrun, "--gloo", "-np", "2", "-H", "localhost:2",
        os.path.join(os.path.dirname(sys.executable), "ssgd-train"),
        "--distributed", "horovod", "--model", "mlp", "--epochs", "3",
        "--seeds", "1", "--method", "ssgd-split:0.3", "--batch-size", "500",
        "--quiet", "--hessian-iterations", "0",
    ]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")

    def run(folder, *extra, kill=None):
        return subprocess.run(
            [*command, *extra, "--output", str(folder)],
            capture_output=True, text=True, timeout=300,
            env=dict(env, **({kill_points.VARIABLE: kill} if kill else {})),
        )

    stopped, whole = tmp_path / "stopped", tmp_path / "whole"
    # One execution of 7 steps an epoch: its second end is in epoch 1,
    # before that epoch's checkpoint.
    killed = run(stopped, kill="batch:2")
    assert killed.returncode != 0
    held = list((stopped / "runs").glob("*.checkpoint.npz"))
    assert len(held) == 1 and not list((stopped / "runs").glob("*.json"))
    check(run(stopped, "--resume"))
    check(run(whole))
    a, b = (json.loads((f / "results.json").read_text())["runs"][0]
            for f in (stopped, whole))
    assert a["resumed"] == 1 and a["pairs"] and a["workers"] == 2
    assert_same_runs(stopped, whole)
