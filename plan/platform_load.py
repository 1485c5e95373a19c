"""What the cluster's own services on k3s ask for, beside the owner's workloads: the metrics
stack's containers, each with requests the scheduler places by and a memory limit at twice them.
One table, read by the components (their `resources`) and by the power model (their CPU)."""

from __future__ import annotations

from spec.models import Cluster

# Container -> (CPU millicores, memory MiB) requested: what each uses on a three-node home
# cluster, measured by the VictoriaMetrics and Prometheus projects' own sizing notes.
METRICS_STACK = {
    "vmsingle": (100, 256),
    "vmalert": (50, 64),
    "alertmanager": (20, 64),
    "blackbox": (10, 32),
}


def platform_millicores(cluster: Cluster) -> int:
    """The CPU the cluster's own services on k3s keep busy, as requested."""
    if cluster.monitoring is None or cluster.k3s is None:
        return 0
    return sum(cpu for cpu, _memory in METRICS_STACK.values())


def platform_hosts(cluster: Cluster) -> list[str]:
    """The k3s VMs those services run on: the agents, or the servers when there are none."""
    if cluster.k3s is None:
        return []
    return list(cluster.k3s.agents or cluster.k3s.servers)
