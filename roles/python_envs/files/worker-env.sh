# shellcheck shell=bash
# Activates the worker environment for one Python X.Y and one
# globus-compute-endpoint version, plus the user's own packages if any.
# Sourced by worker_init:
#
#   \builtin source <dir>/worker-env.sh [--fallback=default|endpoint] 3.12 4.19.0 ['numpy>=2' ...] || exit 1
#
# Without packages, fast path: the site environment <site_root>/py3.12-gce4.19.0
# is ready, so its bin/activate is sourced and nothing else runs (no uv, no
# network, no subprocess). Otherwise, when the site allows it, the environment
# is built once per user under $HOME with the site's uv policy.
#
# With packages (the `requirements` user option), the environment is exactly
# the site environment's package set plus those packages, built once per user
# and set of requirements: $HOME/.globus_compute/envs/py3.12-gce4.19.0-req-<hash>.
#
# Concurrent starts on any number of nodes sharing $HOME wait for one build.
# A worker in a per-user environment holds a shared lock on it for its life,
# so that the user's limits (count, age) never remove one in use. On failure
# one line on stderr says what was asked and why, and the status is non-zero,
# so that no worker runs under another Python. Safe to source under
# `set -euo pipefail`; settings come from worker-env.conf beside this file,
# and everything about per-user environments from worker-env-user.sh, which
# only a worker that needs one reads.
#
# The worker's shell is the user's: whatever options, aliases and variables
# their dotfiles or modules left, this file runs the same and leaves the
# options as it found them. Variables that would make the worker's Python
# import code from elsewhere (PYTHONPATH from a `module load`, ...) are
# cleared, and the worker's line names them.

# The user's aliases would rewrite this file's commands as they are read.
if \shopt -q expand_aliases; then
  __worker_env_restore='shopt -s expand_aliases;'
else
  __worker_env_restore=
fi
\shopt -u expand_aliases

__worker_env_say() { printf 'worker-env: %s\n' "$*" >&2; }

__worker_env_options() { # set the options this file relies on, the user's into __worker_env_restore
  local o
  for o in errexit nounset noclobber noglob pipefail keyword; do
    if [[ -o $o ]]; then
      __worker_env_restore+="set -o $o;"
      set +o "$o"
    fi
  done
  for o in failglob nullglob nocaseglob nocasematch dotglob globstar; do
    if shopt -q "$o"; then
      __worker_env_restore+="shopt -s $o;"
      shopt -u "$o"
    fi
  done
}

__worker_env_ms() { # start-microseconds: elapsed time into __worker_env_took, no subshell
  local now=${EPOCHREALTIME:-}
  if [[ -n $now && -n $1 ]]; then
    now=${now/[.,]/}
    printf -v __worker_env_took '%d.%03d ms' $(((now - $1) / 1000)) $(((now - $1) % 1000))
  else
    __worker_env_took='? ms'
  fi
}

# The WORKER_ENV_* settings are read by worker-env-user.sh, sourced from here.
# shellcheck disable=SC2034
__worker_env() {
  local fallback='' start=${EPOCHREALTIME:-} py gce name env var cleared=''
  # The template says when a version is the site's choice, not the client's.
  case ${1:-} in
    --fallback=default) fallback='; fallback: the client sent no Python version, site default' ;;
    --fallback=endpoint) fallback='; fallback: the client sent no SDK version, site endpoint for its Python' ;;
  esac
  [[ -n $fallback ]] && shift
  py=${1:-} gce=${2:-}
  start=${start/[.,]/}
  local IFS=$' \t\n'
  # What redirects a Python's imports or its standard library.
  local -a pyvars=(PYTHONPATH PYTHONHOME PYTHONPLATLIBDIR PYTHONUSERBASE PYTHONSTARTUP PYTHONEXECUTABLE)
  # Defaults for what worker-env.conf sets; read by worker-env-user.sh, sourced below.
  local WORKER_ENV_SITE_ROOT='' WORKER_ENV_USER_BUILDS=false WORKER_ENV_USER_ROOT=.globus_compute/envs
  local WORKER_ENV_UV=uv WORKER_ENV_LOCK_WAIT=900 WORKER_ENV_USER_REQUIREMENTS=false
  local WORKER_ENV_REQUIREMENTS_MAX=32 WORKER_ENV_USER_ENVS_MAX=10 WORKER_ENV_USER_ENVS_MAX_AGE=30
  local WORKER_ENV_INTERPRETER_SOURCE=system WORKER_ENV_SYSTEM_PATH=/usr/local/bin:/usr/bin:/bin
  local -a WORKER_ENV_EXTRA_PACKAGES=() WORKER_ENV_INDEXES=() WORKER_ENV_INTERPRETER_PATHS=()
  # shellcheck source=/dev/null
  builtin source "${BASH_SOURCE[0]%/*}/worker-env.conf" || return 1

  # Both values end up in paths and command lines: nothing but these shapes.
  if [[ ! $py =~ ^3\.[0-9]{1,2}$ ]]; then
    __worker_env_say "refusing Python version '${py:0:40}': expected 3.X"
    return 2
  fi
  if [[ ! $gce =~ ^[0-9]{1,4}\.[0-9]{1,4}\.[0-9]{1,4}((a|b|rc)[0-9]{1,4})?(\.post[0-9]{1,4})?(\.dev[0-9]{1,4})?$ ]]; then
    __worker_env_say "refusing globus-compute-endpoint version '${gce:0:40}': expected a release such as 4.19.0"
    return 2
  fi
  shift 2
  name="py$py-gce$gce"
  env="$WORKER_ENV_SITE_ROOT/$name"
  __worker_env_how=site

  # Ready: stamped, and its interpreter still there (-x follows the link).
  if (($#)) || [[ ! -f $env/.ready || ! -x $env/bin/python ]]; then
    # shellcheck source=roles/python_envs/files/worker-env-user.sh
    builtin source "${BASH_SOURCE[0]%/*}/worker-env-user.sh" || return 1
    __worker_env_user "$@" || return
  fi
  for var in "${pyvars[@]}"; do
    if [[ -n ${!var+set} ]]; then
      unset "$var"
      cleared+=" $var"
    fi
  done
  # shellcheck source=/dev/null
  builtin source "$env/bin/activate" || return 1
  __worker_env_ms "$start"
  __worker_env_say "${env##*/} $__worker_env_how $env $__worker_env_took${cleared:+; cleared$cleared}$fallback"
}

__worker_env_options
if __worker_env "$@"; then
  set -- 0
else
  set -- "$?"
fi
eval "$__worker_env_restore"
unset -f __worker_env __worker_env_isolate __worker_env_list __worker_env_make __worker_env_ms __worker_env_options \
  __worker_env_private __worker_env_prune __worker_env_python __worker_env_ready __worker_env_requirements __worker_env_say \
  __worker_env_spec __worker_env_use __worker_env_user
unset __worker_env_base __worker_env_how __worker_env_norm __worker_env_restore __worker_env_took __worker_env_why
return "$1"
