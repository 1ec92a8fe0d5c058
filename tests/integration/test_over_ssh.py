"""The roles' refusals over ssh, as sites run them, name the variable and the reason.

The ssh connection runs a script task on a terminal (`ssh -tt`, its use_tty
default): the script's stderr reaches Ansible joined to its stdout, and stderr
holds only ssh's own `Shared connection to HOST closed.`. A refusal read from
stderr then said that line instead of why. Each run here goes over a real ssh
connection, Ansible's defaults (multiplexed, with a terminal), to a private
sshd on a free loopback port (root's key only, a host key of its own), and
must say what the same run says over the local connection.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from role_runner import ROOT, assert_fails_with, run_role
from test_published_runnable import endpoint_vars

UV = ROOT / ".venv" / "bin" / "uv"

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="sshd serves root's key login; the roles run as root"),
    # One sshd for the module's tests.
    pytest.mark.xdist_group("over_ssh"),
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Sshd:
    """A private sshd: the extra vars that take localhost to it over ssh, and its log."""

    def __init__(self, variables: dict[str, object], log: Path) -> None:
        self._variables, self.log = variables, log

    def variables(self, control_dir: Path, ssh_args: str | None) -> dict[str, object]:
        """The extra vars, with ssh's multiplexing sockets in a directory of the caller's (a run reusing
        another's connection would make no login of its own), and ssh_args when given."""
        own = {"ansible_ssh_args": ssh_args} if ssh_args is not None else {}
        return {**self._variables, "ansible_control_path_dir": str(control_dir), **own}

    def logins(self) -> int:
        """How many logins it accepted so far (each run makes at least one)."""
        return self.log.read_text().count("Accepted publickey for root")


@pytest.fixture(scope="module")
def over_ssh() -> Iterator[Sshd]:
    subprocess.run([str(ROOT / "scripts" / "harness" / "sshd")], check=True)
    # Short: the multiplexing socket's path must fit a Unix socket's 108 bytes.
    base = Path(tempfile.mkdtemp(prefix="hgc-ssh."))
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    for key in ("host", "client"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(base / key)], check=True)
    (base / "authorized_keys").write_text((base / "client.pub").read_text())
    port = free_port()
    (base / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {base / 'host'}\n"
        f"AuthorizedKeysFile {base / 'authorized_keys'}\nPermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
        f"PidFile {base / 'sshd.pid'}\nSubsystem sftp internal-sftp\n"
    )
    server = subprocess.Popen(
        ["/usr/sbin/sshd", "-D", "-e", "-f", str(base / "sshd_config")],
        stdout=subprocess.DEVNULL,
        stderr=(base / "sshd.log").open("w"),
    )
    try:
        for _ in range(100):
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert server.poll() is None, (base / "sshd.log").read_text()
            time.sleep(0.1)
        yield Sshd(
            {
                "ansible_connection": "ssh",
                "ansible_host": "127.0.0.1",
                "ansible_port": port,
                "ansible_user": "root",
                "ansible_ssh_private_key_file": str(base / "client"),
                "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
            },
            base / "sshd.log",
        )
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(base)


@pytest.fixture
def control_dir() -> Iterator[Path]:
    """ssh's multiplexing sockets: a short path of the test's own (a Unix socket's path fits in 108
    bytes, which pytest's own directories under xdist exceed)."""
    path = Path(tempfile.mkdtemp(prefix="hgc-cp."))
    yield path
    shutil.rmtree(path)


@pytest.fixture
def site() -> Iterator[Path]:
    # Readable by the unprivileged account the roles run interpreters as (pytest's directories are 0700).
    site = Path(tempfile.mkdtemp(prefix="hgc-ssh-site."))
    site.chmod(0o755)
    yield site
    shutil.rmtree(site)


# Ansible's ssh_args (multiplexed: ssh closes with "Shared connection to HOST closed."), and none
# (one connection per command: "Connection to HOST closed.", and the host key "Permanently added").
SSH_ARGS = pytest.mark.parametrize("ssh_args", [None, ""], ids=["multiplexed", "not-multiplexed"])


@pytest.mark.skipif(not Path("/usr/bin/python3.11").exists(), reason="needs the system's python3.11")
@SSH_ARGS
def test_an_interpreter_nobody_can_run_is_named_over_ssh(
    tmp_path: Path, site: Path, root_only: Path, over_ssh: Sshd, ssh_args: str | None, control_dir: Path
) -> None:
    variables = {
        "python_envs_root": str(site / "envs"),
        "python_envs_runtime_dir": str(site / "runtime"),
        "python_envs_facts_dir": str(site / "facts"),
        "python_envs_owner": "root",
        "python_envs_group": "root",
        "python_envs_uv": str(UV),
        "python_envs_matrix": [{"python": "3.11", "endpoint": "4.19.0"}],
        "python_envs_interpreter_paths": {"3.11": str(root_only / "python3.11")},
    }
    logins = over_ssh.logins()
    result = run_role(tmp_path, "python_envs", {**variables, **over_ssh.variables(control_dir, ssh_args)})
    assert over_ssh.logins() > logins, "the run did not go over ssh"
    assert_fails_with(
        result,
        f"python_envs_interpreter_paths['3.11']: {root_only / 'python3.11'} cannot be run by nobody: Permission denied;"
        " nothing was built.",
    )
    assert not (site / "envs").exists()


@pytest.mark.skipif(not Path("/usr/bin/python3.11").exists(), reason="needs the system's python3.11")
@SSH_ARGS
def test_an_endpoint_python_nobody_can_run_is_named_over_ssh(
    tmp_path: Path, site: Path, root_only: Path, over_ssh: Sshd, ssh_args: str | None, control_dir: Path
) -> None:
    python = root_only / "python3.11"
    variables = endpoint_vars(site, endpoint_python=str(python))
    logins = over_ssh.logins()
    result = run_role(tmp_path, "endpoint", {**variables, **over_ssh.variables(control_dir, ssh_args)})
    assert over_ssh.logins() > logins, "the run did not go over ssh"
    assert_fails_with(
        result, f"endpoint_python: {python} cannot be run by nobody: Permission denied; nothing was built."
    )
    assert not (site / "install").exists()
