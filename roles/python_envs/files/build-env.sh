#!/usr/bin/env bash
# Builds one site environment, or says it is already built.
#
#   build-env.sh [--check] UV ROOT NAME SPEC_HASH PYTHON ENDPOINT [PACKAGE...]
#
# ROOT/NAME is a link to a build ROOT/.builds/NAME-SPEC_HASH.HOST-PID. An
# environment whose spec is unchanged is left alone ("unchanged"); otherwise a
# new build is made in a directory of its own, private to its builder until it
# is complete (a venv cannot move), stamped ready last, and the link is
# switched to it by one rename ("built"): a worker sees the old environment or
# the new one, never half of either. Correctness rests on that alone. The lock
# only spares hosts that share ROOT duplicate builds: it is root's alone (users
# cannot hold it), its wait is bounded, and a lock that cannot be had (a
# filesystem without working locks) means building without it. The previous
# build stays for workers still running in it (see python_envs_prune).
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
prefix=.builds/$name-$hash
# How long a host waits for another one building the same root, in seconds.
lock_wait=120

# The ready build of this spec, if there is one: the one the link names first,
# else any other (built by a host that did not get to switch the link).
ready_build() {
  local target build
  target=$(readlink "$root/$name" 2>/dev/null) || target=
  for build in "$target" "$root/$prefix" "$root/$prefix".*; do
    build=${build#"$root/"}
    if [[ ($build == "$prefix" || $build == "$prefix".*) && -f $root/$build/.ready ]]; then
      printf '%s\n' "$build"
      return 0
    fi
  done
  return 1
}

current() {
  local build
  build=$(ready_build) && [[ $(readlink "$root/$name" 2>/dev/null) == "$build" ]]
}

publish() {
  ln -sfn "$1" "$root/.$name.link.$$"
  mv -Tf "$root/.$name.link.$$" "$root/$name"
}

# Builds of this spec that were interrupted: on this host, by a process that
# is gone; on any host, untouched for a day.
remove_interrupted() {
  local build tag
  for build in "$root/$prefix".*; do
    [[ -d $build && ! -f $build/.ready ]] || continue
    tag=${build#"$root/$prefix."}
    if [[ ${tag%-*} == "$host" ]] && ! kill -0 "${tag##*-}" 2>/dev/null; then
      rm -rf "$build"
    elif [[ -n $(find "$build" -maxdepth 0 -mmin +1440) ]]; then
      rm -rf "$build"
    fi
  done
}

if current; then
  echo unchanged
  exit 0
fi
if $check; then
  echo "would build $prefix"
  exit 0
fi

umask 022
host=$(uname -n)
mkdir -p "$root/.builds"
# A lock file others can read is one they can hold: this one is the owner's
# alone (an older, readable one is retired).
lock=$root/.builds/.build.lock
rm -f "$root/.builds/.lock"
if ! { (umask 077 && : >>"$lock") && exec 9>>"$lock" && flock -w "$lock_wait" 9; } 2>/dev/null; then
  echo "build-env: no lock on $lock within $lock_wait s; building without it" >&2
fi
shopt -s nullglob
remove_interrupted
if build=$(ready_build); then
  # Another host built it while this one waited: only the link is missing.
  publish "$build"
  echo built
  exit 0
fi

build=$prefix.$host-$$
mkdir -m 0700 "$root/$build"
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
chmod 0755 "$root/$build"
mv -f "$root/$build/.ready.tmp" "$root/$build/.ready"
# One line per build actually made: on a shared root, which host made it.
printf '%s %s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$host" "$build" >>"$root/.builds/builds.log"
publish "$build"
echo built
