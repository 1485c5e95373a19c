"""A small NetworkPolicy evaluator for tests: what a set of policies lets through, with the API's
semantics (a pod selected by no policy takes anything; one selected by some takes what one of
their rules allows)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from ipaddress import IPv4Network, ip_address
from typing import Any

from components.k3s import CLUSTER_CIDR


@dataclass(frozen=True)
class Endpoint:
    """Something that sends or receives traffic: a pod (namespace and labels) or a bare address."""

    ip: str
    namespace: str | None = None
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def is_pod(self) -> bool:
        return self.namespace is not None


LAN_CLIENT = Endpoint("10.0.10.77")
# A node's flannel address: what a node or a host-network pod sends from to a pod elsewhere.
NODE_IN_POD_NETWORK = Endpoint(str(next(IPv4Network(CLUSTER_CIDR).hosts())))
OTHER_APP = Endpoint("10.42.7.9", "elsewhere", {"app.kubernetes.io/name": "other"})
KUBE_DNS_POD = Endpoint("10.42.0.5", "kube-system", {"k8s-app": "kube-dns"})
INTERNET = Endpoint("1.1.1.1")


def selects(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    assert not (selector or {}).get("matchExpressions"), "the evaluator reads matchLabels only"
    return all(labels.get(k) == v for k, v in (selector or {}).get("matchLabels", {}).items())


def _namespace_labels(namespace: str) -> dict[str, str]:
    return {"kubernetes.io/metadata.name": namespace}


def _peer_matches(peer: dict[str, Any], other: Endpoint, policy_namespace: str) -> bool:
    if "ipBlock" in peer:
        block = peer["ipBlock"]
        address = ip_address(other.ip)
        return address in IPv4Network(block["cidr"]) and not any(
            address in IPv4Network(e) for e in block.get("except", [])
        )
    if not other.is_pod:
        return False
    assert other.namespace is not None
    if "namespaceSelector" in peer:
        if not selects(peer["namespaceSelector"], _namespace_labels(other.namespace)):
            return False
    elif other.namespace != policy_namespace:
        return False
    return "podSelector" not in peer or selects(peer["podSelector"], other.labels)


def _port_matches(ports: list[dict[str, Any]] | None, port: int, protocol: str) -> bool:
    if not ports:
        return True
    return any(p.get("port") in (None, port) and p.get("protocol", "TCP") == protocol for p in ports)


def allowed(
    policies: Iterable[dict[str, Any]], direction: str, pod: Endpoint, other: Endpoint, port: int, protocol: str
) -> bool:
    """Whether POD takes (direction Ingress) or sends (Egress) traffic from or to OTHER on PORT."""
    selecting = [
        p
        for p in policies
        if p["metadata"]["namespace"] == pod.namespace
        and selects(p["spec"]["podSelector"], pod.labels)
        and direction in p["spec"].get("policyTypes", ["Ingress"])
    ]
    if not selecting:
        return True
    key, peers = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    for policy in selecting:
        for rule in policy["spec"].get(key, []):
            if not _port_matches(rule.get("ports"), port, protocol):
                continue
            if not rule.get(peers) or any(_peer_matches(peer, other, pod.namespace or "") for peer in rule[peers]):
                return True
    return False
