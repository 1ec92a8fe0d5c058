# shellcheck shell=bash
# Per-user environments, for worker-env.sh: read only when a worker needs one
# (the site has no environment for the pair, or the user asked for packages),
# so that the site fast path parses none of it. Runs inside __worker_env:
# py, gce, name, env, pyvars and the WORKER_ENV_* settings are its locals.
#
# A build takes nothing from the worker's shell but HOME: the interpreter is
# the site's choice (never CONDA_PREFIX, VIRTUAL_ENV, PATH or UV_PYTHON), uv
# runs from / (no project's [tool.uv] applies), and of the UV_* variables
# only those that say where the user's cache is and how to reach an index
# are kept. uv reads the site's policy and the user's own uv.toml.

__worker_env_ready() { # env: stamped ready, and its interpreter still runs (a stat, no subprocess)
  [[ -f $1/.ready && -x $1/bin/python ]]
}

__worker_env_python() { # py: the site's interpreter for Python py on stdout, or why not on stdout and 1
  local entry found=''
  for entry in "${WORKER_ENV_INTERPRETER_PATHS[@]}"; do
    [[ ${entry%%=*} == "$1" ]] && found=${entry#*=}
  done
  if [[ -z $found && $WORKER_ENV_INTERPRETER_SOURCE == uv ]]; then
    if ! found=$("$WORKER_ENV_UV" python find --managed-python "$1" 2>&1); then
      printf 'no uv-managed Python %s: %s' "$1" "$found"
      return 1
    fi
  elif [[ -z $found ]]; then
    found=$(PATH=$WORKER_ENV_SYSTEM_PATH && type -P "python$1") || {
      printf 'no Python %s in %s (python_envs_interpreter_source: system)' "$1" "$WORKER_ENV_SYSTEM_PATH"
      return 1
    }
  fi
  if [[ ! -x $found ]]; then
    printf 'Python %s of the site, %s, does not run' "$1" "$found"
    return 1
  fi
  printf '%s' "$found"
}

__worker_env_isolate() { # in a build's subshell: nothing of the user's shell picks what uv does
  local var
  for var in ${!UV_@}; do
    case $var in
      UV_CACHE_DIR | UV_NATIVE_TLS | UV_HTTP_TIMEOUT | UV_CONCURRENT_DOWNLOADS | UV_CONCURRENT_BUILDS | UV_CONCURRENT_INSTALLS) ;;
      *) unset "$var" ;;
    esac
  done
  # shellcheck disable=SC2154 # pyvars is __worker_env's
  unset "${pyvars[@]}" VIRTUAL_ENV CONDA_PREFIX
  # The user's cache: a cache-dir in the site's policy is not theirs to write.
  export UV_CACHE_DIR="${UV_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/uv}"
  builtin cd / || return
}

__worker_env_list() { # root: the ready environments under it, comma-separated
  local stamp names=()
  for stamp in "$1"/py*-gce*/.ready; do
    [[ -f $stamp ]] && names+=("$(basename "$(dirname "$stamp")")")
  done
  local IFS=,
  printf '%s' "${names[*]:-none}"
}

__worker_env_spec() { # env: the spec hash of a site build's ready stamp, into __worker_env_base
  local line re='"spec": *"([0-9a-f]+)"'
  __worker_env_base=unknown
  while IFS= read -r line; do
    if [[ $line =~ $re ]]; then
      __worker_env_base=${BASH_REMATCH[1]}
      return 0
    fi
  done <"$1/.ready"
}

__worker_env_requirements() { # REQ...: check the user's requirements, normalised and sorted into __worker_env_norm
  # PEP 508 names, extras and version specifiers; the schema's grammar.
  local name='[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?'
  local spec='(===|==|!=|<=|>=|~=|<|>) *[A-Za-z0-9.*+!_-]+'
  local req="^ *($name)( *\\[ *$name( *, *$name)* *\\])?( *$spec( *, *$spec)*)? *$"
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
    elif ((${#arg} <= 1000)) && [[ $arg =~ $req ]]; then
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

__worker_env_prune() { # root keep: remove the user's environments beyond the site's limits, never one in use
  local root=$1 keep=$2 count=0 entry when name lock fd
  local now max_age=$((WORKER_ENV_USER_ENVS_MAX_AGE * 86400))
  local -a entries=()
  printf -v now '%(%s)T' -1
  # The user's environments are those with a lock beside them (site ones, in
  # a root that a per-user deployment shares, have none), least recently used
  # first: a lock's time is its environment's last start.
  mapfile -t entries < <(find "$root" -maxdepth 1 -name '.py*-gce*.lock' -printf '%T@ %f\n' | sort -n)
  for entry in "${entries[@]}"; do
    name=${entry#* .}
    name=${name%.lock}
    [[ $name != "$keep" && -d $root/$name ]] && count=$((count + 1))
  done
  for entry in "${entries[@]}"; do
    when=${entry%% *} name=${entry#* .}
    when=${when%.*}
    name=${name%.lock}
    [[ $name == "$keep" ]] && continue
    if ((count < WORKER_ENV_USER_ENVS_MAX)) && ((max_age == 0 || now - when < max_age)); then
      continue
    fi
    lock="$root/.$name.lock"
    if [[ ! -e $lock ]] || ! exec {fd}<>"$lock"; then
      continue
    fi
    # Any worker in it holds a shared lock: then it stays.
    if flock -x -n "$fd" && [[ /dev/fd/$fd -ef $lock ]]; then
      if [[ -d $root/$name ]]; then
        mv -T "$root/$name" "$root/.trash.$name.$$" && count=$((count - 1))
      fi
      rm -f "$lock"
      rm -rf "$root/.trash.$name.$$"
    fi
    exec {fd}>&-
  done
  if ((count >= WORKER_ENV_USER_ENVS_MAX)); then
    __worker_env_why="$count environments in use in $root: at most $WORKER_ENV_USER_ENVS_MAX per user"
    return 1
  fi
}

__worker_env_make() { # env py gce base REQ...: build env, the base's packages (or gce) plus REQ, under the build lock
  local env=$1 py=$2 gce=$3 base=$4 out python
  shift 4
  local -a install=("globus-compute-endpoint==$gce" "${WORKER_ENV_EXTRA_PACKAGES[@]}")
  if [[ -n $base ]]; then
    python=$base/bin/python install=(-r "$env/.base-requirements.txt")
  elif ! python=$(__worker_env_isolate && __worker_env_python "$py"); then
    __worker_env_why=$python
    return 1
  fi
  # A directory without a ready stamp is a build that was killed: nobody else
  # builds while we hold the lock, so it can go. The environment is built
  # where it will live (a venv cannot move) and becomes usable only when its
  # ready stamp is written, last.
  rm -rf "$env"
  if ! out=$(
    __worker_env_isolate &&
      "$WORKER_ENV_UV" venv --quiet --python "$python" "$env" 2>&1 &&
      if [[ -n $base ]]; then
        "$WORKER_ENV_UV" pip freeze --quiet --python "$base/bin/python" 2>&1 >"$env/.base-requirements.txt"
      fi &&
      "$WORKER_ENV_UV" pip install --quiet --python "$env/bin/python" "${install[@]}" "$@" 2>&1
  ); then
    rm -rf "$env"
    # uv's whole reason, for the one line the endpoint log shows.
    out=$(printf '%s' "$out" | tr -s ' \n' ' ')
    __worker_env_why="build failed: ${out:0:600}"
    return 1
  fi
  printf 'python=%s\ninterpreter=%s\nendpoint=%s\nbase=%s\nrequirements=%s\nbuilt=%(%Y-%m-%dT%H:%M:%S%z)T\nhost=%s\n' \
    "$py" "$python" "$gce" "${base:-none}" "${__worker_env_norm[*]-}" -1 "${HOSTNAME:-}" >|"$env/.ready.tmp"
  mv -f "$env/.ready.tmp" "$env/.ready"
}

__worker_env_private() { # file: create it, or narrow it, to the user alone
  (umask 077 && : >>"$1") 2>/dev/null
  chmod go= "$1" 2>/dev/null || :
}

__worker_env_use() { # env py gce base REQ...: enter a per-user environment, building it first if need be
  local env=$1 root=${1%/*} name=${1##*/} lock build fd bfd
  lock="$root/.$name.lock" build="$root/.$name.build"
  mkdir -p "$root" || {
    __worker_env_why="cannot create $root"
    return 1
  }
  # The shared lock on $lock is held for the worker's life (the open file is
  # inherited by the worker): flock is honoured across the nodes of an NFSv4
  # or Lustre home, and released by the kernel when the worker ends.
  while :; do
    # Readable by the user alone: a lock others can open is one they can hold.
    __worker_env_private "$lock"
    exec {fd}<>"$lock" || {
      __worker_env_why="cannot open $lock"
      return 1
    }
    if flock -s -w "$WORKER_ENV_LOCK_WAIT" "$fd" && [[ /dev/fd/$fd -ef $lock ]]; then
      break
    fi
    exec {fd}>&- # removed by a prune while we opened it: open the new one
  done
  if ! __worker_env_ready "$env"; then
    # One builder holds $build; the others wait on it together, woken at
    # once when it ends. The builder removes it when done, writing its reason
    # into it first if the build failed, so that workers that waited report
    # that reason instead of trying again.
    local wait=-s
    while :; do
      __worker_env_private "$build"
      exec {bfd}<>"$build" || {
        __worker_env_why="cannot open $build"
        break
      }
      if ! flock -x -n "$bfd"; then
        __worker_env_how=waited
        if ! flock "$wait" -w "$WORKER_ENV_LOCK_WAIT" "$bfd"; then
          __worker_env_why="gave up after waiting ${WORKER_ENV_LOCK_WAIT} s for another build"
          break
        fi
      fi
      if __worker_env_ready "$env"; then
        __worker_env_how=waited
        break
      fi
      if [[ ! /dev/fd/$bfd -ef $build ]]; then
        __worker_env_why=
        IFS= read -r -u "$bfd" __worker_env_why || true
        [[ -n $__worker_env_why ]] && break
        exec {bfd}>&-
        continue
      fi
      if [[ $wait == -s && $__worker_env_how == waited ]]; then
        # Its builder was killed: the workers that waited queue to build it,
        # and the first one does.
        wait=-x
        exec {bfd}>&-
        continue
      fi
      if __worker_env_prune "$root" "$name" && __worker_env_make "$@"; then
        __worker_env_how=built
      else
        printf '%s\n' "${__worker_env_why:-build failed with no message}" >|"$build"
        rm -f "$lock" # nothing of a failed build is left
      fi
      rm -f "$build"
      break
    done
    [[ -n ${bfd:-} ]] && exec {bfd}>&-
    if ! __worker_env_ready "$env"; then
      exec {fd}>&-
      return 1
    fi
  fi
  # The lock's time is when the environment was last started (see prune);
  # a lock that cannot be touched only ages sooner.
  : >|"$lock" 2>/dev/null || true
}

__worker_env_user() { # REQ...: point env at the user's environment, building it first if need be
  local base=$env key what="Python $py with globus-compute-endpoint $gce"
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
  if ! __worker_env_ready "$base"; then
    if [[ $WORKER_ENV_USER_BUILDS != true ]]; then
      __worker_env_say "no environment for $what${*:+ to add packages to};" \
        "site has: $(__worker_env_list "$WORKER_ENV_SITE_ROOT"); per-user builds are off"
      return 1
    fi
    base=''
  fi
  env="$HOME/$WORKER_ENV_USER_ROOT/$name"
  if (($#)); then
    __worker_env_base=none
    [[ -n $base ]] && __worker_env_spec "$base"
    # The key follows the site build too: when the admin rebuilds it, users
    # get a fresh environment on top of it, and the old one ages out.
    printf -v key '%s\n' "$__worker_env_base" "${__worker_env_norm[@]}"
    key=$(sha256sum <<<"$key") || return 1
    env+="-req-${key:0:16}"
  fi
  __worker_env_how=user
  __worker_env_why=
  if __worker_env_use "$env" "$py" "$gce" "$base" "$@"; then
    return 0
  fi
  # A reason is never empty: at the least, say which step gave none.
  : "${__worker_env_why:=no reason given by the build of $env}"
  if (($#)); then
    __worker_env_say "no environment for $what and $*: $__worker_env_why"
  else
    __worker_env_say "no environment for $what: $__worker_env_why;" \
      "site has: $(__worker_env_list "$WORKER_ENV_SITE_ROOT")"
  fi
  return 1
}
