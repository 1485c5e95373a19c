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

# The names and HTTPS: Traefik (each replica), cert-manager's controller, webhook and CA
# injector, and external-dns with its AdGuard Home webhook; from the projects' charts' examples
# and their use on small clusters (Traefik holds a few MiB per route, cert-manager wakes for renewals).
GATEWAY_STACK = {
    "traefik": (50, 96),
    "cert-manager": (10, 64),
    "cert-manager-webhook": (10, 32),
    "cert-manager-cainjector": (10, 64),
    "external-dns": (10, 48),
    "external-dns-adguard": (10, 32),
}


def platform_millicores(cluster: Cluster) -> int:
    """The CPU the cluster's own services on k3s keep busy, as requested."""
    if cluster.k3s is None:
        return 0
    total = 0
    if cluster.monitoring is not None:
        total += sum(cpu for cpu, _memory in METRICS_STACK.values())
    if cluster.gateway is not None:
        for name, (cpu, _memory) in GATEWAY_STACK.items():
            if name.startswith("external-dns") and cluster.gateway.dns_server is None:
                continue
            total += cpu * (cluster.gateway.replicas if name == "traefik" else 1)
    return total


def requests(table: dict[str, tuple[int, int]], name: str) -> dict[str, dict[str, str]]:
    """Requests the scheduler counts (and the power model), and a memory limit at twice them (a
    leak stops there)."""
    cpu_millicores, memory_mib = table[name]
    return {
        "requests": {"cpu": f"{cpu_millicores}m", "memory": f"{memory_mib}Mi"},
        "limits": {"memory": f"{memory_mib * 2}Mi"},
    }


def platform_hosts(cluster: Cluster) -> list[str]:
    """The k3s VMs those services run on: the agents, or the servers when there are none."""
    if cluster.k3s is None:
        return []
    return list(cluster.k3s.agents or cluster.k3s.servers)
