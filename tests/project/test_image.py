"""The CPU image (`make docker-cpu`), run: its entrypoint, a training run
as its non-root user into a mounted results folder, two Horovod ranks
(Gloo) inside it, and the versions it holds against the pins.

The tier `image` (`make test-image`); it needs the image built, and
fails, not skips, without it: the tier is run to test the image.
"""

import json
import os
import pathlib
import re
import subprocess

import numpy as np
import pytest

pytestmark = pytest.mark.image

ROOT = pathlib.Path(__file__).resolve().parents[2]
IMAGE = os.environ.get("KERAS_SSGD_IMAGE", "keras-ssgd-cpu")
RUN_USER = 1000  # the image's user (docker/Dockerfile)


def run(*command, volumes=(), timeout=600):
    """`command` in a container of the image (docker/run_image.sh)."""
    options = []
    for volume in volumes:
        options += ["-v", volume]
    return subprocess.run(
        [str(ROOT / "docker" / "run_image.sh"), IMAGE, *options, "--",
         *command],
        capture_output=True, text=True, timeout=timeout,
    )


def check(done):
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def test_the_entrypoint_prints_ssgd_trains_help():
    out = check(run("/usr/local/bin/ssgd-entrypoint", "--help"))
    assert "usage: ssgd-train" in out and "--distributed" in out


def test_the_versions_are_the_pinned_ones():
    out = check(run("python", "-c", (
        "import json, sys, tensorflow, keras, horovod; print(json.dumps("
        "[list(sys.version_info[:2]), tensorflow.__version__, "
        "keras.__version__, horovod.__version__]))"
    )))
    python, tensorflow, keras, horovod = json.loads(out.strip().splitlines()[-1])
    setup = (ROOT / "setup.py").read_text()
    low = re.search(r'python_requires=">=(\d+)\.(\d+)"', setup).groups()
    assert tuple(python) >= tuple(int(n) for n in low)
    tf_pin = re.search(r'"tensorflow-cpu==([\d.]+)\.\*"', setup).group(1)
    assert tensorflow.startswith(tf_pin + "."), tensorflow
    keras_low, keras_high = re.search(
        r'"keras>=([\d.]+),<([\d.]+)"', setup).groups()

    def release(text):
        return tuple(int(n) for n in text.split(".")[:3])

    assert release(keras_low) <= release(keras) < release(keras_high), keras
    script = (ROOT / "docker" / "install_horovod.sh").read_text()
    assert horovod == re.search(r"^VERSION=(\S+)$", script, re.M).group(1)


def test_a_training_run_as_the_run_user_writes_into_the_mounted_folder(
    tmp_path,
):
    results = tmp_path / "results"
    results.mkdir()
    if os.geteuid() == 0:
        # The host user owning the folder is the image's user (uid 1000),
        # as on a workstation; docker/README.md covers other uids.
        os.chown(results, RUN_USER, RUN_USER)
    check(run(
        "ssgd-train", "--dataset", "mnist1d", "--model", "mlp",
        "--method", "sgd", "--method", "ssgd:0.2", "--seeds", "1",
        "--epochs", "1", "--quiet", "--output", "/results/run",
        volumes=[f"{results}:/results"],
    ))
    record = json.loads((results / "run" / "results.json").read_text())
    assert {r["method"] for r in record["runs"]} == {"sgd", "ssgd"}
    assert (results / "run" / "results.json").stat().st_uid == (
        RUN_USER if os.geteuid() == 0 else os.geteuid()
    )
    out = check(run("id", "-u"))
    assert out.strip() == str(RUN_USER)


def load(path):
    with np.load(path) as arrays:
        return [arrays[k] for k in sorted(
            arrays.files, key=lambda k: int(k.split("_")[1]))]


def test_two_horovod_ranks_run_the_pair_form_inside_the_image(tmp_path):
    # tests/distributed/horovod_program.py's "pairs" case, with the checks
    # of tests/distributed/test_horovod.py: one allreduce of one gradient per
    # step, the ranks' weights equal, the split step of one process.
    out = tmp_path / "out"
    out.mkdir()
    if os.geteuid() == 0:
        os.chown(out, RUN_USER, RUN_USER)
    check(run(
        "horovodrun", "--gloo", "-np", "2", "-H", "localhost:2",
        "python", "/tests/distributed/horovod_program.py", "pairs", "/out",
        volumes=[f"{ROOT / 'tests'}:/tests:ro", f"{out}:/out"],
    ))
    for a, b in zip(load(out / "weights0.npz"), load(out / "weights1.npz")):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(load(out / "distributed.npz"),
                    load(out / "reference.npz")):
        np.testing.assert_allclose(a, b, atol=1e-6, rtol=0)
    for rank in (0, 1):
        passes, seed, sent, gradient = load(out / f"passes{rank}.npz")
        assert passes == 1 and seed == 7
        assert sent == gradient
