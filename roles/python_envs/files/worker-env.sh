# shellcheck shell=bash
# Activates the worker environment for one Python X.Y and one
# globus-compute-endpoint version, plus the user's own packages if any:
#
#   \builtin source <dir>/worker-env.sh [--fallback=default|endpoint] 3.12 4.19.0 ['numpy>=2' ...] || exit 1
#
# How, and why so, is told below the fast path's `return`: bash lexes every
# character it reads here, comments too, at every worker start.

# What follows needs bash 4.2 ({fd} redirections, ${x,,}, printf %(...)T).
# Written for any sh, which reads a file only as far as it runs it: an old
# bash, dash or busybox sh gives this one line, not a syntax error.
case ${BASH_VERSION-} in
  '' | [0-3].* | 4.[01].*)
    printf 'worker-env: refusing %s: worker-env.sh needs bash 4.2 or later\n' "${BASH_VERSION:+bash }${BASH_VERSION:-a shell that is not bash}" >&2
    return 1
    ;;
esac

__worker_env_start=${EPOCHREALTIME:-}
# The user's aliases would rewrite this file's commands as they are read.
if \shopt -q expand_aliases; then
  __worker_env_restore='shopt -s expand_aliases;'
else
  __worker_env_restore=
fi
\shopt -u expand_aliases
# The options this file relies on: the user's into __worker_env_restore.
case :$SHELLOPTS:$BASHOPTS: in
  *:errexit:* | *:nounset:* | *:noclobber:* | *:noglob:* | *:pipefail:* | *:keyword:* | \
    *:failglob:* | *:nullglob:* | *:nocaseglob:* | *:nocasematch:* | *:dotglob:* | *:globstar:*)
    for __worker_env_o in errexit nounset noclobber noglob pipefail keyword; do
      if [[ -o $__worker_env_o ]]; then
        __worker_env_restore+="set -o $__worker_env_o;"
        set +o "$__worker_env_o"
      fi
    done
    for __worker_env_o in failglob nullglob nocaseglob nocasematch dotglob globstar; do
      if shopt -q "$__worker_env_o"; then
        __worker_env_restore+="shopt -s $__worker_env_o;"
        shopt -u "$__worker_env_o"
      fi
    done
    ;;
esac
# The template says when a version is the site's choice, not the client's.
case ${1-} in
  --fallback=default) __worker_env_fallback='; fallback: the client sent no Python version, site default' && shift ;;
  --fallback=endpoint) __worker_env_fallback='; fallback: the client sent no SDK version, site endpoint for its Python' && shift ;;
  *) __worker_env_fallback= ;;
esac
__worker_env_how=site __worker_env_note=

__worker_env_activate() { # env: source its bin/activate, nothing redirecting its Python's imports, and say so
  local IFS=$' \t\n' now took='? ms' var=${PYTHONPATH+ PYTHONPATH}${PYTHONHOME+ PYTHONHOME}${PYTHONPLATLIBDIR+ PYTHONPLATLIBDIR}
  var+=${PYTHONUSERBASE+ PYTHONUSERBASE}${PYTHONSTARTUP+ PYTHONSTARTUP}${PYTHONEXECUTABLE+ PYTHONEXECUTABLE}
  if [[ -n $var ]]; then
    # A disabled unset (enable -n) would leave one set: refuse rather than run with it.
    # shellcheck disable=SC2086 # names alone, split on the default IFS
    builtin unset $var 2>/dev/null
    for now in $var; do
      [[ -z ${!now+set} ]] || {
        printf "worker-env: refusing to start with %s set: this shell cannot unset it (unset is not bash's builtin)\n" "$now" >&2
        return 1
      }
    done
  fi
  # shellcheck source=/dev/null
  builtin source "$1/bin/activate" || return 1
  now=${EPOCHREALTIME/[.,]/}
  __worker_env_start=${__worker_env_start/[.,]/}
  # builtin: the user may have disabled it (enable -n), and /usr/bin/printf has no -v.
  [[ -z $now || -z $__worker_env_start ]] ||
    builtin printf -v took '%d.%03d ms' $(((now - __worker_env_start) / 1000)) $(((now - __worker_env_start) % 1000)) \
      2>/dev/null || took='? ms'
  printf 'worker-env: %s\n' "${1##*/} $__worker_env_how $1 $took${var:+; cleared$var}$__worker_env_note$__worker_env_fallback" >&2
}

__worker_env_done() { # the user's options back, and none of this file's names left
  eval "$__worker_env_restore"
  # Quiet where the user disabled unset: the names stay, the one line stays one.
  builtin unset -f __worker_env __worker_env_activate __worker_env_done __worker_env_started __worker_env_key \
    __worker_env_list __worker_env_requirements __worker_env_say __worker_env_spec __worker_env_unrunnable \
    __worker_env_user 2>/dev/null
  # The lock's descriptor stays open for the worker; only its name goes.
  builtin unset __worker_env_base __worker_env_env __worker_env_fallback __worker_env_how \
    __worker_env_line __worker_env_name __worker_env_norm __worker_env_note __worker_env_o __worker_env_restore __worker_env_start \
    __worker_env_why 2>/dev/null
}

# The fast path: two versions of the shapes the template sends (a subset of
# the second part's rule, which refuses or takes all others), and a site
# environment stamped ready whose interpreter runs for this account. The
# site root and the name's parts are worker-env.conf's WORKER_ENV_NAME and
# WORKER_ENV_SITE_ROOT lines, as written there (a conf without the name, from
# an earlier release, leaves the start to the second part).
__worker_env_env=
__worker_env_name=()
if (($# == 2)) && [[ $1 == 3.[0123456789] || $1 == 3.[0123456789][0123456789] ]] &&
  [[ ${2//[0123456789]/} == .. && $2 == [0123456789]*.[0123456789]*.[0123456789]* &&
    $2 != *[0123456789][0123456789][0123456789][0123456789][0123456789]* ]]; then
  # Quiet: a missing file is the second part's to report, once.
  while IFS= read -r __worker_env_line; do
    # Only the site's values are evaluated (written shell-quoted); the
    # client's versions are put between the name's parts as data.
    if [[ $__worker_env_line == WORKER_ENV_NAME=* ]]; then
      eval "__worker_env_name=${__worker_env_line#*=}"
    elif [[ $__worker_env_line == WORKER_ENV_SITE_ROOT=* ]]; then
      if ((${#__worker_env_name[@]} == 2)); then
        eval "__worker_env_env=${__worker_env_line#*=}"
        __worker_env_env+="/${__worker_env_name[0]}$1${__worker_env_name[1]}$2"
      fi
      break
    fi
  done 2>/dev/null <"${BASH_SOURCE[0]%/*}/worker-env.conf"
fi
if [[ -n $__worker_env_env && -f $__worker_env_env/.ready && -x $__worker_env_env/bin/python ]]; then
  if __worker_env_activate "$__worker_env_env"; then
    set -- 0
  else
    set -- "$?"
  fi
  __worker_env_done
  return "$1"
fi

# Every other start: refusals, a site environment that is not ready or cannot
# be run, and a user's environment. Bash reads no further than the return
# above on the site fast path, so none of this costs it anything.
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
# A user's environment that is ready costs no process either: the
# requirements are checked, normalised and hashed here, in bash, and the
# start is recorded in the time of a file beside it (the user's limits
# unpublish the least recently started; builds stay for the site's grace). Only a missing environment runs the build program,
# worker-env-build beside this file, which says how environments are built,
# published and removed when locks hold, do not exclude, or fail. On failure
# one line on stderr says what was asked and why, and the status is non-zero,
# so that no worker runs under another Python. Safe to source under
# `set -euo pipefail`; settings come from worker-env.conf beside this file.
#
# The worker's shell is the user's: whatever options, aliases and variables
# their dotfiles or modules left, this file runs the same and leaves the
# options as it found them. Variables that would make the worker's Python
# import code from elsewhere (PYTHONPATH from a `module load`, ...) are
# cleared, and the worker's line names them.
#
# Bash parses and runs a sourced file as it reads it: the site fast path, up
# to its `return`, is plain code and defines only the two functions every
# start calls (a function is parsed, copied, and copied again at each call).
# It reads one line of worker-env.conf, and matches the versions with globs
# (a regex is compiled at each start) in the shapes the template sends, a
# subset of the rule here, which refuses or takes all others.

__worker_env_say() { # one line, whatever a client's strings in it hold
  local LC_ALL=C line="$*"
  line=${line//[[:cntrl:]]/?}
  # In the C locale, a multibyte character is bytes: the C1 controls (U+0080
  # to U+009F, such as CSI) and the line and paragraph separators (U+2028,
  # U+2029) as UTF-8 writes them. Other text (a path's é, uv's ╰─▶) stays.
  line=${line//$'\xc2'[$'\x80'-$'\x9f']/?}
  line=${line//$'\xe2\x80'[$'\xa8\xa9']/?}
  printf 'worker-env: %s\n' "$line" >&2
}

__worker_env_unrunnable() { # env: say that a site environment stamped ready has a Python this account cannot run
  local target
  target=$(readlink "$1/bin/python" 2>/dev/null) || target=
  __worker_env_say "site environment $1 is stamped ready but $1/bin/python" \
    "${target:+(that is $target) }cannot be run by this account; its interpreter must be where every user can read it"
}

__worker_env_requirements() { # REQ...: check the user's requirements, normalised and sorted into __worker_env_norm
  # PEP 508 names, extras and version specifiers: the contract's grammar
  # (worker-env.conf), the schema's.
  local LC_ALL=C arg url norm i n
  __worker_env_norm=()
  if (($# > WORKER_ENV_REQUIREMENTS_MAX)); then
    __worker_env_why="$# requirements: at most $WORKER_ENV_REQUIREMENTS_MAX"
    return 1
  fi
  for arg; do
    if [[ $arg == --index-url=* || $arg == --extra-index-url=* ]]; then
      norm=
      for url in "${WORKER_ENV_INDEXES[@]}"; do
        [[ ${arg#*=} == "$url" ]] && norm=$arg
      done
      if [[ -z $norm ]]; then
        __worker_env_why="index '${arg:0:120}': not one the site allows"
        return 1
      fi
    elif ((${#arg} <= 1000)) && [[ -n $WORKER_ENV_REQUIREMENT_PATTERN && $arg =~ $WORKER_ENV_REQUIREMENT_PATTERN ]]; then
      # PEP 503 name, then the rest without spaces: one spelling per requirement.
      norm=${BASH_REMATCH[1],,}
      norm=${norm//[._]/-}
      while [[ $norm == *--* ]]; do norm=${norm//--/-}; done
      arg=${arg#*"${BASH_REMATCH[1]}"}
      arg=${arg// /}
      norm+=${arg,,}
    else
      __worker_env_why="requirement '${arg:0:120}': expected a PEP 508 name with extras and version specifiers"
      return 1
    fi
    n=${#__worker_env_norm[@]}
    for ((i = 0; i < n; i++)); do
      [[ ${__worker_env_norm[i]} < "$norm" ]] || break
    done
    [[ ${__worker_env_norm[i]:-} == "$norm" ]] ||
      __worker_env_norm=("${__worker_env_norm[@]:0:i}" "$norm" "${__worker_env_norm[@]:i}")
  done
}

__worker_env_key() { # text: its 64-bit FNV-1a hash in 16 hex digits, into __worker_env_base (no subprocess)
  # Names a directory of the user's own, not a security boundary: a stable,
  # well-spread hash of ASCII text is all it needs. Arithmetic wraps at 64 bits.
  local LC_ALL=C text=$1 i c h=-3750763034362895579 # 0xcbf29ce484222325
  for ((i = 0; i < ${#text}; i++)); do
    builtin printf -v c %d "'${text:i:1}" 2>/dev/null || c=
    ((h = (h ^ c) * 1099511628211))
  done
  __worker_env_base=
  builtin printf -v __worker_env_base %016x "$h" 2>/dev/null || :
}

__worker_env_spec() { # env: the spec hash of a site build's ready stamp, into __worker_env_base
  # One key=value per line (build-env.sh's stamp); until the next release,
  # also an earlier release's JSON stamp, whose line is  "spec": "HASH",
  local key value
  __worker_env_base=unknown
  while IFS='=' read -r key value; do
    if [[ $key == spec ]]; then
      __worker_env_base=$value
      return 0
    elif [[ $key == *'"spec": "'* ]]; then
      value=${key#*'"spec": "'}
      __worker_env_base=${value%%\"*}
      return 0
    fi
  done <"$1/.ready"
}

__worker_env_list() { # root: the ready environments under it, comma-separated
  local stamp names=()
  for stamp in "$1/${WORKER_ENV_NAME[0]}"*"${WORKER_ENV_NAME[1]}"*/.ready; do
    stamp=${stamp%/.ready}
    [[ -f $stamp/.ready ]] && names+=("${stamp##*/}")
  done
  local IFS=,
  printf '%s' "${names[*]:-none}"
}

__worker_env_started() { # env: record this start as the environment's last, for the user's limits
  # The record is the time of the file .NAME.lock beside it: the user's limits
  # unpublish the least recently started first. Nothing else rests on it: an
  # unpublished build stays for the site's grace, for the workers in it, so a
  # start holds no lock and runs no process.
  local lock=${1%/*}/.${1##*/}.lock
  # A link may point anywhere (/etc/passwd), which the truncation below would
  # empty; so may a hard link, which only content betrays: the record is empty.
  if [[ -L $lock || (-e $lock && ! -f $lock) || -s $lock ]]; then
    __worker_env_note+="; $lock is not an empty regular file: this start is not recorded"
  elif [[ -e $lock ]]; then
    : >|"$lock" 2>/dev/null || :
  else
    (umask 077 && : >|"$lock") 2>/dev/null || :
  fi
}

# Some WORKER_ENV_* settings are only for worker-env-build, which reads the file itself.
# shellcheck disable=SC2034
__worker_env() {
  local py=${1:-} gce=${2:-} client=${2:-} name env
  local IFS=$' \t\n'
  # Defaults for what worker-env.conf sets.
  local WORKER_ENV_SITE_ROOT='' WORKER_ENV_USER_BUILDS=false WORKER_ENV_USER_ROOT=.globus_compute/envs
  local WORKER_ENV_UV=uv WORKER_ENV_LOCK_WAIT=900 WORKER_ENV_USER_REQUIREMENTS=false
  local WORKER_ENV_REQUIREMENTS_MAX=32 WORKER_ENV_USER_ENVS_MAX=10 WORKER_ENV_USER_ENVS_MAX_AGE=30
  local WORKER_ENV_INTERPRETER_SOURCE=system WORKER_ENV_SYSTEM_PATH=/usr/local/bin:/usr/bin:/bin
  # The contract's rules: without them (no worker-env.conf line), nothing passes.
  local WORKER_ENV_PYTHON_PATTERN='' WORKER_ENV_ENDPOINT_PATTERN='' WORKER_ENV_REQUIREMENT_PATTERN=''
  local WORKER_ENV_VERSION_MATCH=exact WORKER_ENV_RELEASE_PATTERN=''
  local -a WORKER_ENV_EXTRA_PACKAGES=() WORKER_ENV_INDEXES=() WORKER_ENV_INTERPRETER_PATHS=() WORKER_ENV_NAME=()
  # shellcheck source=/dev/null
  builtin source "${BASH_SOURCE[0]%/*}/worker-env.conf" || return 1

  # Both values end up in paths and command lines: nothing but the contract's shapes.
  if [[ -z $WORKER_ENV_PYTHON_PATTERN || ! $py =~ $WORKER_ENV_PYTHON_PATTERN ]]; then
    __worker_env_say "refusing Python version '${py:0:40}': expected 3.X"
    return 2
  fi
  if [[ -z $WORKER_ENV_ENDPOINT_PATTERN || ! $gce =~ $WORKER_ENV_ENDPOINT_PATTERN ]]; then
    __worker_env_say "refusing globus-compute-endpoint version '${gce:0:40}': expected a release such as 4.19.0"
    return 2
  fi
  # The contract's name, around the versions: without it, no environment has one.
  if ((${#WORKER_ENV_NAME[@]} != 2)); then
    __worker_env_say "no environment for Python $py with globus-compute-endpoint $gce:" \
      "${BASH_SOURCE[0]%/*}/worker-env.conf has no WORKER_ENV_NAME (deploy python_envs again)"
    return 1
  fi
  shift 2
  name=${WORKER_ENV_NAME[0]}$py${WORKER_ENV_NAME[1]}$gce
  env="$WORKER_ENV_SITE_ROOT/$name"
  __worker_env_how=site

  # Ready: stamped, and its interpreter runs for this account (-x follows
  # the links to it: one stat, and a clear line instead of a worker that
  # cannot start).
  if [[ -f $env/.ready && ! -x $env/bin/python ]]; then
    __worker_env_unrunnable "$env"
    return 1
  fi
  # Under the minor policy, the site's newest release of the client's X.Y
  # comes before any user's build, and is the base of a user's requirements.
  # The contract's rule (its release_ere, and minor_match in contract.py, which
  # the parity test holds this to): the client's X.Y as integers; of the site's
  # releases with them, the newest by Z, then post number. Only what
  # build-env.sh publishes takes part, a link ROOT/NAME to a build
  # ROOT/.builds/NAME-*: a directory, or a link elsewhere, put there by other
  # means, serves only a client that asks for it by name, as before.
  if [[ $WORKER_ENV_VERSION_MATCH == minor && -n $WORKER_ENV_RELEASE_PATTERN && ! -f $env/.ready ]]; then
    local prefix=${WORKER_ENV_NAME[0]}$py${WORKER_ENV_NAME[1]} rest=${gce#*.} cand build version key best=-1 found=
    local major=$((10#${gce%%.*})) minor=$((10#${rest%%.*}))
    for cand in "$WORKER_ENV_SITE_ROOT/$prefix"*; do
      version=${cand##*/}
      version=${version#"$prefix"}
      [[ $version =~ $WORKER_ENV_RELEASE_PATTERN ]] || continue
      # No leading zeros in a release: its numbers are decimal as written.
      ((BASH_REMATCH[1] == major && BASH_REMATCH[2] == minor)) || continue
      # Z, then the post number; none comes before .post0 (numbers have at most 4 digits).
      key=$((BASH_REMATCH[3] * 100000 + ${BASH_REMATCH[5]:--1} + 1))
      if ((key <= best)) || [[ ! -L $cand || ! -f $cand/.ready || ! -x $cand/bin/python ]]; then
        continue
      fi
      # A build as build-env.sh names it, NAME-SPEC_HASH.HOST-PID, where it puts it.
      for build in "$WORKER_ENV_SITE_ROOT/.builds/${cand##*/}-"*; do
        if [[ ${build##*/} =~ ^"${cand##*/}"-[0123456789abcdef]+[.].+-[0123456789]+$ && ! -L $build &&
          $cand -ef $build ]]; then
          best=$key found=$cand
          break
        fi
      done
    done
    if [[ -n $found ]]; then
      __worker_env_note+="; matched by minor: the client sent $gce"
      env=$found name=${found##*/}
      gce=${name#"$prefix"}
    fi
  fi
  if (($#)) || [[ ! -f $env/.ready ]]; then
    __worker_env_user "$@" || return
  fi
  __worker_env_activate "$env"
}

__worker_env_user() { # REQ...: point env at the user's environment, building it first if need be
  local base=$env what="Python $py with globus-compute-endpoint $client" dir=${BASH_SOURCE[0]%/*} out
  if (($#)); then
    if [[ $WORKER_ENV_USER_REQUIREMENTS != true ]]; then
      __worker_env_say "refusing requirements: user packages are off on this endpoint"
      return 2
    fi
    if ! __worker_env_requirements "$@"; then
      __worker_env_say "refusing $__worker_env_why"
      return 2
    fi
  fi
  if [[ ! -f $base/.ready ]]; then
    if [[ $WORKER_ENV_USER_BUILDS != true ]]; then
      __worker_env_say "no environment for $what${*:+ to add packages to};" \
        "site has: $(__worker_env_list "$WORKER_ENV_SITE_ROOT"); per-user builds are off"
      return 1
    fi
    base=''
  fi
  # Never a build in /.globus_compute, nor one relative to wherever the job runs.
  # Slashes alone (/, //, ///) are the root too.
  # Not / however written (//, /., /..): root would build in /.globus_compute.
  if [[ ${HOME:-} != /* || -z ${HOME//\//} || /$HOME/ == */./* || /$HOME/ == */../* ]]; then
    out='unset'
    [[ -n ${HOME+set} ]] && out="'${HOME:0:120}'"
    __worker_env_say "no environment for $what${*:+ and $*}: HOME is $out, not the absolute path of a home directory;" \
      "per-user environments live under it"
    return 1
  fi
  # Only one's own home: root with a user's HOME (sudo that keeps it) would
  # create and write through that user's links.
  if [[ ! -O $HOME ]]; then
    __worker_env_say "no environment for $what${*:+ and $*}: HOME ${HOME:0:120} is not this account's;" \
      "per-user environments live only in one's own home"
    return 1
  fi
  env="$HOME/$WORKER_ENV_USER_ROOT/$name"
  if (($#)); then
    __worker_env_base=none
    [[ -n $base ]] && __worker_env_spec "$base"
    # The key follows the site build too: when the admin rebuilds it, users
    # get a fresh environment on top of it, and the old one ages out.
    builtin printf -v out '%s\n' "$__worker_env_base" "${__worker_env_norm[@]}" 2>/dev/null || out=
    __worker_env_key "$out"
    # Another name would share one environment between different requirements.
    if [[ ! $__worker_env_base =~ ^[0123456789abcdef]{16}$ || -z $out ]]; then
      __worker_env_say "refusing requirements: no key for them in this shell (printf is not bash's builtin)"
      return 1
    fi
    env+="-req-$__worker_env_base"
  fi
  [[ -d ${env%/*} ]] || mkdir -p "${env%/*}" 2>/dev/null
  __worker_env_started "$env"
  __worker_env_how=user
  # Ready: stamped, and its interpreter still there (-x follows the link).
  [[ -f $env/.ready && -x $env/bin/python ]] && return 0
  # The build takes nothing of the job shell but these variables: no BASH_ENV,
  # SHELLOPTS or exported functions (a `mkdir` of the user's) reach it.
  local -a keep=()
  # Which UV_* variables a build honours is worker-env-build's rule (isolate).
  for var in HOME PATH LANG TZ TMPDIR XDG_CACHE_HOME XDG_CONFIG_HOME SSL_CERT_FILE SSL_CERT_DIR \
    http_proxy https_proxy no_proxy all_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY ALL_PROXY ${!LC_@} ${!UV_@}; do
    [[ -z ${!var+set} ]] || keep+=("$var=${!var}")
  done
  # Its one word is the last line of its output, whatever else was said before.
  if out=$(command env -i "${keep[@]}" "$BASH" --norc --noprofile "$dir/worker-env-build" "$dir/worker-env.conf" \
    "$env" "$py" "$gce" "$base" "${__worker_env_norm[@]}" 2>&1) &&
    [[ ${out##*$'\n'} == built || ${out##*$'\n'} == waited ]]; then
    __worker_env_how=${out##*$'\n'}
    [[ -f $env/.ready && -x $env/bin/python ]] && return 0
    out="the build of $env says $__worker_env_how, but it is not ready"
  fi
  # A reason is never empty: at the least, say which step gave none.
  out=${out//$'\n'/ }
  : "${out:=no reason given by the build of $env}"
  if (($#)); then
    __worker_env_say "no environment for $what and $*: $out"
  else
    __worker_env_say "no environment for $what: $out; site has: $(__worker_env_list "$WORKER_ENV_SITE_ROOT")"
  fi
  return 1
}

if __worker_env "$@"; then
  set -- 0
else
  set -- "$?"
fi
__worker_env_done
return "$1"
