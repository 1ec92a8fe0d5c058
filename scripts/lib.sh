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

# One test version from tests/versions.yml, their one source (its flat
# `key: "value"` lines; the harness runs before any YAML parser is installed).
test_version() { # key
  local value
  value=$(sed -n "s/^$1: *\"\(.*\)\"\$/\1/p" "$ROOT/tests/versions.yml")
  [[ -n $value ]] || die "tests/versions.yml has no $1"
  printf '%s\n' "$value"
}
