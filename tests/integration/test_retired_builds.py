"""Site builds that leave the matrix or are superseded are unpublished, kept for the grace, then removed;
and only a dead build of this very host (hostname, boot and pid namespace) is removed at once.

The real build-env.sh builds from the offline wheelhouse; the role's prune
tasks run for real. Pruning takes no lock: the same outcome is asserted with
locks that exclude, that exclude nothing (a flock that grants every lock, as
Lustre localflock or NFS nolock seen from several nodes) and that fail.
A build's retirement time is its `.unpublished` record; a test ages it by
rewriting that record, as days passing would.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest
import role_runner
from test_site_builds import (
    BUILD_ENV,
    NAME,
    build,
    builds,
    fake_flock,
    finish,
    imports_endpoint,
    killer,
    published,
    site,
    wheelhouse,
)

__all__ = ["site", "wheelhouse"]
GRACE = 7
DAY = 86400


def prune(root: Path, *keep: str, days: int = GRACE, check: bool = False, path_first: Path | None = None):
    env = dict(os.environ)
    if path_first:
        env["PATH"] = f"{path_first}:{env['PATH']}"
    argv = ["bash", str(BUILD_ENV), "--prune", *(["--check"] if check else []), str(root), str(days), *keep]
    return subprocess.run(argv, capture_output=True, text=True, env=env, check=False, timeout=60)


def retire_days_ago(build_dir: Path, days: float) -> None:
    when = int(time.time() - days * DAY)
    (build_dir / ".unpublished").write_text(f"{when} {time.strftime('%Y-%m-%dT%H:%M:%S%z', time.localtime(when))}\n")


def listing(root: Path) -> list[str]:
    return sorted(
        f"{p.relative_to(root)} -> {os.readlink(p)}" if p.is_symlink() else str(p.relative_to(root))
        for p in [*root.glob("*"), *root.glob(".builds/*")]
    )


@pytest.mark.parametrize("locks", ["coherent", "grants", "fails"])
def test_a_superseded_build_outlives_its_link_by_the_grace_and_a_published_one_is_never_removed(
    wheelhouse: Path, site: Path, tmp_path: Path, locks: str
) -> None:
    root = site / "envs"
    shim = None if locks == "coherent" else fake_flock(tmp_path / "bin", locks)
    assert finish(build(wheelhouse, root, "aaaa", path_first=shim))[:2] == (0, "built\n")
    old = published(root)
    assert finish(build(wheelhouse, root, "bbbb", path_first=shim))[:2] == (0, "built\n")
    new = published(root)
    # Superseded by the switch: recorded then, and kept for the workers still in it.
    assert (old / ".unpublished").is_file() and not (new / ".unpublished").exists()
    assert abs(int((old / ".unpublished").read_text().split()[0]) - time.time()) < 120
    result = prune(root, NAME, path_first=shim)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert builds(root) == sorted([old, new])
    assert imports_endpoint(old) == "4.19.0"
    # Past the grace it goes; the published one stays even with a stale record planted in it.
    retire_days_ago(old, GRACE + 1)
    retire_days_ago(new, 10 * GRACE)
    result = prune(root, NAME, path_first=shim)
    assert (result.returncode, result.stdout, result.stderr) == (0, f"removed .builds/{old.name}\n", "")
    assert builds(root) == [new] and published(root) == new
    assert not (new / ".unpublished").exists()
    assert imports_endpoint(new) == "4.19.0"


def run_prune_tasks(tmp_path: Path, root: Path, names: list[str], check: bool = False):
    """The role's prune tasks, as main.yml runs them after the builds."""
    return role_runner.run_role(
        tmp_path,
        "python_envs",
        {
            "python_envs_root": str(root),
            "__python_envs": [{"name": n} for n in names],
            "__python_envs_keep_superseded": GRACE,
        },
        tasks_from="prune.yml",
        args=["--check"] if check else [],
    )


def test_an_environment_that_left_the_matrix_is_unpublished_and_its_build_kept_for_the_grace(
    wheelhouse: Path, site: Path, tmp_path: Path
) -> None:
    root = site / "envs"
    assert finish(build(wheelhouse, root, "cccc"))[:2] == (0, "built\n")
    kept = published(root)
    before = listing(root)
    checked = run_prune_tasks(tmp_path, root, [], check=True)
    assert checked.returncode == 0, checked.stdout
    assert "changed=1" in checked.stdout and listing(root) == before
    ran = run_prune_tasks(tmp_path, root, [])
    assert ran.returncode == 0 and "changed=1" in ran.stdout, ran.stdout
    # Unpublished: the link is gone, the build stays, recorded, and still runs.
    assert not (root / NAME).exists() and not (root / NAME).is_symlink()
    assert builds(root) == [kept] and (kept / ".unpublished").is_file()
    assert imports_endpoint(kept) == "4.19.0"
    again = run_prune_tasks(tmp_path, root, [])
    assert again.returncode == 0 and "changed=0" in again.stdout, again.stdout
    assert builds(root) == [kept]
    retire_days_ago(kept, GRACE + 1)
    gone = run_prune_tasks(tmp_path, root, [])
    assert gone.returncode == 0 and "changed=1" in gone.stdout, gone.stdout
    assert builds(root) == []


def tag_parts() -> tuple[str, str, str]:
    boot = Path("/proc/sys/kernel/random/boot_id").read_text()[:8]
    pidns = "".join(c for c in os.readlink("/proc/self/ns/pid") if c.isdigit())
    return os.uname().nodename, boot, pidns


def gone_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_only_a_dead_build_of_this_hosts_boot_and_pid_namespace_goes_at_once(wheelhouse: Path, site: Path) -> None:
    """Containers share hostnames: another pid namespace's pid says nothing here, alive or not."""
    root = site / "envs"
    assert finish(build(wheelhouse, root, "dddd"))[:2] == (0, "built\n")
    node, boot, pidns = tag_parts()
    assert re.fullmatch(rf"{re.escape(NAME)}-dddd\.{re.escape(node)}\.{boot}\.{pidns}-\d+", published(root).name)
    dead, alive = gone_pid(), subprocess.Popen(["sleep", "300"])
    try:
        tags = {
            "other-boot": f"{node}.{'0' * 8}.{pidns}-{dead}",
            "other-pidns": f"{node}.{boot}.1-{dead}",
            "here-alive": f"{node}.{boot}.{pidns}-{alive.pid}",
            "here-dead": f"{node}.{boot}.{pidns}-{dead}",
        }
        for tag in tags.values():
            (root / ".builds" / f"{NAME}-eeee.{tag}" / "bin").mkdir(parents=True)
        rc, out, err = finish(build(wheelhouse, root, "eeee"))
        assert (rc, out) == (0, "built\n"), err
        left = {b.name for b in builds(root)}
        for kind, tag in tags.items():
            assert (f"{NAME}-eeee.{tag}" in left) == (kind != "here-dead"), (kind, left)
    finally:
        alive.kill()
        alive.wait()


def test_a_prune_in_check_mode_writes_nothing(tmp_path: Path) -> None:
    """A mangled retirement record, and one left on a build published again: --check leaves both as they are."""
    root = tmp_path / "root"
    mangled = root / ".builds" / f"{NAME}-aaaa.host.0.0-1"
    relinked = root / ".builds" / f"{NAME}-bbbb.host.0.0-2"
    for build_dir in (mangled, relinked):
        build_dir.mkdir(parents=True)
        (build_dir / ".ready").write_text("{}\n")
        (build_dir / ".unpublished").write_text("not a time\n")
    (root / NAME).symlink_to(f".builds/{relinked.name}")
    before = [*listing(root), (mangled / ".unpublished").read_text(), (relinked / ".unpublished").read_text()]
    result = prune(root, NAME, check=True)
    assert result.returncode == 0, result.stderr
    after = [*listing(root), (mangled / ".unpublished").read_text(), (relinked / ".unpublished").read_text()]
    assert after == before


@pytest.mark.parametrize("by", ["next-build", "prune"])
def test_an_interrupted_build_of_a_superseded_spec_goes_once_dead(
    wheelhouse: Path, site: Path, tmp_path: Path, by: str
) -> None:
    """Killed while its spec was current; the spec changed since, so no build of it will ever look again."""
    root = site / "envs"
    assert finish(build(wheelhouse, root, "dddd"))[:2] == (0, "built\n")
    killed = build(wheelhouse, root, "eeee", uv=killer(tmp_path / "bin", "uv", '[ "$1" = pip ]'), own_group=True)
    assert finish(killed)[0] == -9
    (left,) = [b for b in builds(root) if b.name.startswith(f"{NAME}-eeee.")]
    # Another host's, touched just now: it may still be in the making.
    node, _, pidns = tag_parts()
    foreign = root / ".builds" / f"{NAME}-eeee.{node}.{'0' * 8}.{pidns}-{gone_pid()}"
    (foreign / "bin").mkdir(parents=True)
    if by == "next-build":
        rc, out, err = finish(build(wheelhouse, root, "ffff"))
        assert (rc, out) == (0, "built\n"), err
    else:
        result = prune(root, NAME)
        assert (result.returncode, result.stdout, result.stderr) == (0, f"removed .builds/{left.name}\n", "")
    assert not left.exists()
    assert foreign.is_dir()


def test_a_link_left_in_flight_goes_once_its_builder_is_dead(wheelhouse: Path, site: Path, tmp_path: Path) -> None:
    """Killed between the `ln` that makes the new link and the rename that publishes it."""
    root = site / "envs"
    killed = build(
        wheelhouse, root, "dddd", path_first=killer(tmp_path / "bin", "mv", '[ "$1" = -Tf ]').parent, own_group=True
    )
    assert finish(killed)[0] == -9
    (flight,) = root.glob(f".{NAME}.link.*")
    assert flight.is_symlink() and not (root / NAME).is_symlink()
    node, _, pidns = tag_parts()
    foreign = root / f".{NAME}.link.{node}.{'0' * 8}.{pidns}-{gone_pid()}"
    foreign.symlink_to(os.readlink(flight))
    checked = prune(root, NAME, check=True)
    # The build it was to publish is complete and unlinked: the prune would retire it too.
    said = f"would remove {flight.name}\nwould retire {os.readlink(flight)}\n"
    assert (checked.returncode, checked.stdout) == (0, said), checked.stderr
    assert flight.is_symlink()
    rc, out, err = finish(build(wheelhouse, root, "dddd"))
    assert (rc, out) == (0, "built\n"), err
    assert published(root).name.startswith(f"{NAME}-dddd.")
    assert sorted(p.name for p in root.glob(f".{NAME}.link.*")) == [foreign.name]


@pytest.mark.parametrize("node", ["node-01", "gpu-a100", "cn-0a1b.cluster"])
def test_a_dead_build_of_a_host_whose_name_holds_dashes_goes_at_once(tmp_path: Path, node: str) -> None:
    """Clusters name nodes node-01 or gpu-a100: the tag is everything after the build's spec, since
    the versions in its name hold no dash; read from the last dash, it was never this host's."""
    root = tmp_path / "envs"
    _, boot, pidns = tag_parts()
    dead = gone_pid()
    left = root / ".builds" / f"{NAME}-0123456789ab.{node}.{boot}.{pidns}-{dead}"
    (left / "bin").mkdir(parents=True)
    flight = root / f".{NAME}.link.{node}.{boot}.{pidns}-{dead}"
    flight.symlink_to(f".builds/{left.name}")
    script = 'hostname "$1" && exec bash "$2" --prune "$3" 7'
    result = subprocess.run(
        ["unshare", "--uts", "sh", "-c", script, "sh", node, str(BUILD_ENV), str(root)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    assert result.stdout == f"removed .builds/{left.name}\nremoved {flight.name}\n"
    assert not left.exists() and not flight.is_symlink()
