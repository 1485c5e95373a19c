"""The cluster's modelled electrical draw.

A node draws its idle watts plus a share of (max - idle) equal to its expected CPU utilisation:
the sum over its guests of vCPUs x expected load, over the node's cores, capped at 1. Mini PCs
are close to linear between idle and full load, which is what makes this model useful.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from plan.capacity import Busy, busy_cores
from plan.platform_load import platform_hosts, platform_millicores
from spec.guests import Guest
from spec.models import Cluster
from spec.nodes import Node

HOURS_PER_MONTH = 730.0  # 8760 h / 12
# The managed backup host's line in the draw (it runs no guests: its idle draw is what it costs).
BACKUP_HOST = "backup host"


@dataclass(frozen=True)
class NodeDraw:
    node: str
    idle_watts: float
    max_watts: float
    utilisation: float
    watts: float


@dataclass(frozen=True)
class ClusterDraw:
    nodes: list[NodeDraw]
    budget_watts: float
    price_per_kwh: float

    @property
    def idle_watts(self) -> float:
        return sum(n.idle_watts for n in self.nodes)

    @property
    def watts(self) -> float:
        return sum(n.watts for n in self.nodes)

    @property
    def within_budget(self) -> bool:
        return self.watts <= self.budget_watts

    @property
    def kwh_per_month(self) -> float:
        return self.watts * HOURS_PER_MONTH / 1000

    @property
    def cost_per_month(self) -> float:
        return self.kwh_per_month * self.price_per_kwh


def node_draw(node: Node, guests: Iterable[Busy], extra_cores: float = 0.0) -> NodeDraw:
    hw = node.hardware
    busy = sum(busy_cores(g) for g in guests) + extra_cores
    utilisation = min(1.0, busy / hw.cores)
    watts = hw.idle_watts + (hw.max_watts - hw.idle_watts) * utilisation
    return NodeDraw(node.name, hw.idle_watts, hw.max_watts, utilisation, watts)


def cluster_draw(cluster: Cluster, placement: Mapping[str, str], down: str | None = None) -> ClusterDraw:
    """Draw of every running node given guest -> node; a node with no guests runs idle, a down one
    draws 0. A backup host the program manages is on the same bill: it is counted, idle."""
    on_node: dict[str, list[Guest]] = {n.name: [] for n in cluster.nodes}
    for guest in cluster.guests:
        node = placement.get(guest.name)
        if node in on_node:
            on_node[node].append(guest)
    # The cluster's own services on k3s (plan/platform_load.py) busy the VMs that run them,
    # an equal share on each: their requested CPU, on the nodes those VMs run on.
    hosts = [name for name in platform_hosts(cluster) if placement.get(name) in on_node]
    extra: dict[str, float] = {}
    for name in hosts:
        extra[placement[name]] = extra.get(placement[name], 0.0) + platform_millicores(cluster) / 1000 / len(hosts)
    draws = [node_draw(n, on_node[n.name], extra.get(n.name, 0.0)) for n in cluster.nodes if n.name != down]
    host = cluster.backups.pbs.host if cluster.backups is not None else None
    if host is not None:
        # On all day and idle nearly all of it: a nightly backup is minutes of disk writes.
        draws.append(NodeDraw(BACKUP_HOST, host.idle_watts, host.max_watts, 0.0, host.idle_watts))
    return ClusterDraw(draws, cluster.power.budget_watts, cluster.power.price_per_kwh)
