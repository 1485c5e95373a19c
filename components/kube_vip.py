"""kube-vip, as k3s deploys it from its manifests folder on the servers: the API VIP and the
LoadBalancer addresses of Services, both announced by ARP on the LAN.

Two DaemonSets of the same image, with one ServiceAccount and role:
- `kube-vip` on the servers holds the API VIP: one leader among them answers for it, another
  takes over within seconds when it dies (`cp_enable`, leader election on `plndr-cp-lock`).
- `kube-vip-services` on every node announces Service addresses, one election per Service
  (`svc_election`). A Service with `externalTrafficPolicy: Local` is then announced only by a
  node that runs one of its pods (kube-vip pkg/manager/watch_services.go at v0.9.2: endpoints are
  watched for Local services only under services election), so the client's address reaches the
  pod and no packet lands on a node that would drop it. Without it, the API leader answered for
  every Service, whether or not a pod ran there.
"""

from __future__ import annotations

from typing import Any

import yaml

from spec.kubernetes import K3s

API_PORT = 6443
# Both DaemonSets run on a server with the host's network: each needs its own metrics port.
CONTROL_PLANE_METRICS = ":2112"
SERVICES_METRICS = ":2113"

# As kube-vip's own manifest generator writes them for the pinned release (kube-vip
# pkg/kubevip/config_generator.go at v0.9.2, GenerateRole).
RULES: list[dict[str, Any]] = [
    {"apiGroups": [""], "resources": ["services/status"], "verbs": ["update"]},
    {"apiGroups": [""], "resources": ["services", "endpoints"], "verbs": ["list", "get", "watch", "update"]},
    {"apiGroups": [""], "resources": ["nodes"], "verbs": ["list", "get", "watch", "update", "patch"]},
    {
        "apiGroups": ["coordination.k8s.io"],
        "resources": ["leases"],
        "verbs": ["list", "get", "watch", "update", "create"],
    },
    {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "get", "watch", "update"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
]


def kube_vip_version(spec: K3s) -> str:
    """The tag of the pinned image (v0.9.2 in ghcr.io/kube-vip/kube-vip:v0.9.2@sha256:...)."""
    return spec.kube_vip_image.split("@", 1)[0].rsplit(":", 1)[1]


def _daemonset(spec: K3s, name: str, env: dict[str, str], servers_only: bool) -> dict[str, Any]:
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/version": kube_vip_version(spec)}
    pod: dict[str, Any] = {
        "tolerations": [
            {"operator": "Exists", "effect": "NoSchedule"},
            {"operator": "Exists", "effect": "NoExecute"},
        ],
        "hostNetwork": True,
        "serviceAccountName": "kube-vip",
        "priorityClassName": "system-node-critical",
        "containers": [
            {
                "name": "kube-vip",
                "image": spec.kube_vip_image,
                "imagePullPolicy": "IfNotPresent",
                "args": ["manager"],
                "env": [
                    {"name": "vip_nodename", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                    *({"name": k, "value": v} for k, v in env.items()),
                ],
                "securityContext": {"capabilities": {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]}},
                "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}},
            }
        ],
    }
    if servers_only:
        pod = {"nodeSelector": {"node-role.kubernetes.io/control-plane": "true"}, **pod}
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": "kube-system", "labels": labels},
        "spec": {
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "template": {"metadata": {"labels": labels}, "spec": pod},
        },
    }


def kube_vip_documents(spec: K3s) -> list[dict[str, Any]]:
    """The RBAC and both DaemonSets."""
    labels = {"app.kubernetes.io/name": "kube-vip", "app.kubernetes.io/version": kube_vip_version(spec)}
    arp = {"vip_arp": "true", "vip_interface": spec.vip_interface, "vip_subnet": "32", "dns_mode": "first"}
    # Seconds: a new leader holds an address about 5 s after the old one stops renewing.
    timing = {"vip_leaseduration": "5", "vip_renewdeadline": "3", "vip_retryperiod": "1"}
    control_plane = {
        **arp,
        "port": str(API_PORT),
        "cp_enable": "true",
        "cp_namespace": "kube-system",
        "svc_enable": "false",
        "vip_leaderelection": "true",
        "vip_leasename": "plndr-cp-lock",
        **timing,
        "address": str(spec.api_vip),
        "prometheus_server": CONTROL_PLANE_METRICS,
    }
    services = {
        **arp,
        "cp_enable": "false",
        "svc_enable": "true",
        "svc_election": "true",
        **timing,
        "prometheus_server": SERVICES_METRICS,
    }
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "kube-vip", "namespace": "kube-system", "labels": labels},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "system:kube-vip-role", "labels": labels},
            "rules": RULES,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "system:kube-vip-binding", "labels": labels},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:kube-vip-role"},
            "subjects": [{"kind": "ServiceAccount", "name": "kube-vip", "namespace": "kube-system"}],
        },
        # Only servers answer for the API address.
        _daemonset(spec, "kube-vip", control_plane, servers_only=True),
        _daemonset(spec, "kube-vip-services", services, servers_only=False),
    ]


class _PlainDumper(yaml.SafeDumper):
    """Writes a shared value out in full each time, not as a YAML anchor and alias."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def kube_vip_manifest(spec: K3s) -> str:
    return yaml.dump_all(kube_vip_documents(spec), Dumper=_PlainDumper, sort_keys=False)
