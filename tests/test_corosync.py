"""Corosync link 1 on a real Proxmox corosync.conf, checked by corosync's own parser.

The link-1 script runs as the first node would run it: in a private network and mount namespace
holding that node's addresses, with a cluster key where corosync looks for one, so `corosync -t`
(the parser and validator of the daemon itself, from Debian's `corosync`) judges every edit.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

from components import remote
from tests.support import program

# As Proxmox VE writes it for a three-node cluster formed with `pvecm create/add --link0`.
PVE_COROSYNC_CONF = """\
logging {
  debug: off
  to_syslog: yes
}

nodelist {
  node {
    name: pve1
    nodeid: 1
    quorum_votes: 1
    ring0_addr: 10.0.10.11
  }
  node {
    name: pve2
    nodeid: 2
    quorum_votes: 1
    ring0_addr: 10.0.10.12
  }
  node {
    name: pve3
    nodeid: 3
    quorum_votes: 1
    ring0_addr: 10.0.10.13
  }
}

quorum {
  provider: corosync_votequorum
}

totem {
  cluster_name: home
  config_version: 3
  interface {
    linknumber: 0
  }
  ip_version: ipv4-6
  link_mode: passive
  secauth: on
  version: 2
}
"""

# A node that `pvecm add --link0 ... --link1 ...` put in once link 1 existed.
PVE4_JOINED = """\
  node {
    name: pve4
    nodeid: 4
    quorum_votes: 1
    ring0_addr: 10.0.10.14
    ring1_addr: 10.0.50.14
  }
"""


def as_node(addresses: list[str], script: str, tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run SCRIPT with bash as a node holding ADDRESSES: its own network namespace (so corosync
    finds the local node in the nodelist) and a cluster key at /etc/corosync/authkey, bound there
    in its own mount namespace. Nothing outside the namespaces changes."""
    keys = tmp_path / "etc-corosync"
    keys.mkdir(exist_ok=True)
    key = keys / "authkey"
    if not key.exists():
        key.write_bytes(os.urandom(256))
        key.chmod(0o400)
    path = tmp_path / "script.sh"
    path.write_text(script)
    setup = " && ".join(
        [
            "ip link set lo up",
            *(f"ip address add {a}/32 dev lo" for a in addresses),
            f"mount --bind {keys} /etc/corosync",
        ]
    )
    return subprocess.run(
        ["unshare", "--net", "--mount", "bash", "-c", f"{setup} && exec bash {shlex.quote(str(path))}"],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
        check=False,
    )


def corosync_accepts(conf: Path, addresses: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """corosync's verdict on CONF, as the node holding ADDRESSES would load it."""
    return as_node(addresses, f"exec corosync -t -c {shlex.quote(str(conf))}\n", tmp_path, {})


def run_link1(conf: Path, tmp_path: Path, script: str | None = None) -> subprocess.CompletedProcess[str]:
    """The link-1 script on CONF, run as the first node (pve1) runs it."""
    text = script or program("home").named("home-corosync-link1").inputs["create"]
    assert isinstance(text, str)
    return as_node(["10.0.10.11", "10.0.50.11"], text, tmp_path, {"COROSYNC_CONF": str(conf)})


def node_block(text: str, node: str) -> str:
    return text.split(f"name: {node}\n", 1)[1].split("}", 1)[0]


def test_adds_link1_to_every_node_and_bumps_the_version(tmp_path: Path) -> None:
    conf = tmp_path / "corosync.conf"
    conf.write_text(PVE_COROSYNC_CONF)
    result = run_link1(conf, tmp_path)
    assert result.returncode == 0, result.stderr
    text = conf.read_text()
    for node, last in (("pve1", 11), ("pve2", 12), ("pve3", 13)):
        assert f"ring0_addr: 10.0.10.{last}\n    ring1_addr: 10.0.50.{last}\n" in node_block(text, node)
    assert "config_version: 4" in text and "config_version: 3" not in text
    totem = text.split("totem {", 1)[1]
    assert "linknumber: 0" in totem and "linknumber: 1" in totem
    assert (tmp_path / "corosync.conf.bak").read_text() == PVE_COROSYNC_CONF
    # Every member loads it: pve3 with its own addresses, as after pmxcfs copies it there.
    checked = corosync_accepts(conf, ["10.0.10.13", "10.0.50.13"], tmp_path)
    assert checked.returncode == 0, checked.stderr


def test_a_second_run_changes_nothing(tmp_path: Path) -> None:
    conf = tmp_path / "corosync.conf"
    conf.write_text(PVE_COROSYNC_CONF)
    assert run_link1(conf, tmp_path).returncode == 0
    once = conf.read_text()
    again = run_link1(conf, tmp_path)
    assert again.returncode == 0 and "already configured on every node" in again.stdout
    assert conf.read_text() == once


def linked(tmp_path: Path) -> Path:
    """The three-node file as the link-1 script leaves it."""
    conf = tmp_path / "corosync.conf"
    conf.write_text(PVE_COROSYNC_CONF)
    assert run_link1(conf, tmp_path).returncode == 0
    return conf


def ring1(*pairs: tuple[str, str]) -> str:
    return remote.script("corosync-link1", ring1=" ".join(f"{node}={addr}" for node, addr in pairs))


HOME_RING1 = (("pve1", "10.0.50.11"), ("pve2", "10.0.50.12"), ("pve3", "10.0.50.13"))


def test_a_fourth_node_that_joined_with_link1_is_left_as_pvecm_wrote_it(tmp_path: Path) -> None:
    conf = linked(tmp_path)
    text = conf.read_text().replace("\n}\n\nquorum", "\n" + PVE4_JOINED + "}\n\nquorum", 1)
    conf.write_text(text)
    result = run_link1(conf, tmp_path, ring1(*HOME_RING1, ("pve4", "10.0.50.14")))
    assert result.returncode == 0, result.stderr
    assert conf.read_text() == text
    checked = corosync_accepts(conf, ["10.0.10.14", "10.0.50.14"], tmp_path)
    assert checked.returncode == 0, checked.stderr


def test_a_changed_storage_address_reaches_corosync(tmp_path: Path) -> None:
    conf = linked(tmp_path)
    before = conf.read_text()
    moved = ring1(("pve1", "10.0.50.11"), ("pve2", "10.0.50.22"), ("pve3", "10.0.50.13"))
    result = run_link1(conf, tmp_path, moved)
    assert result.returncode == 0, result.stderr
    text = conf.read_text()
    assert "ring0_addr: 10.0.10.12\n    ring1_addr: 10.0.50.22\n" in node_block(text, "pve2")
    assert "10.0.50.12" not in text and text.count("ring1_addr") == 3
    assert "config_version: 5" in text
    assert node_block(text, "pve1") == node_block(before, "pve1")
    assert corosync_accepts(conf, ["10.0.10.12", "10.0.50.22"], tmp_path).returncode == 0


def test_a_member_missing_from_the_spec_stops_the_edit(tmp_path: Path) -> None:
    conf = linked(tmp_path)
    before = conf.read_text()
    result = run_link1(conf, tmp_path, ring1(*HOME_RING1[:2]))
    assert result.returncode == 1
    assert "node(s) pve3 are in the cluster but not in the spec" in result.stderr
    assert conf.read_text() == before


def test_a_file_corosync_refuses_is_never_put_in_place(tmp_path: Path) -> None:
    # A hand-made link 2 on one node only: corosync wants the same links on every node.
    conf = tmp_path / "corosync.conf"
    broken = PVE_COROSYNC_CONF.replace(
        "ring0_addr: 10.0.10.13\n", "ring0_addr: 10.0.10.13\n    ring2_addr: 10.0.60.13\n"
    )
    conf.write_text(broken)
    result = run_link1(conf, tmp_path)
    assert result.returncode == 1
    assert "corosync refuses the edited configuration, left unchanged" in result.stderr
    assert "parse error in config" in result.stderr and "interface 2" in result.stderr
    assert conf.read_text() == broken and not (tmp_path / "corosync.conf.bak").exists()


def test_the_checker_tells_a_good_file_from_a_bad_one(tmp_path: Path) -> None:
    conf = linked(tmp_path)
    assert corosync_accepts(conf, ["10.0.10.11"], tmp_path).returncode == 0
    conf.write_text(conf.read_text().replace("    ring1_addr: 10.0.50.12\n", ""))
    refused = corosync_accepts(conf, ["10.0.10.11"], tmp_path)
    assert refused.returncode != 0 and "Not all nodes have the same number of links" in refused.stderr
