#!/usr/bin/env bash
# Builds and installs Horovod 0.28.1 for the TensorFlow in $PYTHON's
# environment, with the project's patch (docker/horovod-0.28.1-tf2.21.patch).
#
# - Gloo always; NCCL GPU operations with HOROVOD_CUDA=1, or by default when
#   nvcc is found and a GPU is visible; MPI when an MPI compiler wrapper
#   (mpicxx) is found.
# - Idempotent: returns at once when Horovod with TensorFlow ops already
#   imports; reuses a wheel built before from the cache folder
#   ($HOROVOD_WHEEL_CACHE, default ~/.cache/keras_ssgd/horovod), keyed by
#   Horovod, TensorFlow and Python versions and the build flavour.
# - Ends with `horovodrun --check-build`, which must list TensorFlow and Gloo.
#
# Usage: PYTHON=.venv/bin/python docker/install_horovod.sh
set -euo pipefail

PYTHON=${PYTHON:-python3}
VERSION=0.28.1
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PATCH="$HERE/horovod-$VERSION-tf2.21.patch"
CACHE=${HOROVOD_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/keras_ssgd/horovod}
BIN=$(dirname "$("$PYTHON" -c 'import sys; print(sys.executable)')")

log() { echo "install_horovod: $*" >&2; }

works() {
    "$PYTHON" - <<'PY' 2>/dev/null
import horovod
import horovod.tensorflow as hvd
assert horovod.__version__ == "0.28.1", horovod.__version__
hvd.init()
assert hvd.gloo_built()
PY
}

if works; then
    log "Horovod $VERSION with TensorFlow ops already works; nothing to do."
    exit 0
fi

TF_VERSION=$("$PYTHON" -c 'import tensorflow as tf; print(tf.__version__)')
PY_TAG=$("$PYTHON" -c 'import sys; print("cp%d%d" % sys.version_info[:2])')
FLAVOUR=cpu
BUILD_ENV=(HOROVOD_WITH_TENSORFLOW=1 HOROVOD_WITHOUT_PYTORCH=1
           HOROVOD_WITHOUT_MXNET=1 HOROVOD_WITH_GLOO=1)
# NCCL GPU operations need a CUDA toolkit and a GPU. "auto" builds them when
# nvcc is found and a GPU is visible (nvidia-smi -L); a docker build sees no
# GPU, so the Dockerfile sets HOROVOD_CUDA=1. HOROVOD_CUDA=0 forces CPU.
has_cuda() {
    command -v nvcc >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1
}
if [[ ${HOROVOD_CUDA:-auto} == 1 ]] || { [[ ${HOROVOD_CUDA:-auto} == auto ]] && has_cuda; }; then
    FLAVOUR=cuda
    BUILD_ENV+=(HOROVOD_GPU_OPERATIONS=NCCL)
fi
if command -v mpicxx >/dev/null 2>&1; then
    FLAVOUR=$FLAVOUR-mpi
    BUILD_ENV+=(HOROVOD_WITH_MPI=1)
else
    BUILD_ENV+=(HOROVOD_WITHOUT_MPI=1)
fi
WHEELS="$CACHE/horovod-$VERSION-tf$TF_VERSION-$PY_TAG-$FLAVOUR"

# Runtime dependencies of Horovod (the wheel is installed with --no-deps).
"$PYTHON" -m pip install --quiet cloudpickle psutil pyyaml packaging cffi

if ! ls "$WHEELS"/horovod-*.whl >/dev/null 2>&1; then
    log "building Horovod $VERSION ($FLAVOUR) for TensorFlow $TF_VERSION; this takes several minutes."
    WORK=$(mktemp -d)
    trap 'rm -rf "$WORK"' EXIT
    "$PYTHON" -m pip download --quiet --no-deps --no-binary :all: \
        "horovod==$VERSION" -d "$WORK"
    tar -xzf "$WORK/horovod-$VERSION.tar.gz" -C "$WORK"
    patch -d "$WORK/horovod-$VERSION" -p1 < "$PATCH"
    # Build tools: --no-build-isolation uses this environment's.
    "$PYTHON" -m pip install --quiet setuptools wheel
    if ! command -v cmake >/dev/null 2>&1; then
        "$PYTHON" -m pip install --quiet cmake
        export PATH="$BIN:$PATH"
    fi
    mkdir -p "$WHEELS"
    env "${BUILD_ENV[@]}" MAKEFLAGS="-j$(nproc)" \
        "$PYTHON" -m pip wheel --no-build-isolation --no-deps --no-cache-dir \
        -w "$WORK/dist" "$WORK/horovod-$VERSION"
    cp "$WORK"/dist/horovod-*.whl "$WHEELS/"
else
    log "reusing the wheel in $WHEELS"
fi

"$PYTHON" -m pip install --quiet --no-deps --force-reinstall "$WHEELS"/horovod-*.whl
CHECK=$(PATH="$BIN:$PATH" horovodrun --check-build)
echo "$CHECK"
grep -q "\[X\] TensorFlow" <<<"$CHECK" || { log "TensorFlow ops missing"; exit 1; }
grep -q "\[X\] Gloo" <<<"$CHECK" || { log "Gloo missing"; exit 1; }
works || { log "Horovod installed but does not initialise"; exit 1; }
log "Horovod $VERSION ready."
