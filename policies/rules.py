"""The homelab policies: what a preview must satisfy before `pulumi up` may touch the cluster.

Every figure a policy needs is known at preview time: node hardware, watts, the budget and guest
loads come from the stack config (`homelab:cluster`, parsed by `spec`), and placement, sizes and
replica counts from the declared resources' inputs. Nothing reads a provider output.

The same `POLICIES` run in the pack process under the engine (`policies/__main__.py`) and
in-process on the resources the offline harness captures (`offline/policy_run.py`).

Label contract for Kubernetes workloads: a Deployment or StatefulSet that must stay up through a
node loss carries the label `homelab/ha: "true"` (HA_LABEL) in its metadata.labels (or its pod
template's labels); replica-counts then checks its replicas and its PodDisruptionBudget.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

# The pack ships inside this repo and shares its pure spec and power/failover model (`spec`,
# `plan`), so the repo root, the parent of this folder, must be importable however the engine
# starts the pack (it runs `policies/__main__.py` with only this folder on sys.path).
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import pulumi.runtime  # noqa: E402
from pulumi_policy import (  # noqa: E402
    EnforcementLevel,
    Policy,
    PolicyResourceOptions,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError  # noqa: E402

from plan.failover import PoolSize, Running, overcommitted, simulate, spec_pools  # noqa: E402
from plan.power import ClusterDraw, node_draw  # noqa: E402
from spec import CLUSTER_KEY, Cluster, Guest, SpecError, parse_cluster  # noqa: E402

PACK_NAME = "homelab-policies"
PACK_ENFORCEMENT = EnforcementLevel.MANDATORY

# Type tokens, as the SDKs register them (checked against pulumi-proxmoxve 8.6.0 and
# pulumi-kubernetes 4.34.2).
VM = "proxmoxve:index/vmLegacy:VmLegacy"
REMOTE_COMMAND = "command:remote:Command"
CONTAINER = "proxmoxve:index/containerLegacy:ContainerLegacy"
HA_RESOURCE = "proxmoxve:index/haresource:Haresource"
CEPH_POOL = "proxmoxve:ceph/pool:Pool"
BOND = "proxmoxve:network/linux/bond:Bond"
FABRIC_NODE = "proxmoxve:sdn/fabric/node/openfabric:Openfabric"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
STATEFUL_SET = "kubernetes:apps/v1:StatefulSet"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
PVC = "kubernetes:core/v1:PersistentVolumeClaim"
# The component that forms the Proxmox cluster: corosync's links are checked on it.
CLUSTER_COMPONENT = "homelab:cluster:ProxmoxCluster"

HA_LABEL = "homelab/ha"

# What the provider creates when an input is left out (pulumi-proxmoxve 8.6.0 docs).
VM_DEFAULT_STORAGE = "local-lvm"
CT_DEFAULT_STORAGE = "local"
DEFAULT_CORES = 1
DEFAULT_MEMORY_MIB = 512
# Proxmox's defaults for a Ceph pool.
CEPH_DEFAULT_SIZE = 3
CEPH_DEFAULT_MIN_SIZE = 2
DEFAULT_LOAD = float(Guest.model_fields["load"].default)


class _Unknown:
    """A value the engine will only know after `pulumi up` (an output of another resource)."""

    def __repr__(self) -> str:
        return "<unknown>"


UNKNOWN: Any = _Unknown()


class Declared(Protocol):
    """What the policies read of a resource: a PolicyResource or ResourceValidationArgs."""

    @property
    def resource_type(self) -> str: ...

    @property
    def props(self) -> Mapping[str, Any]: ...

    @property
    def urn(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def opts(self) -> PolicyResourceOptions: ...


# --- reading inputs safely -----------------------------------------------------------------


def get(value: Any, *path: str | int) -> Any:
    """The value at `path`: None when absent, UNKNOWN when the engine does not know it yet."""
    try:
        for step in path:
            if isinstance(step, int):
                if isinstance(value, str | bytes) or not isinstance(value, Sequence) or step >= len(value):
                    return None
            elif not isinstance(value, Mapping) or step not in value:
                return None
            value = value[step]
    except UnknownValueError:
        return UNKNOWN
    return value


def items(value: Any) -> list[Any]:
    """The known elements of a list input (unknown ones are skipped)."""
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        return []
    out = []
    for i in range(len(value)):
        item = get(value, i)
        if item is not UNKNOWN:
            out.append(item)
    return out


def as_int(value: Any) -> int | None:
    """Numbers arrive as floats over the wire; None for absent, unknown or non-numbers."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)


def as_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def labels(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {}
    out = {}
    for key in value:
        v = get(value, key)
        if isinstance(v, str):
            out[str(key)] = v
    return out


def known_labels(value: Any) -> dict[str, str] | None:
    """A label map, or None when it or any of its values is only known after `pulumi up`."""
    if value is UNKNOWN or (isinstance(value, Mapping) and any(get(value, k) is UNKNOWN for k in value)):
        return None
    return labels(value)


# --- the spec from stack config ------------------------------------------------------------


@lru_cache(maxsize=8)
def _parse(raw: str) -> Cluster | str:
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        return f"{CLUSTER_KEY} in this stack's config is not valid JSON ({exc}), so this policy cannot check anything"
    try:
        return parse_cluster(data)
    except SpecError as exc:
        return f"{CLUSTER_KEY} in this stack's config is invalid, so this policy cannot check anything:\n{exc}"


def load_cluster() -> Cluster | str:
    """The spec from the stack config the engine hands the pack, or why there is none."""
    raw = pulumi.runtime.get_config(CLUSTER_KEY)
    if raw is None:
        return (
            f"{CLUSTER_KEY} is missing from this stack's config: the policies take every figure "
            "(nodes, watts, budget, guest loads) from it, so nothing can be checked"
        )
    if not isinstance(raw, str):
        raw = json.dumps(raw)
    return _parse(raw)


# --- what the stack declares ---------------------------------------------------------------


@dataclass(frozen=True)
class GuestDecl:
    """A VM or container as declared, matched to its spec guest by VM ID (then by name)."""

    urn: str
    kind: str  # "vm" or "lxc"
    name: str
    vm_id: int | None
    node: str | None  # None: not known at preview
    cores: int | None
    memory_mib: int | None
    volumes: tuple[tuple[str, str], ...]  # (which disk, storage ID or host path)
    spec: Guest | None
    started: bool = True  # False: declared stopped (parked on a drained node); draws and needs nothing

    @property
    def ha_id(self) -> str | None:
        """How a Haresource names this guest: `vm:201` or `ct:300`."""
        if self.vm_id is None:
            return None
        return f"{'vm' if self.kind == 'vm' else 'ct'}:{self.vm_id}"

    @property
    def load(self) -> float:
        return self.spec.load if self.spec is not None else DEFAULT_LOAD


@dataclass(frozen=True)
class PoolDecl:
    urn: str
    name: str
    size: int | None  # None: not known at preview
    min_size: int | None


@dataclass(frozen=True)
class WorkloadDecl:
    urn: str
    kind: str
    name: str
    namespace: str | None  # None: not known at preview
    replicas: int | None  # None: not known at preview
    ha: bool
    pod_labels: dict[str, str] | None  # None: not known at preview


@dataclass(frozen=True)
class PdbDecl:
    urn: str
    name: str
    namespace: str | None  # None: not known at preview
    match_labels: dict[str, str] | None  # None: not known at preview
    min_available: int | str | None
    max_unavailable: int | str | None
    limits_known: bool = True  # False: minAvailable or maxUnavailable is only known after `up`

    def may_select(self, w: WorkloadDecl) -> bool:
        """Whether it selects the workload's pods; an unknown namespace or selector may."""
        if self.namespace is not None and w.namespace is not None and self.namespace != w.namespace:
            return False
        if self.match_labels is None or w.pod_labels is None:
            return True
        pods = w.pod_labels
        # In policy/v1 an empty selector selects every pod in the namespace.
        return all(pods.get(k) == v for k, v in self.match_labels.items())

    @property
    def judged(self) -> bool:
        return self.limits_known and self.match_labels is not None


@dataclass(frozen=True)
class Inventory:
    guests: list[GuestDecl]
    ha_ids: set[str]
    pools: list[PoolDecl]
    workloads: list[WorkloadDecl]
    pdbs: list[PdbDecl]
    scripts: list[str]  # what the remote commands run, where known at preview

    def is_ha(self, guest: GuestDecl) -> bool:
        return guest.ha_id is not None and guest.ha_id in self.ha_ids

    def running(self) -> list[Running]:
        """The guests whose node, memory and cores are known, as the failover model takes them."""
        return [
            Running(
                g.name,
                g.node,
                g.memory_mib,
                g.cores,
                g.load,
                self.is_ha(g),
                g.spec.anti_affinity if g.spec is not None else None,
            )
            for g in self.guests
            if g.started and g.node is not None and g.memory_mib is not None and g.cores is not None
        ]

    def pool_sizes(self, cluster: Cluster) -> list[PoolSize]:
        """The declared pools (Proxmox defaults for sizes left out), else the spec's."""
        if not self.pools:
            return spec_pools(cluster)
        return [
            PoolSize(p.name, p.size, p.min_size) for p in self.pools if p.size is not None and p.min_size is not None
        ]


def _storage_of(volume: str) -> str:
    """`vm-disks:vm-201-disk-0` -> `vm-disks`; a plain storage ID or host path stays as it is."""
    return volume if volume.startswith("/") else volume.split(":", 1)[0]


def _vm(r: Declared) -> tuple[str, int | None, int | None, tuple[tuple[str, str], ...]]:
    p = r.props
    cores = get(p, "cpu", "cores")
    sockets = get(p, "cpu", "sockets")
    n_cores = DEFAULT_CORES if cores is None else as_int(cores)
    n_sockets = 1 if sockets is None else as_int(sockets)
    vcpus = None if n_cores is None or n_sockets is None else n_cores * n_sockets
    memory = get(p, "memory", "dedicated")
    volumes: list[tuple[str, str]] = []
    for i, disk in enumerate(items(get(p, "disks"))):
        where = as_str(get(disk, "interface")) or f"disks[{i}]"
        storage = get(disk, "datastoreId")
        if storage is None or isinstance(storage, str):
            volumes.append((f"disk {where}", storage or VM_DEFAULT_STORAGE))
    for key, label in (("efiDisk", "EFI disk"), ("tpmState", "TPM state")):
        if isinstance(get(p, key), Mapping):
            storage = get(p, key, "datastoreId")
            if storage is None or isinstance(storage, str):
                volumes.append((label, storage or VM_DEFAULT_STORAGE))
    name = as_str(get(p, "name")) or r.name
    return name, vcpus, DEFAULT_MEMORY_MIB if memory is None else as_int(memory), tuple(volumes)


def _container(r: Declared) -> tuple[str, int | None, int | None, tuple[tuple[str, str], ...]]:
    p = r.props
    cores = get(p, "cpu", "cores")
    memory = get(p, "memory", "dedicated")
    volumes: list[tuple[str, str]] = []
    root = get(p, "disk", "datastoreId")
    if root is None or isinstance(root, str):
        volumes.append(("root disk", root or CT_DEFAULT_STORAGE))
    for i, mount in enumerate(items(get(p, "mountPoints"))):
        volume = get(mount, "volume")
        shared_path = get(mount, "shared") is True
        if isinstance(volume, str) and not (volume.startswith("/") and shared_path):
            path = as_str(get(mount, "path")) or f"mountPoints[{i}]"
            volumes.append((f"mount point {path}", _storage_of(volume)))
    name = as_str(get(p, "initialization", "hostname")) or r.name
    return (
        name,
        DEFAULT_CORES if cores is None else as_int(cores),
        DEFAULT_MEMORY_MIB if memory is None else as_int(memory),
        tuple(volumes),
    )


def _k8s_name(r: Declared) -> tuple[str, str | None]:
    """Name and namespace (Kubernetes' `default` when left out, None when not known yet)."""
    name = as_str(get(r.props, "metadata", "name")) or r.name
    namespace = get(r.props, "metadata", "namespace")
    if namespace is UNKNOWN:
        return name, None
    return name, as_str(namespace) or "default"


def _where(namespace: str | None, name: str) -> str:
    return f"{namespace or '(namespace known after up)'}/{name}"


def _int_or_percent(value: Any) -> int | str | None:
    if isinstance(value, str):
        return value
    return as_int(value)


def inventory(resources: Iterable[Declared], cluster: Cluster | None) -> Inventory:
    by_id = {g.vm_id: g for g in cluster.guests} if cluster is not None else {}
    by_name = {g.name: g for g in cluster.guests} if cluster is not None else {}
    guests: list[GuestDecl] = []
    ha_ids: set[str] = set()
    pools: list[PoolDecl] = []
    workloads: list[WorkloadDecl] = []
    pdbs: list[PdbDecl] = []
    scripts: list[str] = []
    for r in resources:
        typ, p = r.resource_type, r.props
        if typ == REMOTE_COMMAND and isinstance(create := get(p, "create"), str):
            scripts.append(create)
        if typ in (VM, CONTAINER):
            if get(p, "template") is True:
                continue  # a template never runs: it only holds the image that guests clone
            name, cores, memory, volumes = _vm(r) if typ == VM else _container(r)
            vm_id = as_int(get(p, "vmId"))
            spec = by_id.get(vm_id) if vm_id is not None else None
            spec = spec or by_name.get(name) or by_name.get(r.name)
            guests.append(
                GuestDecl(
                    urn=r.urn,
                    kind="vm" if typ == VM else "lxc",
                    name=spec.name if spec is not None else name,
                    vm_id=vm_id,
                    node=as_str(get(p, "nodeName")),
                    cores=cores,
                    memory_mib=memory,
                    volumes=volumes,
                    spec=spec,
                    started=get(p, "started") is not False,
                )
            )
        elif typ == HA_RESOURCE:
            resource_id = as_str(get(p, "resourceId"))
            if resource_id is not None and get(p, "state") != "ignored":
                ha_ids.add(resource_id)
        elif typ == CEPH_POOL:
            size, min_size = get(p, "size"), get(p, "minSize")
            pools.append(
                PoolDecl(
                    urn=r.urn,
                    name=as_str(get(p, "name")) or r.name,
                    size=CEPH_DEFAULT_SIZE if size is None else as_int(size),
                    min_size=CEPH_DEFAULT_MIN_SIZE if min_size is None else as_int(min_size),
                )
            )
        elif typ in (DEPLOYMENT, STATEFUL_SET):
            name, namespace = _k8s_name(r)
            pod_labels = known_labels(get(p, "spec", "template", "metadata", "labels"))
            marked = labels(get(p, "metadata", "labels")).get(HA_LABEL) or (pod_labels or {}).get(HA_LABEL)
            replicas = get(p, "spec", "replicas")
            workloads.append(
                WorkloadDecl(
                    urn=r.urn,
                    kind="Deployment" if typ == DEPLOYMENT else "StatefulSet",
                    name=name,
                    namespace=namespace,
                    replicas=1 if replicas is None else as_int(replicas),  # Kubernetes defaults to 1
                    ha=marked == "true",
                    pod_labels=pod_labels,
                )
            )
        elif typ == PDB:
            name, namespace = _k8s_name(r)
            min_available, max_unavailable = get(p, "spec", "minAvailable"), get(p, "spec", "maxUnavailable")
            pdbs.append(
                PdbDecl(
                    urn=r.urn,
                    name=name,
                    namespace=namespace,
                    match_labels=known_labels(get(p, "spec", "selector", "matchLabels")),
                    min_available=_int_or_percent(min_available),
                    max_unavailable=_int_or_percent(max_unavailable),
                    limits_known=UNKNOWN not in (min_available, max_unavailable),
                )
            )
    return Inventory(guests, ha_ids, pools, workloads, pdbs, scripts)


# --- the checks, as plain functions of (spec, inventory) -> findings -------------------------

Finding = tuple[str, str | None]  # (message, URN of the resource at fault or None for the stack)


@dataclass(frozen=True)
class _Busy:
    cores: int
    load: float


def check_power_budget(cluster: Cluster, inv: Inventory) -> list[Finding]:
    known = {n.name for n in cluster.nodes}
    findings: list[Finding] = [
        (
            f"guest {g.name} is declared on node {g.node}, which is not in the spec's nodes "
            f"({', '.join(sorted(known))}): its draw cannot be modelled",
            g.urn,
        )
        for g in inv.guests
        if g.node is not None and g.node not in known
    ]
    on_node: dict[str, list[GuestDecl]] = {n: [] for n in known}
    for g in inv.guests:
        if g.started and g.node in on_node and g.cores is not None:
            on_node[g.node].append(g)
    draws = [node_draw(n, [_Busy(g.cores or 0, g.load) for g in on_node[n.name]]) for n in cluster.nodes]
    draw = ClusterDraw(draws, cluster.power.budget_watts, cluster.power.price_per_kwh)
    if not draw.within_budget:
        per_node = "; ".join(
            f"{d.node} {d.watts:.1f} W = idle {d.idle_watts:g} W + {d.watts - d.idle_watts:.1f} W at "
            f"{d.utilisation:.0%} busy ({', '.join(g.name for g in on_node[d.node]) or 'no guests'})"
            for d in draw.nodes
        )
        findings.append(
            (
                f"the cluster would draw {draw.watts:.1f} W, over the budget of {draw.budget_watts:g} W "
                f"(power.budget_watts) by {draw.watts - draw.budget_watts:.1f} W: {per_node}. "
                "Lower guests' cores or expected load, spread guests to idle nodes, or raise the budget.",
                None,
            )
        )
    return findings


def _quorum_count(what: str, count: int, where: str, why: str) -> str | None:
    if count >= 3 and count % 2 == 1:
        return None
    return f"{where} lists {count} {what}: {why} needs an odd number of at least 3 to keep quorum through a node loss"


def lets_one_go(pdb: PdbDecl, replicas: int) -> int | None:
    """How many pods the budget lets Kubernetes evict at once (None: it sets neither field)."""

    def scaled(value: int | str) -> int | None:
        if isinstance(value, int):
            return value
        text = value.strip()
        if text.endswith("%") and text[:-1].isdigit():
            return math.ceil(int(text[:-1]) * replicas / 100)  # Kubernetes rounds both fields up
        return None

    if pdb.max_unavailable is not None:
        return scaled(pdb.max_unavailable)
    if pdb.min_available is not None:
        floor = scaled(pdb.min_available)
        return None if floor is None else replicas - floor
    return None


def check_replica_counts(cluster: Cluster, inv: Inventory) -> list[Finding]:
    return [*_quorum_members(cluster, inv), *_pool_copies(cluster, inv), *_ha_workloads(cluster, inv)]


def _quorum_members(cluster: Cluster, inv: Inventory) -> list[Finding]:
    """Counted in what the program declares (the install and monitor scripts), so a program that
    builds fewer than the spec asks for is caught too."""
    servers = sum(("ROLE=server-init" in x or "ROLE=server-join" in x) for x in inv.scripts)
    monitors = sum("pveceph mon create" in x for x in inv.scripts)
    findings: list[Finding] = []
    if cluster.k3s is not None:
        msg = _quorum_count("servers", servers, "k3s.servers", "embedded etcd")
        if msg:
            findings.append((msg, None))
    msg = _quorum_count("monitor hosts", monitors, "ceph.monitors", "Ceph's monitor map")
    if msg:
        findings.append((msg, None))
    return findings


def _pool_copies(cluster: Cluster, inv: Inventory) -> list[Finding]:
    """The declared pools, or the spec's while no Pool resource is declared yet."""
    osd_hosts = len(cluster.osd_hosts)
    declared = inv.pools or [PoolDecl("", p.name, p.size, p.min_size) for p in spec_pools(cluster)]
    findings: list[Finding] = []
    for pool in declared:
        urn = pool.urn or None
        if pool.size is not None and pool.size < 3:
            findings.append(
                (
                    f"Ceph pool {pool.name} keeps {pool.size} cop{'y' if pool.size == 1 else 'ies'} of each object: "
                    "with fewer than 3, a disk failure while another copy is recovering loses data; set size 3",
                    urn,
                )
            )
        if pool.min_size is not None and pool.min_size < 2:
            findings.append(
                (
                    f"Ceph pool {pool.name} has min_size {pool.min_size}: it acknowledges writes held by a single "
                    "copy, which the next failure loses; set min_size 2",
                    urn,
                )
            )
        if pool.size is not None and pool.size > osd_hosts:
            findings.append(
                (
                    f"Ceph pool {pool.name} keeps {pool.size} copies but only {osd_hosts} node(s) have OSDs: Ceph "
                    "puts each copy on a different host, so the pool would never be healthy; add OSDs or lower size",
                    urn,
                )
            )
    return findings


def _ha_workloads(cluster: Cluster, inv: Inventory) -> list[Finding]:
    # Pods spread across Proxmox hosts (topology key homelab/proxmox-node), so count the hosts
    # the k3s VMs are declared on, not the VMs.
    k3s_vms = set(cluster.k3s.servers) | set(cluster.k3s.agents) if cluster.k3s is not None else set()
    hosts = len({g.node for g in inv.guests if g.name in k3s_vms and g.node is not None})
    findings: list[Finding] = []
    for w in inv.workloads:
        if w.replicas is None:
            continue
        if not w.ha:
            # No budget needed, but one that lets no pod go would hang every drain all the same.
            findings += _disruption_budget(w, inv.pdbs, required=False)
            continue
        label = f'{w.kind} {_where(w.namespace, w.name)} (labelled {HA_LABEL}: "true")'
        if w.replicas < 2:
            findings.append(
                (f"{label} runs {w.replicas} replica: a node loss or drain takes it down; run at least 2", w.urn)
            )
        if w.replicas > hosts:
            findings.append(
                (
                    f"{label} runs {w.replicas} replicas but there are only {hosts} k3s nodes to spread them on: "
                    "two replicas share a node, so one node loss takes out more than one",
                    w.urn,
                )
            )
        findings += _disruption_budget(w, inv.pdbs, required=True)
    return findings


def _disruption_budget(w: WorkloadDecl, pdbs: list[PdbDecl], required: bool) -> list[Finding]:
    replicas = w.replicas or 0
    budgets = [pdb for pdb in pdbs if pdb.may_select(w)]
    if not budgets:
        missing = (
            f"{w.kind} {_where(w.namespace, w.name)} is HA but no PodDisruptionBudget selects its pods: "
            "a node drain may evict every replica at once; add one with maxUnavailable: 1"
        )
        return [(missing, w.urn)] if required else []
    findings: list[Finding] = []
    for pdb in budgets:
        if not pdb.judged:
            continue  # a budget only `pulumi up` can read: it may well select these pods
        if pdb.min_available is None and pdb.max_unavailable is None:
            findings.append(
                (
                    f"PodDisruptionBudget {_where(pdb.namespace, pdb.name)} sets neither minAvailable nor "
                    f"maxUnavailable, so it does not protect {w.name}; set maxUnavailable: 1",
                    pdb.urn,
                )
            )
            continue
        allowed = lets_one_go(pdb, replicas)
        if allowed is not None and allowed < 1:
            findings.append(
                (
                    f"PodDisruptionBudget {_where(pdb.namespace, pdb.name)} lets no pod of {w.name} ({replicas} "
                    f"replica{'' if replicas == 1 else 's'}) be evicted: draining a k3s node for an upgrade would "
                    "hang; use maxUnavailable: 1",
                    pdb.urn,
                )
            )
    return findings


def check_ha_shared_storage(cluster: Cluster, inv: Inventory) -> list[Finding]:
    shared = cluster.shared_storages
    findings: list[Finding] = []
    for g in inv.guests:
        if not inv.is_ha(g):
            continue
        node = g.node or "its node"
        for where, storage in g.volumes:
            if storage not in shared:
                findings.append(
                    (
                        f"{g.name} ({g.ha_id}) is HA, but its {where} is on {storage}, which only {node} has: "
                        f"when {node} fails, HA cannot start it anywhere else. Put it on the shared Ceph "
                        f"storage {cluster.ceph.guest_pool.name}.",
                        g.urn,
                    )
                )
    return findings


def check_survives_any_node(cluster: Cluster, inv: Inventory) -> list[Finding]:
    """Mandatory in normal operation. While a node is drained for maintenance the cluster has,
    by design, one node less of slack: that window is judged by `maintenance-redundancy`."""
    if any(n.maintenance for n in cluster.nodes):
        # The guests must still fit where they run now.
        return [(message, None) for message in overcommitted(cluster, inv.running())]
    return _node_losses(cluster, inv)


def check_maintenance_redundancy(cluster: Cluster, inv: Inventory) -> list[Finding]:
    """Advisory: what another node's loss would do while one is in maintenance."""
    drained = [n.name for n in cluster.nodes if n.maintenance]
    if not drained:
        return []
    prefix = f"while {', '.join(drained)} {'is' if len(drained) == 1 else 'are'} in maintenance, "
    return [(prefix + message, urn) for message, urn in _node_losses(cluster, inv)]


def _node_losses(cluster: Cluster, inv: Inventory) -> list[Finding]:
    urn_of = {g.name: g.urn for g in inv.guests}
    running = inv.running()
    findings: list[Finding] = [(message, None) for message in overcommitted(cluster, running)]
    for failure in simulate(cluster, running, inv.pool_sizes(cluster)):
        for shortfall, message in zip(failure.shortfalls, failure.shortfall_problems(), strict=True):
            findings.append((message, urn_of.get(shortfall.guest)))
        findings += [(message, None) for message in failure.cluster_problems()]
    return findings


# --- resource checks -----------------------------------------------------------------------


def check_redundant_links(r: Declared, cluster: Cluster | str | None) -> list[str]:
    """Bonds with two members, mesh nodes with two cables, corosync on two links."""
    if r.resource_type == BOND:
        return _bond_members(r)
    if r.resource_type == FABRIC_NODE:
        return _mesh_cables(r)
    if r.resource_type == CLUSTER_COMPONENT:
        if not isinstance(cluster, Cluster):
            return [cluster or f"{CLUSTER_KEY} is missing from this stack's config"]
        links = cluster.networks.corosync_links
        if len(set(links)) < 2:
            return [
                f"corosync runs on {len(links)} link ({', '.join(links)}): if that network fails the nodes lose "
                "quorum and HA fences them; set networks.corosync_links to [lan, storage]"
            ]
    return []


def _bond_members(r: Declared) -> list[str]:
    slaves = get(r.props, "slaves")
    members = [s for s in items(slaves) if isinstance(s, str)]
    if slaves is UNKNOWN or len(members) >= 2:
        return []
    node = as_str(get(r.props, "nodeName")) or "its node"
    bond = as_str(get(r.props, "name")) or r.name
    return [
        f"bond {bond} on {node} has {len(members)} member NIC(s) ({', '.join(members) or 'none'}): one "
        f"cable, switch port or NIC failure cuts {node} off; give it two NICs (nodes[].bond.members)"
    ]


def _mesh_cables(r: Declared) -> list[str]:
    links = get(r.props, "interfaceNames")
    nics = [s for s in items(links) if isinstance(s, str)]
    if links is UNKNOWN or len(nics) >= 2:
        return []
    node = as_str(get(r.props, "nodeId")) or r.name
    return [
        f"storage mesh: {node} has {len(nics)} direct cable(s) in the fabric ({', '.join(nics) or 'none'}): "
        "one cut cable isolates it from Ceph; cable it to every other node (nodes[].mesh_links)"
    ]


def check_protect_stateful(r: Declared) -> list[str]:
    if r.opts.protect:
        return []
    if r.resource_type == CEPH_POOL:
        pool = as_str(get(r.props, "name")) or r.name
        return [
            f"Ceph pool {pool} is not protected: a `pulumi destroy` or a rename deletes the pool and every "
            "disk in it; set protect=True in its resource options"
        ]
    if r.resource_type == PVC:
        name, namespace = _k8s_name(r)
        return [
            f"PersistentVolumeClaim {_where(namespace, name)} is not protected: deleting or replacing it deletes its "
            "volume's data; set protect=True in its resource options"
        ]
    if r.resource_type == STATEFUL_SET and items(get(r.props, "spec", "volumeClaimTemplates")):
        name, namespace = _k8s_name(r)
        return [
            f"StatefulSet {_where(namespace, name)} has volumeClaimTemplates but is not protected: replacing it "
            "(e.g. a changed selector) recreates its pods and can orphan or delete their volumes; set protect=True"
        ]
    return []


# --- the policies --------------------------------------------------------------------------

StackCheck = Callable[[Cluster, Inventory], list[Finding]]


def stack_policy(
    name: str, description: str, check: StackCheck, enforcement_level: EnforcementLevel | None = None
) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        cluster = load_cluster()
        if not isinstance(cluster, Cluster):
            report_violation(cluster, None)
            return
        for message, urn in check(cluster, inventory(args.resources, cluster)):
            report_violation(message, urn)

    return StackValidationPolicy(
        name=name, description=description, validate=validate, enforcement_level=enforcement_level
    )


def _redundant_links(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    cluster = load_cluster() if args.resource_type == CLUSTER_COMPONENT else None
    for message in check_redundant_links(args, cluster):
        report_violation(message, None)


def _protect_stateful(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    for message in check_protect_stateful(args):
        report_violation(message, None)


POLICIES: list[Policy] = [
    stack_policy(
        "power-budget",
        "The modelled electrical draw of the nodes (idle plus the expected load of their guests) stays within "
        "power.budget_watts.",
        check_power_budget,
    ),
    stack_policy(
        "replica-counts",
        "Quorum members come in odd numbers of at least 3, Ceph pools keep 3 copies on different hosts, and HA "
        "workloads run 2+ replicas with a PodDisruptionBudget that lets one go.",
        check_replica_counts,
    ),
    stack_policy(
        "ha-shared-storage",
        "Every HA guest's disks are on the shared Ceph storage, so another node can start it.",
        check_ha_shared_storage,
    ),
    ResourceValidationPolicy(
        name="redundant-links",
        description="Every bond has two NICs, every storage-mesh node two cables, and corosync runs on two links.",
        validate=_redundant_links,
    ),
    stack_policy(
        "survives-any-node",
        "Whichever node fails, its HA guests fit on the others, the draw stays within budget, Ceph stays "
        "writable and corosync and etcd keep quorum.",
        check_survives_any_node,
    ),
    stack_policy(
        "maintenance-redundancy",
        "While a node is drained for maintenance, what the loss of another node would do (advisory: the "
        "owner chose that window).",
        check_maintenance_redundancy,
        EnforcementLevel.ADVISORY,
    ),
    ResourceValidationPolicy(
        name="protect-stateful",
        description="Ceph pools and resources that hold volumes are protected against deletion.",
        validate=_protect_stateful,
        enforcement_level=EnforcementLevel.ADVISORY,
    ),
]


def enforcement_of(policy: Policy) -> EnforcementLevel:
    return policy.enforcement_level or PACK_ENFORCEMENT
