"""The names in the home's DNS: external-dns writes every route's host into AdGuard Home.

external-dns (its own chart) watches the HTTPRoutes (`gateway-httproute`: each route's hosts at
the address in its Gateway's status, which Traefik sets to the gateway's: components/gateway.py)
and a DNSEndpoint naming each Proxmox node (`crd`), and writes them to AdGuard Home through
muhlba91's webhook provider as filtering rules `|<host>^$dnsrewrite=NOERROR;A;<address>`
(external-dns-provider-adguard README). AdGuard Home keeps those rules in its configuration, on
its Ceph volume: a name answers as long as AdGuard Home does, wherever it runs after a node's
loss, and external-dns being down only delays a new name.

- `policy: sync`: a route that goes takes its name with it.
- `domainFilters: [<domain>]`: only names under the cluster's domain are external-dns's. The
  provider takes every rule of its own format as its own (its README, "Rule Ownership"); other
  rules of the owner's (blocklists, `||ads.example^`) are left alone.
- `registry: txt` with the cluster's name as owner: a TXT rule beside each name says it is this
  cluster's, so a second cluster writing to the same AdGuard Home leaves it alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.stack import secret_config
from plan.platform_load import GATEWAY_STACK, requests
from plan.routes import node_names, service_name
from spec.gateway import DNS_SERVER_PASSWORD
from spec.models import Cluster

NAMESPACE = "external-dns"
REPOSITORY = "https://kubernetes-sigs.github.io/external-dns/"
# renovate: datasource=helm depName=external-dns registryUrl=https://kubernetes-sigs.github.io/external-dns/
VERSION = "1.21.1"
ADGUARD_WEBHOOK = "ghcr.io/muhlba91/external-dns-provider-adguard:v11.1.3"
CREDENTIALS = "adguard-credentials"
# What Pod Security's restricted level asks of a container; the chart sets it for external-dns's
# own container, and leaves the webhook's empty.
RESTRICTED = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "runAsUser": 65532,
    "runAsGroup": 65532,
    "capabilities": {"drop": ["ALL"]},
}

Meta = k8s.meta.v1.ObjectMetaArgs


def adguard_url(cluster: Cluster) -> str:
    """AdGuard Home's API inside the cluster: the Service that holds its web port."""
    gateway = cluster.gateway
    assert gateway is not None and gateway.dns_server is not None
    server = next(w for w in cluster.workloads if w.name == gateway.dns_server)
    port = server.http_port
    assert port is not None  # spec.checks: the DNS server has an HTTP port
    return f"http://{service_name(cluster, server, port)}.{server.namespace}.svc:{port.port}/"


def from_credentials(key: str) -> dict[str, Any]:
    return {"valueFrom": {"secretKeyRef": {"name": CREDENTIALS, "key": key}}}


def external_dns_values(cluster: Cluster) -> dict[str, Any]:
    """The chart's values (checked against its values.schema.json in the tests)."""
    repository, tag = ADGUARD_WEBHOOK.rsplit(":", 1)
    return {
        "provider": {
            "name": "webhook",
            "webhook": {
                "image": {"repository": repository, "tag": tag},
                "env": [
                    {"name": "ADGUARD_URL", **from_credentials("url")},
                    {"name": "ADGUARD_USER", **from_credentials("user")},
                    {"name": "ADGUARD_PASSWORD", **from_credentials("password")},
                    {"name": "DRY_RUN", "value": "false"},
                ],
                "resources": requests(GATEWAY_STACK, "external-dns-adguard"),
                "securityContext": RESTRICTED,
            },
        },
        "sources": ["gateway-httproute", "crd"],
        "policy": "sync",
        "registry": "txt",
        "txtOwnerId": cluster.name,
        "domainFilters": [cluster.domain],
        "interval": "1m",
        "resources": requests(GATEWAY_STACK, "external-dns"),
    }


def node_endpoints(cluster: Cluster) -> dict[str, Any]:
    """A DNSEndpoint's spec: each Proxmox node by name (its certificate's), at its LAN address."""
    names = node_names(cluster)
    return {
        "endpoints": [
            {"dnsName": names[n.name], "recordType": "A", "targets": [str(n.address)], "recordTTL": 300}
            for n in cluster.nodes
        ]
    }


class DnsNames(pulumi.ComponentResource):
    """external-dns with the AdGuard Home webhook, and the Proxmox nodes' names."""

    def __init__(
        self,
        cluster: Cluster,
        provider: k8s.Provider,
        after: Sequence[pulumi.Resource] = (),
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("homelab:k3s:DnsNames", f"{cluster.name}-dns-names", None, opts)
        gateway = cluster.gateway
        assert gateway is not None and gateway.dns_server is not None

        def k8s_opts(*depends_on: pulumi.Resource) -> pulumi.ResourceOptions:
            return pulumi.ResourceOptions(parent=self, provider=provider, depends_on=[*after, *depends_on])

        namespace = k8s.core.v1.Namespace(
            NAMESPACE,
            k8s.core.v1.NamespaceInitArgs(
                metadata=Meta(name=NAMESPACE, labels={"pod-security.kubernetes.io/enforce": "restricted"})
            ),
            opts=k8s_opts(),
        )
        credentials = k8s.core.v1.Secret(
            CREDENTIALS,
            k8s.core.v1.SecretInitArgs(
                metadata=Meta(name=CREDENTIALS, namespace=NAMESPACE),
                type="Opaque",
                string_data={
                    "url": adguard_url(cluster),
                    "user": gateway.dns_server_user,
                    "password": secret_config(DNS_SERVER_PASSWORD),
                },
            ),
            opts=k8s_opts(namespace),
        )
        # Its chart brings the DNSEndpoint CRD.
        release = k8s.helm.v3.Release(
            "external-dns",
            k8s.helm.v3.ReleaseArgs(
                chart="external-dns",
                version=VERSION,
                repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=REPOSITORY),
                name="external-dns",
                namespace=NAMESPACE,
                values=external_dns_values(cluster),
            ),
            opts=k8s_opts(namespace, credentials),
        )
        k8s.apiextensions.CustomResource(
            "proxmox-nodes",
            api_version="externaldns.k8s.io/v1alpha1",
            kind="DNSEndpoint",
            metadata=Meta(name="proxmox-nodes", namespace=NAMESPACE),
            spec=node_endpoints(cluster),
            opts=k8s_opts(release),
        )
        self.register_outputs({"dns_server": gateway.dns_server, "names": sorted(node_names(cluster).values())})
