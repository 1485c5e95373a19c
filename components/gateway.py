"""The one way in for the web apps: a Gateway API gateway on a pinned LAN address, over HTTPS.

Traefik, with its Kubernetes Gateway provider, over Envoy Gateway: one process per replica is
both the controller and the proxy (Envoy Gateway runs a controller and an Envoy fleet beside
it), in a fraction of the memory, and it is what k3s itself ships (disabled here so that its
version and settings are the spec's). ingress-nginx is retired and left out. The routes are
Gateway API objects, so another implementation could take them over unchanged.

- The Service is a LoadBalancer on `gateway.address` (kube-vip), ports 80 and 443.
- `gateway.replicas` replicas, never two on one Proxmox host, and a PodDisruptionBudget that lets
  a drain take one at a time: a node's loss or maintenance leaves one serving.
- Listener `https` (443) terminates TLS for `*.<domain>` with the certificate cert-manager keeps
  in `wildcard-tls` (components/certificates.py); listener `http` (80) only redirects to HTTPS.
- Each app's HTTPRoute lives in its own namespace and points at its Service (plan/routes.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.k3s import PROXMOX_NODE_LABEL
from plan.platform_load import GATEWAY_STACK, requests
from plan.routes import (
    GATEWAY_NAME,
    GATEWAY_NAMESPACE,
    HTTP_LISTENER,
    HTTPS_LISTENER,
    WILDCARD_SECRET,
    Route,
    routes,
)
from policies.tokens import KUBE_VIP_LB_ANNOTATION
from spec.models import Cluster

TRAEFIK_REPOSITORY = "https://traefik.github.io/charts"
# renovate: datasource=helm depName=traefik registryUrl=https://traefik.github.io/charts
TRAEFIK_VERSION = "41.3.0"
GATEWAY_CLASS = "traefik"
# The Gateway API CRDs, standard channel, at the version Traefik 3.7 implements: Traefik's chart
# stopped shipping them (traefik-helm-chart README, "Gateway API CRDs"), so they are installed
# here from the file vendored in the repository, which the tests validate against.
# The path is the project's own (Pulumi runs the program in the project's folder), so it is the
# same input from every checkout.
GATEWAY_API_CRDS = "manifests/gateway-api-v1.5.1-standard-install.yaml"
# Traefik's entry points inside the pod. A Gateway listener names the entry point's own port,
# not the Service's: traefik pkg/provider/kubernetes/gateway/kubernetes.go `entryPointName`
# matches a listener to the entry point whose address ends in ":<listener port>".
WEB_PORT = 8000
WEBSECURE_PORT = 8443
# The chart's pod selector (traefik-helm-chart traefik/templates/_helpers.tpl `traefik.labelselector`:
# the chart's name, and `<release>-<namespace>` as the instance).
TRAEFIK_LABELS = {"app.kubernetes.io/name": "traefik", "app.kubernetes.io/instance": f"traefik-{GATEWAY_NAMESPACE}"}

Meta = k8s.meta.v1.ObjectMetaArgs


def traefik_values(cluster: Cluster) -> dict[str, Any]:
    """The chart's values (checked against the chart's values.schema.json in the tests)."""
    gateway = cluster.gateway
    assert gateway is not None
    return {
        "deployment": {"replicas": gateway.replicas},
        # Routes come from Gateway API objects only: no Ingress, no Traefik CRDs, no dashboard.
        "providers": {
            # The Gateway's status carries the address, which external-dns publishes each route's
            # name at (external-dns source/gateway.go reads a Gateway's status.addresses). The
            # spec's address, not the Service's: known before kube-vip has announced it
            # (traefik kubernetes.go `gatewayAddresses`: a set IP comes first).
            "kubernetesGateway": {
                "enabled": True,
                "statusAddress": {"ip": str(gateway.address), "service": {"enabled": False}},
            },
            "kubernetesCRD": {"enabled": False},
            "kubernetesIngress": {"enabled": False},
        },
        # The GatewayClass comes with the chart; the Gateway is declared below, where the policy
        # pack and the CRD schema see it.
        "gatewayClass": {"enabled": True, "name": GATEWAY_CLASS},
        "gateway": {"enabled": False},
        "ingressRoute": {"dashboard": {"enabled": False}},
        "ports": {
            "web": {"port": WEB_PORT, "exposedPort": 80},
            "websecure": {"port": WEBSECURE_PORT, "exposedPort": 443},
        },
        "service": {"type": "LoadBalancer", "annotations": {KUBE_VIP_LB_ANNOTATION: str(gateway.address)}},
        # Never two replicas on one Proxmox host (hard), then on one VM (soft); a dead host's
        # tainted nodes do not count as empty domains.
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": PROXMOX_NODE_LABEL,
                "whenUnsatisfiable": "DoNotSchedule",
                "labelSelector": {"matchLabels": TRAEFIK_LABELS},
                "nodeTaintsPolicy": "Honor",
            },
            {
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": TRAEFIK_LABELS},
                "nodeTaintsPolicy": "Honor",
            },
        ],
        "podDisruptionBudget": {"enabled": True, "maxUnavailable": 1},
        "resources": requests(GATEWAY_STACK, "traefik"),
    }


def gateway_spec(cluster: Cluster) -> dict[str, Any]:
    """The Gateway: HTTPS for every name under the domain, HTTP only to redirect."""
    return {
        "gatewayClassName": GATEWAY_CLASS,
        "listeners": [
            {
                "name": HTTP_LISTENER,
                "protocol": "HTTP",
                "port": WEB_PORT,
                # Only the redirect, which lives beside the Gateway, attaches here.
                "allowedRoutes": {"namespaces": {"from": "Same"}},
            },
            {
                "name": HTTPS_LISTENER,
                "protocol": "HTTPS",
                "port": WEBSECURE_PORT,
                "hostname": f"*.{cluster.domain}",
                "tls": {"mode": "Terminate", "certificateRefs": [{"kind": "Secret", "name": WILDCARD_SECRET}]},
                "allowedRoutes": {"namespaces": {"from": "All"}},
            },
        ],
    }


def redirect_spec() -> dict[str, Any]:
    """Plain HTTP, for any name, answered with a permanent redirect to the same URL over HTTPS
    (port 443: the scheme's own, Gateway API HTTPRequestRedirectFilter)."""
    return {
        "parentRefs": [{"name": GATEWAY_NAME, "sectionName": HTTP_LISTENER}],
        "rules": [
            {"filters": [{"type": "RequestRedirect", "requestRedirect": {"scheme": "https", "statusCode": 301}}]}
        ],
    }


def route_spec(route: Route) -> dict[str, Any]:
    """An app's route: its name, over the HTTPS listener, to its Service's port."""
    return {
        "parentRefs": [{"name": GATEWAY_NAME, "namespace": GATEWAY_NAMESPACE, "sectionName": HTTPS_LISTENER}],
        "hostnames": [route.host],
        "rules": [{"backendRefs": [{"name": route.service, "port": route.port.port}]}],
    }


class HttpsGateway(pulumi.ComponentResource):
    """Traefik on the gateway's address, the Gateway, the HTTP redirect and every app's route."""

    def __init__(
        self,
        cluster: Cluster,
        provider: k8s.Provider,
        after: Sequence[pulumi.Resource] = (),
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("homelab:k3s:HttpsGateway", f"{cluster.name}-gateway", None, opts)

        def k8s_opts(*depends_on: pulumi.Resource) -> pulumi.ResourceOptions:
            return pulumi.ResourceOptions(parent=self, provider=provider, depends_on=[*after, *depends_on])

        self.namespace = k8s.core.v1.Namespace(
            GATEWAY_NAMESPACE,
            k8s.core.v1.NamespaceInitArgs(
                # Traefik's pods run as a non-root user with nothing added: restricted admits them.
                metadata=Meta(name=GATEWAY_NAMESPACE, labels={"pod-security.kubernetes.io/enforce": "restricted"})
            ),
            opts=k8s_opts(),
        )
        crds = k8s.yaml.v2.ConfigFile(
            "gateway-api-crds", k8s.yaml.v2.ConfigFileArgs(file=GATEWAY_API_CRDS), opts=k8s_opts()
        )
        self.traefik = k8s.helm.v3.Release(
            "traefik",
            k8s.helm.v3.ReleaseArgs(
                chart="traefik",
                version=TRAEFIK_VERSION,
                repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=TRAEFIK_REPOSITORY),
                name="traefik",
                namespace=GATEWAY_NAMESPACE,
                values=traefik_values(cluster),
            ),
            opts=k8s_opts(self.namespace, crds),
        )
        self.gateway = k8s.apiextensions.CustomResource(
            GATEWAY_NAME,
            api_version="gateway.networking.k8s.io/v1",
            kind="Gateway",
            metadata=Meta(name=GATEWAY_NAME, namespace=GATEWAY_NAMESPACE),
            spec=gateway_spec(cluster),
            opts=k8s_opts(self.traefik),
        )
        k8s.apiextensions.CustomResource(
            "https-redirect",
            api_version="gateway.networking.k8s.io/v1",
            kind="HTTPRoute",
            metadata=Meta(name="https-redirect", namespace=GATEWAY_NAMESPACE),
            spec=redirect_spec(),
            opts=k8s_opts(self.gateway),
        )
        self.routes: dict[str, str] = {}
        for route in routes(cluster):
            w = route.workload
            k8s.apiextensions.CustomResource(
                f"{w.namespace}-{w.name}-route",
                api_version="gateway.networking.k8s.io/v1",
                kind="HTTPRoute",
                metadata=Meta(name=w.name, namespace=w.namespace),
                spec=route_spec(route),
                opts=k8s_opts(self.gateway),
            )
            self.routes[w.name] = f"https://{route.host}/"
        self.register_outputs(
            {"address": str(cluster.gateway.address) if cluster.gateway else None, "urls": self.routes}
        )
