"""The metrics stack judged on what the stack declares (`monitoring-coverage`): every port a
LoadBalancer puts on the LAN is probed, and the Watchdog reaches a dead-man's switch, so the
owner hears of a dead address and of a dead alerting pipeline alike."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from plan.monitoring import ALERTMANAGER, BLACKBOX, VMALERT, VMSINGLE, probe_target
from policies.plan_checks import Finding
from policies.props import Declared, get, k3s_objects_known
from policies.tokens import HELM_RELEASE, K8S_SERVICE, KUBE_VIP_LB_ANNOTATION
from spec import Cluster

RELEASES = (VMSINGLE, VMALERT, ALERTMANAGER, BLACKBOX)


def probed(vmsingle: Declared) -> set[str]:
    jobs = get(vmsingle.props, "values", "server", "scrape", "config", "scrape_configs") or []
    return {
        target
        for job in jobs
        if isinstance(job, Mapping) and job.get("metrics_path") == "/probe"
        for static in job.get("static_configs", [])
        for target in static.get("targets", [])
    }


def has_watchdog(vmalert: Declared) -> bool:
    groups: Any = get(vmalert.props, "values", "server", "config", "alerts", "groups") or []
    return any(
        rule.get("alert") == "Watchdog" and rule.get("expr") == "vector(1)"
        for group in groups
        if isinstance(group, Mapping)
        for rule in group.get("rules", [])
        if isinstance(rule, Mapping)
    )


def check_monitoring_coverage(cluster: Cluster, resources: Iterable[Declared]) -> list[Finding]:
    if cluster.monitoring is None:
        return []
    declared = list(resources)
    releases = {r.name: r for r in declared if r.resource_type == HELM_RELEASE and r.name in RELEASES}
    missing = [name for name in RELEASES if name not in releases]
    if missing:
        return [(f"the spec has monitoring, and the stack declares no {', '.join(missing)}", None)]
    services = [r for r in declared if r.resource_type == K8S_SERVICE]
    k3s_objects_known([*releases.values(), *services], "the probes of the exposed addresses")
    findings: list[Finding] = []
    targets = probed(releases[VMSINGLE])
    for service in services:
        if get(service.props, "spec", "type") != "LoadBalancer":
            continue
        name, namespace = get(service.props, "metadata", "name"), get(service.props, "metadata", "namespace")
        address = get(service.props, "metadata", "annotations", KUBE_VIP_LB_ANNOTATION)
        for port in get(service.props, "spec", "ports") or []:
            if port.get("protocol", "TCP") != "TCP":
                continue
            number = int(port["port"])  # a float over gRPC (protobuf Struct numbers)
            target = probe_target(name, namespace, address, number)
            if target not in targets:
                findings.append(
                    (
                        f"{namespace}/{name} puts TCP {number} on the LAN and nothing probes {target}: "
                        "the owner would not hear that it stopped answering",
                        service.urn,
                    )
                )
    if not has_watchdog(releases[VMALERT]):
        findings.append(
            (
                "vmalert has no Watchdog alert (expr vector(1)): without it the dead-man's switch hears nothing "
                "and cannot tell a dead alerting pipeline from a quiet one",
                releases[VMALERT].urn,
            )
        )
    return findings
