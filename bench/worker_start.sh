#!/usr/bin/env bash
# Runs inside a test node as an unprivileged user; prints "<method> <microseconds> <exit>"
# for every worker start it times. Methods are interleaved round-robin so
# that noise hits them alike.
#   worker_start.sh latency N PY GCE DEFAULT_TEMPLATE_WORKER_INIT_FILE
#   worker_start.sh storm PAIRS STARTS PY GCE
set -euo pipefail

runtime=/opt/hpc_globus_compute/worker-env.sh
site=/opt/hpc_globus_compute/envs

now() { local t=$EPOCHREALTIME; printf '%s' "${t/[.,]/}"; }

time_one() { # method script
  local t0 t1 rc=0
  t0=$(now)
  bash -c "$2" >/dev/null 2>&1 || rc=$?
  t1=$(now)
  echo "$1 $((t1 - t0)) $rc"
}

latency() {
  local n=$1 py=$2 gce=$3 default_init
  default_init=$(<"$4")
  local env="$site/py$py-gce$gce" tutorial="$HOME/.bench/tutorial-py$py"
  # The Globus Compute tutorial's worker_init, run at every worker start.
  local tutorial_init="uv venv $tutorial --python $py; source $tutorial/bin/activate; uv pip install globus-compute-endpoint==$gce"
  declare -A methods=(
    [bare]="source $env/bin/activate"
    [fast]="source $runtime $py $gce || exit 1"
    # A user's packages (the requirements option): their environment is built
    # by the warm-up start, so every timed start takes its fast path.
    [requirements]="source $runtime $py $gce 'six==1.17.0' || exit 1"
    [tutorial]="$tutorial_init"
    [default_4.19]="$default_init"
  )
  local m i
  for m in "${!methods[@]}"; do time_one warmup "${methods[$m]}" >/dev/null; done
  for ((i = 0; i < n; i++)); do
    for m in bare fast requirements tutorial default_4.19; do time_one "$m" "${methods[$m]}"; done
  done
}

storm() {
  local pairs=$1 starts=$2 py=$3 gce=$4 t0 t1 i pair single
  local envs="$HOME/.globus_compute/envs" name="py$py-gce$gce"
  local env="$envs/$name"
  # Each start: worker_init, then a check (a builtin, no process) that it
  # activated the build the environment's link names. The single build does
  # the same work.
  local init="source $runtime $py $gce || exit 1; [[ \$VIRTUAL_ENV -ef $env ]]"
  # Pairs of one single build and one storm, each from the same cold state
  # (no environment, no uv cache), the order alternating from pair to pair
  # so that drift on the machine hits both alike. One line per pair:
  #   pair <single us> <single exit> <storm us> <failed starts> <builds>
  for ((pair = 0; pair < pairs; pair++)); do
    local -a order=(single storm)
    ((pair % 2)) && order=(storm single)
    local storm_us=0 failures=0 builds=0 single=0 single_rc=0
    for what in "${order[@]}"; do
      # No environment: its link, builds, lock and build marker, and no uv cache.
      rm -rf "$env" "$envs/.builds/$name" "$envs/.$name.lock" "$envs/.$name.build" "$HOME/.cache/uv"
      if [[ $what == single ]]; then
        read -r _ single single_rc < <(time_one single_build "$init")
        continue
      fi
      t0=$(now)
      for ((i = 0; i < starts; i++)); do
        bash -c "$init" 2>"/tmp/storm.$$.$i" >/dev/null &
      done
      for job in $(jobs -p); do wait "$job" || failures=$((failures + 1)); done
      t1=$(now)
      storm_us=$((t1 - t0))
      builds=$(cat /tmp/storm.$$.* | grep -c ' built ' || true)
      rm -f /tmp/storm.$$.*
    done
    echo "pair $single $single_rc $storm_us $failures $builds"
  done
}

"$@"
