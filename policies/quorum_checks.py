"""Quorum members as the program declares them: etcd (the k3s servers) and Ceph's monitors.

Counted in what the k3s and Ceph components register as their outputs (the servers they install
as etcd members, the hosts they create monitors on), which are plain values, known in every
preview. The spec refuses even counts too; this judges what was built from it.
"""

from __future__ import annotations

from collections.abc import Iterable

from policies.plan_checks import Finding
from policies.props import Declared, NotKnownYetError, get, known_items
from policies.tokens import CEPH_COMPONENT, K3S_COMPONENT
from spec import Cluster


def _members(resources: list[Declared], typ: str, key: str) -> list[str] | None:
    """The members a component registered, or None when the program declares no such component."""
    found = [r for r in resources if r.resource_type == typ]
    if not found:
        return None
    members: list[str] = []
    for component in found:  # one per stack; a second would add its members to the same quorum
        if key not in component.props:
            raise NotKnownYetError(f"{component.name} has registered no {key} yet")
        members += [str(m) for m in known_items(get(component.props, key), f"{component.name}'s {key}")]
    return members


def _odd(count: int, what: str, why: str) -> list[Finding]:
    if count >= 3 and count % 2 == 1:
        return []
    return [
        (
            f"the program declares {count} {what}: {why} needs an odd number of at least 3 to keep quorum through "
            "a node loss",
            None,
        )
    ]


def check_quorum_members(cluster: Cluster, resources: Iterable[Declared]) -> list[Finding]:
    declared = list(resources)
    findings: list[Finding] = []
    servers = _members(declared, K3S_COMPONENT, "servers")
    if cluster.k3s is not None and servers is None:
        findings.append(("the spec has a k3s section but the program declares no k3s cluster", None))
    if servers is not None:
        findings += _odd(len(servers), "k3s servers (etcd members)", "embedded etcd")
    monitors = _members(declared, CEPH_COMPONENT, "monitors")
    if monitors is None:
        findings.append(("the program declares no Ceph cluster, so it has no monitors", None))
    else:
        findings += _odd(len(monitors), "Ceph monitors", "Ceph's monitor map")
    return findings
