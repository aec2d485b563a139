#!/usr/bin/env bash
# One tier of the suite on the three backends, TensorFlow in one process and
# JAX then PyTorch in another, side by side (a 2-core machine runs them in
# about the time of TensorFlow's alone). Each process's output is printed
# whole when both have ended, TensorFlow's first; the exit status is 1 if
# any failed.
#
#   tests/side_by_side.sh TIER MAKE_TARGET PYTEST_COMMAND...
set -u
tier=$1 target=$2
shift 2
start=$(date +%s)
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT

run_one() {  # run_one BACKEND COMMAND...: its output and status kept
    local backend=$1
    shift
    KERAS_BACKEND=$backend "$@" --tier "$tier" > "$logs/$backend.log" 2>&1
    echo $? > "$logs/$backend.status"
}

run_one tensorflow "$@" &
( run_one jax "$@" && [ "$(cat "$logs/jax.status")" = 0 ] && run_one torch "$@" ) &
wait

failed=0
for backend in tensorflow jax torch; do
    echo "== tier $tier, KERAS_BACKEND=$backend"
    if [ -f "$logs/$backend.status" ]; then
        cat "$logs/$backend.log"
        [ "$(cat "$logs/$backend.status")" = 0 ] || failed=1
    else
        echo "(not run: an earlier backend of its process failed)"
    fi
done
if [ $failed = 0 ]; then
    echo "== tier $tier (make $target) passed on the 3 backends in $(( $(date +%s) - start )) s"
fi
exit $failed
