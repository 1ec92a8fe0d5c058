# shellcheck shell=bash
# Shared settings for the project's scripts; sourced, never executed.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export ROOT
# Images, artifacts and the toolchain survive between runs and clones here.
HPC_GC_CACHE=${HPC_GC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hpc.globus_compute}
export HPC_GC_CACHE
VENV=${VENV:-$ROOT/.venv}
export VENV

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
