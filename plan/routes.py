"""Which app is reached at which name, and what stays on a LoadBalancer address of its own.

With a gateway in the spec, every workload's exposed HTTP port (`Workload.http_port`) is reached
at `https://<host>` through the gateway, once its first-run setup is done, unless the workload
says why it stays on plain HTTP (`plain_http`). Such a port then is on no LoadBalancer: the
gateway reaches it inside the cluster, and the LAN reaches it only over HTTPS. Every other
exposed port (AdGuard Home's DNS on 53) keeps the workload's own address.

Pure functions of the spec: the components declare what this says, the policy pack and the
tests judge it.
"""

from __future__ import annotations

from dataclasses import dataclass

from spec.gateway import host_for
from spec.kubernetes import Port, Workload
from spec.models import Cluster

# The gateway's two listeners (components/gateway.py) and the certificate's Secret.
HTTPS_LISTENER = "https"
HTTP_LISTENER = "http"
GATEWAY_NAMESPACE = "gateway"
GATEWAY_NAME = "homelab"
WILDCARD_SECRET = "wildcard-tls"


@dataclass(frozen=True)
class Route:
    """One app's name: `https://<host>` goes to `service`:`port.port` in `workload.namespace`."""

    workload: Workload
    host: str
    port: Port
    service: str


def host_of(cluster: Cluster, w: Workload) -> str:
    return host_for(w.name, w.host, cluster.domain)


def routed_port(cluster: Cluster, w: Workload) -> Port | None:
    """The workload's port that the gateway reaches now, if any."""
    if cluster.gateway is None or w.setup_pending or w.plain_http is not None:
        return None
    return w.http_port


def lan_ports(cluster: Cluster, w: Workload) -> list[Port]:
    """The ports on the workload's own LoadBalancer address: the exposed ones, once setup is
    done, but the one the gateway reaches."""
    routed = routed_port(cluster, w)
    return [p for p in w.on_the_lan if p != routed]


def service_name(cluster: Cluster, w: Workload, port: Port) -> str:
    """The Service that holds PORT (components/workloads.py): `<name>` while the workload has no
    LoadBalancer or PORT is on it, `<name>-internal` for the other ports of one that has."""
    lan = lan_ports(cluster, w)
    return w.name if not lan or port in lan else f"{w.name}-internal"


def routes(cluster: Cluster) -> list[Route]:
    out: list[Route] = []
    for w in cluster.workloads:
        port = routed_port(cluster, w)
        if port is not None:
            out.append(Route(w, host_of(cluster, w), port, service_name(cluster, w, port)))
    return out


def wildcard(domain: str) -> list[str]:
    """What the gateway's certificate names: every host one label under the domain."""
    return [f"*.{domain}", domain]


def node_names(cluster: Cluster) -> dict[str, str]:
    """The name each Proxmox node's certificate carries: `<node>.<domain>`. Not the bare node
    name: a CA whose name constraints permit the domain makes a certificate naming anything
    outside it invalid as a whole (RFC 5280, 4.2.1.10)."""
    return {n.name: f"{n.name}.{cluster.domain}" for n in cluster.nodes}


@dataclass(frozen=True)
class Address:
    """Where an owner opens one thing of the cluster: its URL, and how it got there."""

    what: str
    url: str
    how: str


def addresses(cluster: Cluster) -> list[Address]:
    """What an owner opens after `pulumi up`: each app's web page (through the gateway, on its own
    address in plain HTTP, or not yet on the LAN), and each Proxmox node's UI."""
    out: list[Address] = []
    for w in cluster.workloads:
        port = w.http_port
        if port is None:
            continue
        if w.setup_pending:
            url = f"https://{host_of(cluster, w)}/" if cluster.gateway and not w.plain_http else "–"
            out.append(
                Address(w.name, url, f"setup pending: kubectl -n {w.namespace} port-forward svc/{w.name} {port.port}")
            )
        elif routed_port(cluster, w) is not None:
            out.append(Address(w.name, f"https://{host_of(cluster, w)}/", "through the gateway"))
        else:
            why = f"plain HTTP: {w.plain_http}" if w.plain_http else "plain HTTP (no gateway in the spec)"
            if w.load_balancer_ip is None:
                where = "<pool address>"
                why += f"; kubectl -n {w.namespace} get svc {w.name} shows it"
            else:
                where = str(w.load_balancer_ip)
            out.append(Address(w.name, f"http://{where}:{port.port}/", why))
    names = node_names(cluster) if cluster.gateway is not None else {}
    for n in cluster.nodes:
        url = f"https://{names[n.name]}:8006/" if n.name in names else f"https://{n.address}:8006/"
        how = "certificate from the gateway's issuer" if names else "the cluster's own CA"
        out.append(Address(f"Proxmox {n.name}", url, how))
    return out
