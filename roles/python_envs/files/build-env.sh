#!/usr/bin/env bash
# Builds one site environment, or says it is already built.
#
#   build-env.sh [--check] UV ROOT NAME SPEC_HASH PYTHON ENDPOINT [PACKAGE...]
#
# ROOT/NAME is a link to ROOT/.builds/NAME-SPEC_HASH. An environment whose
# spec is unchanged is left alone ("unchanged"); otherwise the new build is
# made in its own directory (a venv cannot move), stamped ready last, and the
# link is switched to it by one rename ("built"), so a worker sees the old
# environment or the new one, never half of either. The previous build stays
# for workers still running in it (see python_envs_prune).
set -euo pipefail

check=false
if [[ ${1:-} == --check ]]; then
  check=true
  shift
fi
uv=$1 root=$2 name=$3 hash=$4 python=$5 endpoint=$6
shift 6

# Only the site's policy decides how uv builds: its uv.toml (system-wide, or
# the building account's for a per-user deployment). Not a [tool.uv] in the
# directory the playbook runs from or above it, not UV_* variables of the
# account's environment, not variables that redirect a Python's imports.
case $root in
  /*) ;;
  *) root=$PWD/$root ;;
esac
cd /
for var in ${!UV_@}; do
  unset "$var"
done
unset PYTHONPATH PYTHONHOME PYTHONPLATLIBDIR PYTHONUSERBASE PYTHONSTARTUP PYTHONEXECUTABLE VIRTUAL_ENV CONDA_PREFIX
build=".builds/$name-$hash"

current() {
  [[ $(readlink "$root/$name" 2>/dev/null) == "$build" && -f $root/$build/.ready ]]
}

if current; then
  echo unchanged
  exit 0
fi
if $check; then
  echo "would build $build"
  exit 0
fi

umask 022
mkdir -p "$root/.builds"
# Hosts sharing ROOT on a cluster filesystem build one at a time.
exec 9>>"$root/.builds/.lock"
flock -w 3600 9
# Another host built and switched it while this one waited.
if current; then
  echo unchanged
  exit 0
fi
if [[ ! -f $root/$build/.ready ]]; then
  rm -rf "${root:?}/$build"
  if ! "$uv" venv --quiet --python "$python" "$root/$build" ||
    ! "$uv" pip install --quiet --python "$root/$build/bin/python" "globus-compute-endpoint==$endpoint" "$@"; then
    rm -rf "${root:?}/$build"
    echo "build of $name failed; nothing was changed" >&2
    exit 1
  fi
  "$root/$build/bin/python" - "$root/$build/.ready" "$name" "$hash" "$endpoint" "$@" <<'PY'
import json, sys, time, platform, socket
path, name, spec, endpoint, *packages = sys.argv[1:]
stamp = {
    "name": name,
    "spec": spec,
    "python": platform.python_version(),
    "endpoint": endpoint,
    "packages": packages,
    "built": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    "host": socket.gethostname(),
}
with open(path + ".tmp", "w") as f:
    json.dump(stamp, f, indent=2)
    f.write("\n")
PY
  # uv leaves its own lock file writable by all; users get nothing to write.
  chmod -R go-w "$root/$build"
  mv -f "$root/$build/.ready.tmp" "$root/$build/.ready"
  # One line per build actually made: on a shared root, which host made it.
  printf '%s %s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(uname -n)" "$build" >>"$root/.builds/builds.log"
fi
ln -sfn "$build" "$root/.$name.link.$$"
mv -Tf "$root/.$name.link.$$" "$root/$name"
echo built
