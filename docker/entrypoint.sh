#!/usr/bin/env bash
# Runs `horovodrun -np ${NP:-4} ssgd-train "$@"`; HOSTS (e.g.
# host1:4,host2:4) spreads the ranks over several nodes.
set -euo pipefail
if [[ "${1:-}" == "--help" || "${1:-}" == "-h" ]]; then
    exec ssgd-train --help
fi
args=(-np "${NP:-4}")
if [[ -n "${HOSTS:-}" ]]; then
    args+=(-H "$HOSTS")
fi
exec horovodrun "${args[@]}" ssgd-train "$@"
