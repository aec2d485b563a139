"""Fetches Keras's own model and trainer tests for the conformance suite.

Downloads the source distribution of the *installed* Keras version with pip
(`pip download --no-deps --no-binary :all: keras==<version>`) and extracts
the test modules listed in `TEST_FILES` into

    build/keras-tests/<version>/models/model_test.py, trainers/..., ...

(the path below `keras/src/`; git-ignored, through the `build/` line of .gitignore), with a
`manifest.json` naming the version, the sdist's SHA-256 and the files. No
`__init__.py` and no `keras/` folder is created: the modules import as
top-level `model_test`, `trainer_test`, ..., and nothing there can shadow
the installed `keras` package.

Idempotent: when the manifest for the installed version is complete, nothing
is downloaded. The sdist itself is kept in the user's cache folder
(`$XDG_CACHE_HOME/keras_ssgd/keras-sdist`, default `~/.cache/...`), so a
fresh clone on the same machine extracts it again without downloading. The extraction goes to a temporary folder renamed into place,
so an interrupted run leaves no half-filled cache.

Usage (from the repository root):

    .venv/bin/python tests/conformance/fetch_keras_tests.py
    .venv/bin/python tests/conformance/fetch_keras_tests.py --source \\
        keras-3.15.1.tar.gz      # offline: an sdist or an extracted tree
    .venv/bin/python tests/conformance/fetch_keras_tests.py --force

Keras's tests need pytest, absl-py and (trainer_test.py imports it at the
top) jax; `make .venv/.backends` installs jax.
"""

import argparse
import hashlib
import importlib.metadata
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tarfile
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[2]
CACHE = ROOT / "build" / "keras-tests"
MANIFEST = "manifest.json"
SDIST_CACHE = pathlib.Path(
    os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
) / "keras_ssgd" / "keras-sdist"

# The Keras test modules the suite runs, relative to the sdist's top folder.
TEST_FILES = (
    "keras/src/models/model_test.py",
    "keras/src/models/functional_test.py",
    "keras/src/models/sequential_test.py",
    "keras/src/models/cloning_test.py",
    "keras/src/trainers/trainer_test.py",
)


PREFIX = "keras/src/"


def local_name(name):
    """Where a file of TEST_FILES lies in the cache folder."""
    return name[len(PREFIX):] if name.startswith(PREFIX) else name


def installed_version():
    return importlib.metadata.version("keras")


def cache_dir(version=None):
    return CACHE / (version or installed_version())


def fetched(version=None):
    """The manifest of a complete fetch for `version`, or None."""
    folder = cache_dir(version)
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if manifest.get("version") != (version or installed_version()):
        return None
    if not all((folder / name).is_file() for name in manifest["files"]):
        return None
    return manifest


def _download(version, into):
    command = [
        sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
        "--no-binary", ":all:", f"keras=={version}", "-d", str(into),
    ]
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True)
    sdists = sorted(into.glob("keras-*.tar.gz"))
    if len(sdists) != 1:
        raise SystemExit(f"Expected one keras sdist in {into}, found {sdists}")
    return sdists[0]


def _cached_sdist(version, tmp):
    """The sdist from SDIST_CACHE, downloaded into it the first time."""
    cached = SDIST_CACHE / f"keras-{version}.tar.gz"
    if cached.is_file():
        print(f"Keras {version} sdist from {cached}")
        return cached
    sdist = _download(version, tmp)
    try:
        SDIST_CACHE.mkdir(parents=True, exist_ok=True)
        partial = cached.with_suffix(".partial")
        shutil.copyfile(sdist, partial)
        partial.replace(cached)
    except OSError as error:  # a read-only home: use it uncached
        print(f"Not cached ({error}); using {sdist}")
    return sdist


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _extract(source, version, into):
    """Copies TEST_FILES from an sdist or an extracted tree into `into`."""
    if source.is_dir():
        for name in TEST_FILES:
            target = into / local_name(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / name, target)
        return None
    top = f"keras-{version}/"
    with tarfile.open(source) as tar:
        for name in TEST_FILES:
            member = tar.getmember(top + name)
            target = into / local_name(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            with tar.extractfile(member) as f:
                target.write_bytes(f.read())
    return _sha256(source)


def fetch(source=None, force=False):
    version = installed_version()
    folder = cache_dir(version)
    if not force and fetched(version):
        print(f"Keras {version} tests already in {folder}")
        return folder
    with tempfile.TemporaryDirectory(dir=CACHE.parent if CACHE.parent.exists()
                                     else None) as tmp:
        tmp = pathlib.Path(tmp)
        if source is None:
            source = _cached_sdist(version, tmp / "sdist")
        source = pathlib.Path(source)
        staging = tmp / "tests"
        sha = _extract(source, version, staging)
        (staging / MANIFEST).write_text(json.dumps({
            "version": version,
            "source": source.name,
            "sha256": sha,
            "files": [local_name(name) for name in TEST_FILES],
        }, indent=2) + "\n")
        CACHE.mkdir(parents=True, exist_ok=True)
        if folder.exists():
            shutil.rmtree(folder)
        shutil.move(str(staging), str(folder))
    print(f"Keras {version} tests fetched into {folder}")
    return folder


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--source", help="a keras sdist (.tar.gz) or extracted source tree "
        "of the installed version, instead of downloading it")
    parser.add_argument(
        "--force", action="store_true", help="fetch again even if cached")
    args = parser.parse_args(argv)
    fetch(args.source, args.force)


if __name__ == "__main__":
    main()
