#!/usr/bin/env bash
# Builds the CPU image: docker/Dockerfile with a Debian base and GPU=0.
#
# - The engine: Docker where it answers, else podman (buildah's chroot
#   isolation, for machines without a container daemon).
# - The base: $BASE, else debian:bookworm with Docker; with podman a local
#   Debian base made once by debootstrap from Debian's packages
#   (localhost/keras-ssgd-debian:bookworm), since a registry may be out of
#   reach.
# - Horovod: the wheels in the cache ($HOROVOD_WHEEL_CACHE, default
#   ~/.cache/keras_ssgd/horovod) go into the build context
#   (docker/wheels/), and the wheel the image used is saved back there, so
#   a build compiles Horovod only when no cached wheel fits.
# - pip's CA bundle ($PIP_CERT or $SSL_CERT_FILE, when set) is mounted
#   into the build for a TLS-inspecting proxy.
# - Prints the build's wall time and the image's size.
#
# Usage: docker/build_cpu.sh [IMAGE]   (default keras-ssgd-cpu)
set -euo pipefail
IMAGE=${1:-keras-ssgd-cpu}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${HOROVOD_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/keras_ssgd/horovod}
SUITE=${DEBIAN_SUITE:-bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
log() { echo "docker-cpu: $*" >&2; }

if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
    ENGINE=(docker)
    BUILD=(docker build)
    BASE=${BASE:-debian:$SUITE}
elif command -v podman >/dev/null 2>&1; then
    ENGINE=(podman)
    # The docker format keeps SHELL (bash), which OCI images drop.
    BUILD=(podman build --isolation chroot --format docker)
    BASE=${BASE:-localhost/keras-ssgd-debian:$SUITE}
else
    log "neither Docker nor podman is installed (Debian: apt-get install podman debootstrap)."
    exit 1
fi

if [[ $BASE == localhost/* ]] && ! "${ENGINE[@]}" image exists "$BASE" 2>/dev/null; then
    command -v debootstrap >/dev/null 2>&1 || {
        log "the base $BASE is made with debootstrap, which is not installed."
        exit 1
    }
    log "making the base $BASE with debootstrap ($SUITE, $MIRROR)"
    ROOTFS=$(mktemp -d)
    trap 'rm -rf "$ROOTFS"' EXIT
    start=$SECONDS
    debootstrap --variant=minbase "$SUITE" "$ROOTFS" "$MIRROR" >/dev/null
    tar -C "$ROOTFS" -c . | "${ENGINE[@]}" import - "$BASE" >/dev/null
    rm -rf "$ROOTFS"
    trap - EXIT
    log "base made in $((SECONDS - start)) s"
fi

# The cached Horovod wheels into the build context.
find "$ROOT/docker/wheels" -mindepth 1 -maxdepth 1 -type d -exec rm -rf {} +
if [[ -d $CACHE ]]; then
    cp -r "$CACHE"/. "$ROOT/docker/wheels/"
fi

ARGS=(-f "$ROOT/docker/Dockerfile" -t "$IMAGE" --build-arg "BASE=$BASE"
      --build-arg GPU=0)
CA=${PIP_CERT:-${SSL_CERT_FILE:-}}
if [[ -n $CA && -f $CA ]]; then
    ARGS+=(--volume "$CA:/run/host-ca.crt:ro" --build-arg HOST_CA=/run/host-ca.crt)
fi
log "building $IMAGE from $BASE with ${ENGINE[0]}"
start=$SECONDS
"${BUILD[@]}" "${ARGS[@]}" "$ROOT"
seconds=$((SECONDS - start))

# The wheel the image used, back into the cache for the next cold build.
mkdir -p "$CACHE"
"$ROOT/docker/run_image.sh" "$IMAGE" -- tar -C /opt/horovod-wheels -cf - . \
    | tar -C "$CACHE" -xf - --exclude=./README.md
find "$ROOT/docker/wheels" -mindepth 1 -maxdepth 1 -type d -exec rm -rf {} +

size=$("${ENGINE[@]}" image inspect --format '{{.Size}}' "$IMAGE")
log "built $IMAGE in $seconds s; image size $((size / 1000000)) MB"
