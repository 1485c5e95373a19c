"""Which node each guest runs on, computed once per spec.

A preferred node wins when the guest fits there; otherwise the guest goes where the one capacity
rule (`plan.capacity`) finds the most room. Memory is never overcommitted (Proxmox HA cannot
restart a guest on a full node), nor the cores a node's guests are expected to keep busy, and two
guests of one anti-affinity group never share a node (three k3s servers on three hosts). Nodes
in maintenance get nothing, so setting `maintenance: true` drains a node.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from plan.capacity import Room, choose, kept_apart, why_not
from spec.guests import Guest
from spec.models import Cluster


class PlacementError(ValueError):
    """No node can take a guest; the message names the guest and the reason."""


@dataclass(frozen=True)
class Placement:
    """Where every guest of the spec runs, and which are parked: left stopped on a node in
    maintenance because their anti-affinity group already has a member on every other node (a
    k3s server in a three-node cluster). Proxmox HA itself would keep such a guest there; its peers
    keep quorum meanwhile."""

    where: Mapping[str, str]
    parked: frozenset[str]


def rooms_of(cluster: Cluster) -> dict[str, Room]:
    """Every node that takes guests (not in maintenance), empty."""
    return {n.name: Room.of(n) for n in cluster.nodes if not n.maintenance}


def placement_order(guests: list[Guest]) -> list[Guest]:
    """Pinned guests first (they must get their node), then biggest first (first-fit decreasing)."""
    return sorted(guests, key=lambda g: (g.node is None, -g.memory_mib, g.name))


# The plan of the spec asked for last: the program, its reports and the policy pack each ask for
# the plan of the spec they hold, and get the one computed for it. The entry holds the spec
# itself, so its id cannot be reused while it is cached; a spec is frozen once validated.
_LAST: list[tuple[Cluster, Placement | PlacementError]] = []


def plan_guests(cluster: Cluster) -> Placement:
    """The placement of `cluster`'s guests, or PlacementError naming the guest that does not fit."""
    if _LAST and _LAST[0][0] is cluster:
        result = _LAST[0][1]
    else:
        try:
            result = _plan(cluster)
        except PlacementError as exc:
            result = exc
        _LAST[:] = [(cluster, result)]
    if isinstance(result, PlacementError):
        raise result
    return result


def _plan(cluster: Cluster) -> Placement:
    rooms = rooms_of(cluster)
    if not rooms:
        raise PlacementError("nodes: every node is in maintenance; nothing can run")
    result: dict[str, str] = {}
    stopped: set[str] = set()
    to_place = placement_order(cluster.guests)
    baseline: Mapping[str, str] = {}
    if any(n.maintenance for n in cluster.nodes):
        # Draining moves only what runs on the drained nodes; everything else stays put.
        baseline = _plan(_without_maintenance(cluster)).where
        for guest in to_place:
            if baseline[guest.name] in rooms:
                rooms[baseline[guest.name]].add(guest)
                result[guest.name] = baseline[guest.name]
        to_place = [g for g in to_place if g.name not in result]
    for guest in to_place:
        if guest.node is not None and guest.node not in rooms and not guest.ha:
            raise PlacementError(
                f"guests[{guest.name}].node: pinned to {guest.node}, which is in maintenance, and not HA so it "
                "cannot move"
            )
        target = choose(guest, rooms, guest.node)
        if target is None and baseline and kept_apart(guest, rooms):
            result[guest.name] = baseline[guest.name]
            stopped.add(guest.name)
        elif target is None:
            raise PlacementError(f"guests[{guest.name}]: no node can take it: {why_not(guest, rooms)}")
        else:
            target.add(guest)
            result[guest.name] = target.name
    return Placement(MappingProxyType({g.name: result[g.name] for g in cluster.guests}), frozenset(stopped))


def _without_maintenance(cluster: Cluster) -> Cluster:
    nodes = [n.model_copy(update={"maintenance": False}) for n in cluster.nodes]
    return cluster.model_copy(update={"nodes": nodes})
