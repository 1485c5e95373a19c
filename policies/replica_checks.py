"""How many copies: Ceph pools, HA workloads and their disruption budgets.

`replica-counts` is a resource policy: each pool, Deployment, StatefulSet and PodDisruptionBudget
is judged on its own inputs, which hold plain values in every preview (the workloads layer names
namespaces by their fixed names for this). `disruption-budgets` needs the objects together (which
budget selects which pods), so it judges the stack's outputs, and says it cannot judge yet while
the k3s cluster's objects have none (a first preview, a k3s upgrade: their provider is configured
from a kubeconfig that only `pulumi up` reads, and answers a preview with nothing).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from policies.plan_checks import Finding, plan_of
from policies.props import (
    UNKNOWN,
    Declared,
    NotKnownYetError,
    as_int,
    as_str,
    get,
    k3s_objects_known,
    k8s_name,
    known,
    labels,
    where,
)
from policies.tokens import CEPH_POOL, DEPLOYMENT, HA_LABEL, PDB, STATEFUL_SET
from spec import Cluster

# Proxmox's defaults for a Ceph pool (pve-manager `PVE/API2/Ceph/Pool.pm`).
CEPH_DEFAULT_SIZE = 3
CEPH_DEFAULT_MIN_SIZE = 2
WORKLOADS = (DEPLOYMENT, STATEFUL_SET)
REPLICATED = (CEPH_POOL, *WORKLOADS, PDB)


def workload_kind(r: Declared) -> str:
    return {DEPLOYMENT: "Deployment", STATEFUL_SET: "StatefulSet", PDB: "PodDisruptionBudget"}.get(
        r.resource_type, r.resource_type
    )


def check_replica_counts(r: Declared, cluster: Cluster) -> list[str]:
    if r.resource_type == CEPH_POOL:
        return _pool_copies(r, cluster)
    if r.resource_type in WORKLOADS:
        return _ha_replicas(r, cluster)
    if r.resource_type == PDB:
        return _budget_lets_one_go(r, cluster)
    return []


def _pool_copies(r: Declared, cluster: Cluster) -> list[str]:
    name = as_str(get(r.props, "name")) or r.name
    size = as_int(known(get(r.props, "size"), f"Ceph pool {name}'s size")) or CEPH_DEFAULT_SIZE
    min_size = as_int(known(get(r.props, "minSize"), f"Ceph pool {name}'s minSize")) or CEPH_DEFAULT_MIN_SIZE
    osd_hosts = len(cluster.osd_hosts)
    findings = []
    if size < 3:
        findings.append(
            f"Ceph pool {name} keeps {size} cop{'y' if size == 1 else 'ies'} of each object: with fewer than 3, "
            "a disk failure while another copy is recovering loses data; set size 3"
        )
    if min_size < 2:
        findings.append(
            f"Ceph pool {name} has min_size {min_size}: it acknowledges writes held by a single copy, which the "
            "next failure loses; set min_size 2"
        )
    if size > osd_hosts:
        findings.append(
            f"Ceph pool {name} keeps {size} copies but only {osd_hosts} node(s) have OSDs: Ceph puts each copy "
            "on a different host, so the pool would never be healthy; add OSDs or lower size"
        )
    return findings


def _k3s_hosts(cluster: Cluster) -> int:
    """Pods spread across Proxmox hosts (topology key homelab/proxmox-node): count the hosts the
    plan puts the k3s VMs on, not the VMs."""
    plan = plan_of(cluster)
    if cluster.k3s is None or isinstance(plan, str):
        return 0
    return len({plan.placement[n] for n in [*cluster.k3s.servers, *cluster.k3s.agents] if n in plan.placement})


def _ha_replicas(r: Declared, cluster: Cluster) -> list[str]:
    name, namespace = k8s_name(r)
    kind = workload_kind(r)
    if _labels(r, "metadata", "labels").get(HA_LABEL) != "true":
        return []
    replicas = known(get(r.props, "spec", "replicas"), f"{kind} {name}'s replicas")
    count = 1 if replicas is None else as_int(replicas) or 0  # Kubernetes defaults to 1
    label = f'{kind} {where(namespace, name)} (labelled {HA_LABEL}: "true")'
    hosts = _k3s_hosts(cluster)
    findings = []
    if count < 2:
        findings.append(f"{label} runs {count} replica: a node loss or drain takes it down; run at least 2")
    if count > hosts:
        findings.append(
            f"{label} runs {count} replicas but there are only {hosts} k3s nodes to spread them on: two replicas "
            "share a node, so one node loss takes out more than one"
        )
    return findings


def lets_go(value: int | str, replicas: int) -> int | None:
    """A budget field as a pod count (Kubernetes rounds percentages up); None when malformed."""
    if isinstance(value, int):
        return value
    text = value.strip()
    if text.endswith("%") and text[:-1].isdigit():
        return math.ceil(int(text[:-1]) * replicas / 100)
    return None


def _int_or_percent(value: Any) -> int | str | None:
    return value if isinstance(value, str) else as_int(value)


def _budget_lets_one_go(r: Declared, cluster: Cluster) -> list[str]:
    """A budget must let a drain evict one pod, or every k3s upgrade and node drain hangs."""
    name, namespace = k8s_name(r)
    max_unavailable = _int_or_percent(known(get(r.props, "spec", "maxUnavailable"), f"{name}'s maxUnavailable"))
    min_available = _int_or_percent(known(get(r.props, "spec", "minAvailable"), f"{name}'s minAvailable"))
    here = f"PodDisruptionBudget {where(namespace, name)}"
    if max_unavailable is None and min_available is None:
        return [f"{here} sets neither minAvailable nor maxUnavailable, so it protects nothing; set maxUnavailable: 1"]
    if max_unavailable is not None:
        # maxUnavailable counts from the pods there are: any positive figure lets one go.
        allowed = lets_go(max_unavailable, 1)
        return [] if allowed is not None and allowed >= 1 else [f"{here} lets no pod be evicted: {_hangs}"]
    # minAvailable counts from the replicas of the workload of the same name.
    workload = next((w for w in cluster.workloads if w.name == name and w.namespace == namespace), None)
    if workload is None:
        return [
            f"{here} sets minAvailable, which lets a pod go only while there are more replicas than that, and "
            f"no workload of the spec is named {name}: {_hangs}"
        ]
    floor = lets_go(min_available, workload.replicas) if min_available is not None else None
    if floor is None or workload.replicas - floor < 1:
        return [f"{here} lets no pod of {name} ({workload.replicas} replicas) be evicted: {_hangs}"]
    return []


_hangs = "draining a k3s node for an upgrade would hang; use maxUnavailable: 1"


@dataclass(frozen=True)
class _Budget:
    namespace: str
    selector: dict[str, str]


def _namespace(r: Declared) -> str:
    name, namespace = k8s_name(r)
    return str(known(UNKNOWN if namespace is None else namespace, f"{workload_kind(r)} {name}'s namespace"))


def _labels(r: Declared, *path: str) -> dict[str, str]:
    value = known(get(r.props, *path), f"{workload_kind(r)} {r.name}'s {'.'.join(path)}")
    found = labels(value)
    if isinstance(value, Mapping) and len(found) < len(value):
        raise NotKnownYetError(f"a label of {workload_kind(r)} {r.name}'s {'.'.join(path)} is only known after up")
    return found


def _objects_known(resources: Iterable[Declared]) -> list[Declared]:
    """The workloads and budgets; NotKnownYetError when their provider has answered with nothing yet."""
    return k3s_objects_known(
        [r for r in resources if r.resource_type in (*WORKLOADS, PDB)],
        "whether a PodDisruptionBudget selects every HA workload's pods is judged on the next preview; each "
        "budget's own settings are judged now by replica-counts",
    )


def check_disruption_budgets(cluster: Cluster, resources: Iterable[Declared]) -> list[Finding]:
    if cluster.k3s is None or not any(w.ha for w in cluster.workloads):
        return []
    found = _objects_known(resources)
    # In policy/v1 an empty selector selects every pod in its namespace.
    budgets = [
        _Budget(_namespace(r), _labels(r, "spec", "selector", "matchLabels")) for r in found if r.resource_type == PDB
    ]
    findings: list[Finding] = []
    for r in (x for x in found if x.resource_type in WORKLOADS):
        if _labels(r, "metadata", "labels").get(HA_LABEL) != "true":
            continue
        namespace, pods = _namespace(r), _labels(r, "spec", "template", "metadata", "labels")
        if not any(b.namespace == namespace and all(pods.get(k) == v for k, v in b.selector.items()) for b in budgets):
            findings.append(
                (
                    f"{workload_kind(r)} {where(namespace, k8s_name(r)[0])} is HA but no PodDisruptionBudget selects "
                    "its pods: a node drain may evict every replica at once; add one with maxUnavailable: 1",
                    r.urn,
                )
            )
    return findings
