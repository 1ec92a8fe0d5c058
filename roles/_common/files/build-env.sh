#!/usr/bin/env bash
# Builds one site environment, or says it is already built; or (--probe)
# checks that an interpreter runs for an unprivileged account.
#
#   build-env.sh [--check] [--stage] [--replace BUILD] [--as ACCOUNT] UV ROOT NAME SPEC_HASH PYTHON ENDPOINT [PACKAGE...]
#   build-env.sh --probe [--as ACCOUNT] [--python-version X.Y] PYTHON
#   build-env.sh --trusted PATH...
#
# ROOT/NAME is a link to a build ROOT/.builds/NAME-SPEC_HASH.HOST-PID. An
# environment whose spec is unchanged is left alone ("unchanged"); otherwise a
# new build is made in a directory of its own, private to its builder until it
# is complete (a venv cannot move), proved runnable by an unprivileged account,
# stamped ready last, and the link is switched to it by one rename ("built"):
# a worker sees the old environment or the new one, never half of either.
# Correctness rests on that alone. The lock only spares hosts that share ROOT
# duplicate builds: it is root's alone (users cannot hold it), its wait is
# bounded, and a lock that cannot be had (a filesystem without working locks)
# means building without it. The previous build is retired, and stays for
# workers still running in it (the rules below; see python_envs_prune). Root
# proves what users run with setpriv: without it, nothing is built (status 3).
#
# The unprivileged account is ACCOUNT (default nobody) when root builds, and
# the builder itself otherwise (a per-user deployment). A build it cannot run
# is removed and nothing is published; the one line on stderr ends
# "cannot be run by ACCOUNT: REASON" and the status is 3.
#
# --stage makes the ready build and stops short of publishing it ("staged"):
# a caller with several environments stages them all, then publishes each by
# a run without --stage (which finds the ready build and only switches the
# link), so that one build that fails leaves every link as it was. A staged
# build nobody publishes is retired by the next prune like any unlinked one.
#
# --replace BUILD: BUILD (a target of ROOT/NAME, as .builds/...) is not taken
# as ready, whatever its stamp: the caller, which reads stamps, found one that
# does not read as a stamp of SPEC_HASH. Another ready build of the spec, or a
# new one, is published in its place, and BUILD is retired as any replaced
# build is. Only BUILD: hosts sharing ROOT that all found it so make one new
# build between them, as for any build.
#
# Nothing is run, by uv or by this script, before PYTHON and UV are trusted:
# every part of them belongs to root or the running account (--trusted, below);
# otherwise the one line on stderr names the part, and the status is 4.
#
#   build-env.sh --prune [--check] ROOT DAYS [NAME...]
#
# Prunes ROOT: unpublishes every environment but the NAMEs, and removes the
# builds retired for longer than DAYS (python_envs_keep_superseded), by the
# rules below. Prints one line per change ("would ..." with --check).
set -euo pipefail

# The rules of builds under a root. Their one home, for the site's builds
# (this program, run by Ansible from the controller) and for users' builds
# (worker-env-build, deployed beside a copy of this file in the runtime
# directory, which sources it with --rules and reads no further):
# - a build is named after its builder, TAG = HOST-PID, HOST being the
#   hostname, this boot and this pid namespace: hosts may share a hostname
#   (containers, cloned images) and a pid namespace reuses pids;
# - an interrupted build (no ready stamp) is dead at once when its HOST is
#   this one and its PID a process gone; with another HOST, only once nothing
#   has touched it for a day;
# - a name is published by switching its link by one rename;
# - a complete build that no name links to any more is retired: its
#   .unpublished file records when (the switch or prune that unpublished it,
#   or the first sweep that finds it so). It is never published again, and it
#   is removed only once retired for longer than the grace, DAYS, which must
#   outlive every job that may still run in it. No lock is involved: workers
#   hold none (that would cost each start a process, and users could hold one
#   forever), and the rule is the same whether locks exclude, do not exclude
#   across nodes (Lustre localflock, NFS nolock) or fail.
running() { # pid: a live process (a zombie, which a container's init may never reap, is gone)
  local stat
  kill -0 "$1" 2>/dev/null || return 1
  read -r stat <"/proc/$1/stat" 2>/dev/null || return 0
  stat=${stat##*) }
  [[ ${stat%% *} != Z ]]
}

build_host() { # this builder's HOST, into host
  local boot='' pidns
  read -r boot </proc/sys/kernel/random/boot_id 2>/dev/null || :
  pidns=$(readlink /proc/self/ns/pid 2>/dev/null) || pidns=
  pidns=${pidns//[^0-9]/}
  host=${HOSTNAME:-$(uname -n)}.${boot:0:8}.${pidns:-0}
}

dead() { # dir tag: an interrupted build (or a link in flight) that nobody will finish
  if [[ ${2%-*} == "$host" ]] && ! running "${2##*-}"; then
    return 0
  fi
  [[ -n $(find "$1" -maxdepth 0 -mmin +1440 2>/dev/null) ]]
}

retire() { # build: record that no name links to it any more, from now
  printf '%(%s)T %(%Y-%m-%dT%H:%M:%S%z)T\n' -1 -1 2>/dev/null >|"$1/.unpublished" || :
}

retired() { # build: when it was retired (epoch seconds) into when; 1 if it is not
  when=
  [[ -f $1/.unpublished ]] || return 1
  read -r when _ <"$1/.unpublished" 2>/dev/null || :
  # Unreadable or mangled: retired, from now (recorded, unless only checking).
  if [[ ! $when =~ ^[0-9]+$ ]]; then
    ${sweep_check:-false} || retire "$1"
    printf -v when '%(%s)T' -1
  fi
}

switch() { # link target temp: point link at target (relative to the link's directory) by one rename
  local old='' dir=${1%/*}
  [[ ! -L $1 ]] || old=$(readlink "$1" 2>/dev/null) || old=
  rm -f "$dir/$2/.unpublished" 2>/dev/null || :
  ln -sfn "$2" "$3" 2>/dev/null && mv -Tf "$3" "$1" 2>/dev/null || return 1
  if [[ -n $old && $old != "$2" && -f $dir/$old/.ready ]]; then
    retire "$dir/$old"
  fi
}

linked() { # root build: a name in root links to build
  local link
  for link in "$1"/*; do
    [[ -L $link && $link -ef $2 ]] && return 0
  done
  return 1
}

sweep() { # days root build...: complete builds: retire the unlinked, remove those retired longer than days; says what it did
  local days=$1 root=$2 build now when
  shift 2
  printf -v now '%(%s)T' -1
  for build; do
    if linked "$root" "$build"; then
      # Published again by a builder that raced a sweep: not retired.
      [[ ! -e $build/.unpublished ]] || $sweep_check || rm -f "$build/.unpublished" 2>/dev/null || :
    elif ! retired "$build"; then
      $sweep_check || retire "$build"
      said retired retire "${build#"$root/"}"
    elif ((now - when > days * 86400)); then
      $sweep_check || rm -rf "$build" 2>/dev/null || :
      said removed remove "${build#"$root/"}"
    fi
  done
}
sweep_check=false

said() { # done do what: one line of what was done (or would be, in check mode)
  if $sweep_check; then echo "would $2 $3"; else echo "$1 $3"; fi
}

# A ready stamp, the site's builds' and users' alike: one key=value per line,
# the value the rest of the line; a list (packages, requirements) repeats its
# key, one line per item. Bash reads it with `IFS== read -r key value`, and
# Ansible with the collection's from_stamp filter. Until the next release,
# readers also take the JSON stamps that site builds wrote before.
stamp() { # file key=value...: write the stamp into file (the caller moves it into place)
  local field
  for field in "${@:2}"; do
    [[ $field != *$'\n'* ]] || return 1
  done
  printf '%s\n' "${@:2}" >"$1"
}

if [[ ${1:-} == --rules ]]; then
  # shellcheck disable=SC2317 # reached when sourced
  return 0
fi

# An environment's name is PREFIX X.Y INFIX VERSION, the request contract's
# (plugins/lookup/contract.py), whose parts the caller gives as
# BUILD_ENV_NAME="PREFIX INFIX" (the _common role's build_env does): a prune
# and the removal of interrupted builds look at such names alone.
name_parts() { # the parts into name_part, or fail saying so (status 2)
  read -r -a name_part <<<"${BUILD_ENV_NAME:-}"
  ((${#name_part[@]} == 2)) && return 0
  echo "build-env: BUILD_ENV_NAME '${BUILD_ENV_NAME:-}': expected the two parts of an environment's name, PREFIX INFIX" >&2
  exit 2
}

# What a killed site builder leaves in root, of any spec (one superseded
# since has no build of its own to find it): a build without its ready stamp,
# NAME-SPEC.HOST-PID, and a link in flight, .NAME.link.HOST-PID (between its
# `ln` and its rename). Each goes once dead (the rules above), never while its
# builder may be running, here or on another host. A user's builds, in a
# root a per-user deployment shares, sit one level deeper and are theirs.
remove_interrupted() { # root: says what it did
  local entry prefix=${name_part[0]} infix=${name_part[1]}
  for entry in "$1/.builds/$prefix"* "$1/.$prefix"*.link.*; do
    # The versions hold no -: the tag is all after the first -SPEC. (a hostname may hold - and hex).
    if [[ ${entry##*/} =~ ^"$prefix"[^/-]*"$infix"[^/-]*-[0123456789abcdef]+[.](.+-[0123456789]+)$ && -d $entry &&
      ! -L $entry && ! -f $entry/.ready ]] ||
      [[ ${entry##*/} =~ ^[.]"$prefix"[^/-]*"$infix"[^/-]*[.]link[.](.+)$ && -L $entry ]]; then
      dead "$entry" "${BASH_REMATCH[1]}" || continue
      $sweep_check || rm -rf "$entry" 2>/dev/null || :
      said removed remove "${entry#"$1/"}"
    fi
  done
}

# --trusted prints each PATH again when nobody but root or the running
# account can swap or change what running or reading it reaches, or fails
# naming the first name another can. Every name its lookup visits counts:
# each directory on the way, each link as itself and then, hop by hop, the
# names where it leads, and the #! interpreter of a script (and that one's).
# Each must belong to root or the running account and be writable neither by
# its group nor by others (a sticky directory such as /tmp excepted: there
# only an entry's owner can move it; a POSIX ACL that lets another account
# write shows as group write). Then nothing on the way can be swapped between
# this check and the moment the path is read or run (a venv's python is run
# by the path as written, so that it stays the venv's). The same rule as the
# probe module's trusted(), which also admits a name not made yet; here a
# PATH must exist.
theirs() { # path name: fails naming NAME (a part of PATH) unless only root or this account can change it
  local uid mode owner
  if ! read -r uid mode owner < <(stat -c '%u %a %U' -- "$2" 2>/dev/null); then
    echo "$1: $2 does not exist" >&2
    return 1
  fi
  if ((uid != 0 && uid != EUID)); then
    echo "$1: $2 belongs to $owner; $(id -un) reads and runs only what root or it owns" >&2
    return 1
  fi
  if [[ ! -L $2 ]] && ((8#$mode & 8#022)) && ! { [[ -d $2 ]] && ((8#$mode & 8#1000)); }; then
    echo "$1: $2 is writable by its group or others" >&2
    return 1
  fi
}

resolves_trusted() { # label path scripts: the rule above for PATH, which may be one of SCRIPTS in a row, failing as LABEL
  local label=$1 path=$2 scripts=$3 current=/ part name target magic line program links=0 blanks=$' \t'
  local -a parts more
  theirs "$label" / || return 1
  IFS=/ read -r -d '' -a parts < <(printf '%s\0' "$path")
  while ((${#parts[@]})); do
    part=${parts[0]}
    parts=(${parts[@]+"${parts[@]:1}"})
    case $part in
      '' | .) continue ;;
      ..)
        current=${current%/*}
        current=${current:-/}
        continue
        ;;
    esac
    name=${current%/}/$part
    theirs "$label" "$name" || return 1
    if [[ -L $name ]]; then
      target=$(readlink -- "$name" && printf x)
      target=${target%$'\nx'}
      if ((++links > 40)); then
        echo "$label: more than 40 links" >&2
        return 1
      fi
      [[ $target != /* ]] || current=/
      IFS=/ read -r -d '' -a more < <(printf '%s\0' "$target")
      parts=(${more[@]+"${more[@]}"} ${parts[@]+"${parts[@]}"})
      continue
    fi
    current=$name
  done
  [[ -f $current ]] || return 0
  magic=$(head -c 2 -- "$current" 2>/dev/null | tr -d '\0') || return 0
  [[ $magic == '#!' ]] || return 0
  # As Linux reads it: the line ends at a newline or a NUL, the name after
  # spaces and tabs (only those, whatever the locale), up to the next one.
  line=$(head -c 256 -- "$current" | head -n 1 | tr '\0' '\n' | head -n 1) || true
  line=${line#\#!}
  line=${line#"${line%%[!"$blanks"]*}"}
  program=${line%%["$blanks"]*}
  [[ -n $program ]] || return 0
  if [[ $program != /* ]] || ((scripts == 0)); then
    echo "$label: its #! interpreter $program is not an absolute path, or one more than the kernel runs" >&2
    return 1
  fi
  resolves_trusted "$label: its #! interpreter $program" "$program" $((scripts - 1))
}

trusted() { # path...
  local path
  for path in "$@"; do
    if [[ $path != /* ]]; then
      echo "$path: not an absolute path" >&2
      return 1
    fi
    if [[ ! -e $path ]]; then
      echo "$path: does not exist" >&2
      return 1
    fi
    resolves_trusted "$path" "$path" 5 || return 1
    printf '%s\n' "$path"
  done
}

# Root follows no link another account planted: a root, and its .builds,
# that an account other than root and this one can change is refused.
own_root() { # root
  [[ ! -e $1 ]] || trusted "$1" >/dev/null || return 1
  [[ ! -e $1/.builds && ! -L $1/.builds ]] || trusted "$1/.builds" >/dev/null
}

check=false probe=false prune=false stage=false replace='' account=nobody want=
while [[ ${1:-} == --* ]]; do
  case $1 in
    --trusted)
      shift
      trusted "$@"
      exit
      ;;
    --check) check=true ;;
    --probe) probe=true ;;
    --prune) prune=true ;;
    --stage) stage=true ;;
    --replace)
      replace=$2
      shift
      ;;
    --as)
      account=$2
      shift
      ;;
    --python-version)
      want=$2
      shift
      ;;
    *) break ;;
  esac
  shift
done
if $prune; then
  name_parts
  root=$1 days=$2
  shift 2
  if [[ ! $days =~ ^[0-9]+$ ]]; then
    echo "build-env: grace '$days': expected a number of days" >&2
    exit 2
  fi
  sweep_check=$check
  own_root "$root" || exit 2
  shopt -s nullglob
  # Unpublish the site's environments that are not kept: links to a build
  # directly under .builds (a user's, in a root a per-user deployment shares,
  # link one level deeper and are that user's own builds' to prune).
  for link in "$root/${name_part[0]}"*"${name_part[1]}"*; do
    target=$(readlink "$link" 2>/dev/null) || continue
    [[ $target == .builds/* && $target != .builds/*/* ]] || continue
    for keep; do
      [[ ${link##*/} == "$keep" ]] && continue 2
    done
    if ! $check; then
      [[ ! -f $root/$target/.ready ]] || retire "$root/$target"
      rm -f "$link"
    fi
    said unpublished unpublish "${link##*/}"
  done
  # Builds without their ready stamp only once dead: one may be another
  # host's, still being made.
  build_host
  remove_interrupted "$root"
  complete=()
  for build in "$root"/.builds/*/.ready; do
    complete+=("${build%/.ready}")
  done
  sweep "$days" "$root" ${complete[@]+"${complete[@]}"}
  exit 0
fi
if $probe; then
  python=$1
  [[ $python != */* || $python == /* ]] || python=$PWD/$python
else
  name_parts
  uv=$1 root=$2 name=$3 hash=$4 python=$5 endpoint=$6
  shift 6
  [[ $root == /* ]] || root=$PWD/$root
fi

# Only the site's policy decides how uv builds: its uv.toml (system-wide, or
# the building account's for a per-user deployment). Not a [tool.uv] in the
# directory the playbook runs from or above it, not UV_* variables of the
# account's environment, not variables that redirect a Python's imports.
cd /
for var in ${!UV_@}; do
  unset "$var"
done
unset PYTHONPATH PYTHONHOME PYTHONPLATLIBDIR PYTHONUSERBASE PYTHONSTARTUP PYTHONEXECUTABLE VIRTUAL_ENV CONDA_PREFIX

if ((EUID != 0)); then
  account=$(id -un)
fi

# A name is looked up as the builder's uv would: on its PATH. The path found
# is the one checked, run and built from.
if [[ $python != */* ]]; then
  found=$(command -v -- "$python") || {
    echo "$python: not found on PATH" >&2
    exit 3
  }
  python=$found
fi
trusted "$python" >/dev/null || exit 4
$probe || trusted "$uv" >/dev/null || exit 4

# Root proves what users can run as ACCOUNT, with setpriv: without it,
# nothing can be proved, so nothing is built.
no_setpriv() { # python: say so, status 3
  echo "$1 cannot be run by $account: setpriv (util-linux) is missing" >&2
  return 3
}
if ((EUID == 0)) && ! command -v setpriv >/dev/null; then
  no_setpriv "$python" || exit
fi

# Why PYTHON cannot be run by the account, if it cannot (status 3). It runs
# it as workers do, in an empty environment from /: with --build, it also
# imports globus_compute_endpoint and reads every file of the build, so a
# module a worker imports later cannot fail with PermissionError either.
runnable() { # python [--build]
  local python=$1 out reason
  local -a runner=(env -i PATH=/usr/bin:/bin)
  if ((EUID == 0)); then
    local uid gid
    if ! uid=$(id -u -- "$account" 2>/dev/null) || ! gid=$(id -g -- "$account" 2>/dev/null); then
      echo "$python cannot be run by $account: no such account" >&2
      return 3
    fi
    command -v setpriv >/dev/null || no_setpriv "$python" || return
    runner=(setpriv --reuid="$uid" --regid="$gid" --init-groups -- ${runner[@]+"${runner[@]}"})
  fi
  if out=$(${runner[@]+"${runner[@]}"} "$python" - "${2:-}" 2>&1 <<'PY'
import os, sys
if sys.argv[1:] == ["--build"]:
    import globus_compute_endpoint
    for top, dirs, files in os.walk(sys.prefix, onerror=lambda e: sys.exit(f"PermissionError: {e}")):
        for entry in dirs + files:
            path = os.path.join(top, entry)
            mode = os.R_OK | (os.X_OK if entry in dirs else 0)
            if not os.path.islink(path) and not os.access(path, mode):
                sys.exit(f"PermissionError: {path} is not readable")
else:
    print("%d.%d" % sys.version_info[:2])
PY
  ); then
    # Its X.Y, for --probe: the last line (a site's Python may warn first).
    [[ -n ${2:-} || -z $out ]] || printf '%s\n' "${out##*$'\n'}"
    return 0
  fi
  reason=${out%$'\n'}
  reason=${reason##*$'\n'}
  # env's own "env: 'PYTHON': Permission denied" says no more than its end.
  [[ $reason != env:* ]] || reason=${reason##*: }
  echo "$python cannot be run by $account: ${reason:-no message}" >&2
  return 3
}

if $probe; then
  version=$(runnable "$python") || exit 3
  if [[ -n $want && $version != "$want" ]]; then
    echo "$python is Python $version" >&2
    exit 3
  fi
  exit 0
fi

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
    [[ $build != "$replace" ]] || continue
    # A retired build is never published again (it may be removed at any time).
    [[ $build == "$target" || ! -e $root/$build/.unpublished ]] || continue
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

publish() { # build: ROOT/NAME links to it; the build it replaces is retired
  switch "$root/$name" "$1" "$root/.$name.link.$host-$$" || {
    echo "build-env: cannot link $root/$name to $1" >&2
    exit 1
  }
}

if current; then
  echo unchanged
  exit 0
fi
if $check; then
  # A ready build whose link is missing (another host built it, or the link
  # was removed) is linked by the real run, once it runs again; not built.
  if build=$(ready_build); then
    echo "would link $build"
  else
    echo "would build $prefix"
  fi
  exit 0
fi

umask 022
own_root "$root" || exit 2
build_host
mkdir -p "$root/.builds"
# A lock file others can read is one they can hold: this one is the owner's
# alone (an older, readable one is retired).
lock=$root/.builds/.build.lock
rm -f "$root/.builds/.lock"
if ! { (umask 077 && : >>"$lock") && exec 9>>"$lock" && flock -w "$lock_wait" 9; } 2>/dev/null; then
  echo "build-env: no lock on $lock within $lock_wait s; building without it" >&2
fi
shopt -s nullglob
remove_interrupted "$root" >/dev/null
if build=$(ready_build); then
  if $stage; then
    echo staged
    exit 0
  fi
  # Another host (or a staging run) built it: only the link is missing. It
  # may have waited days since an unprivileged account ran it: its modes are
  # made again as a build's are, it is run again before it is published, and
  # one that no longer runs is retired (no worker ever ran in it) and built anew.
  chmod -R u+rwX,go+rX,go-w "$root/$build" 2>/dev/null || :
  if runnable "$root/$build/bin/python" --build 2>/dev/null; then
    publish "$build"
    echo built
    exit 0
  fi
  retire "$root/$build"
fi

build=$prefix.$host-$$
mkdir -m 0700 "$root/$build"
# Copied from uv's cache, never linked: a cache filled under a umask such as
# 077 holds 0600 files, which a hard link would give users as they are, and
# only a copy can be made readable (below) without changing the cache, which
# the builder's other uv runs share. Measured with globus-compute-endpoint
# (3,472 files): 0.38 s against 0.14 s for hard links, once per build.
if ! "$uv" venv --quiet --python "$python" "$root/$build" ||
  ! "$uv" pip install --quiet --link-mode copy --python "$root/$build/bin/python" \
    "globus-compute-endpoint==$endpoint" "$@"; then
  rm -rf "${root:?}/$build"
  echo "build of $name failed; nothing was changed" >&2
  exit 1
fi
version=$("$root/$build/bin/python" -c 'import platform; print(platform.python_version())')
if ! stamp "$root/$build/.ready.tmp" "name=$name" "spec=$hash" "python=$version" "endpoint=$endpoint" \
  ${@+"${@/#/packages=}"} "built=$(date +%Y-%m-%dT%H:%M:%S%z)" "host=${HOSTNAME:-$(uname -n)}"; then
  rm -rf "${root:?}/$build"
  echo "build of $name failed: a package holds a line break; nothing was changed" >&2
  exit 1
fi
# Users read and run everything (the cache's modes came along with the
# copies), and write nothing (uv leaves its own lock file writable by all).
chmod -R u+rwX,go+rX,go-w "$root/$build"
if ! runnable "$root/$build/bin/python" --build; then
  rm -rf "${root:?}/$build"
  exit 3
fi
mv -f "$root/$build/.ready.tmp" "$root/$build/.ready"
# One line per build actually made: on a shared root, which host made it.
printf '%s %s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$host" "$build" >>"$root/.builds/builds.log"
if $stage; then
  echo staged
  exit 0
fi
publish "$build"
echo built
