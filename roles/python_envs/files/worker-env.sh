# shellcheck shell=bash
# Activates the worker environment for one Python X.Y and one
# globus-compute-endpoint version. Sourced by worker_init:
#
#   source <dir>/worker-env.sh 3.12 4.19.0 || exit 1
#
# Fast path: the site environment <site_root>/py3.12-gce4.19.0 is ready, so
# its bin/activate is sourced and nothing else runs (no uv, no network, no
# subprocess). Otherwise, when the site allows it, the environment is built
# once per user under $HOME with the site's uv policy; concurrent starts on
# any number of nodes sharing $HOME wait for that one build. Otherwise one
# line on stderr says what was asked and what exists, and the status is
# non-zero so that no worker runs under another Python. Safe to source under
# `set -euo pipefail`; settings come from worker-env.conf beside this file.

__worker_env_say() { printf 'worker-env: %s\n' "$*" >&2; }

__worker_env_ms() { # start-microseconds: elapsed time into __worker_env_took, no subshell
  local now=${EPOCHREALTIME:-}
  if [[ -n $now && -n $1 ]]; then
    now=${now/[.,]/}
    printf -v __worker_env_took '%d.%03d ms' $(((now - $1) / 1000)) $(((now - $1) % 1000))
  else
    __worker_env_took='? ms'
  fi
}

__worker_env_list() { # root: the ready environments under it, comma-separated
  local stamp names=()
  for stamp in "$1"/py*-gce*/.ready; do
    [[ -f $stamp ]] && names+=("$(basename "$(dirname "$stamp")")")
  done
  local IFS=,
  printf '%s' "${names[*]:-none}"
}

__worker_env_build() { # py gce env: build env under an exclusive lock
  local py=$1 gce=$2 env=$3 root name fd out
  root=$(dirname "$env")
  name=$(basename "$env")
  mkdir -p "$root" || {
    __worker_env_why="cannot create $root"
    return 1
  }
  # One lock per environment, beside it: flock is honoured across the nodes
  # of an NFSv4 or Lustre home, and released by the kernel if we are killed.
  exec {fd}>>"$root/.$name.lock" || {
    __worker_env_why="cannot open $root/.$name.lock"
    return 1
  }
  if ! flock -w "$WORKER_ENV_LOCK_WAIT" "$fd"; then
    exec {fd}>&-
    __worker_env_why="gave up after waiting ${WORKER_ENV_LOCK_WAIT} s for another build"
    return 1
  fi
  if [[ -f $env/.ready ]]; then
    exec {fd}>&-
    __worker_env_how=waited
    return 0
  fi
  # A directory without a ready stamp is a build that was killed: nobody
  # else builds while we hold the lock, so it can go. The environment is
  # built where it will live (a venv cannot move) and becomes usable only
  # when its ready stamp is written, last.
  rm -rf "$env"
  if ! out=$(
    "$WORKER_ENV_UV" venv --quiet --python "$py" "$env" 2>&1 &&
      "$WORKER_ENV_UV" pip install --quiet --python "$env/bin/python" \
        "globus-compute-endpoint==$gce" "${WORKER_ENV_EXTRA_PACKAGES[@]}" 2>&1
  ); then
    rm -rf "$env"
    exec {fd}>&-
    # uv's whole reason, for the one line the endpoint log shows.
    out=$(printf '%s' "$out" | tr -s ' \n' ' ')
    __worker_env_why="build failed: ${out:0:600}"
    return 1
  fi
  printf 'python=%s\nendpoint=%s\nbuilt=%(%Y-%m-%dT%H:%M:%S%z)T\nhost=%s\n' \
    "$py" "$gce" -1 "${HOSTNAME:-}" >"$env/.ready.tmp"
  mv -f "$env/.ready.tmp" "$env/.ready"
  exec {fd}>&-
  __worker_env_how=built
}

__worker_env() {
  local py=${1:-} gce=${2:-} start=${EPOCHREALTIME:-} name env
  start=${start/[.,]/}
  local WORKER_ENV_SITE_ROOT='' WORKER_ENV_USER_BUILDS=false WORKER_ENV_USER_ROOT=.globus_compute/envs
  local WORKER_ENV_UV=uv WORKER_ENV_LOCK_WAIT=900
  local -a WORKER_ENV_EXTRA_PACKAGES=()
  # shellcheck source=/dev/null
  source "${BASH_SOURCE[0]%/*}/worker-env.conf" || return 1

  # Both values end up in paths and command lines: nothing but these shapes.
  if [[ ! $py =~ ^3\.[0-9]{1,2}$ ]]; then
    __worker_env_say "refusing Python version '${py:0:40}': expected 3.X"
    return 2
  fi
  if [[ ! $gce =~ ^[0-9]{1,4}\.[0-9]{1,4}\.[0-9]{1,4}((a|b|rc)[0-9]{1,4})?(\.post[0-9]{1,4})?(\.dev[0-9]{1,4})?$ ]]; then
    __worker_env_say "refusing globus-compute-endpoint version '${gce:0:40}': expected a release such as 4.19.0"
    return 2
  fi
  name="py$py-gce$gce"

  env="$WORKER_ENV_SITE_ROOT/$name"
  __worker_env_how=site
  if [[ ! -f $env/.ready ]]; then
    if [[ $WORKER_ENV_USER_BUILDS != true ]]; then
      __worker_env_say "no environment for Python $py with globus-compute-endpoint $gce;" \
        "site has: $(__worker_env_list "$WORKER_ENV_SITE_ROOT"); per-user builds are off"
      return 1
    fi
    env="$HOME/$WORKER_ENV_USER_ROOT/$name"
    __worker_env_how=user
    if [[ ! -f $env/.ready ]] && ! __worker_env_build "$py" "$gce" "$env"; then
      __worker_env_say "no environment for Python $py with globus-compute-endpoint $gce:" \
        "$__worker_env_why; site has: $(__worker_env_list "$WORKER_ENV_SITE_ROOT")"
      return 1
    fi
  fi
  # shellcheck source=/dev/null
  source "$env/bin/activate" || return 1
  __worker_env_ms "$start"
  __worker_env_say "$name $__worker_env_how $env $__worker_env_took"
}

__worker_env "$@"
set -- "$?"
unset -f __worker_env __worker_env_build __worker_env_list __worker_env_ms __worker_env_say
unset __worker_env_how __worker_env_took __worker_env_why
return "$1"
