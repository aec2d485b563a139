"""`ssgd-train` under the faults of a cluster: SIGTERM (a preemption, a job
scheduler's stop), a crash in the middle of a write, and damaged records on
`--resume`."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import fake_train as _fake_train

from keras_ssgd import store
from keras_ssgd.train import cli
from keras_ssgd.train import runner
from keras_ssgd.train.runner import Config
from keras_ssgd.train.runner import RunSpec

TINY = ["--model", "mlp", "--epochs", "1", "--seeds", "1", "--quiet",
        "--hessian-iterations", "0"]


def run_cli(args, output):
    return cli.main([*TINY, *args, "--output", str(output)])


def _fail_if_called(*args, **kwargs):
    raise AssertionError("training started despite a damaged run folder")


def _temp_files(folder):
    return sorted(p.name for p in folder.rglob("*") if store.is_temp_file(p))


# SIGTERM.


@pytest.mark.e2e
def test_sigterm_keeps_finished_runs_exits_143_and_resume_skips_them(
    tmp_path, monkeypatch
):
    out = tmp_path / "run"
    args = [*TINY, "--method", "sgd", "--method",
            "ssgd:0.1,0.2,0.3,0.4,0.5,0.6,0.7", "--output", str(out)]
    process = subprocess.Popen(
        [sys.executable, "-m", "keras_ssgd", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    first = out / "runs" / "sgd-seed0.json"
    try:
        deadline = time.monotonic() + 300
        while not first.exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "no run finished in 300 s"
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 143, stderr
    assert "stopped by SIGTERM" in stderr and "--resume" in stderr
    assert "Traceback" not in stderr

    records = {p.name: p.read_text() for p in (out / "runs").glob("*.json")}
    assert "sgd-seed0.json" in records and len(records) < 8, sorted(records)
    for name, text in records.items():
        record = json.loads(text)  # complete, valid JSON
        assert f"{record['key']}.json" == name and record["status"] == "ok"
        assert (out / "runs" / f"{record['key']}.keras").exists()
    results = json.loads((out / "results.json").read_text())
    assert {f"{r['key']}.json" for r in results["runs"]} == set(records)
    assert "| sgd | - |" in (out / "summary.md").read_text()
    assert _temp_files(out) == []

    # --resume trains only what is missing (a shorter plan, to stay quick).
    trained = []
    real_train = runner.train

    def train_recording(config, spec, **kwargs):
        trained.append(spec.key)
        return real_train(config, spec, **kwargs)

    monkeypatch.setattr(runner, "train", train_recording)
    assert run_cli(["--method", "sgd", "--method", "ssgd:0.1", "--resume"],
                   out) == 0
    assert not {f"{key}.json" for key in trained} & set(records)
    for name, text in records.items():
        assert (out / "runs" / name).read_text() == text  # not rewritten
    results = json.loads((out / "results.json").read_text())
    assert {r["key"] for r in results["runs"]} >= {"sgd-seed0", "ssgd-0.1-seed0"}


def test_sigterm_in_process_returns_143_and_restores_the_handler(
    tmp_path, monkeypatch, capsys
):
    seen = []

    def previous(signum, frame):
        seen.append(signum)

    def train_then_sigterm(config, spec, **kwargs):
        if spec.key != "sgd-seed0":
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises before this ends
        return _fake_train(config, spec, **kwargs)

    monkeypatch.setattr(runner, "train", train_then_sigterm)
    old = signal.signal(signal.SIGTERM, previous)
    try:
        code = run_cli(["--method", "sgd", "--method", "ssgd"], tmp_path / "run")
        assert signal.getsignal(signal.SIGTERM) is previous
    finally:
        signal.signal(signal.SIGTERM, old)
    assert code == 143
    assert seen == []  # main() handled it, not the previous handler
    assert [p.name for p in (tmp_path / "run" / "runs").glob("*.json")] == [
        "sgd-seed0.json"
    ]
    err = capsys.readouterr().err
    assert "stopped by SIGTERM" in err and "--resume --output" in err


def test_ctrl_c_still_returns_130(tmp_path, monkeypatch, capsys):
    def interrupt(config, spec, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "train", interrupt)
    assert run_cli(["--method", "sgd"], tmp_path / "run") == 130
    assert "stopped by Ctrl-C (SIGINT)" in capsys.readouterr().err


# Atomic writes.


def test_atomic_write_crash_before_rename_keeps_the_old_file(
    tmp_path, monkeypatch
):
    path = tmp_path / "results.json"
    store.atomic_write_text(path, '{"old": true}\n')

    def crash(*args):
        raise OSError("disk gone")

    monkeypatch.setattr(store.os, "replace", crash)
    with pytest.raises(OSError, match="disk gone"):
        store.atomic_write_text(path, '{"new": true, "much": "longer"}\n')
    assert path.read_text() == '{"old": true}\n'
    assert os.listdir(tmp_path) == ["results.json"]  # the temp file is gone


def test_atomic_write_interrupted_mid_write_leaves_no_partial_file(
    tmp_path, monkeypatch
):
    path = tmp_path / "record.json"

    def killed(fd):  # the text is written but not yet on disk
        raise KeyboardInterrupt

    monkeypatch.setattr(store.os, "fsync", killed)
    with pytest.raises(KeyboardInterrupt):
        store.atomic_write_text(path, "{" + '"x": 1, ' * 1000 + '"y": 2}')
    assert not path.exists()
    assert os.listdir(tmp_path) == []


def test_atomic_path_renames_on_success_and_cleans_up_on_failure(tmp_path):
    path = tmp_path / "model.keras"
    with store.atomic_path(path) as tmp:
        assert tmp.parent == tmp_path and tmp.name.endswith(".keras")
        assert store.is_temp_file(tmp) and not tmp.exists()
        tmp.write_bytes(b"complete")
    assert path.read_bytes() == b"complete"
    with pytest.raises(RuntimeError):
        with store.atomic_path(path) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed while saving")
    assert path.read_bytes() == b"complete"
    assert os.listdir(tmp_path) == ["model.keras"]


def test_model_file_is_written_atomically(tmp_path, monkeypatch):
    config = Config("mnist1d", "mlp", 1, 100, 0.05, "sgd", 0.9, "constant",
                    (), steps_per_execution=8)
    path = tmp_path / "sgd-seed0.keras"

    def crash(*args):
        raise OSError("preempted before the rename")

    monkeypatch.setattr(store.os, "replace", crash)
    with pytest.raises(OSError, match="preempted"):
        runner.train(config, RunSpec("sgd", None, 0), verbose=0,
                     model_path=path)
    assert os.listdir(tmp_path) == []  # no model, no half-written temp


def test_leftover_temp_files_are_not_taken_as_records_on_resume(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(runner, "train", _fake_train)
    out = tmp_path / "run"
    assert run_cli(["--method", "sgd"], out) == 0
    # A crash that could not even clean up (SIGKILL): the temp files stay.
    monkeypatch.setattr(store, "_remove_quietly", lambda path: None)

    def crash(*args):
        raise OSError("killed")

    with monkeypatch.context() as m:
        m.setattr(store.os, "replace", crash)
        with pytest.raises(OSError):
            store.atomic_write_text(out / "runs" / "sgd-seed1.json",
                                    '{"key": "sgd-se')
        with pytest.raises(OSError):
            with store.atomic_path(out / "runs" / "sgd-seed1.keras") as tmp:
                tmp.write_bytes(b"PK half a zip")
        with pytest.raises(OSError):  # a temp name that ends in .json
            with store.atomic_path(out / "runs" / "sgd-seed1.json") as tmp:
                tmp.write_text('{"key": "sgd-seed1", "met')
    assert len(_temp_files(out)) == 3

    trained = []

    def train_recording(config, spec, **kwargs):
        trained.append(spec.key)
        return _fake_train(config, spec, **kwargs)

    monkeypatch.setattr(runner, "train", train_recording)
    assert run_cli(["--method", "sgd", "--seeds", "2", "--resume"], out) == 0
    assert trained == ["sgd-seed1"]  # not skipped because of its temp file
    results = json.loads((out / "results.json").read_text())
    assert sorted(r["key"] for r in results["runs"]) == ["sgd-seed0", "sgd-seed1"]


# Damaged run folders on --resume.


def _damage_truncated(path, tmp_path):
    text = path.read_text()
    path.write_text(text[: len(text) // 2])
    return "not valid JSON"


def _damage_list(path, tmp_path):
    path.write_text("[1, 2, 3]\n")
    return "must hold a JSON object. Received: a JSON list"


def _damage_other_tool(path, tmp_path):
    path.write_text(json.dumps({"key": "sgd-seed0", "perplexity": 80.0}))
    return "lacks 'method'"


def _damage_not_utf8(path, tmp_path):
    path.write_bytes(b'{"key": "\xff\xfe"}')
    return "not UTF-8"


def _damage_empty(path, tmp_path):
    path.write_text("")
    return "is empty"


def _damage_renamed(path, tmp_path):
    record = json.loads(path.read_text())
    record["key"] = "sgd-seed7"
    path.write_text(json.dumps(record))
    return "holds the run 'sgd-seed7'"


def _damage_other_recipe(path, tmp_path):
    other = tmp_path / "other"
    assert run_cli(["--method", "sgd", "--lr", "0.3"], other) == 0
    path.write_text((other / "runs" / "sgd-seed0.json").read_text())
    return "another recipe"


@pytest.mark.parametrize(
    "damage",
    [_damage_truncated, _damage_list, _damage_other_tool, _damage_not_utf8,
     _damage_empty, _damage_renamed, _damage_other_recipe],
    ids=lambda f: f.__name__[len("_damage_"):],
)
def test_resume_with_a_damaged_record_exits_2_naming_the_file(
    damage, tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(runner, "train", _fake_train)
    out = tmp_path / "run"
    assert run_cli(["--method", "sgd"], out) == 0
    path = out / "runs" / "sgd-seed0.json"
    message = damage(path, tmp_path)
    capsys.readouterr()
    monkeypatch.setattr(runner, "train", _fail_if_called)
    assert run_cli(["--method", "sgd", "--resume"], out) == 2
    captured = capsys.readouterr()
    assert "ssgd-train: error: " in captured.err
    assert str(path) in captured.err and message in captured.err
    assert "Traceback" not in captured.out + captured.err


def test_resume_with_a_record_from_another_recipe_in_a_new_name(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(runner, "train", _fake_train)
    out, other = tmp_path / "run", tmp_path / "other"
    assert run_cli(["--method", "sgd"], out) == 0
    assert run_cli(["--method", "sgd", "--seeds", "2", "--lr", "0.3"], other) == 0
    moved = out / "runs" / "sgd-seed1.json"
    moved.write_text((other / "runs" / "sgd-seed1.json").read_text())
    capsys.readouterr()
    monkeypatch.setattr(runner, "train", _fail_if_called)
    assert run_cli(["--method", "sgd", "--resume"], out) == 2
    err = capsys.readouterr().err
    assert str(moved) in err and "lr: 0.3 there, 0.05 now" in err


def test_resume_with_a_damaged_config_exits_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runner, "train", _fake_train)
    out = tmp_path / "run"
    assert run_cli(["--method", "sgd"], out) == 0
    (out / "config.json").write_text('{"recipe": {"data')
    monkeypatch.setattr(runner, "train", _fail_if_called)
    assert run_cli(["--method", "sgd", "--resume"], out) == 2
    err = capsys.readouterr().err
    assert str(out / "config.json") in err and "not valid JSON" in err


@pytest.mark.e2e
def test_resume_with_a_truncated_record_prints_no_traceback(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(runner, "train", _fake_train)
    out = tmp_path / "run"
    assert run_cli(["--method", "sgd"], out) == 0
    path = out / "runs" / "sgd-seed0.json"
    path.write_text(path.read_text()[:40])
    done = subprocess.run(
        [sys.executable, "-m", "keras_ssgd", *TINY, "--method", "sgd",
         "--resume", "--output", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 2
    assert str(path) in done.stderr and "not valid JSON" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_store_errors_name_the_callers_arguments_in_its_words(tmp_path):
    with pytest.raises(store.StoreError) as caught:
        store.RunStore(tmp_path / "nothing", {"recipe": {}}, resume=True)
    error = caught.value
    assert str(error) == (
        f"resume: {tmp_path / 'nothing'} holds no earlier run (no "
        "config.json). Pass the output folder of the run to continue.")
    assert error.worded(resume="--resume", output="--output") == (
        f"--resume: {tmp_path / 'nothing'} holds no earlier run (no "
        "config.json). Pass the --output folder of the run to continue.")
    # A message without an argument reads the same in every caller's words.
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text("[1]")
    with pytest.raises(store.StoreError) as caught:
        store.RunStore(tmp_path / "run", {"recipe": {}}, resume=True)
    assert caught.value.worded(output="--output").endswith(
        "Pass the --output folder of an `ssgd-train` run.")
    assert "--" not in str(caught.value)
