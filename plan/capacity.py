"""What a node has room for: the one rule placement and failover both place guests by.

A guest fits on a node when its memory fits in what the node has left for guests (after the host
and its OSDs), its vCPUs are no more than the node's cores (Proxmox refuses to start it
otherwise), its expected busy cores fit in the node's spare cores, and no guest of its
anti-affinity group is there already. Among the nodes it fits on, the one with the most free
memory wins, then the one with fewest guests, then the name, so the result never depends on
the order of the spec.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from spec.nodes import Node

# Memory a node keeps for itself: Proxmox, corosync and the Ceph monitor/manager, plus one
# osd_memory_target per OSD (the Ceph layer sets that target to the same figure).
HOST_RESERVED_MIB = 2048
OSD_MEMORY_MIB = 2048
# Busy cores are sums of fractions: compare with a little slack.
EPSILON = 1e-9


class Busy(Protocol):
    """What keeps a node's cores busy: vCPUs, and the share of them the guest is expected to use."""

    @property
    def cores(self) -> int: ...

    @property
    def load(self) -> float: ...


class Sized(Busy, Protocol):
    """What placement needs of a guest (a spec Guest or a running one)."""

    @property
    def name(self) -> str: ...

    @property
    def memory_mib(self) -> int: ...

    @property
    def anti_affinity(self) -> str | None: ...


def usable_memory_mib(node: Node) -> int:
    return node.hardware.memory_gib * 1024 - HOST_RESERVED_MIB - OSD_MEMORY_MIB * len(node.osds)


def busy_cores(guest: Busy) -> float:
    return guest.cores * guest.load


@dataclass
class Room:
    """What one node has left: free memory, spare cores, the anti-affinity groups on it."""

    node: Node
    free_mib: int
    spare_cores: float
    guests: list[str] = field(default_factory=list)
    groups: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, node: Node, guests: Iterable[Sized] = ()) -> Room:
        """The node with `guests` on it (none: an empty node)."""
        room = cls(node, usable_memory_mib(node), float(node.hardware.cores))
        for guest in guests:
            room.add(guest)
        return room

    def copy(self) -> Room:
        return Room(self.node, self.free_mib, self.spare_cores, list(self.guests), set(self.groups))

    @property
    def name(self) -> str:
        return self.node.name

    def apart(self, guest: Sized) -> bool:
        """Whether its anti-affinity group keeps the guest off this node."""
        return guest.anti_affinity is not None and guest.anti_affinity in self.groups

    def fits(self, guest: Sized) -> bool:
        return (
            guest.memory_mib <= self.free_mib
            and guest.cores <= self.node.hardware.cores
            and busy_cores(guest) <= self.spare_cores + EPSILON
            and not self.apart(guest)
        )

    def add(self, guest: Sized) -> None:
        self.free_mib -= guest.memory_mib
        self.spare_cores -= busy_cores(guest)
        self.guests.append(guest.name)
        if guest.anti_affinity is not None:
            self.groups.add(guest.anti_affinity)


def choose(guest: Sized, rooms: Mapping[str, Room], preferred: str | None = None) -> Room | None:
    """The node for `guest`: `preferred` when it fits there, else the roomiest that fits; None if none."""
    if preferred is not None and preferred in rooms and rooms[preferred].fits(guest):
        return rooms[preferred]
    fitting = [room for room in rooms.values() if room.fits(guest)]
    return min(fitting, key=lambda r: (-r.free_mib, len(r.guests), r.name), default=None)


def kept_apart(guest: Sized, rooms: Mapping[str, Room]) -> bool:
    """Its anti-affinity group already has a member on every node: it stays off them by design."""
    return bool(rooms) and all(room.apart(guest) for room in rooms.values())


def why_not(guest: Sized, rooms: Mapping[str, Room]) -> str:
    """Why `choose` found no node for the guest, in the owner's terms."""
    if not rooms:
        return "every other node is down or in maintenance"
    if kept_apart(guest, rooms):
        return f"anti_affinity group {guest.anti_affinity} already has a guest on every available node ({len(rooms)})"
    open_ = [r for r in rooms.values() if not r.apart(guest)]
    roomy = [r for r in open_ if guest.memory_mib <= r.free_mib]
    if not roomy:
        most = max(open_, key=lambda r: r.free_mib)
        return (
            f"short of {guest.memory_mib - most.free_mib} MiB of memory "
            f"(the most free is {most.free_mib} MiB, on {most.name})"
        )
    big = [r for r in roomy if guest.cores <= r.node.hardware.cores]
    if not big:
        most_cores = max(r.node.hardware.cores for r in roomy)
        return f"it has {guest.cores} vCPUs but the nodes with room for its memory have at most {most_cores} cores"
    spare = max(0.0, *(r.spare_cores for r in big))
    return (
        f"short of {busy_cores(guest) - spare:.1f} busy cores of CPU (it needs {busy_cores(guest):.1f}; "
        f"the nodes with room for it have at most {spare:.1f} to spare)"
    )
