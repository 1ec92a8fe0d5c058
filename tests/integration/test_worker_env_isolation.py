"""What a worker's shell carries cannot change the environment a worker gets.

A real site environment (Python 3.11, globus-compute-endpoint 4.19.0) is
built by the role's own build-env.sh with uv from the offline wheelhouse,
into a private directory; the runtime is laid down by the role. Each test
starts a worker as worker_init does, in a shell that carries one thing a
job shell may carry (a module's PYTHONPATH, a dotfile's shell options,
conda's base, a hostile pyproject.toml, UV_* variables, a site cache-dir),
and checks which globus_compute_endpoint the worker then imports, and from
where.
"""

from __future__ import annotations

import getpass
import grp
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import role_runner
from artifacts import artifacts
from role_runner import ROOT
from versions import GCE

NAME = f"py3.11-gce{GCE}"
UV = ROOT / ".venv" / "bin" / "uv"
PYTHON = "/usr/bin/python3.11"
BUILD_ENV = ROOT / "roles" / "_common" / "files" / "build-env.sh"
PROBE = "python -c 'import globus_compute_endpoint as g; print(g.__file__, g.__version__)'"
# An old endpoint where `module load` puts it: a module tree on PYTHONPATH.
OLD = "2.30.1"
# A start or a build takes seconds; a runtime that spins must not hang the suite.
TIMEOUT = 120
# The site fixture is a real uv build: the module's tests run on one worker
# (scripts/test's --dist loadgroup), so that it is built once, not on each.
pytestmark = pytest.mark.xdist_group("worker_env_isolation")


class Site:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.envs = base / "envs"
        self.runtime = base / "runtime"
        self.wheelhouse = base / "wheelhouse"
        self.policy = base / "policy"

    def env(self, home: Path, **extra: str) -> dict[str, str]:
        """A job shell's environment: the site's policy where uv looks for it, nothing else of ours."""
        return {
            "HOME": str(home),
            "PATH": "/usr/bin:/bin",
            "XDG_CONFIG_HOME": str(self.policy),
            "LANG": "C.UTF-8",
            **extra,
        }

    def start(
        self,
        home: Path,
        *args: str,
        prelude: str = "",
        cwd: Path | None = None,
        pair: str = f"3.11 {GCE}",
        **extra: str,
    ):
        """worker_init as the template emits it, then the probe, in bash with `prelude` run first."""
        quoted = " ".join("'" + a + "'" for a in args)
        init = f"\\builtin source {self.runtime}/worker-env.sh {pair} {quoted} || exit 1"
        script = f"{prelude}\n{init}\n{PROBE}\n"
        return subprocess.run(
            ["bash", "-c", script],
            capture_output=True,
            text=True,
            env=self.env(home, **extra),
            cwd=cwd or home,
            stdin=subprocess.DEVNULL,
            timeout=TIMEOUT,
        )


def wheelhouse_for_311(dest: Path) -> None:
    """The cp311 part of the offline wheelhouse, readable by any account."""
    source = artifacts() / "wheelhouse"
    dest.mkdir()
    for wheel in source.glob("*.whl"):
        if "-cp3" in wheel.name and "cp311" not in wheel.name and "abi3" not in wheel.name:
            continue
        shutil.copyfile(wheel, dest / wheel.name)


def build_site(site: Site, cwd: Path, env: dict[str, str], spec: str = "0" * 12):
    return subprocess.run(
        ["bash", str(BUILD_ENV), str(UV), str(site.envs), NAME, spec, PYTHON, GCE],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**env, "BUILD_ENV_NAME": os.environ["BUILD_ENV_NAME"]},
        timeout=TIMEOUT,
    )


@pytest.fixture(scope="module")
def site() -> Site:
    base = Path(tempfile.mkdtemp(prefix="hpc-gc-isolation-"))
    base.chmod(0o755)
    s = Site(base)
    wheelhouse_for_311(s.wheelhouse)
    (s.policy / "uv").mkdir(parents=True)
    (s.policy / "uv" / "uv.toml").write_text(
        f'offline = true\nno-index = true\nfind-links = ["{s.wheelhouse}"]\npython-downloads = "never"\n'
    )
    deployed = role_runner.run_role(
        base,
        "python_envs",
        {
            "python_envs_runtime_dir": str(s.runtime),
            "python_envs_root": str(s.envs),
            "python_envs_owner": getpass.getuser(),
            "python_envs_group": grp.getgrgid(os.getgid()).gr_name,
            "python_envs_uv": str(UV),
            "python_envs_user_builds": True,
        },
        # The role's checks, then its runtime; nothing is built.
        args=["--tags=python_envs_runtime"],
    )
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    s.envs.mkdir(exist_ok=True)
    built = build_site(s, base, s.env(base / "root-home"))
    assert built.returncode == 0, built.stderr
    yield s
    shutil.rmtree(base, ignore_errors=True)


def site_build(site: Site) -> str:
    return str((site.envs / NAME).resolve())


def imported(result: subprocess.CompletedProcess[str]) -> tuple[str, str]:
    """Where the worker's globus_compute_endpoint came from, and its version."""
    assert result.returncode == 0, result.stderr
    path, version = result.stdout.split()
    return path, version


def worker_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("worker-env: ")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def old_module_tree(base: Path) -> Path:
    """A module's Python tree holding an old globus-compute-endpoint."""
    tree = base / "modules" / "python" / "lib" / "python3.11" / "site-packages"
    package = tree / "globus_compute_endpoint"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text(f'__version__ = "{OLD}"\n')
    return tree


# The job shell


@pytest.mark.parametrize("variable", ["PYTHONPATH", "PYTHONHOME"])
def test_a_modules_python_variables_do_not_reach_the_worker(site: Site, tmp_path: Path, variable: str) -> None:
    tree = old_module_tree(tmp_path)
    value = str(tree) if variable == "PYTHONPATH" else str(tree.parents[2])
    result = site.start(tmp_path, **{variable: value})
    path, version = imported(result)
    assert version == GCE
    assert path.startswith(site_build(site) + "/")
    line = worker_line(result)
    assert line.startswith(f"worker-env: {NAME} site {site.envs}/{NAME} ")
    assert line.endswith(f"; cleared {variable}")


def test_without_those_variables_the_line_says_nothing_more(site: Site, tmp_path: Path) -> None:
    line = worker_line(site.start(tmp_path))
    said = f"worker-env: {NAME} site {site.envs}/{NAME} "
    assert line.startswith(said) and re.fullmatch(r"[0-9]+\.[0-9]{3} ms", line.removeprefix(said)), line


@pytest.mark.parametrize(
    ("fallback", "said"),
    [
        ("default", "the client sent no Python version, site default"),
        ("endpoint", "the client sent no SDK version, site endpoint for its Python"),
    ],
)
def test_a_version_the_client_did_not_send_is_named_on_the_line(
    site: Site, tmp_path: Path, fallback: str, said: str
) -> None:
    result = site.start(tmp_path, pair=f"--fallback={fallback} 3.11 {GCE}")
    assert imported(result)[1] == GCE
    assert worker_line(result).endswith(f" ms; fallback: {said}")


STATE = "set +o; shopt -p; printf 'IFS=%q\\n' \"$IFS\"; alias; declare -F"
# What users' dotfiles leave in a login shell.
OPTIONS = {
    "noclobber": "set -o noclobber",
    "failglob": "shopt -s failglob",
    "nullglob": "shopt -s nullglob",
    "errexit": "set -e",
    "nounset": "set -u",
    "pipefail": "set -o pipefail",
    "extglob": "shopt -s extglob",
    "nocasematch": "shopt -s nocasematch",
    "noglob": "set -f",
    # Every name=value word anywhere on a command line becomes an assignment.
    "keyword": "set -k",
    "ifs": "IFS=/",
    "aliases": "shopt -s expand_aliases; alias rm=: cd=: mkdir=: mv=: flock=false",
}
OPTIONS["all"] = "; ".join(OPTIONS.values())


@pytest.fixture(scope="module")
def user_env(site: Site, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home with a per-user environment (the site's plus six) built and stamped ready."""
    home = tmp_path_factory.mktemp("home")
    first = site.start(home, "six==1.17.0")
    assert " built " in worker_line(first), first.stderr
    return home


KINDS = [("site", name) for name in OPTIONS] + [("user", name) for name in OPTIONS] + [("user-build", "all")]


@pytest.mark.parametrize(("kind", "name"), KINDS, ids=[f"{k}-{n}" for k, n in KINDS])
def test_any_shell_options_start_the_same_worker_and_are_left_as_found(
    site: Site, user_env: Path, tmp_path: Path, kind: str, name: str
) -> None:
    """Site and per-user starts, and a per-user build, under each option a user's dotfiles may set;
    the functions activate defines (deactivate, pydoc) are the only difference after."""
    home = tmp_path if kind == "user-build" else user_env
    args = [] if kind == "site" else ["six==1.17.0"]
    # Quoted as the template quotes them (under set -k an unquoted a==b is an assignment).
    quoted = " ".join("'" + a + "'" for a in args)
    init = f"\\builtin source {site.runtime}/worker-env.sh 3.11 {GCE} {quoted} || exit 1"
    state = f"{{ {STATE}; }} >|{tmp_path}"
    script = f"{OPTIONS[name]}\n{state}/before\n{init}\n{state}/after\n{PROBE}\n"
    result = subprocess.run(
        ["bash", "-c", script],
        capture_output=True,
        text=True,
        env=site.env(home),
        cwd=home,
        stdin=subprocess.DEVNULL,
        timeout=TIMEOUT,
    )
    path, version = imported(result)
    assert version == GCE
    line = worker_line(result)
    if kind == "site":
        assert path.startswith(site_build(site) + "/")
        assert line.startswith(f"worker-env: {NAME} site ")
    else:
        assert path.startswith(f"{home}/.globus_compute/envs/.builds/{NAME}-req-")
        how = "built" if kind == "user-build" else "user"
        assert line.startswith(f"worker-env: {NAME}-req-") and f" {how} {home}/" in line, line
    before = (tmp_path / "before").read_text().splitlines()
    after = (tmp_path / "after").read_text().splitlines()
    assert [line for line in after if line not in ("declare -f deactivate", "declare -f pydoc")] == before


# Conda's base, active in .bashrc


def conda_like_base(base: Path) -> Path:
    """A standalone CPython 3.11 at a prefix of its own, as a conda base is."""
    prefix = base / "conda"
    (prefix / "bin").mkdir(parents=True)
    shutil.copy2(PYTHON, prefix / "bin" / "python3.11")
    (prefix / "bin" / "python").symlink_to("python3.11")
    (prefix / "bin" / "python3").symlink_to("python3.11")
    return prefix


@pytest.fixture
def bare_site(site: Site, tmp_path: Path) -> Site:
    """The same runtime and policy, with no site environment: every start is a per-user build."""
    other = Site(tmp_path / "bare")
    shutil.copytree(site.runtime, other.runtime)
    conf = other.runtime / "worker-env.conf"
    conf.write_text(conf.read_text().replace(str(site.envs), str(other.envs)))
    other.envs.mkdir()
    other.policy = site.policy
    return other


def test_per_user_builds_use_the_sites_interpreter_not_condas(bare_site: Site, tmp_path: Path) -> None:
    conda = conda_like_base(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    active = {
        "CONDA_PREFIX": str(conda),
        "CONDA_DEFAULT_ENV": "base",
        "VIRTUAL_ENV": str(conda),
        "UV_PYTHON": str(conda / "bin" / "python"),
        "PATH": f"{conda}/bin:/usr/bin:/bin",
    }
    first = bare_site.start(home, **active)
    path, version = imported(first)
    env = home / ".globus_compute" / "envs" / NAME
    assert (version, path.startswith(f"{env.resolve()}/")) == (GCE, True)
    stamp = (env / ".ready").read_text()
    assert f"interpreter={PYTHON}\n" in stamp
    assert os.path.realpath(env / "bin" / "python") == os.path.realpath(PYTHON)
    # conda updated away: the worker still runs, in the same environment.
    shutil.rmtree(conda)
    again = bare_site.start(home, **active)
    assert imported(again) == (path, GCE)
    assert f" {NAME} user {env} " in worker_line(again)


def test_per_user_builds_use_the_sites_explicit_interpreter(bare_site: Site, tmp_path: Path) -> None:
    """python_envs_interpreter_paths names the interpreter for a version: per-user builds take it too."""
    site_python = conda_like_base(tmp_path / "opt") / "bin" / "python3.11"
    conf = bare_site.runtime / "worker-env.conf"
    conf.write_text(conf.read_text() + f"WORKER_ENV_INTERPRETER_PATHS=('3.11={site_python}')\n")
    home = tmp_path / "home"
    home.mkdir()
    path, version = imported(bare_site.start(home))
    env = home / ".globus_compute" / "envs" / NAME
    assert version == GCE and path.startswith(f"{env.resolve()}/")
    assert f"interpreter={site_python}\n" in (env / ".ready").read_text()


def test_an_environment_whose_python_is_gone_is_not_ready_and_is_rebuilt(bare_site: Site, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    imported(bare_site.start(home))
    env = home / ".globus_compute" / "envs" / NAME
    python = env / "bin" / "python"
    python.unlink()
    python.symlink_to(tmp_path / "conda" / "bin" / "python3.11")  # a prefix that was removed
    result = bare_site.start(home)
    path, version = imported(result)
    assert version == GCE and path.startswith(f"{env.resolve()}/")
    assert f" {NAME} built {env} " in worker_line(result)


# uv's settings from where they do not belong

HOSTILE_PYPROJECTS = {
    "required-version": '[tool.uv]\nrequired-version = ">=99.0"\n',
    "no-deps": "[tool.uv.pip]\nno-deps = true\n",
}
# Each, in root's environment, would change or break a site build.
HOSTILE_UV_VARIABLES = {
    "UV_CONSTRAINT": "constraints.txt",
    "UV_NO_DEPS": "1",
    "UV_PYTHON": "/nonexistent/python",
    "UV_INDEX_URL": "http://127.0.0.1:9/simple",
    "UV_NO_INDEX": "0",
    "UV_OFFLINE": "0",
}


def assert_complete_site_environment(env: Path) -> None:
    """globus-compute-endpoint with its dependencies: a worker pool can start from it."""
    probe = subprocess.run(
        [str(env / "bin" / "python"), "-c", "import globus_compute_endpoint as g, parsl; print(g.__version__)"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip() == GCE
    assert (env / "bin" / "process_worker_pool.py").exists()


@pytest.mark.parametrize("case", [*HOSTILE_PYPROJECTS, "uv-variables"])
def test_site_builds_ignore_the_admins_directory_and_environment(site: Site, tmp_path: Path, case: str) -> None:
    cwd = tmp_path / "playbooks" / "deep"
    cwd.mkdir(parents=True)
    (tmp_path / "constraints.txt").write_text("packaging==0.0.1\n")
    env = site.env(tmp_path / "root-home")
    if case == "uv-variables":
        env |= {k: str(tmp_path / v) if v.endswith(".txt") else v for k, v in HOSTILE_UV_VARIABLES.items()}
    else:
        (tmp_path / "playbooks" / "pyproject.toml").write_text(HOSTILE_PYPROJECTS[case])
    # Beside the module's site, where every account can reach it (pytest's tmp_path is root's alone).
    own = Site(Path(tempfile.mkdtemp(prefix="own-", dir=site.base)))
    own.base.chmod(0o755)
    own.envs.mkdir(parents=True)
    result = build_site(own, cwd, env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "built"
    assert_complete_site_environment(own.envs / NAME)


@pytest.mark.parametrize("case", [*HOSTILE_PYPROJECTS, "uv-variables"])
def test_per_user_builds_ignore_the_workers_directory_and_uv_variables(
    bare_site: Site, tmp_path: Path, case: str
) -> None:
    home = tmp_path / "home"
    cwd = home / "project"
    cwd.mkdir(parents=True)
    (tmp_path / "constraints.txt").write_text("packaging==0.0.1\n")
    extra: dict[str, str] = {}
    if case == "uv-variables":
        extra = {k: str(tmp_path / v) if v.endswith(".txt") else v for k, v in HOSTILE_UV_VARIABLES.items()}
    else:
        (home / "pyproject.toml").write_text(HOSTILE_PYPROJECTS[case])
    result = bare_site.start(home, cwd=cwd, **extra)
    path, version = imported(result)
    env = home / ".globus_compute" / "envs" / NAME
    assert version == GCE and path.startswith(f"{env.resolve()}/")
    assert_complete_site_environment(env)


# The site policy's cache-dir


def test_a_per_user_build_uses_the_users_cache_not_the_sites(site: Site, tmp_path: Path) -> None:
    """A cache-dir in the policy that only root may write: an unprivileged user's build still works."""
    base = Path(tempfile.mkdtemp(prefix="hpc-gc-cache-"))
    try:
        base.chmod(0o755)
        cache = base / "scratch-uv-cache"
        cache.mkdir()
        policy = base / "policy"
        (policy / "uv").mkdir(parents=True)
        toml = (site.policy / "uv" / "uv.toml").read_text() + f'cache-dir = "{cache}"\n'
        (policy / "uv" / "uv.toml").write_text(toml)
        home = base / "home"
        home.mkdir()
        shutil.chown(home, "nobody", "nogroup")
        init = f"source {site.runtime}/worker-env.sh 3.11 {GCE} six==1.17.0 || exit 1"
        result = subprocess.run(
            ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "bash", "-c", f"{init}\n{PROBE}"],
            capture_output=True,
            text=True,
            cwd=home,
            env={"HOME": str(home), "PATH": "/usr/bin:/bin", "XDG_CONFIG_HOME": str(policy)},
            timeout=TIMEOUT,
        )
        path, version = imported(result)
        assert version == GCE and path.startswith(f"{home}/.globus_compute/envs/.builds/{NAME}-req-")
        assert list(cache.iterdir()) == []
        assert (home / ".cache" / "uv").is_dir()
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_a_users_locks_are_theirs_alone(bare_site: Site, tmp_path: Path) -> None:
    """Another user who could open a per-user lock could hold it and stall this user's workers."""
    home = tmp_path / "home"
    home.mkdir()
    envs = home / ".globus_compute" / "envs"
    envs.mkdir(parents=True)
    # A lock left readable by an earlier release is narrowed too.
    (envs / f".{NAME}.lock").touch(mode=0o644)
    first = bare_site.start(home)
    assert imported(first)[1] == GCE, first.stderr
    locks = sorted(envs.glob(".*.lock")) + sorted(envs.glob(".*.build"))
    assert locks, sorted(p.name for p in envs.iterdir())
    assert {p.name: p.stat().st_mode & 0o077 for p in locks} == {p.name: 0 for p in locks}
