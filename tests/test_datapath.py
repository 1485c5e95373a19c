"""The data-path report: which link carries each traffic class, how fast one flow goes, the bottleneck."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from components import network
from offline.preview import main
from offline.reports import Reports
from plan.datapath import (
    COROSYNC_LAN,
    COROSYNC_STORAGE,
    KUBERNETES_VOLUMES,
    LAN,
    MESH,
    REPLICATION,
    VM_DISKS,
    DataPath,
    WriteCap,
    datapath,
)
from tests.support import patched, stack_cluster, stack_data, validate

HOME_NODES = ("pve1", "pve2", "pve3")


def path_of(data: dict[str, Any]) -> DataPath:
    return datapath(validate(data))


def writes(d: DataPath, name: str = VM_DISKS) -> WriteCap:
    cap = d.of(name).writes
    assert cap is not None
    return cap


def nic_speeds(data: dict[str, Any], nic: str, gbps: float, nodes: tuple[int, ...] = (0, 1, 2)) -> dict[str, Any]:
    """Set one NIC's speed on the given nodes (by index), wherever it sits in hardware.nics."""
    changes = {}
    for i in nodes:
        j = next(k for k, n in enumerate(data["nodes"][i]["hardware"]["nics"]) if n["name"] == nic)
        changes[f"nodes[{i}].hardware.nics[{j}].speed_gbps"] = gbps
    return patched(data, changes)


def one_ceph_network(data: dict[str, Any]) -> dict[str, Any]:
    """The spec with Ceph's public and cluster networks as one: no public VLAN, so no guest on Ceph."""
    guests = [f"guests[{i}].ceph_address" for i, g in enumerate(data["guests"]) if "ceph_address" in g]
    nodes = [f"nodes[{i}].public_address" for i in range(len(data["nodes"]))]
    return patched(
        data,
        {"networks.ceph.public": data["networks"]["ceph"]["cluster"]},
        delete=[
            "networks.ceph.public_vlan",
            "k3s",
            "workloads",
            *(["gateway"] if "gateway" in data else []),
            *nodes,
            *guests,
        ],
    )


def test_home_vm_disk_writes_ride_the_lan_bond_while_the_mesh_carries_replication() -> None:
    d = datapath(stack_cluster("home"))
    vm, repl = d.of(VM_DISKS), d.of(REPLICATION)
    assert vm.carrier == "bond0" and "VLAN 40 on vmbr0 over bond0" in vm.network
    assert [(link.node, link.gbps) for link in vm.links] == [(n, 2.5) for n in HOME_NODES]
    cap = writes(d)
    assert (cap.gbps, cap.on_public, cap.copies, cap.by.where()) == (2.5, True, 2, "bond0 on every node")
    assert repl.carrier == MESH and repl.slowest.gbps == 20 and repl.slowest.where() == "every mesh cable"
    assert len(repl.links) == 6 and {link.gbps for link in repl.links} == {20}
    assert d.public_on_lan
    assert d.bottleneck == (
        "VM disk writes are capped at 2.5 Gb/s by bond0 on every node (the Ceph public network on the LAN), "
        "while the 20 Gb/s mesh carries only replication."
    )
    assert d.advice is not None and "could reach 20 Gb/s instead of 2.5 Gb/s" in d.advice


def test_home_classes_that_share_a_link() -> None:
    d = datapath(stack_cluster("home"))
    assert d.shared == {
        "bond0": (VM_DISKS, KUBERNETES_VOLUMES, COROSYNC_LAN, LAN),
        MESH: (REPLICATION, COROSYNC_STORAGE),
    }
    assert d.of(KUBERNETES_VOLUMES).carrier == "bond0" and writes(d, KUBERNETES_VOLUMES).gbps == 2.5
    corosync = d.of(COROSYNC_LAN)
    assert corosync.latency_only
    assert "shares bond0 with VM disk I/O, Kubernetes volumes, LAN" in corosync.notes[0]
    assert "shares the mesh with Ceph replication" in d.of(COROSYNC_STORAGE).notes[0]


def test_speeds_come_from_the_nics() -> None:
    data = nic_speeds(nic_speeds(stack_data("home"), "en05", 40), "en06", 40)
    d = path_of(nic_speeds(nic_speeds(data, "enp1s0", 10), "enp2s0", 10))
    assert d.of(REPLICATION).slowest.gbps == 40
    assert d.of(LAN).slowest.gbps == 10
    assert writes(d).gbps == 10 and writes(d).on_public
    assert "while the 40 Gb/s mesh carries only replication" in d.bottleneck


def test_an_active_backup_bond_counts_its_slower_member() -> None:
    d = path_of(nic_speeds(stack_data("home"), "enp2s0", 1, nodes=(1,)))
    lan = d.of(LAN).slowest
    assert lan.gbps == 1 and lan.where() == "bond0 on pve2"
    assert writes(d).gbps == 1
    assert d.bottleneck.startswith("VM disk writes are capped at 1 Gb/s by bond0 on pve2")


def test_lab_writes_are_capped_by_the_copies_on_the_storage_bond() -> None:
    d = datapath(stack_cluster("lab"))
    repl = d.of(REPLICATION)
    assert repl.carrier == "bond1" and repl.slowest.gbps == 10
    assert d.shared == {
        "bond0": (VM_DISKS, KUBERNETES_VOLUMES, COROSYNC_LAN, LAN),
        "bond1": (REPLICATION, COROSYNC_STORAGE),
    }
    cap = writes(d)
    # The primary sends two copies over one 10 Gb/s member: 5 Gb/s of client writes.
    assert (cap.gbps, cap.on_public, cap.by.where()) == (5, False, "bond1 on every node")
    assert d.of(VM_DISKS).slowest.gbps == 10  # reads: the public network alone
    assert d.bottleneck == (
        "VM disk writes are capped at 5 Gb/s by bond1 on every node: the primary OSD sends 2 copies of each "
        "write over one 10 Gb/s link; reads reach 10 Gb/s over bond0 on every node."
    )
    assert d.advice is not None and d.advice.endswith("bond1 on every node would hold them at 5 Gb/s.")


def test_a_tie_names_the_public_network() -> None:
    # bond1 at 20 Gb/s carries two copies of each write: 10 Gb/s, as fast as bond0.
    d = path_of(nic_speeds(nic_speeds(stack_data("lab"), "ens20", 20), "ens21", 20))
    assert (writes(d).gbps, writes(d).on_public) == (10, True)
    assert d.bottleneck.endswith("while the 20 Gb/s storage bond bond1 carries only replication.")
    assert d.advice is not None and d.advice.endswith("bond1 on every node would hold them at 10 Gb/s.")


def test_fewer_copies_lift_the_lab_write_cap() -> None:
    data = patched(stack_data("lab"), {"ceph.guest_pool.size": 2, "ceph.guest_pool.min_size": 1})
    d = path_of(data)
    assert writes(d).copies == 1 and writes(d).gbps == 10
    assert writes(d, KUBERNETES_VOLUMES).gbps == 5  # its pool still has size 3


def test_an_8023ad_bond_gives_one_flow_one_member() -> None:
    lacp = {"mode": "802.3ad", "members": ["enp1s0", "enp2s0"]}
    d = path_of(patched(stack_data("home"), {f"nodes[{i}].bond": lacp for i in range(3)}))
    link = d.links["pve1"][0]
    assert (link.carrier, link.gbps, link.aggregate_gbps) == ("bond0", 2.5, 5)
    assert "one flow rides one member" in link.how
    assert writes(d).gbps == 2.5


def test_an_8023ad_storage_bond_is_not_counted_on_to_spread_the_copies() -> None:
    lacp = {"mode": "802.3ad", "members": ["ens20", "ens21"]}
    d = path_of(patched(stack_data("lab"), {f"nodes[{i}].storage_bond": lacp for i in range(3)}))
    assert d.links["lab1"][1].aggregate_gbps == 20
    assert writes(d).gbps == 5 and not writes(d).on_public


def test_a_slower_mesh_nic_is_named_from_its_own_node() -> None:
    # pve2's en05 (cabled to pve1) is a 10 Gb/s port; the LAN is fast enough for the mesh to matter.
    data = nic_speeds(stack_data("home"), "en05", 10, nodes=(1,))
    d = path_of(nic_speeds(nic_speeds(data, "enp1s0", 25), "enp2s0", 25))
    repl = d.of(REPLICATION).slowest
    assert repl.gbps == 10 and repl.where() == "the mesh cable pve2 en05 to pve1"
    # The cable runs at its slower end, seen from either node.
    pve1_to_pve2 = next(link for link in d.links["pve1"] if link.peer == "pve2")
    assert pve1_to_pve2.gbps == 10 and not pve1_to_pve2.sets_speed
    assert "pve2's en05 10 Gb/s" in pve1_to_pve2.how
    cap = writes(d)
    assert (cap.gbps, cap.on_public) == (10, False)
    assert d.bottleneck == (
        "VM disk writes are capped at 10 Gb/s by the mesh cable pve2 en05 to pve1: "
        "each copy of a write crosses one cable to its replica."
    )


def test_a_cable_slow_at_both_ends_is_named_once() -> None:
    data = nic_speeds(nic_speeds(stack_data("home"), "en05", 10, nodes=(0, 1)), "enp1s0", 25)
    d = path_of(nic_speeds(data, "enp2s0", 25))
    assert d.of(REPLICATION).slowest.where() == "the mesh cable pve1 en05 to pve2"


def test_replication_counts_only_cables_between_osd_hosts() -> None:
    sizes = {f"ceph.{p}.{k}": v for p in ("guest_pool", "kubernetes_pool") for k, v in (("size", 2), ("min_size", 1))}
    data = patched(stack_data("home"), sizes, delete=["nodes[2].osds"])
    d = path_of(nic_speeds(nic_speeds(data, "en06", 5), "enp1s0", 25))  # en06: every cable to or from pve3
    repl = d.of(REPLICATION)
    assert {(link.node, link.peer) for link in repl.links} == {("pve1", "pve2"), ("pve2", "pve1")}
    assert repl.slowest.gbps == 20
    assert d.of(COROSYNC_STORAGE).slowest.gbps == 5  # corosync still uses every cable


@pytest.mark.parametrize(("stack", "carrier", "cap"), [("home", MESH, 20), ("lab", "bond1", 5)])
def test_without_a_public_vlan_the_storage_network_carries_the_public_network(
    stack: str, carrier: str, cap: float
) -> None:
    d = path_of(one_ceph_network(stack_data(stack)))
    vm = d.of(VM_DISKS)
    assert not d.public_on_lan and d.advice is None
    assert vm.carrier == carrier and "one with the cluster network" in vm.network
    assert writes(d).gbps == cap
    assert KUBERNETES_VOLUMES not in [c.name for c in d.classes]  # no guest reaches Ceph without the VLAN
    assert d.shared["bond0"] == (COROSYNC_LAN, LAN)
    assert d.shared[carrier] == (VM_DISKS, REPLICATION, COROSYNC_STORAGE)
    assert d.bottleneck.startswith(f"VM disk writes are capped at {cap:g} Gb/s")


def test_corosync_on_the_lan_alone() -> None:
    d = path_of(patched(stack_data("home"), {"networks.corosync_links": ["lan"]}))
    assert COROSYNC_STORAGE not in [c.name for c in d.classes]
    assert d.shared[MESH] == (REPLICATION,)


def test_interface_names_are_the_network_components() -> None:
    from plan import datapath as dp

    assert (dp.LAN_BOND, dp.LAN_BRIDGE, dp.STORAGE_BOND) == (network.LAN_BOND, network.LAN_BRIDGE, network.STORAGE_BOND)


def test_reports_render_the_data_path() -> None:
    reports = Reports.of(stack_cluster("home"))
    text = "\n".join(reports.datapath_text())
    assert "Data path" in text and "bond0 carries: VM disk I/O, Kubernetes volumes, corosync link 0, LAN" in text
    assert "Bottleneck: VM disk writes are capped at 2.5 Gb/s by bond0" in text and "Advice:" in text
    md = reports.markdown("home", 1, [])
    assert "### Data path" in md and "**Bottleneck:** VM disk writes are capped at 2.5 Gb/s" in md
    doc = json.loads(json.dumps(reports.datapath_json()))
    assert doc["classes"][0]["write_gbps"] == 2.5 and doc["shared"]["mesh"] == [REPLICATION, COROSYNC_STORAGE]
    assert [link["link"] for link in doc["nodes"]["pve1"]] == ["bond0", "en05 to pve2", "en06 to pve3"]


def test_lab_preview_prints_and_writes_the_data_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--stack", "lab", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Bottleneck: VM disk writes are capped at 5 Gb/s by bond1 on every node" in out
    doc = json.loads((tmp_path / "lab.json").read_text())
    assert doc["datapath"]["public_on_lan"] is True
    assert doc["datapath"]["shared"]["bond1"] == [REPLICATION, COROSYNC_STORAGE]
    assert "### Data path" in (tmp_path / "lab.md").read_text()
