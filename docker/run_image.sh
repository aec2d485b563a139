#!/usr/bin/env bash
# Runs a command in a container of IMAGE, with the engine at hand: Docker
# (`docker run --rm`), else buildah (`buildah from` / `run` / `rm`, chroot
# isolation: works where `podman run` cannot set its limits). The command
# runs as the image's user in its working directory; the entrypoint is not
# called (name it: /usr/local/bin/ssgd-entrypoint).
#
# buildah's container is named `localhost`: it copies the host's
# /etc/hosts, which does not name buildah's random hostname, and Horovod's
# hvd.init() crashes (SIGSEGV) on a hostname that does not resolve. Docker
# writes the container's hostname into its /etc/hosts itself.
#
# Usage: docker/run_image.sh IMAGE [-v HOST:CONTAINER[:ro]]... [-e NAME=VALUE]... -- COMMAND...
set -euo pipefail
IMAGE=$1
shift
OPTIONS=()
while [[ $# -gt 0 && $1 != -- ]]; do
    case $1 in
        -v|-e) OPTIONS+=("$1" "$2"); shift 2 ;;
        *) echo "run_image: unknown option $1" >&2; exit 2 ;;
    esac
done
[[ ${1:-} == -- ]] && shift
if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
    exec docker run --rm --entrypoint "$1" "${OPTIONS[@]}" "$IMAGE" "${@:2}"
fi
BUILDAH_OPTIONS=()
for ((i = 0; i < ${#OPTIONS[@]}; i += 2)); do
    case ${OPTIONS[i]} in
        -v) BUILDAH_OPTIONS+=(--volume "${OPTIONS[i + 1]}") ;;
        -e) BUILDAH_OPTIONS+=(--env "${OPTIONS[i + 1]}") ;;
    esac
done
container=$(buildah from --pull-never --quiet "$IMAGE")
trap 'buildah rm "$container" >/dev/null' EXIT
buildah run --isolation chroot --hostname localhost "${BUILDAH_OPTIONS[@]}" \
    "$container" -- "$@"
