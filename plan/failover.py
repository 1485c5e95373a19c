"""What the loss of each node does: where its HA guests restart, and what keeps working.

For every node in turn the model takes it away and re-places only the HA guests that ran on it,
on the other nodes that are not in maintenance, by the one capacity rule placement uses too
(`plan.capacity`: memory, vCPUs, busy cores, anti-affinity, most free memory first).
It then reports the draw of the remaining nodes against the power budget, and whether Ceph stays
writable, corosync keeps quorum and etcd (the k3s servers) keeps quorum.

A guest whose anti-affinity group already has a member on every remaining node stays down by
design (the third k3s server while one node is gone: etcd runs on two of three). That is
reported, never counted as a shortfall. Guests that are not HA stay down until their node
returns; they are listed too.

Cost: each node's base load and draw are computed once; a failure copies the survivors' rooms
and re-places only the failed node's HA guests.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

from plan.capacity import Room, choose, kept_apart, why_not
from plan.power import ClusterDraw, NodeDraw, node_draw
from spec.models import Cluster


@dataclass(frozen=True)
class Running:
    """One guest as deployed: the node it runs on and what it takes there."""

    name: str
    node: str
    memory_mib: int
    cores: int
    load: float = 0.1
    ha: bool = False
    anti_affinity: str | None = None


@dataclass(frozen=True)
class PoolSize:
    name: str
    size: int
    min_size: int


@dataclass(frozen=True)
class Shortfall:
    """An HA guest that finds no node to restart on; `reason` says what is missing."""

    guest: str
    memory_mib: int
    cores: int
    reason: str


@dataclass(frozen=True)
class Quorum:
    remaining: int
    total: int

    @property
    def kept(self) -> bool:
        return self.remaining * 2 > self.total


@dataclass(frozen=True)
class PoolAfter:
    """A Ceph pool once a node is gone: writes continue while at least min_size hosts hold a copy."""

    pool: str
    osd_hosts: int
    min_size: int

    @property
    def writable(self) -> bool:
        return self.osd_hosts >= self.min_size


@dataclass(frozen=True)
class NodeFailure:
    node: str
    moved: dict[str, str]  # HA guest -> node it restarts on
    down_by_design: list[str]  # anti-affinity keeps these off every remaining node
    down_not_ha: list[str]  # not HA: down until the node is back
    shortfalls: list[Shortfall]
    draw: ClusterDraw  # of the remaining nodes, after the HA guests moved
    pools: list[PoolAfter]
    corosync: Quorum
    etcd: Quorum | None  # None: no k3s server runs in this cluster
    # Proxmox VE 8 only: HA guests restarted next to a member of their anti-affinity group, which
    # its HA groups cannot prevent (guest -> the member it now shares a node with).
    beside: dict[str, str] = field(default_factory=dict)

    @property
    def ceph_writable(self) -> bool:
        return all(p.writable for p in self.pools)

    @property
    def corosync_quorum(self) -> bool:
        return self.corosync.kept

    @property
    def etcd_quorum(self) -> bool | None:
        return None if self.etcd is None else self.etcd.kept

    @property
    def survives(self) -> bool:
        return not self.problems()

    def problems(self) -> list[str]:
        """One sentence per way the cluster does not survive this node's loss."""
        return [*self.shortfall_problems(), *self.cluster_problems()]

    def shortfall_problems(self) -> list[str]:
        """One sentence per HA guest that cannot restart (in the order of `shortfalls`)."""
        return [
            f"if {self.node} fails, HA guest {s.guest} ({s.memory_mib} MiB, {s.cores} vCPUs) cannot restart "
            f"anywhere: {s.reason}"
            for s in self.shortfalls
        ]

    def cluster_problems(self) -> list[str]:
        """Power, Ceph, corosync and etcd after the loss."""
        lost = f"if {self.node} fails"
        out = []
        if not self.draw.within_budget:
            out.append(
                f"{lost}, the remaining nodes would draw {self.draw.watts:.1f} W, over the budget of "
                f"{self.draw.budget_watts:.0f} W ({_per_node(self.draw.nodes)})"
            )
        out += [
            f"{lost}, Ceph pool {p.pool} has copies on only {p.osd_hosts} host(s), below its min_size "
            f"{p.min_size}: writes to it stop, so VMs and volumes on it hang"
            for p in self.pools
            if not p.writable
        ]
        if not self.corosync.kept:
            out.append(
                f"{lost}, corosync keeps {self.corosync.remaining} of {self.corosync.total} votes, no majority: "
                "the Proxmox cluster loses quorum and HA stops (add a node or a quorum_device)"
            )
        if self.etcd is not None and not self.etcd.kept:
            out.append(
                f"{lost}, only {self.etcd.remaining} of {self.etcd.total} k3s servers stay up, no majority: "
                "etcd loses quorum and the Kubernetes API stops (spread the servers over different nodes)"
            )
        return out

    def describe(self) -> str:
        parts = [f"{self.node} down: {self.draw.watts:.1f} W"]
        if self.moved:
            parts.append("restarts " + ", ".join(f"{g} on {n}" for g, n in self.moved.items()))
        if self.down_by_design:
            parts.append("stays down by anti-affinity: " + ", ".join(self.down_by_design))
        if self.down_not_ha:
            parts.append("down until it returns (not HA): " + ", ".join(self.down_not_ha))
        if self.beside:
            parts.append(
                "PVE 8 HA cannot keep apart: "
                + ", ".join(f"{g} next to {other} on {self.moved[g]}" for g, other in self.beside.items())
            )
        parts.append(f"Ceph {'writable' if self.ceph_writable else 'NOT writable'}")
        parts.append(f"corosync {self.corosync.remaining}/{self.corosync.total} votes")
        if self.etcd is not None:
            parts.append(f"etcd {self.etcd.remaining}/{self.etcd.total} servers")
        return "; ".join(parts)


def _copies_left(pool: PoolSize, osd_hosts: set[str], failed: str) -> int:
    """Copies of the placement groups that had one on the failed host: one per host, at most `size`."""
    copies = min(pool.size, len(osd_hosts))
    return copies - 1 if failed in osd_hosts else copies


def _per_node(draws: Iterable[NodeDraw]) -> str:
    return ", ".join(f"{d.node} {d.watts:.1f} W" for d in draws)


def running_from_spec(
    cluster: Cluster, placement: Mapping[str, str], stopped: AbstractSet[str] = frozenset()
) -> list[Running]:
    """The spec's guests where `placement` (guest -> node, e.g. `plan.placement.plan_guests`) puts them,
    less those `stopped` (parked on a drained node: they neither draw power nor fail over)."""
    return [
        Running(g.name, placement[g.name], g.memory_mib, g.cores, g.load, g.ha, g.anti_affinity)
        for g in cluster.guests
        if g.name in placement and g.name not in stopped
    ]


def spec_pools(cluster: Cluster) -> list[PoolSize]:
    return [PoolSize(p.name, p.size, p.min_size) for p in (cluster.ceph.guest_pool, cluster.ceph.kubernetes_pool)]


def simulate(
    cluster: Cluster, running: Sequence[Running], pools: Sequence[PoolSize] | None = None
) -> list[NodeFailure]:
    """The loss of each node in turn, given where every guest runs now.

    `running` is the deployed placement (guests on nodes the spec does not know are ignored);
    `pools` the Ceph pools as declared (default: the spec's two pools).
    """
    nodes = {n.name: n for n in cluster.nodes}
    on_node: dict[str, list[Running]] = {name: [] for name in nodes}
    for guest in running:
        if guest.node in on_node:
            on_node[guest.node].append(guest)
    base = {name: Room.of(nodes[name], guests) for name, guests in on_node.items()}
    base_draw = {name: node_draw(nodes[name], guests) for name, guests in on_node.items()}
    pool_sizes = list(pools) if pools is not None else spec_pools(cluster)
    # A node in maintenance may be rebooting: count its OSDs and its vote as gone for the worst
    # case, alike for Ceph and for corosync.
    osd_hosts = {n.name for n in cluster.nodes if n.osds and not n.maintenance}
    votes = len(cluster.nodes) + (1 if cluster.quorum_device is not None else 0)
    away = sum(n.maintenance for n in cluster.nodes)
    servers = list(cluster.k3s.servers) if cluster.k3s is not None else []
    server_node = {g.name: g.node for g in running if g.name in set(servers)}

    # Anti-affinity holds on restart only where Proxmox enforces it: PVE 9's resource-affinity
    # rules. PVE 8's HA groups only rank nodes, so HA may restart a guest next to a group member.
    enforced = cluster.proxmox.version >= 9
    failures = []
    for failed in cluster.nodes:
        rooms = {n.name: base[n.name].copy() for n in cluster.nodes if n.name != failed.name and not n.maintenance}
        members = {name: {g.name: g.anti_affinity for g in on_node[name]} for name in rooms}
        beside: dict[str, str] = {}
        if not enforced:
            for room in rooms.values():
                room.groups.clear()
        moved: dict[str, str] = {}
        moved_in: dict[str, list[Running]] = {}
        by_design: list[str] = []
        shortfalls: list[Shortfall] = []
        # First-fit decreasing, as the original placement does; the failed node's pins no longer apply.
        for guest in sorted((g for g in on_node[failed.name] if g.ha), key=lambda g: (-g.memory_mib, g.name)):
            if kept_apart(guest, rooms):
                by_design.append(guest.name)
                continue
            target = choose(guest, rooms)
            if target is None:
                shortfalls.append(Shortfall(guest.name, guest.memory_mib, guest.cores, why_not(guest, rooms)))
                continue
            other = next(
                (n for n, group in members[target.name].items() if group and group == guest.anti_affinity), None
            )
            if other is not None:
                beside[guest.name] = other
            target.add(guest)
            members[target.name][guest.name] = guest.anti_affinity
            moved_in.setdefault(target.name, []).append(guest)
            moved[guest.name] = target.name
        draws = [
            node_draw(n, [*on_node[n.name], *moved_in[n.name]]) if n.name in moved_in else base_draw[n.name]
            for n in cluster.nodes
            if n.name != failed.name
        ]
        etcd = None
        if server_node:
            up = sum(1 for s in servers if server_node.get(s) not in (None, failed.name))
            etcd = Quorum(up, len(servers))
        failures.append(
            NodeFailure(
                node=failed.name,
                moved=moved,
                down_by_design=by_design,
                down_not_ha=[g.name for g in on_node[failed.name] if not g.ha],
                shortfalls=shortfalls,
                draw=ClusterDraw(draws, cluster.power.budget_watts, cluster.power.price_per_kwh),
                pools=[PoolAfter(p.name, _copies_left(p, osd_hosts, failed.name), p.min_size) for p in pool_sizes],
                beside=beside,
                corosync=Quorum(votes - 1 - (away if not failed.maintenance else 0), votes),
                etcd=etcd,
            )
        )
    return failures
