"""What the loss of each node does: where its HA guests restart, and what keeps working.

For every node in turn the model takes it away and re-places only the HA guests that ran on it,
on the other nodes that are not in maintenance, by the placement rules of `plan.placement`
(memory within `usable_memory_mib`, never two guests of one anti-affinity group on a node,
most free memory first) plus two CPU rules: a guest never has more vCPUs than the node has
cores (Proxmox refuses to start it), and a node's expected busy cores never exceed its cores.
It then reports the draw of the remaining nodes against the power budget, and whether Ceph stays
writable, corosync keeps quorum and etcd (the k3s servers) keeps quorum.

A guest whose anti-affinity group already has a member on every remaining node stays down by
design (the third k3s server while one node is gone: etcd runs on two of three). That is
reported, never counted as a shortfall. Guests that are not HA stay down until their node
returns; they are listed too.

Cost: each node's base load and draw are computed once; a failure re-places only the failed
node's HA guests, so the whole run is O(nodes x guests).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

from plan.placement import usable_memory_mib
from plan.power import ClusterDraw, NodeDraw, node_draw
from spec.models import Cluster, Node


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

    @property
    def busy_cores(self) -> float:
        return self.cores * self.load


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
    """The spec's guests where `placement` (guest -> node, e.g. `plan.placement.place`) puts them,
    less those `stopped` (parked on a drained node: they neither draw power nor fail over)."""
    return [
        Running(g.name, placement[g.name], g.memory_mib, g.cores, g.load, g.ha, g.anti_affinity)
        for g in cluster.guests
        if g.name in placement and g.name not in stopped
    ]


def spec_pools(cluster: Cluster) -> list[PoolSize]:
    return [PoolSize(p.name, p.size, p.min_size) for p in (cluster.ceph.guest_pool, cluster.ceph.kubernetes_pool)]


@dataclass
class _Base:
    """A node's load before anything fails."""

    node: Node
    guests: list[Running]
    free_mib: int
    busy_cores: float
    groups: Counter[str] = field(default_factory=Counter)


class _Survivors:
    """The nodes left after one failure: the base loads (computed once, shared) plus what moves in.

    Only scalars are copied per failure (free memory, spare cores, guest count per node); the
    base guest lists and anti-affinity groups are shared and only what moves in is recorded.
    """

    def __init__(self, base: Mapping[str, _Base], names: list[str]) -> None:
        self.base = base
        self.names = names
        self.free = {n: base[n].free_mib for n in names}
        self.spare = {n: base[n].node.hardware.cores - base[n].busy_cores for n in names}
        self.count = {n: len(base[n].guests) for n in names}
        self.cores = {n: base[n].node.hardware.cores for n in names}
        self.moved_in: dict[str, list[Running]] = {}
        self.groups_in: dict[str, set[str]] = {}

    def free_mib(self, name: str) -> int:
        return self.free[name]

    def spare_cores(self, name: str) -> float:
        return self.spare[name]

    def has_group(self, name: str, group: str) -> bool:
        return self.base[name].groups[group] > 0 or group in self.groups_in.get(name, ())

    def fits(self, guest: Running, name: str) -> bool:
        return (
            guest.memory_mib <= self.free[name]
            and guest.cores <= self.cores[name]
            and guest.busy_cores <= self.spare[name] + 1e-9
            and (guest.anti_affinity is None or not self.has_group(name, guest.anti_affinity))
        )

    def choose(self, guest: Running) -> str | None:
        """Most free memory first, then fewest guests, then name (as `plan.placement.choose`)."""
        best: tuple[int, int, str] | None = None
        for name in self.names:
            if self.fits(guest, name):
                key = (-self.free[name], self.count[name], name)
                if best is None or key < best:
                    best = key
        return None if best is None else best[2]

    def put(self, guest: Running, name: str) -> None:
        self.moved_in.setdefault(name, []).append(guest)
        self.free[name] -= guest.memory_mib
        self.spare[name] -= guest.busy_cores
        self.count[name] += 1
        if guest.anti_affinity is not None:
            self.groups_in.setdefault(name, set()).add(guest.anti_affinity)

    def blocked_by_design(self, guest: Running) -> bool:
        group = guest.anti_affinity
        return group is not None and bool(self.names) and all(self.has_group(n, group) for n in self.names)

    def why_not(self, guest: Running) -> str:
        if not self.names:
            return "every other node is down or in maintenance"
        # Not every node is blocked by anti-affinity (that case stays down by design).
        open_ = [n for n in self.names if guest.anti_affinity is None or not self.has_group(n, guest.anti_affinity)]
        roomy = [n for n in open_ if guest.memory_mib <= self.free_mib(n)]
        if not roomy:
            most_free = max(open_, key=self.free_mib)
            return (
                f"short of {guest.memory_mib - self.free_mib(most_free)} MiB of memory "
                f"(the most free is {self.free_mib(most_free)} MiB, on {most_free})"
            )
        big = [n for n in roomy if guest.cores <= self.cores[n]]
        if not big:
            most = max(self.cores[n] for n in roomy)
            return f"it has {guest.cores} vCPUs but the nodes with room for its memory have at most {most} cores"
        spare = max(self.spare_cores(n) for n in big)
        return (
            f"short of {guest.busy_cores - max(spare, 0.0):.1f} busy cores of CPU (it needs "
            f"{guest.busy_cores:.1f}; the nodes with room for it have at most {max(spare, 0.0):.1f} to spare)"
        )


def overcommitted(cluster: Cluster, running: Sequence[Running]) -> list[str]:
    """Nodes that are short of memory or CPU for their guests with every node up (the baseline)."""
    out = []
    for node in cluster.nodes:
        guests = [g for g in running if g.node == node.name]
        need_mib = sum(g.memory_mib for g in guests)
        busy = sum(g.busy_cores for g in guests)
        if need_mib > usable_memory_mib(node):
            out.append(
                f"even with every node up, the guests on {node.name} need {need_mib} MiB but it has "
                f"{usable_memory_mib(node)} MiB for guests (after the host and its OSDs): move a guest off it"
            )
        if busy > node.hardware.cores + 1e-9:
            out.append(
                f"even with every node up, the guests on {node.name} are expected to keep {busy:.1f} cores busy "
                f"but it has {node.hardware.cores}: move a guest off it"
            )
    return out


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
    base = {
        name: _Base(
            node=nodes[name],
            guests=guests,
            free_mib=usable_memory_mib(nodes[name]) - sum(g.memory_mib for g in guests),
            busy_cores=sum(g.busy_cores for g in guests),
            groups=Counter(g.anti_affinity for g in guests if g.anti_affinity is not None),
        )
        for name, guests in on_node.items()
    }
    base_draw = {name: node_draw(nodes[name], guests) for name, guests in on_node.items()}
    pool_sizes = list(pools) if pools is not None else spec_pools(cluster)
    osd_hosts = set(cluster.osd_hosts)
    votes = len(cluster.nodes) + (1 if cluster.quorum_device is not None else 0)
    # A node in maintenance may be rebooting: count its vote as gone for the worst case.
    away = sum(n.maintenance for n in cluster.nodes)
    servers = list(cluster.k3s.servers) if cluster.k3s is not None else []
    server_node = {g.name: g.node for g in running if g.name in set(servers)}

    failures = []
    for failed in cluster.nodes:
        survivors = _Survivors(base, [n.name for n in cluster.nodes if n.name != failed.name and not n.maintenance])
        moved: dict[str, str] = {}
        by_design: list[str] = []
        shortfalls: list[Shortfall] = []
        # First-fit decreasing, as the original placement does; the failed node's pins no longer apply.
        for guest in sorted((g for g in on_node[failed.name] if g.ha), key=lambda g: (-g.memory_mib, g.name)):
            if survivors.blocked_by_design(guest):
                by_design.append(guest.name)
                continue
            target = survivors.choose(guest)
            if target is None:
                shortfalls.append(Shortfall(guest.name, guest.memory_mib, guest.cores, survivors.why_not(guest)))
                continue
            survivors.put(guest, target)
            moved[guest.name] = target
        draws = [
            node_draw(n, [*base[n.name].guests, *survivors.moved_in[n.name]])
            if n.name in survivors.moved_in
            else base_draw[n.name]
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
                corosync=Quorum(votes - 1 - (away if not failed.maintenance else 0), votes),
                etcd=etcd,
            )
        )
    return failures
