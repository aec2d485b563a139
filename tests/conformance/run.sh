#!/usr/bin/env bash
# Keras's own tests against SymmetricSGDModel on one backend (KERAS_BACKEND):
# on TensorFlow in full at level 0, then, on every backend, the tests that
# train (one variant each) at level 0.1. `make test-conformance` runs it
# through tests/side_by_side.sh: TensorFlow in one process, JAX then PyTorch
# in another.
#
#   tests/conformance/run.sh PYTHON [PYTEST_ARGS...]
set -eu
python=$1
shift
run() { "$python" -m pytest -q -p no:randomly "$@" tests/conformance; }
if [ "${KERAS_BACKEND:-tensorflow}" = tensorflow ]; then
    run "$@"
fi
run "$@" --conformance-level=0.1 --conformance-profile=quick-train
