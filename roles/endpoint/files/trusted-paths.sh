#!/usr/bin/env bash
# Prints each PATH again when nobody but root or the running account can
# swap or change it, or fails naming the first part that another can.
#
#   trusted-paths.sh PATH...
#
# A path is trusted when every component of it, as written and as resolved,
# belongs to root or to the account running this, and none is writable by
# others (a sticky directory such as /tmp excepted: there only an entry's
# owner can move it). Then nothing on the way can be swapped between this
# check and the moment the path is read or run (a venv's python is run by
# the path as written, so that it stays the venv's).
set -euo pipefail

me=$(id -un)

check_components() { # path: every component of it, without following the last links
  local path=$1 prefix="" part owner mode
  local -a parts
  IFS=/ read -r -a parts <<<"${path#/}"
  for part in / "${parts[@]}"; do
    [[ -n $part ]] || continue
    if [[ $part == / ]]; then prefix=/; else prefix=${prefix%/}/$part; fi
    read -r owner mode < <(stat -c '%U %a' -- "$prefix")
    if [[ $owner != root && $owner != "$me" ]]; then
      echo "$path: $prefix belongs to $owner; $me reads and runs only what root or it owns" >&2
      return 1
    fi
    if ((8#$mode & 8#022)) && ! ((8#$mode & 8#1000)) && [[ ! -L $prefix ]]; then
      echo "$path: $prefix is writable by others" >&2
      return 1
    fi
  done
}

for path in "$@"; do
  [[ $path == /* ]] || { echo "$path: not an absolute path" >&2; exit 1; }
  real=$(readlink -e -- "$path") || { echo "$path: does not exist" >&2; exit 1; }
  check_components "$path"
  check_components "$real"
  printf '%s\n' "$path"
done
