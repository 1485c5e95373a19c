"""The corosync link-1 script on a real Proxmox corosync.conf: the cluster's quorum depends on it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

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


def run_link1(conf: Path) -> subprocess.CompletedProcess[str]:
    script = program("home").named("home-corosync-link1").inputs["create"]
    assert isinstance(script, str)
    env = {**os.environ, "COROSYNC_CONF": str(conf)}
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, check=False)


def test_adds_link1_to_every_node_and_bumps_the_version(tmp_path: Path) -> None:
    conf = tmp_path / "corosync.conf"
    conf.write_text(PVE_COROSYNC_CONF)
    result = run_link1(conf)
    assert result.returncode == 0, result.stderr
    text = conf.read_text()
    for node, ring0, ring1 in (("pve1", 11, 11), ("pve2", 12, 12), ("pve3", 13, 13)):
        block = text.split(f"name: {node}", 1)[1].split("}", 1)[0]
        assert f"ring0_addr: 10.0.10.{ring0}\n    ring1_addr: 10.0.50.{ring1}\n" in block
    assert "config_version: 4" in text and "config_version: 3" not in text
    totem = text.split("totem {", 1)[1]
    assert "linknumber: 0" in totem and "linknumber: 1" in totem
    assert text.count("{") == text.count("}")
    assert (tmp_path / "corosync.conf.bak").read_text() == PVE_COROSYNC_CONF


def test_a_second_run_changes_nothing(tmp_path: Path) -> None:
    conf = tmp_path / "corosync.conf"
    conf.write_text(PVE_COROSYNC_CONF)
    assert run_link1(conf).returncode == 0
    once = conf.read_text()
    again = run_link1(conf)
    assert again.returncode == 0 and "already configured" in again.stdout
    assert conf.read_text() == once
