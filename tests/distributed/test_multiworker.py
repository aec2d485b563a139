"""S-SGD under tf.distribute.MultiWorkerMirroredStrategy: 2 local workers.

Each test starts two processes (tests/distributed/multiworker_program.py,
or `ssgd-train`) with a `TF_CONFIG` naming two free ports on 127.0.0.1;
worker 0 also trains the single-process reference after the distributed run.
"""

import json
import os
import pathlib
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

# Several processes per test: `make test-distributed`, not the default run.
pytestmark = pytest.mark.distributed

PROGRAM = pathlib.Path(__file__).with_name("multiworker_program.py")
WORKERS = 2


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def launch(argv, out, timeout=300, env=None):
    """Runs `argv` as each of 2 workers; returns their `(returncode,
    output)` and the seconds until the last one ended. Workers still
    running after `timeout` are killed (returncode None)."""
    ports = free_ports(WORKERS)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    start = time.monotonic()
    procs = []
    for index in range(WORKERS):
        worker_env = dict(
            os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1",
            TF_CONFIG=json.dumps(
                {"cluster": cluster, "task": {"type": "worker", "index": index}}
            ),
            **(env or {}),
        )
        log = open(out / f"worker{index}.log", "w")
        procs.append((subprocess.Popen(
            argv, env=worker_env, stdout=log, stderr=subprocess.STDOUT
        ), log))
    codes = []
    for proc, log in procs:
        try:
            codes.append(proc.wait(
                timeout=max(1.0, timeout - (time.monotonic() - start))
            ))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            codes.append(None)
        log.close()
    outputs = [(out / f"worker{i}.log").read_text() for i in range(WORKERS)]
    return list(zip(codes, outputs)), time.monotonic() - start


def run_case(case, out, timeout=300, env=None):
    return launch([sys.executable, str(PROGRAM), case, str(out)], out,
                  timeout=timeout, env=env)


def check(results):
    for code, output in results:
        assert code == 0, output[-3000:]


def load(path):
    with np.load(path) as arrays:
        return [arrays[k] for k in sorted(
            arrays.files, key=lambda k: int(k.split("_")[1]))]


def assert_close(a, b, atol):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, atol=atol, rtol=0)


def test_two_workers_at_half_batch_equal_one_process_at_noise_zero(tmp_path):
    # (a) Keras's model, S-SGD at level 0, and level 0 from NumPy arrays
    # (Keras's array adapter shards them by data).
    results, _ = run_case("equivalence", tmp_path)
    check(results)
    for name in ("plain", "level0", "numpy"):
        reference = load(tmp_path / f"{name}-reference.npz")
        for worker in range(WORKERS):
            assert_close(load(tmp_path / f"{name}{worker}.npz"), reference, 1e-6)


def test_noise_is_shared_so_two_workers_equal_one_process(tmp_path):
    # (b) Every worker draws the same n: S-SGD and weight noise equal the
    # single-process run. SAM's ascent step is each replica's own (its
    # shard's gradient), so it only agrees across workers. MSAM's is the
    # optimizer's momentum, which the all-reduced gradients keep the same
    # everywhere: it equals one process too. ARWP's gradient history is the
    # mean over the workers of their own squared gradients, the same on
    # both (not the square of the global gradient, as one process has).
    results, _ = run_case("noise", tmp_path)
    check(results)
    for name in ("ssgd", "wni", "sam", "msam", "arwp"):
        first = load(tmp_path / f"{name}0.npz")
        for a, b in zip(first, load(tmp_path / f"{name}1.npz")):
            np.testing.assert_array_equal(a, b)
    for name in ("ssgd", "wni", "msam"):
        assert_close(load(tmp_path / f"{name}0.npz"),
                     load(tmp_path / f"{name}-reference.npz"), 1e-6)


def test_pair_form_equals_the_split_step_on_the_global_batch(tmp_path):
    # (c) Worker 0 measures its half at W + n, worker 1 at W - n.
    results, _ = run_case("pairs", tmp_path)
    check(results)
    reference = load(tmp_path / "pairs-reference.npz")
    for worker in range(WORKERS):
        assert_close(load(tmp_path / f"pairs{worker}.npz"), reference, 1e-6)
    passes = [load(tmp_path / f"passes{w}.npz") for w in range(WORKERS)]
    assert [int(p[0]) for p in passes] == [1, 1]
    assert set(passes[0][1]) == {1.0} and set(passes[1][1]) == {-1.0}


def test_backup_and_restore_continue_the_same_trajectory(tmp_path):
    # (d) Interrupted after epoch 2 of 4, then resumed from the backup.
    results, _ = run_case("resume", tmp_path)
    check(results)
    for worker in range(WORKERS):
        assert int(load(tmp_path / f"iterations{worker}.npz")[0]) == 4 * 4
        assert_close(load(tmp_path / f"resumed{worker}.npz"),
                     load(tmp_path / f"straight{worker}.npz"), 1e-6)
        interrupted = load(tmp_path / f"interrupted{worker}.npz")
        assert any(not np.allclose(a, b) for a, b in zip(
            interrupted, load(tmp_path / f"straight{worker}.npz")))
    assert (tmp_path / "backup").is_dir()


def test_a_dead_worker_ends_the_job_with_an_error_quickly(tmp_path):
    # (e) Worker 1 exits after one epoch; worker 0 must not hang.
    results, _ = run_case(
        "dies", tmp_path, timeout=240, env={"SSGD_TEST_TIMEOUT": "30"}
    )
    (code0, output0), (code1, _) = results
    assert code1 == 3
    assert code0 not in (0, None), output0[-3000:]
    started = min(float((tmp_path / f"started{w}").read_text())
                  for w in range(WORKERS))
    ended = (tmp_path / "worker0.log").stat().st_mtime
    assert ended - started < 60, output0[-3000:]
    assert not (tmp_path / "done0.json").exists()


def test_ssgd_train_multiworker_writes_one_result(tmp_path):
    # (f) Only the chief writes; ssgd-split runs as the pair form.
    out = tmp_path / "run"
    train = os.path.join(os.path.dirname(sys.executable), "ssgd-train")
    results, _ = launch(
        [train, "--distributed", "multiworker", "--model", "mlp",
         "--epochs", "1", "--seeds", "1", "--method", "sgd",
         "--method", "ssgd:0.3", "--method", "ssgd-split:0.3",
         "--quiet", "--output", str(out)],
        tmp_path,
    )
    check(results)
    runs = json.loads((out / "results.json").read_text())["runs"]
    by_method = {r["method"]: r for r in runs}
    assert [r["workers"] for r in runs] == [2, 2, 2]
    assert {r["status"] for r in runs} == {"ok"}
    assert {r["distributed"] for r in runs} == {"multiworker"}
    assert by_method["ssgd-split"]["pairs"]
    assert by_method["ssgd-split"]["passes_per_step"] == 1
    assert not by_method["ssgd"]["pairs"]
    # Worker 1 wrote nothing of its own: the folder holds one run's files.
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "run", "worker0.log", "worker1.log"]


def test_chief_and_argument_errors(monkeypatch):
    from keras_ssgd.distributed import multiworker

    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert multiworker.is_chief() and multiworker.num_workers() == 1
    monkeypatch.setenv("TF_CONFIG", json.dumps({
        "cluster": {"chief": ["a:1"], "worker": ["b:1", "c:1"]},
        "task": {"type": "worker", "index": 0}}))
    assert not multiworker.is_chief() and multiworker.num_workers() == 3
    monkeypatch.setenv("TF_CONFIG", "{bad")
    with pytest.raises(ValueError, match="Received: TF_CONFIG='{bad'"):
        multiworker.task()
    with pytest.raises(ValueError, match="Received: timeout_seconds=0"):
        multiworker.strategy(timeout_seconds=0)
    with pytest.raises(ValueError, match="Received: implementation='mpi'"):
        multiworker.strategy(implementation="mpi")
    with pytest.raises(ValueError, match="Received: warmup_steps=-1"):
        multiworker.scaled_learning_rate(0.1, warmup_steps=-1)
    lr = multiworker.scaled_learning_rate(0.1, warmup_steps=10, replicas=2)
    assert [round(float(lr(s)), 6) for s in (0, 5, 10, 50)] == [
        0.1, 0.15, 0.2, 0.2]
