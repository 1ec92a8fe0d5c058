"""Refusals that end a start or a build in one line: a shell that is not bash 4.2 or later sourcing
worker-env.sh, and a root build without setpriv, which could not prove that users run what it built.

No bash older than 4.2 can be had offline here: the old versions' strings are
given to the real check through BASH_VERSION, which is all it reads, and dash
(Debian's /bin/sh) is a real shell that is not bash at all.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from collection_plugins import CONTRACT
from role_runner import ROOT

FILES = ROOT / "roles" / "python_envs" / "files"
WORKER_ENV = FILES / "worker-env.sh"
BUILD_ENV = ROOT / "roles" / "_common" / "files" / "build-env.sh"
UV = ROOT / ".venv" / "bin" / "uv"
NAME = "py3.11-gce4.19.0"
NEEDS = "worker-env.sh needs bash 4.2 or later"


@pytest.fixture
def runtime(tmp_path: Path) -> Path:
    """The runtime beside a site root holding one environment stamped ready (its activate only says so)."""
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    shutil.copy(WORKER_ENV, runtime)
    env = tmp_path / "envs" / NAME
    (env / "bin").mkdir(parents=True)
    (env / "bin" / "python").symlink_to("/usr/bin/python3")
    (env / "bin" / "activate").write_text("echo activated\n")
    (env / ".ready").write_text("{}\n")
    parts = " ".join(map(str, CONTRACT["env_name_parts"]))  # type: ignore[call-overload]
    site = tmp_path / "envs"
    (runtime / "worker-env.conf").write_text(f"WORKER_ENV_NAME=({parts})\nWORKER_ENV_SITE_ROOT={site}\n")
    return runtime


def source_with(shell: list[str], runtime: Path, prelude: str = "") -> subprocess.CompletedProcess[str]:
    script = f"{prelude}. {runtime}/worker-env.sh 3.11 4.19.0 || exit $?\necho ran"
    return subprocess.run(
        [*shell, "-c", script], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}, timeout=30
    )


def test_a_shell_that_is_not_bash_is_refused_in_one_line(runtime: Path) -> None:
    result = source_with(["dash"], runtime)
    assert (result.returncode, result.stdout, result.stderr) == (
        1,
        "",
        f"worker-env: refusing a shell that is not bash: {NEEDS}\n",
    )


@pytest.mark.parametrize("version", ["3.2.57(1)-release", "4.0.44(1)-release", "4.1.17(1)-release"])
def test_a_bash_older_than_4_2_is_refused_in_one_line(runtime: Path, version: str) -> None:
    result = source_with(["bash"], runtime, f"BASH_VERSION='{version}'\n")
    assert (result.returncode, result.stdout, result.stderr) == (
        1,
        "",
        f"worker-env: refusing bash {version}: {NEEDS}\n",
    )


@pytest.mark.parametrize(
    ("shell", "version"),
    [(["bash"], "4.2.53(1)-release"), (["bash"], "4.4.20(1)-release"), (["bash", "--posix"], "")],
    ids=["bash-4.2", "bash-4.4", "posix-mode"],
)
def test_bash_4_2_and_later_and_posix_mode_start(runtime: Path, shell: list[str], version: str) -> None:
    result = source_with(shell, runtime, f"BASH_VERSION='{version}'\n" if version else "")
    assert (result.returncode, result.stdout) == (0, "activated\nran\n"), result.stderr
    assert result.stderr.startswith(f"worker-env: {NAME} site ")


def path_without_setpriv(directory: Path) -> str:
    """/usr/bin and /bin as they are, but for setpriv (util-linux not installed)."""
    directory.mkdir()
    for tool in [*Path("/usr/bin").iterdir(), *Path("/bin").iterdir(), *Path("/usr/sbin").iterdir()]:
        if tool.name != "setpriv" and not (directory / tool.name).exists():
            (directory / tool.name).symlink_to(tool)
    return str(directory)


@pytest.mark.skipif(os.geteuid() != 0, reason="root's builds prove runnability with setpriv")
@pytest.mark.parametrize("mode", ["build", "probe"])
def test_without_setpriv_root_builds_nothing_and_says_why_in_one_line(tmp_path: Path, mode: str) -> None:
    root = tmp_path / "envs"
    path = path_without_setpriv(tmp_path / "bin")
    if mode == "build":
        argv = [str(UV), str(root), NAME, "aaaa", "/usr/bin/python3", "4.19.0"]
    else:
        argv = ["--probe", "/usr/bin/python3"]
    result = subprocess.run(
        ["bash", str(BUILD_ENV), *argv],
        capture_output=True,
        text=True,
        env={"PATH": path, "BUILD_ENV_NAME": os.environ["BUILD_ENV_NAME"]},
        timeout=120,
    )
    assert (result.returncode, result.stdout, result.stderr) == (
        3,
        "",
        "/usr/bin/python3 cannot be run by nobody: setpriv (util-linux) is missing\n",
    )
    # Nothing was built, locked or published.
    assert not root.exists()


@pytest.mark.parametrize(
    "python",
    [
        f"3.11\nworker-env: {NAME} site /forged 1.000 ms",
        "3.11\r\x1b[2Kforged",
        # C1 controls and the Unicode line separator, as UTF-8 bytes.
        f"3.11\u0085worker-env: {NAME} site /forged 1.000 ms",
        "3.11\u009b2Kforged",
        f"3.11\u2028worker-env: {NAME} site /forged 1.000 ms",
    ],
    ids=["newline", "carriage-return-escape", "next-line", "control-sequence-introducer", "line-separator"],
)
def test_a_refusal_is_one_line_whatever_the_client_sent(runtime: Path, python: str) -> None:
    """Sourced directly, a version may hold a line break: the refusal must not print a forged worker line."""
    script = f'. {runtime}/worker-env.sh "$1" 4.19.0 || exit $?\necho ran'
    result = subprocess.run(
        ["bash", "-c", script, "bash", python],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(runtime)},
        timeout=30,
    )
    assert (result.returncode, result.stdout) == (2, ""), result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("worker-env: refusing Python version"), (
        result.stderr
    )
    assert not set("\x1b\r\u0085\u009b\u2028") & set(result.stderr), result.stderr
