"""`nut-setup.sh` on a node, against stub commands: what it refuses before any change, what it
writes, and that a re-run with nothing new restarts nothing."""

from __future__ import annotations

import base64
import re
from pathlib import Path

from components.nut import POWER_CUT
from tests.shell import ScriptRun, run_with_stubs
from tests.support import program, script_param


def rendered(node: str) -> str:
    text = program("home").named(f"{node}-nut").inputs["create"]
    assert isinstance(text, str)
    return text


def under(root: Path, script: str) -> str:
    """SCRIPT with every file it writes moved under ROOT (the same content, mode and group)."""
    lines = []
    for line in script_param(script, "FILES").splitlines():
        path, mode, group, data = line.split()
        lines.append(f"{root}{path} {mode} {group} {data}")
    quoted = "'" + "\n".join(lines) + "'"
    out, count = re.subn(r"^FILES='[^']*'$", lambda _: f"FILES={quoted}", script, count=1, flags=re.MULTILINE)
    assert count == 1
    return out


PACKAGE_STATUS = {True: 'echo "install ok installed"', False: "exit 1"}


def run_setup(
    tmp_path: Path,
    node: str = "pve1",
    ha_manager: str = "5.2.0",
    installed: bool = True,
    answers: bool = True,
    root: Path | None = None,
) -> ScriptRun:
    tmp_path.mkdir(parents=True, exist_ok=True)
    root = root or tmp_path / "root"
    script = under(root, rendered(node))
    script = script.replace("/lib/nut/$DRIVER", f"{tmp_path}/lib/nut/$DRIVER")
    (tmp_path / "lib/nut").mkdir(parents=True, exist_ok=True)
    driver = tmp_path / "lib/nut/usbhid-ups"
    driver.write_text("#!/bin/sh\n")
    driver.chmod(0o755)
    stubs = {
        "dpkg-query": (f'case "$*" in *pve-ha-manager*) echo "{ha_manager}" ;; *) {PACKAGE_STATUS[installed]} ;; esac'),
        "apt-get": "true",
        "chgrp": "true",  # NUT's group exists on a node, maybe not here
        "systemctl": "true",
        "systemd-tmpfiles": "true",
        "upsc": "echo OL" if answers else "exit 1",
        "sleep": "true",
        "hostname": f"echo {node}",
    }
    return run_with_stubs(script, tmp_path, stubs)


def test_the_files_land_as_rendered_and_nut_restarts(tmp_path: Path) -> None:
    run = run_setup(tmp_path)
    assert run.returncode == 0, run.stderr
    for line in script_param(rendered("pve1"), "FILES").splitlines():
        path, mode, _group, data = line.split()
        written = tmp_path / "root" / path.lstrip("/")
        assert written.read_bytes() == base64.b64decode(data), path
        assert oct(written.stat().st_mode & 0o777) == oct(int(mode, 8)), path
    assert run.called("systemctl", "restart", "nut-driver.target", "nut-server.service", "nut-monitor.service")
    assert run.called("systemctl", "start", "homelab-power-cut.path")
    assert "ups@localhost: OL" in run.stdout


def test_a_rerun_with_nothing_new_restarts_nothing(tmp_path: Path) -> None:
    root = tmp_path / "root"
    assert run_setup(tmp_path / "first", root=root).returncode == 0
    assert (root / POWER_CUT.lstrip("/")).exists()
    run = run_setup(tmp_path / "again", root=root)
    assert run.returncode == 0, run.stderr
    assert "wrote" not in run.stdout
    assert not [c for c in run.calls if c[:2] == ["systemctl", "restart"]]


def test_a_node_whose_ha_cannot_disarm_is_refused_before_any_change(tmp_path: Path) -> None:
    run = run_setup(tmp_path, ha_manager="5.0.4", installed=False)
    assert run.returncode == 1
    assert "has pve-ha-manager 5.0.4; the power-cut shutdown disarms HA" in run.stderr
    assert "apt full-upgrade the node" in run.stderr
    assert "apt-get" not in run.commands() and not (tmp_path / "root").exists()


def test_a_secondary_that_cannot_reach_upsd_says_so(tmp_path: Path) -> None:
    run = run_setup(tmp_path, node="pve2", answers=False)
    assert run.returncode == 1
    assert "no answer from ups@10.0.10.11: upsd on the UPS node is not reachable from pve2 on port 3493" in run.stderr
    # A secondary gets upsmon only.
    assert not (tmp_path / "root/etc/nut/upsd.users").exists()
    assert run.called("systemctl", "restart", "nut-monitor.service")


def test_missing_packages_are_installed(tmp_path: Path) -> None:
    run = run_setup(tmp_path, installed=False)
    assert run.returncode == 0, run.stderr
    [install] = [c for c in run.calls if c[0] == "apt-get" and "install" in c]
    assert install[-2:] == ["nut-server", "nut-client"]
