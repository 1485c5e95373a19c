"""NetworkPolicies for the apps: each reachable as its Services promise, and on nothing else.

k3s enforces NetworkPolicies out of the box: every k3s node runs kube-router's network policy
controller unless the servers pass `--disable-network-policy` (k3s `pkg/agent/run.go`:
`if !nodeConfig.AgentConfig.DisableNPC { netpol.Run(...) }`; `pkg/agent/netpol/netpol.go`), which
`components.k3s.node_config` never sets.

Per app namespace (one `Workloads` declares; k3s's own and the platform's are left alone):
- `default-deny`: every pod of the namespace isolated, for traffic in and out;
- `allow-egress`: DNS to kube-dns (UDP and TCP 53), then any pod of the cluster and any address
  outside it, except the Ceph networks. Apps fetch things (metadata, updates, upstream DNS for
  AdGuard Home) and look at the LAN (Uptime Kuma's checks): a default-deny egress would break them
  for little gain, since what an app could reach inside the cluster is already held by the
  ingress rules of whatever it reaches. No app talks to Ceph itself: volumes are mapped by the
  node's kernel for ceph-csi, whose key lives in the platform's namespace. So the storage networks
  are closed to apps, which keeps a compromised app from probing the monitors and OSDs.

Per workload, wherever it lives (`<name>-ingress`, selecting its pods only): its declared ports
and nothing else. An exposed port is open from anywhere, since LoadBalancer traffic arrives from
the LAN through kube-proxy, with the client's address or (externalTrafficPolicy Cluster) another
node's. An internal port is open to the cluster: any pod, and the pod network's own addresses,
from which a node or a host-network pod reaches a pod on another node (its flannel address, or
kube-proxy's masquerade for a Service). A workload without ports gets a policy with no rule: its
pods take no connections. The kubelet's readiness checks need no rule: traffic from a pod's own
node is always allowed (Kubernetes API, `NetworkPolicySpec.ingress`).

Host-network pods are not subject to NetworkPolicies: kube-router leaves them out
(`pkg/controllers/netpol/utils.go`, `isNetPolActionable`: `!pod.Spec.HostNetwork`), as their
traffic is the node's own. A host-network workload gets no ingress policy, as it would be inert;
every port it opens is on the LAN at its VM's address, which is why the spec makes each one say
`expose: true`. Its namespace still gets the default deny, for any other pod placed there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from ipaddress import IPv4Network

import pulumi
import pulumi_kubernetes as k8s

from components.k3s import CLUSTER_CIDR
from spec.kubernetes import Port, Workload

net = k8s.networking.v1
Meta = k8s.meta.v1.ObjectMetaArgs
Selector = k8s.meta.v1.LabelSelectorArgs

DEFAULT_DENY = "default-deny"
ALLOW_EGRESS = "allow-egress"
# k3s's CoreDNS (its manifests label the pods `k8s-app: kube-dns`), in kube-system; the namespace
# label is the one the API server puts on every namespace.
KUBE_DNS = net.NetworkPolicyPeerArgs(
    namespace_selector=Selector(match_labels={"kubernetes.io/metadata.name": "kube-system"}),
    pod_selector=Selector(match_labels={"k8s-app": "kube-dns"}),
)
DNS_PORTS = [net.NetworkPolicyPortArgs(port=53, protocol="UDP"), net.NetworkPolicyPortArgs(port=53, protocol="TCP")]
ANY_POD = net.NetworkPolicyPeerArgs(namespace_selector=Selector())


def ingress_policy_name(w: Workload) -> str:
    return f"{w.name}-ingress"


def _ports(ports: Sequence[Port]) -> list[net.NetworkPolicyPortArgs]:
    # The container's own port: a Service's traffic reaches the pod after kube-proxy's DNAT.
    return [net.NetworkPolicyPortArgs(port=p.port, protocol=p.protocol) for p in ports]


def ingress_rules(w: Workload, exposed: Sequence[Port]) -> list[net.NetworkPolicyIngressRuleArgs]:
    """What may connect to the workload's pods: the ports on its LoadBalancer (EXPOSED) from
    anywhere (no `from`), its other ports from the cluster, the gateway's pods among it; nothing
    else."""
    internal = [p for p in w.ports if p not in exposed]
    rules: list[net.NetworkPolicyIngressRuleArgs] = []
    if exposed:
        rules.append(net.NetworkPolicyIngressRuleArgs(ports=_ports(exposed)))
    if internal:
        in_cluster = [ANY_POD, net.NetworkPolicyPeerArgs(ip_block=net.IPBlockArgs(cidr=CLUSTER_CIDR))]
        rules.append(net.NetworkPolicyIngressRuleArgs(from_=in_cluster, ports=_ports(internal)))
    return rules


def allow_ingress(
    w: Workload, exposed: Sequence[Port], key: str, selector: Mapping[str, str], opts: pulumi.ResourceOptions
) -> net.NetworkPolicy | None:
    """The workload's ingress policy (see the module docstring); none on the host network."""
    if w.on_host_network:
        return None
    return net.NetworkPolicy(
        f"{key}-ingress",
        net.NetworkPolicyInitArgs(
            metadata=Meta(name=ingress_policy_name(w), namespace=w.namespace),
            spec=net.NetworkPolicySpecArgs(
                pod_selector=Selector(match_labels=dict(selector)),
                policy_types=["Ingress"],
                ingress=ingress_rules(w, exposed),
            ),
        ),
        opts=opts,
    )


def closed_networks(networks: Iterable[IPv4Network]) -> list[str]:
    """The networks apps may not reach, once each, in order."""
    return list(dict.fromkeys(str(n) for n in networks))


def isolate_namespace(
    namespace: str, closed: Sequence[str], opts: pulumi.ResourceOptions
) -> tuple[net.NetworkPolicy, net.NetworkPolicy]:
    """The namespace's default deny and its egress allowance (see the module docstring)."""
    deny = net.NetworkPolicy(
        f"{namespace}-{DEFAULT_DENY}",
        net.NetworkPolicyInitArgs(
            metadata=Meta(name=DEFAULT_DENY, namespace=namespace),
            spec=net.NetworkPolicySpecArgs(pod_selector=Selector(), policy_types=["Ingress", "Egress"]),
        ),
        opts=opts,
    )
    anywhere = net.NetworkPolicyPeerArgs(ip_block=net.IPBlockArgs(cidr="0.0.0.0/0", except_=list(closed) or None))
    egress = net.NetworkPolicy(
        f"{namespace}-{ALLOW_EGRESS}",
        net.NetworkPolicyInitArgs(
            metadata=Meta(name=ALLOW_EGRESS, namespace=namespace),
            spec=net.NetworkPolicySpecArgs(
                pod_selector=Selector(),
                policy_types=["Egress"],
                egress=[
                    # Name resolution first, in its own rule: every app needs it, whatever the
                    # rule after it comes to allow.
                    net.NetworkPolicyEgressRuleArgs(to=[KUBE_DNS], ports=DNS_PORTS),
                    # Pods by selector (what the API defines for pod IPs), and every address by
                    # block: the LAN, the internet, and the Services' backends after kube-proxy.
                    net.NetworkPolicyEgressRuleArgs(to=[ANY_POD, anywhere]),
                ],
            ),
        ),
        opts=opts,
    )
    return deny, egress
