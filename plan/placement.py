"""Which node each guest runs on.

A preferred node wins when it has room; otherwise the guest goes to the node with the most free
memory. Memory is never overcommitted (Proxmox HA cannot restart a guest on a full node) and two
guests of one anti-affinity group never share a node (three k3s servers on three hosts).
Nodes in maintenance get nothing, so setting `maintenance: true` drains a node.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from spec.models import Cluster, Guest, Node

# Memory a node keeps for itself: Proxmox, corosync and the Ceph monitor/manager, plus one
# osd_memory_target per OSD (the Ceph layer sets that target to the same figure).
HOST_RESERVED_MIB = 2048
OSD_MEMORY_MIB = 2048


class PlacementError(ValueError):
    """No node can take a guest; the message names the guest and the reason."""


def usable_memory_mib(node: Node) -> int:
    return node.hardware.memory_gib * 1024 - HOST_RESERVED_MIB - OSD_MEMORY_MIB * len(node.osds)


@dataclass
class NodeLoad:
    """What is placed on one node so far."""

    node: Node
    free_mib: int
    guests: list[str] = field(default_factory=list)
    groups: set[str] = field(default_factory=set)

    def fits(self, guest: Guest) -> bool:
        return guest.memory_mib <= self.free_mib and (
            guest.anti_affinity is None or guest.anti_affinity not in self.groups
        )

    def add(self, guest: Guest) -> None:
        self.free_mib -= guest.memory_mib
        self.guests.append(guest.name)
        if guest.anti_affinity is not None:
            self.groups.add(guest.anti_affinity)


def empty_loads(cluster: Cluster, exclude: str | None = None) -> dict[str, NodeLoad]:
    return {n.name: NodeLoad(n, usable_memory_mib(n)) for n in cluster.nodes if not n.maintenance and n.name != exclude}


def choose(guest: Guest, loads: dict[str, NodeLoad]) -> NodeLoad | None:
    """The node for one guest given the current loads, or None when none fits."""
    if guest.node is not None and guest.node in loads and loads[guest.node].fits(guest):
        return loads[guest.node]
    candidates = [load for load in loads.values() if load.fits(guest)]
    if not candidates:
        return None
    return min(candidates, key=lambda ld: (-ld.free_mib, len(ld.guests), ld.node.name))


def placement_order(guests: list[Guest]) -> list[Guest]:
    """Pinned guests first (they must get their node), then biggest first (first-fit decreasing)."""
    return sorted(guests, key=lambda g: (g.node is None, -g.memory_mib, g.name))


def place(cluster: Cluster) -> dict[str, str]:
    """Guest name -> node name for every guest, or PlacementError."""
    return plan_guests(cluster)[0]


def parked(cluster: Cluster) -> set[str]:
    """Guests left stopped on a node in maintenance.

    A guest whose anti-affinity group already has a member on every other available node has
    nowhere to go while its node is drained (a k3s server in a three-node cluster): it stays on
    that node, stopped, as Proxmox HA itself would keep it. Its peers keep quorum meanwhile.
    """
    return plan_guests(cluster)[1]


def plan_guests(cluster: Cluster) -> tuple[dict[str, str], set[str]]:
    """Both answers of one placement: guest -> node, and the guests parked (see `parked`)."""
    loads = empty_loads(cluster)
    if not loads:
        raise PlacementError("nodes: every node is in maintenance; nothing can run")
    result: dict[str, str] = {}
    stopped: set[str] = set()
    to_place = placement_order(cluster.guests)
    baseline: dict[str, str] = {}
    if any(n.maintenance for n in cluster.nodes):
        # Draining moves only what runs on the drained nodes; everything else stays put.
        baseline = plan_guests(_without_maintenance(cluster))[0]
        for guest in to_place:
            if baseline[guest.name] in loads:
                loads[baseline[guest.name]].add(guest)
                result[guest.name] = baseline[guest.name]
        to_place = [g for g in to_place if g.name not in result]
    for guest in to_place:
        if guest.node is not None and guest.node not in loads and not guest.ha:
            raise PlacementError(
                f"guests ({guest.name}): pinned to {guest.node}, which is in maintenance, and not HA so it cannot move"
            )
        target = choose(guest, loads)
        if target is None and baseline and _kept_apart(guest, loads):
            result[guest.name] = baseline[guest.name]
            stopped.add(guest.name)
        elif target is None:
            raise PlacementError(_why_not(guest, loads))
        else:
            target.add(guest)
            result[guest.name] = target.node.name
    return {g.name: result[g.name] for g in cluster.guests}, stopped


def _without_maintenance(cluster: Cluster) -> Cluster:
    nodes = [n.model_copy(update={"maintenance": False}) for n in cluster.nodes]
    return cluster.model_copy(update={"nodes": nodes})


def _kept_apart(guest: Guest, loads: dict[str, NodeLoad]) -> bool:
    return guest.anti_affinity is not None and all(guest.anti_affinity in ld.groups for ld in loads.values())


def _why_not(guest: Guest, loads: dict[str, NodeLoad]) -> str:
    best = max(ld.free_mib for ld in loads.values())
    if _kept_apart(guest, loads):
        return (
            f"guests ({guest.name}): anti_affinity group {guest.anti_affinity} already has a guest on every "
            f"available node ({len(loads)})"
        )
    if all(guest.cores > ld.node.hardware.cores for ld in loads.values()):
        return f"guests ({guest.name}): {guest.cores} vCPUs, more than any available node has"
    return f"guests ({guest.name}): needs {guest.memory_mib} MiB but the most free memory on any node is {best} MiB"
