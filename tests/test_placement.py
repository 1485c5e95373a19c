"""Placement, pure: capacity, preferences, anti-affinity and draining, without Pulumi."""

from __future__ import annotations

import pytest

from plan.capacity import HOST_RESERVED_MIB, OSD_MEMORY_MIB, usable_memory_mib
from plan.placement import PlacementError, plan_guests
from spec import parse_cluster
from tests.support import patched, stack_cluster, stack_data


def test_home_servers_land_on_three_hosts() -> None:
    cluster = stack_cluster("home")
    placement = plan_guests(cluster).where
    servers = {placement[name] for name in cluster.k3s.servers} if cluster.k3s else set()
    assert servers == {"pve1", "pve2", "pve3"}


def test_preferred_node_is_honoured() -> None:
    placement = plan_guests(stack_cluster("home")).where
    assert placement["backup"] == "pve3"


def test_guests_without_preference_spread_by_free_memory() -> None:
    data = stack_data("home")
    data["guests"] = [
        {"name": f"vm{i}", "vm_id": 100 + i, "memory_mib": 1024, "disks": [{"size_gib": 8}], "image": "debian-13"}
        for i in range(6)
    ]
    data.pop("k3s")
    data.pop("workloads")
    data.pop("gateway")
    data.pop("backups")
    placement = plan_guests(parse_cluster(data)).where
    per_node = sorted(list(placement.values()).count(n) for n in ("pve1", "pve2", "pve3"))
    assert per_node == [2, 2, 2]


def test_memory_is_never_overcommitted() -> None:
    cluster = stack_cluster("home")
    placement = plan_guests(cluster).where
    for node in cluster.nodes:
        used = sum(g.memory_mib for g in cluster.guests if placement[g.name] == node.name)
        assert used <= usable_memory_mib(node)
    assert usable_memory_mib(cluster.nodes[0]) == 32 * 1024 - HOST_RESERVED_MIB - OSD_MEMORY_MIB


def test_full_preferred_node_falls_back_to_another() -> None:
    data = patched(
        stack_data("home"),
        {
            "guests[3].node": "pve1",
            "guests[4].node": "pve1",
            "guests[3].memory_mib": 16384,
            "guests[4].memory_mib": 16384,
        },
    )
    placement = plan_guests(parse_cluster(data)).where
    assert placement["k3s-agent-1"] == "pve1"
    assert placement["k3s-agent-2"] != "pve1"


def test_too_big_for_what_is_left() -> None:
    data = stack_data("home")
    for i in range(3, 5):
        data["guests"][i]["memory_mib"] = 28000
        data["guests"][i]["balloon_min_mib"] = 0
        data["guests"][i]["anti_affinity"] = None
    data["guests"].append(
        {"name": "big", "vm_id": 400, "memory_mib": 28000, "disks": [{"size_gib": 8}], "image": "debian-13"}
    )
    with pytest.raises(
        PlacementError,
        match=r"guests\[big\]: no node can take it: short of \d+ MiB of memory \(the most free is \d+ MiB, on pve\d\)",
    ):
        plan_guests(parse_cluster(data))


def test_maintenance_drains_ha_guests() -> None:
    cluster = parse_cluster(patched(stack_data("home"), {"nodes[0].maintenance": True}))
    before = plan_guests(stack_cluster("home")).where
    placement = plan_guests(cluster).where
    # Three servers cannot stay apart on two nodes: the drained node's server stays there, stopped.
    server_on_pve1 = next(s for s in ("k3s-server-1", "k3s-server-2", "k3s-server-3") if before[s] == "pve1")
    assert plan_guests(cluster).parked == {server_on_pve1}
    assert placement[server_on_pve1] == "pve1"
    assert {n for g, n in placement.items() if g != server_on_pve1} <= {"pve2", "pve3"}
    assert placement["k3s-agent-1"] != "pve1"
    assert plan_guests(stack_cluster("home")).parked == set()


def test_maintenance_refuses_a_pinned_guest_that_cannot_move() -> None:
    data = patched(stack_data("home"), {"nodes[2].maintenance": True})
    with pytest.raises(PlacementError, match=r"guests\[backup\]\.node: pinned to pve3, which is in maintenance"):
        plan_guests(parse_cluster(data))


def test_placement_does_not_depend_on_the_order_guests_are_listed() -> None:
    cluster = stack_cluster("home")
    reordered = cluster.model_copy(update={"guests": list(reversed(cluster.guests))})
    assert plan_guests(reordered).where == plan_guests(cluster).where


def test_a_spec_is_planned_once_and_a_changed_copy_anew() -> None:
    cluster = stack_cluster("home")
    first = plan_guests(cluster)
    assert plan_guests(cluster) is first
    drained = cluster.model_copy(
        update={"nodes": [n.model_copy(update={"maintenance": n.name == "pve1"}) for n in cluster.nodes]}
    )
    assert plan_guests(drained) is not first and "pve1" not in set(plan_guests(drained).where.values()) - {
        plan_guests(drained).where[g] for g in plan_guests(drained).parked
    }
    # An impossible spec raises each time it is asked, not only the first.
    crowded = cluster.model_copy(update={"nodes": cluster.nodes[:1]})
    for _ in range(2):
        with pytest.raises(PlacementError):
            plan_guests(crowded)
