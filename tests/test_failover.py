"""The node-loss model on its own: pure spec in, one result per failed node out."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from plan.capacity import usable_memory_mib
from plan.failover import NodeFailure, PoolSize, Running, running_from_spec, simulate
from plan.placement import plan_guests
from spec import Cluster, parse_cluster
from tests.support import STACKS, patched, stack_cluster, stack_data, validate


def failures(cluster: Cluster, running: list[Running] | None = None, **kw: Any) -> dict[str, NodeFailure]:
    if running is None:
        running = running_from_spec(cluster, plan_guests(cluster).where)
    return {f.node: f for f in simulate(cluster, running, **kw)}


@pytest.mark.parametrize("stack", STACKS)
def test_shipped_stacks_survive_any_node(stack: str) -> None:
    cluster = stack_cluster(stack)
    result = failures(cluster)
    assert set(result) == {n.name for n in cluster.nodes}
    for failure in result.values():
        assert failure.survives, failure.problems()
        assert failure.ceph_writable and failure.corosync_quorum and failure.etcd_quorum
        assert failure.draw.within_budget


def test_home_moves_agents_and_leaves_the_lost_server_down_by_design() -> None:
    cluster = stack_cluster("home")
    placement = plan_guests(cluster).where
    result = failures(cluster)
    for node, failure in result.items():
        lost = {g for g, n in placement.items() if n == node}
        servers = {g for g in lost if g.startswith("k3s-server")}
        # Each node holds one server; the other two nodes already hold one each: it stays down.
        assert set(failure.down_by_design) == servers and len(servers) == 1
        assert not failure.shortfalls
        assert set(failure.moved) == {g for g in lost if g.startswith("k3s-agent")}
        assert all(target != node for target in failure.moved.values())
        assert failure.etcd is not None and (failure.etcd.remaining, failure.etcd.total) == (2, 3)
        assert (failure.corosync.remaining, failure.corosync.total) == (2, 3)
    assert result["pve3"].down_not_ha == ["backup"]
    assert "stays down by anti-affinity" in result["pve3"].describe()


def test_memory_shortfall_names_node_guest_and_missing_memory() -> None:
    cluster = stack_cluster("home")
    running = running_from_spec(cluster, plan_guests(cluster).where)
    big = next(g for g in running if g.name == "k3s-agent-1")
    running = [replace(g, memory_mib=26000) if g is big else g for g in running]
    result = failures(cluster, running)
    failure = result[big.node]
    assert [s.guest for s in failure.shortfalls] == ["k3s-agent-1"]
    (problem,) = failure.shortfall_problems()
    assert f"if {big.node} fails, HA guest k3s-agent-1 (26000 MiB, 4 vCPUs) cannot restart" in problem
    assert "short of" in problem and "MiB of memory" in problem
    assert not failure.survives


def test_cpu_rules_vcpus_per_node_and_busy_cores() -> None:
    cluster = stack_cluster("lab")  # three nodes with 4 cores each
    hog = Running("hog", "lab1", 1024, 4, load=0.9, ha=True)
    busy = [Running(f"busy-{n}", n, 1024, 4, load=0.9) for n in ("lab2", "lab3")]
    result = failures(cluster, [hog, *busy])
    (short,) = result["lab1"].shortfalls
    assert short.guest == "hog" and "busy cores of CPU" in short.reason
    # A guest with more vCPUs than any survivor has cores cannot start there at all.
    wide_cluster = cluster.model_copy(
        update={
            "nodes": [
                cluster.nodes[0].model_copy(
                    update={"hardware": cluster.nodes[0].hardware.model_copy(update={"cores": 16})}
                ),
                *cluster.nodes[1:],
            ]
        }
    )
    wide = Running("wide", "lab1", 1024, 8, load=0.1, ha=True)
    (short,) = failures(wide_cluster, [wide])["lab1"].shortfalls
    assert "8 vCPUs" in short.reason and "at most 4 cores" in short.reason


def test_guest_fits_where_memory_and_group_allow() -> None:
    cluster = stack_cluster("lab")
    running = [
        Running("a", "lab1", 2048, 1, ha=True, anti_affinity="g"),
        Running("b", "lab2", 1024, 1, ha=True, anti_affinity="g"),
        Running("filler", "lab3", usable_memory_mib(cluster.node("lab3")) - 1024, 1),
    ]
    result = failures(cluster, running)
    # lab2 has the room but holds group g; lab3 is free of g but full: a real shortfall, not by design.
    (short,) = result["lab1"].shortfalls
    assert short.guest == "a" and "MiB of memory" in short.reason
    assert result["lab2"].moved == {"b": "lab3"}


def test_power_budget_after_failover() -> None:
    data = stack_data("lab")
    frugal = {**data["nodes"][0]["hardware"], "idle_watts": 3, "max_watts": 4}
    hungry = {**data["nodes"][0]["hardware"], "idle_watts": 3, "max_watts": 90}
    data = patched(
        data,
        {
            "power.budget_watts": 40,
            "nodes[0].hardware": frugal,
            "nodes[1].hardware": hungry,
            "nodes[2].hardware": hungry,
        },
    )
    cluster = validate(data)
    running = [Running("cruncher", "lab1", 2048, 4, load=1.0, ha=True)]
    result = failures(cluster, running)
    assert result["lab2"].draw.within_budget
    failure = result["lab1"]
    assert failure.moved["cruncher"] in ("lab2", "lab3")
    assert not failure.draw.within_budget
    (problem,) = failure.cluster_problems()
    assert problem.startswith("if lab1 fails, the remaining nodes would draw 93.0 W, over the budget of 40 W")


def test_ceph_writability_follows_min_size() -> None:
    cluster = stack_cluster("lab")
    result = failures(cluster, [], pools=[PoolSize("tight", 3, 3), PoolSize("ok", 3, 2)])
    for failure in result.values():
        assert [(p.pool, p.osd_hosts, p.writable) for p in failure.pools] == [("tight", 2, False), ("ok", 2, True)]
        assert not failure.ceph_writable
        assert any("Ceph pool tight has copies on only 2 host(s)" in p for p in failure.problems())
    # Default: the spec's pools (size 3, min_size 2) stay writable with one host gone.
    assert all(f.ceph_writable for f in failures(cluster, []).values())


def test_corosync_votes_count_the_quorum_device() -> None:
    data = stack_data("lab")
    fourth = patched(
        data["nodes"][2],
        {
            "name": "lab4",
            "address": "192.168.100.14",
            "storage_address": "192.168.111.14",
            "public_address": "192.168.110.14",
        },
    )
    data["nodes"].append(fourth)
    four = validate(data)
    assert all(f.corosync.total == 4 and f.corosync_quorum for f in failures(four, []).values())
    with_qdevice = validate(patched(data, {"quorum_device": {"host": "pi", "address": "192.168.100.5"}}))
    assert {(f.corosync.remaining, f.corosync.total) for f in failures(with_qdevice, []).values()} == {(4, 5)}
    # Two nodes and no quorum device (the spec refuses it; the model still says why).
    two = four.model_copy(update={"nodes": four.nodes[:2], "quorum_device": None})
    lost = failures(two, [])
    assert not any(f.corosync_quorum for f in lost.values())
    assert any("corosync keeps 1 of 2 votes, no majority" in p for p in lost["lab1"].problems())


def test_etcd_quorum_when_two_servers_share_a_node() -> None:
    cluster = stack_cluster("lab")
    running = [
        Running("k3s-1", "lab1", 3072, 2, ha=True),
        Running("k3s-2", "lab1", 3072, 2, ha=True),
        Running("k3s-3", "lab2", 3072, 2, ha=True),
    ]
    result = failures(cluster, running)
    assert result["lab1"].etcd is not None and not result["lab1"].etcd_quorum
    assert "only 1 of 3 k3s servers stay up" in " ".join(result["lab1"].problems())
    assert result["lab2"].etcd_quorum and result["lab3"].etcd_quorum
    # No server declared at all: etcd is not judged.
    assert all(f.etcd is None for f in failures(cluster, []).values())


def test_maintenance_node_takes_no_failover_guests() -> None:
    # (The spec's own guests would not fit on two nodes; only the model is under test here.)
    cluster = parse_cluster(patched(stack_data("lab"), {"nodes[2].maintenance": True}))
    running = [Running("app", "lab1", 1024, 1, ha=True)]
    assert failures(cluster, running)["lab1"].moved == {"app": "lab2"}


def test_a_node_in_maintenance_has_no_vote_to_count_on() -> None:
    # lab: three nodes, no qdevice. lab3 drained (it may be rebooting): losing lab1 leaves one
    # vote of three, losing lab3 itself leaves two.
    cluster = parse_cluster(patched(stack_data("lab"), {"nodes[2].maintenance": True}))
    result = failures(cluster, [])
    assert (result["lab1"].corosync.remaining, result["lab1"].corosync.total) == (1, 3)
    assert not result["lab1"].corosync_quorum
    assert (result["lab3"].corosync.remaining, result["lab3"].corosync.total) == (2, 3)
    assert "corosync keeps 1 of 3 votes, no majority" in " ".join(result["lab1"].problems())


def test_every_guest_of_a_large_cluster_is_moved_once() -> None:
    # How long this takes is measured by `make bench`, not asserted here.
    data = stack_data("lab")
    hardware = {**data["nodes"][0]["hardware"], "memory_gib": 256, "cores": 64}
    base = data["nodes"][0]
    nodes = [
        patched(
            base,
            {
                "name": f"n{i}",
                "address": f"192.168.{100 + i // 200}.{10 + i % 200}",
                "storage_address": f"192.168.110.{10 + i}",
                "hardware": hardware,
            },
        )
        for i in range(40)
    ]
    cluster = stack_cluster("lab").model_copy(
        update={"nodes": [stack_cluster("lab").nodes[0].model_validate(n) for n in nodes]}
    )
    running = [Running(f"g{j}", f"n{j % 40}", 1024, 1, load=0.05, ha=True) for j in range(2000)]
    result = simulate(cluster, running)
    assert len(result) == 40 and all(not f.shortfalls for f in result)
    assert sum(len(f.moved) for f in result) == 2000


def test_with_every_other_node_drained_an_ha_guest_has_nowhere_to_go() -> None:
    data = patched(stack_data("lab"), {"nodes[1].maintenance": True, "nodes[2].maintenance": True})
    cluster = parse_cluster(data)
    (short,) = failures(cluster, [Running("app", "lab1", 1024, 1, ha=True)])["lab1"].shortfalls
    assert short.reason == "every other node is down or in maintenance"


def test_a_node_in_maintenance_holds_no_copies_to_count_on() -> None:
    # lab3 drained: its OSDs may be rebooting with it. Losing lab1 then leaves copies on lab2
    # only, below min_size 2, exactly as it leaves one corosync vote of three.
    cluster = parse_cluster(patched(stack_data("lab"), {"nodes[2].maintenance": True}))
    result = failures(cluster, [])
    assert [(p.pool, p.osd_hosts, p.writable) for p in result["lab1"].pools] == [
        ("vm-disks", 1, False),
        ("k8s-volumes", 1, False),
    ]
    assert not result["lab1"].ceph_writable and "Ceph NOT writable" in result["lab1"].describe()
    # Losing the drained node itself takes no copy that was counted.
    assert [p.osd_hosts for p in result["lab3"].pools] == [2, 2] and result["lab3"].ceph_writable


def test_pve8_ha_groups_restart_a_server_next_to_another() -> None:
    # PVE 9 keeps the k3s servers apart (resource-affinity rules): a lost server stays down.
    # PVE 8's HA groups only rank nodes: HA restarts it beside another server, and the report says so.
    for version, kept_apart in ((9, True), (8, False)):
        cluster = parse_cluster(patched(stack_data("lab"), {"proxmox.version": version}))
        result = failures(cluster, running_from_spec(cluster, plan_guests(cluster).where))
        lost = next(f for f in result.values() if any(g.startswith("k3s-") for g in [*f.down_by_design, *f.moved]))
        server = next(g for g in [*lost.down_by_design, *lost.moved] if g.startswith("k3s-"))
        if kept_apart:
            assert server in lost.down_by_design and lost.beside == {}
        else:
            assert server in lost.moved and lost.beside[server].startswith("k3s-")
            assert f"PVE 8 HA cannot keep apart: {server} next to {lost.beside[server]} on {lost.moved[server]}" in (
                lost.describe()
            )
