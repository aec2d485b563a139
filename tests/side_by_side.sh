#!/usr/bin/env bash
# One tier of the suite on the three backends, TensorFlow in one process and
# JAX then PyTorch in another, side by side (a 2-core machine runs them in
# about the time of TensorFlow's alone). TensorFlow's test files of
# SECOND_SHARE (tests/conftest.py) run after PyTorch, in the second
# process, to even out the two. Each output is printed whole when both
# processes have ended; the exit status is 1 if any failed (a share with no
# test of the tier is not a failure).
#
#   tests/side_by_side.sh TIER MAKE_TARGET PYTEST_COMMAND...
set -u
tier=$1 target=$2
shift 2
start=$(date +%s)
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT

run_one() {  # run_one NAME BACKEND SHARE COMMAND...: output and status kept
    local name=$1 backend=$2 share=$3 status
    shift 3
    KERAS_BACKEND=$backend KERAS_SSGD_TEST_SHARE=$share "$@" --tier "$tier" \
        > "$logs/$name.log" 2>&1
    status=$?
    [ $status = 5 ] && status=0  # pytest's "no tests collected"
    echo $status > "$logs/$name.status"
    [ $status = 0 ]
}

run_one tensorflow tensorflow first "$@" &
( run_one jax jax "" "$@" && run_one torch torch "" "$@" \
    && run_one tensorflow-second tensorflow second "$@" ) &
wait

failed=0
for name in tensorflow jax torch tensorflow-second; do
    case $name in
        tensorflow) echo "== tier $tier, KERAS_BACKEND=tensorflow (first share)" ;;
        tensorflow-second) echo "== tier $tier, KERAS_BACKEND=tensorflow (second share: SECOND_SHARE, tests/conftest.py)" ;;
        *) echo "== tier $tier, KERAS_BACKEND=$name" ;;
    esac
    if [ -f "$logs/$name.status" ]; then
        cat "$logs/$name.log"
        [ "$(cat "$logs/$name.status")" = 0 ] || failed=1
    else
        echo "(not run: an earlier backend of its process failed)"
    fi
done
if [ $failed = 0 ]; then
    echo "== tier $tier (make $target) passed on the 3 backends in $(( $(date +%s) - start )) s"
fi
exit $failed
