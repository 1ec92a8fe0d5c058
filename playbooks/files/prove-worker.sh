#!/usr/bin/env bash
# Starts a worker as the deployed endpoint would start it for an SDK on
# Python X.Y with globus-compute-sdk ENDPOINT: renders the endpoint's user
# config for that user_runtime, runs its worker_init as USER, and prints one
# line with what the worker got (its endpoint package imported, not only its
# metadata read: a build that lost its files fails).
#
#   prove-worker.sh EXECUTABLE INTERPRETER NAME ENDPOINT_DIR USER PYTHON ENDPOINT
#
# INTERPRETER is the endpoint's own Python (endpoint_deployed.python), which
# reads the rendered YAML.
set -euo pipefail
executable=$1 interpreter=$2 name=$3 dir=$4 user=$5 python=$6 endpoint=$7
scratch=$(mktemp -d)
chmod 0755 "$scratch"
trap 'rm -rf "$scratch"' EXIT

printf '{"globus_compute_sdk_version": "%s", "python_version": "%s.0", "python": {"version": "%s.0", "version_tuple": [%s, %s, 0, "final", 0]}}' \
  "$endpoint" "$python" "$python" "${python%%.*}" "${python#*.}" >"$scratch/runtime.json"
GLOBUS_COMPUTE_USER_DIR=$(dirname "$dir") "$executable" render-user-config -e "$name" \
  --user-runtime "$scratch/runtime.json" >"$scratch/config.yaml" 2>"$scratch/render.err" || {
  echo "render-user-config failed: $(tail -n1 "$scratch/render.err")" >&2
  exit 1
}
"$interpreter" -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["engine"]["provider"]["worker_init"])' \
  "$scratch/config.yaml" >"$scratch/worker_init.sh"
cat >>"$scratch/worker_init.sh" <<'PROBE'
python -c 'import sys, importlib.metadata as m, globus_compute_endpoint; print("python %d.%d, globus-compute-endpoint %s, in %s" % (*sys.version_info[:2], m.version("globus-compute-endpoint"), sys.prefix))'
PROBE
chmod 0644 "$scratch/worker_init.sh"

# In the user's home from the passwd database, as the endpoint starts a
# user's workers, whatever HOME this run was given.
home=$(getent passwd "$user" | cut -d: -f6)
run=(env HOME="$home" bash "$scratch/worker_init.sh")
if [[ $(id -un) != "$user" ]]; then
  run=(runuser -u "$user" -- "${run[@]}")
fi
status=0
(cd / && "${run[@]}") >"$scratch/worker.out" 2>"$scratch/worker.err" || status=$?
if ((status != 0)); then
  echo "worker_init failed as $user: $(tail -n1 "$scratch/worker.err")" >&2
  exit 1
fi
echo "as $user: $(grep -h '^worker-env:' "$scratch/worker.err"); $(cat "$scratch/worker.out")"
