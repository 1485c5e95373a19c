"""USB4 mesh ports as code: the files `usb4-ports.sh` writes, each checked by the tool that reads
it on the node. udev's own parsers (Debian's `udev`: `udevadm test-builtin net_setup_link` for
the .link files, `udevadm test` for the rules) run in a private mount namespace where the files
sit where udev looks for them; `systemd-analyze verify` checks the unit."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from components.network import USB4_MTU
from tests.shell import run_with_stubs, systemd_verify
from tests.support import program

FILES_AT = {"link": "systemd/network", "rules": "udev/rules.d"}


def written(tmp_path: Path) -> Path:
    """The files pve1's script writes, under tmp_path/etc."""
    script = program("home").named("pve1-usb4-ports").inputs["create"]
    assert isinstance(script, str)
    etc = tmp_path / "etc"
    (tmp_path / "run").mkdir()
    run = run_with_stubs(f"ETC={etc}\n" + script, tmp_path / "run", {})
    assert run.returncode == 0, run.stderr
    return etc


def udev_reads(folder: Path, at: str, command: list[str]) -> str:
    """What udev logs reading FOLDER's files from /etc/AT (bound there for this command only)."""
    out = subprocess.run(
        ["unshare", "--mount", "bash", "-c", f'mount --bind "$0" /etc/{at} && exec "$@"', str(folder), *command],
        capture_output=True,
        text=True,
        env={"SYSTEMD_LOG_LEVEL": "debug", "PATH": "/usr/bin:/usr/sbin:/bin:/sbin"},
        timeout=60,
        check=False,
    )
    return out.stdout + out.stderr


def udev_problems(folder: Path, suffix: str, at: str, command: list[str], read: str) -> list[str]:
    """What udev logs about FOLDER's `*.SUFFIX` files, read from /etc/AT; each must show as READ."""
    log = udev_reads(folder, at, command)
    files = [f"/etc/{at}/{path.name}" for path in folder.glob(f"*.{suffix}")]
    for name in files:
        assert read.format(name) in log, log
    return [line for line in log.splitlines() if any(f"{name}:" in line for name in files)]


def link_problems(folder: Path) -> list[str]:
    command = ["udevadm", "test-builtin", "net_setup_link", "/sys/class/net/lo"]
    return udev_problems(folder, "link", FILES_AT["link"], command, 'Parsed configuration file "{}"')


def rules_problems(folder: Path) -> list[str]:
    command = ["udevadm", "test", "--action=add", "/sys/class/net/lo"]
    return udev_problems(folder, "rules", FILES_AT["rules"], command, "Reading rules file: {}")


def unit_problems(unit: Path, tmp_path: Path) -> str:
    return systemd_verify(unit, tmp_path, ["/usr/sbin/ifup"], instance=unit.name.replace("@.", "@en05."))


def test_each_port_is_named_by_its_pci_path_with_the_usb4_mtu(tmp_path: Path) -> None:
    etc = written(tmp_path)
    assert (etc / "modules-load.d/homelab-usb4.conf").read_text().split() == ["thunderbolt", "thunderbolt-net"]
    links = {p.name: p.read_text() for p in (etc / "systemd/network").glob("*.link")}
    assert set(links) == {"00-homelab-en05.link", "00-homelab-en06.link"}
    en05 = links["00-homelab-en05.link"]
    assert "Path=pci-0000:00:0d.2\nDriver=thunderbolt-net\n" in en05
    assert "Name=en05\n" in en05 and f"MTUBytes={USB4_MTU}\n" in en05
    # ifupdown2 would set the ports back to 1500 at each ifreload without its policy default.
    policy = json.loads((etc / "network/ifupdown2/policy.d/homelab-usb4.json").read_text())
    assert policy == {"address": {"iface_defaults": {"en05": {"mtu": str(USB4_MTU)}, "en06": {"mtu": str(USB4_MTU)}}}}
    rules = (etc / "udev/rules.d/90-homelab-usb4.rules").read_text().splitlines()
    assert len(rules) == 2 and 'ENV{SYSTEMD_WANTS}+="homelab-usb4-up@en06.service"' in rules[1]


def test_udev_and_systemd_accept_every_file(tmp_path: Path) -> None:
    etc = written(tmp_path)
    assert link_problems(etc / "systemd/network") == []
    assert rules_problems(etc / "udev/rules.d") == []
    assert unit_problems(etc / "systemd/system/homelab-usb4-up@.service", tmp_path) == "0:"


@pytest.mark.parametrize(
    ("kind", "broken", "complaint"),
    [
        ("link", "[Match]\nPath=pci-0000:00:0d.2\n\n[Link]\nMTUBites=65520\n", "Unknown key"),
        ("rules", 'ACTION=="add", SUBSYSTEM="net"\n', "Invalid operator"),
        ("service", "[Service]\nType=oneshoot\nExecStart=/usr/sbin/ifup %i\n", "Failed to parse service type"),
    ],
)
def test_the_checkers_catch_a_broken_file(tmp_path: Path, kind: str, broken: str, complaint: str) -> None:
    folder = tmp_path / kind
    folder.mkdir()
    name = {"link": "00-bad.link", "rules": "90-bad.rules", "service": "bad@.service"}[kind]
    (folder / name).write_text(broken)
    if kind == "link":
        found = " ".join(link_problems(folder))
    elif kind == "rules":
        found = " ".join(rules_problems(folder))
    else:
        found = unit_problems(folder / name, tmp_path)
    assert complaint in found


def test_each_node_joins_the_fabric_once_its_ports_are_named() -> None:
    run = program("home")
    for node in ("pve1", "pve2", "pve3"):
        assert run.named(f"{node}-usb4-ports").urn in run.named(f"ceph-{node}").dependencies
    assert not [r for r in program("lab").resources if r.name.endswith("-usb4-ports")]  # no USB4 in the lab
