# shellcheck shell=bash
# What every stage in scripts/stages/ starts with; sourced, never executed.
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

# The toolchain of this stage: .venv, or the one a calling stage names
# (compat runs unit and sanity with VENV=.venv-newest).
export PATH="$VENV/bin:$PATH"
export ANSIBLE_COLLECTIONS_PATH="$ROOT/.cache/collections"
export ANSIBLE_FORCE_COLOR=${ANSIBLE_FORCE_COLOR:-0}
export PY_COLORS=${PY_COLORS:-0}
# Scenarios live in molecule/ (the layout prometheus.prometheus uses).
export MOLECULE_GLOB="molecule/*/molecule.yml"
export STAGES="$ROOT/scripts/stages"
# HPC_GC_STRATEGY=mitogen_linear runs every playbook of the stage under
# Mitogen's strategy (docs/fleet.md#mitogen; docs/testing.md), from this stage's own
# toolchain; unset, Ansible's linear strategy.
case ${HPC_GC_STRATEGY:-linear} in
  linear | mitogen_linear | mitogen_free | mitogen_host_pinned) ;;
  *) die "HPC_GC_STRATEGY=$HPC_GC_STRATEGY: not linear (the default) nor one of Mitogen's strategies (mitogen_linear, mitogen_free, mitogen_host_pinned)" ;;
esac
if [[ ${HPC_GC_STRATEGY:-linear} != linear ]]; then
  export ANSIBLE_STRATEGY=$HPC_GC_STRATEGY
  mitogen=$(python -c 'import ansible_mitogen, os; print(os.path.dirname(ansible_mitogen.__file__))') ||
    die "HPC_GC_STRATEGY=$HPC_GC_STRATEGY: no ansible_mitogen in $VENV (scripts/bootstrap installs it)"
  export ANSIBLE_STRATEGY_PLUGINS="$mitogen/plugins/strategy"
fi
cd "$ROOT" || exit

# A stage tests the ansible-core it claims, or fails: the oldest line that
# meta/runtime.yml names (the main toolchain), or for compat the newest
# (requirements/newest.txt), which compat passes on as ANSIBLE_CORE_LINE. A
# toolchain made by another Python would run another line with no warning.
assert_ansible_core() { # oldest|newest
  local want core
  if [[ $1 == newest ]]; then
    want=$(sed -n 's/^ansible-core==\([0-9.]*\).*/\1/p' "$ROOT/requirements/newest.txt")
  else
    want=$(sed -n 's/^requires_ansible: *">=\([0-9]*\.[0-9]*\).*/\1/p' "$ROOT/meta/runtime.yml")
  fi
  core=$(python -c 'import importlib.metadata as m; print(m.version("ansible-core"))')
  [[ -n $want && ($core == "$want" || $core == "$want".*) ]] ||
    die "this stage claims the $1 ansible-core, $want, but runs $core ($(command -v python), $(python -V)); rebuild it with a Python that resolves $want (PYTHON=... scripts/bootstrap)"
  log "ansible-core $core ($1 claimed: $want) on $(python -V)"
}
