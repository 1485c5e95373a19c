"""The certificates: cert-manager keeps the gateway's `*.<domain>` certificate issued and renewed.

The issuer is the spec's (spec/gateway.py):
- `private_ca`: cert-manager's CA issuer, with the owner's root and its key (the secret
  homelab:caPrivateKey) in a Secret of cert-manager's namespace, where a ClusterIssuer reads it;
- `acme`: Let's Encrypt by DNS-01, the TXT record written through the DNS provider's API with
  homelab:acmeDnsToken. DNS-01 needs nothing reachable from the internet, and issues the
  wildcard, so no app's name shows in the public Certificate Transparency logs.

One wildcard certificate rather than one per app: one issuance and one renewal, a single Secret
the gateway serves, and the same for both issuers. Its names are one label under the domain, which
the spec holds every host to.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.stack import secret_config
from plan.platform_load import GATEWAY_STACK, requests
from plan.routes import GATEWAY_NAMESPACE, WILDCARD_SECRET, wildcard
from spec.gateway import ACME_DNS_TOKEN, CA_PRIVATE_KEY
from spec.models import Cluster

NAMESPACE = "cert-manager"
REPOSITORY = "https://charts.jetstack.io"
# renovate: datasource=helm depName=cert-manager registryUrl=https://charts.jetstack.io
VERSION = "v1.21.1"
CA_SECRET = "homelab-ca"
DNS_TOKEN_SECRET = "acme-dns-token"
DNS_TOKEN_KEY = "api-token"
ACME_SERVERS = {
    "production": "https://acme-v02.api.letsencrypt.org/directory",
    "staging": "https://acme-staging-v02.api.letsencrypt.org/directory",
}
# A certificate lives 90 days and is renewed with 30 left: a month for a failed renewal to be
# seen (monitoring's certificate probe) and fixed, Let's Encrypt's own rhythm.
DURATION = "2160h"
RENEW_BEFORE = "720h"

Meta = k8s.meta.v1.ObjectMetaArgs


def issuer_name(cluster: Cluster) -> str:
    assert cluster.gateway is not None
    return CA_SECRET if cluster.gateway.private_ca is not None else "letsencrypt"


def cert_manager_values() -> dict[str, Any]:
    """The chart's values (checked against its values.schema.json in the tests)."""
    return {
        # The CRDs with the release, and kept if it is ever uninstalled: deleting them would
        # delete every Certificate with them.
        "crds": {"enabled": True, "keep": True},
        "resources": requests(GATEWAY_STACK, "cert-manager"),
        "webhook": {"resources": requests(GATEWAY_STACK, "cert-manager-webhook")},
        "cainjector": {"resources": requests(GATEWAY_STACK, "cert-manager-cainjector")},
        # The ACME DNS-01 self-check asks public resolvers, not the home's split DNS, which
        # answers for the domain from AdGuard Home's rewrites and has no TXT record.
        "dns01RecursiveNameservers": "1.1.1.1:53,9.9.9.9:53",
        "dns01RecursiveNameserversOnly": True,
    }


def issuer_spec(cluster: Cluster) -> dict[str, Any]:
    gateway = cluster.gateway
    assert gateway is not None
    if gateway.private_ca is not None:
        return {"ca": {"secretName": CA_SECRET}}
    assert gateway.acme is not None
    return {
        "acme": {
            "email": gateway.acme.email,
            "server": ACME_SERVERS[gateway.acme.server],
            # The ACME account's key, made by cert-manager on first use.
            "privateKeySecretRef": {"name": "letsencrypt-account"},
            "solvers": [
                {"dns01": {"cloudflare": {"apiTokenSecretRef": {"name": DNS_TOKEN_SECRET, "key": DNS_TOKEN_KEY}}}}
            ],
        }
    }


def certificate_spec(cluster: Cluster) -> dict[str, Any]:
    return {
        "secretName": WILDCARD_SECRET,
        "dnsNames": wildcard(cluster.domain),
        "issuerRef": {"kind": "ClusterIssuer", "name": issuer_name(cluster)},
        "duration": DURATION,
        "renewBefore": RENEW_BEFORE,
        # A fresh key at each renewal (cert-manager's default since 1.18, stated here).
        "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
        "usages": ["digital signature", "server auth"],
    }


class Certificates(pulumi.ComponentResource):
    """cert-manager, the spec's issuer, and the gateway's wildcard certificate."""

    def __init__(
        self,
        cluster: Cluster,
        provider: k8s.Provider,
        gateway_namespace: pulumi.Resource,
        after: Sequence[pulumi.Resource] = (),
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("homelab:k3s:Certificates", f"{cluster.name}-certificates", None, opts)
        gateway = cluster.gateway
        assert gateway is not None

        def k8s_opts(*depends_on: pulumi.Resource) -> pulumi.ResourceOptions:
            return pulumi.ResourceOptions(parent=self, provider=provider, depends_on=[*after, *depends_on])

        namespace = k8s.core.v1.Namespace(
            NAMESPACE,
            k8s.core.v1.NamespaceInitArgs(
                metadata=Meta(name=NAMESPACE, labels={"pod-security.kubernetes.io/enforce": "restricted"})
            ),
            opts=k8s_opts(),
        )
        release = k8s.helm.v3.Release(
            "cert-manager",
            k8s.helm.v3.ReleaseArgs(
                chart="cert-manager",
                version=VERSION,
                repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=REPOSITORY),
                name="cert-manager",
                namespace=NAMESPACE,
                values=cert_manager_values(),
            ),
            opts=k8s_opts(namespace),
        )
        if gateway.private_ca is not None:
            # The root and its key, for the CA issuer: the key stays a Pulumi secret.
            key_material: k8s.core.v1.Secret = k8s.core.v1.Secret(
                CA_SECRET,
                k8s.core.v1.SecretInitArgs(
                    metadata=Meta(name=CA_SECRET, namespace=NAMESPACE),
                    type="kubernetes.io/tls",
                    string_data={"tls.crt": gateway.private_ca.certificate, "tls.key": secret_config(CA_PRIVATE_KEY)},
                ),
                opts=k8s_opts(namespace),
            )
        else:
            key_material = k8s.core.v1.Secret(
                DNS_TOKEN_SECRET,
                k8s.core.v1.SecretInitArgs(
                    metadata=Meta(name=DNS_TOKEN_SECRET, namespace=NAMESPACE),
                    type="Opaque",
                    string_data={DNS_TOKEN_KEY: secret_config(ACME_DNS_TOKEN)},
                ),
                opts=k8s_opts(namespace),
            )
        issuer = k8s.apiextensions.CustomResource(
            issuer_name(cluster),
            api_version="cert-manager.io/v1",
            kind="ClusterIssuer",
            metadata=Meta(name=issuer_name(cluster)),
            spec=issuer_spec(cluster),
            opts=k8s_opts(release, key_material),
        )
        self.certificate = k8s.apiextensions.CustomResource(
            "wildcard",
            api_version="cert-manager.io/v1",
            kind="Certificate",
            metadata=Meta(name="wildcard", namespace=GATEWAY_NAMESPACE),
            spec=certificate_spec(cluster),
            opts=k8s_opts(issuer, gateway_namespace),
        )
        self.register_outputs({"issuer": issuer_name(cluster), "names": wildcard(cluster.domain)})
