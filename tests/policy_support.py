"""Whole stacks for the policy tests, and edits that break them one rule at a time.

The program declares the cluster layer by layer. Until a layer exists (guests, HA, Ceph pools,
Kubernetes workloads), `stand_ins` declares what the spec says it will: the resources the
policies read, with the inputs the brief for that layer gives (pulumi-proxmoxve and
pulumi-kubernetes wire names). As soon as the program declares a layer itself, its real
resources are used and the stand-ins for that layer are dropped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from offline.harness import PROJECT, ProgramRun, Resource, config_for
from plan.placement import place
from policies import rules
from spec import CLUSTER_KEY, Cluster
from tests.support import patched, program, stack_cluster

GUEST_TYPES = (rules.VM, rules.CONTAINER)
WORKLOAD_TYPES = (rules.DEPLOYMENT, rules.STATEFUL_SET)


def urn(stack: str, typ: str, name: str) -> str:
    return f"urn:pulumi:{stack}::{PROJECT}::{typ}::{name}"


def resource(stack: str, typ: str, name: str, inputs: dict[str, Any], protect: bool = False) -> Resource:
    return Resource(
        urn=urn(stack, typ, name), type=typ, name=name, parent="", custom=True, inputs=inputs, protect=protect
    )


def _guests(stack: str, cluster: Cluster) -> list[Resource]:
    placement = place(cluster)
    out = []
    for g in cluster.guests:
        storages = [cluster.disk_storage(d) for d in g.disks]
        common: dict[str, Any] = {
            "nodeName": placement[g.name],
            "vmId": g.vm_id,
            "cpu": {"cores": g.cores},
            "memory": {"dedicated": g.memory_mib},
        }
        if g.kind == "vm":
            disks = [
                {"datastoreId": s, "interface": f"scsi{i}", "size": d.size_gib}
                for i, (s, d) in enumerate(zip(storages, g.disks, strict=True))
            ]
            out.append(resource(stack, rules.VM, g.name, {**common, "name": g.name, "disks": disks}))
        else:
            root, *more = zip(storages, g.disks, strict=True)
            inputs = {
                **common,
                "initialization": {"hostname": g.name},
                "disk": {"datastoreId": root[0], "size": root[1].size_gib},
                "mountPoints": [
                    {"volume": s, "size": f"{d.size_gib}G", "path": f"/data{i}"} for i, (s, d) in enumerate(more)
                ],
            }
            out.append(resource(stack, rules.CONTAINER, g.name, inputs))
    return out


def _ha(stack: str, cluster: Cluster) -> list[Resource]:
    return [
        resource(
            stack,
            rules.HA_RESOURCE,
            f"{g.name}-ha",
            {"resourceId": f"{'vm' if g.kind == 'vm' else 'ct'}:{g.vm_id}", "state": "started"},
        )
        for g in cluster.guests
        if g.ha
    ]


def _pools(stack: str, cluster: Cluster) -> list[Resource]:
    return [
        resource(
            stack,
            rules.CEPH_POOL,
            f"ceph-pool-{p.name}",
            {"name": p.name, "size": p.size, "minSize": p.min_size, "nodeName": cluster.nodes[0].name},
            protect=True,
        )
        for p in (cluster.ceph.guest_pool, cluster.ceph.kubernetes_pool)
    ]


def _workloads(stack: str, cluster: Cluster) -> list[Resource]:
    """As components/workloads.py declares them: owner labelled homelab/ha, a PDB for each."""
    out = []
    for w in cluster.workloads:
        key = f"{w.namespace}-{w.name}"
        selector = {"app.kubernetes.io/name": w.name, "app.kubernetes.io/instance": key}
        labels = {**selector, "app.kubernetes.io/part-of": "homelab"}
        meta = {"name": w.name, "namespace": w.namespace, "labels": {**labels, rules.HA_LABEL: str(w.ha).lower()}}
        template = {"metadata": {"labels": labels}, "spec": {"containers": [{"name": w.name, "image": w.image}]}}
        spec: dict[str, Any] = {"replicas": w.replicas, "selector": {"matchLabels": selector}, "template": template}
        if w.volumes:
            spec["volumeClaimTemplates"] = [
                {"metadata": {"name": v.name}, "spec": {"resources": {"requests": {"storage": f"{v.size_gib}Gi"}}}}
                for v in w.volumes
            ]
            out.append(resource(stack, rules.STATEFUL_SET, key, {"metadata": meta, "spec": spec}, protect=True))
        else:
            out.append(resource(stack, rules.DEPLOYMENT, key, {"metadata": meta, "spec": spec}))
        pdb = {
            "metadata": {"name": w.name, "namespace": w.namespace, "labels": labels},
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector}},
        }
        out.append(resource(stack, rules.PDB, key, pdb))
    return out


def stand_ins(run: ProgramRun, cluster: Cluster) -> list[Resource]:
    """What the layers the program does not declare yet will declare, per the spec."""
    have = {r.type for r in run.resources}
    out: list[Resource] = []
    if not have & set(GUEST_TYPES):
        out += _guests(run.stack, cluster)
    if rules.HA_RESOURCE not in have:
        out += _ha(run.stack, cluster)
    if rules.CEPH_POOL not in have:
        out += _pools(run.stack, cluster)
    if not have & set(WORKLOAD_TYPES):
        out += _workloads(run.stack, cluster)
    return out


def full_stack(stack: str) -> list[Resource]:
    """The shipped stack's resources: the program's, plus stand-ins for layers it lacks so far."""
    run = program(stack)
    return [*run.resources, *stand_ins(run, stack_cluster(stack))]


def _pick(resources: Iterable[Resource], name: str, typ: str | None) -> list[Resource]:
    return [r for r in resources if r.name == name and (typ is None or r.type == typ)]


def named(resources: Iterable[Resource], name: str, typ: str | None = None) -> Resource:
    matches = _pick(resources, name, typ)
    assert len(matches) == 1, f"{len(matches)} resources named {name}"
    return matches[0]


def edit(
    resources: Iterable[Resource],
    name: str,
    set_: dict[str, Any] | None = None,
    typ: str | None = None,
    protect: bool | None = None,
    delete: list[str] | None = None,
) -> list[Resource]:
    """A copy of `resources` with `a.b[0].c` input paths of the one resource `name` (of `typ`) changed."""
    resources = list(resources)
    target = named(resources, name, typ)
    changed = dataclasses.replace(
        target,
        inputs=patched(target.inputs, set_, delete),
        protect=target.protect if protect is None else protect,
    )
    return [changed if r is target else r for r in resources]


def without(resources: Iterable[Resource], name: str, typ: str | None = None) -> list[Resource]:
    resources = list(resources)
    target = named(resources, name, typ)
    return [r for r in resources if r is not target]


def of_type(resources: Iterable[Resource], typ: str) -> list[Resource]:
    return [r for r in resources if r.type == typ]


def config_with(stack: str, data: dict[str, Any]) -> dict[str, str]:
    """The stack's config with another spec (as the engine passes it: a JSON string)."""
    import json

    config = config_for(stack)
    config[CLUSTER_KEY] = json.dumps(data)
    return config
