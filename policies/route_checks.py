"""Names and HTTPS judged on what the stack declares.

- `https-routes` (each HTTPRoute): its hosts are one label under the cluster's domain (what the
  gateway's `*.<domain>` certificate covers), it is the route the spec plans for the workload it
  is named after (so a name belongs to one app), it attaches to the gateway's HTTPS listener, and
  it reaches a port the workload's Service has. The gateway's own redirect attaches to the HTTP
  listener and sends every request to HTTPS.
- `https-only` (each Service, and the stack): an exposed HTTP port reaches the LAN through the
  gateway, over TLS, and on no LoadBalancer of its own, unless the workload says why not
  (`plain_http`); every route the spec plans is declared.
- `gateway-address` (the gateway's Helm release): its LoadBalancer address is the spec's, on
  the LAN and outside the pool kube-vip-cloud-provider hands out.
"""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Address

from plan.routes import GATEWAY_NAME, GATEWAY_NAMESPACE, HTTP_LISTENER, HTTPS_LISTENER, Route, routes
from policies.plan_checks import Finding
from policies.props import Declared, as_int, as_str, get, items, k3s_objects_known, k8s_name, known, labels, where
from policies.tokens import HTTP_ROUTE, K8S_SERVICE, KUBE_VIP_LB_ANNOTATION
from spec import Cluster
from spec.gateway import covered

ROUTE_TYPES = (HTTP_ROUTE,)
HTTPS_ONLY_TYPES = (K8S_SERVICE,)
GATEWAY_CHART = "traefik"


def _planned(cluster: Cluster) -> dict[tuple[str, str], Route]:
    return {(r.workload.namespace, r.workload.name): r for r in routes(cluster)}


def _is_redirect(r: Declared) -> bool:
    return any(
        get(f, "type") == "RequestRedirect" and get(f, "requestRedirect", "scheme") == "https"
        for rule in items(get(r.props, "spec", "rules"))
        for f in items(get(rule, "filters"))
    )


def _listeners(r: Declared) -> list[tuple[str | None, str | None, str | None]]:
    return [
        (as_str(get(p, "name")), as_str(get(p, "namespace")), as_str(get(p, "sectionName")))
        for p in items(get(r.props, "spec", "parentRefs"))
    ]


def check_route(r: Declared, cluster: Cluster) -> list[str]:
    name, namespace = k8s_name(r)
    here = where(namespace, name)
    if cluster.gateway is None:
        return [f"{here} is an HTTPRoute, and the spec has no gateway"]
    parents = _listeners(r)
    if namespace == GATEWAY_NAMESPACE and _is_redirect(r):
        if parents != [(GATEWAY_NAME, None, HTTP_LISTENER)]:
            return [f"{here} redirects to HTTPS and must attach to the gateway's {HTTP_LISTENER} listener only"]
        return []
    route = _planned(cluster).get((namespace or "", name))
    if route is None:
        return [
            f"{here} routes for no workload the spec exposes over the gateway (an HTTPRoute is named and "
            "placed after its workload, which has an exposed http port and its setup done)"
        ]
    out: list[str] = []
    if parents != [(GATEWAY_NAME, GATEWAY_NAMESPACE, HTTPS_LISTENER)]:
        out.append(f"{here} must attach to the gateway's {HTTPS_LISTENER} listener only, where TLS ends")
    hosts = [as_str(h) for h in known(get(r.props, "spec", "hostnames"), f"{here}'s hostnames") or []]
    for host in hosts:
        if host is None or not covered(host, cluster.domain):
            out.append(
                f"{here}: host {host} is not one label under {cluster.domain}, which the gateway's certificate "
                f"(*.{cluster.domain}) covers"
            )
    if hosts != [route.host]:
        out.append(f"{here}: hostnames {hosts}, where the spec gives {route.workload.name} the name {route.host}")
    for rule in items(get(r.props, "spec", "rules")):
        for backend in items(get(rule, "backendRefs")):
            service, port = as_str(get(backend, "name")), as_int(get(backend, "port"))
            ports = {p.port for p in route.workload.ports} if service == route.service else set()
            if port not in ports:
                out.append(
                    f"{here} sends to {service}:{port}, which is not a port of {route.workload.name}'s Service "
                    f"{route.service} ({route.port.port})"
                )
    return out


def _http_ports(service: Declared) -> list[str]:
    return [
        str(get(p, "name"))
        for p in items(get(service.props, "spec", "ports"))
        if str(get(p, "name") or "").split("-")[0] == "http"
    ]


def check_https_only(r: Declared, cluster: Cluster) -> list[str]:
    """An HTTP port on a LoadBalancer skips the gateway's TLS: only a workload's `plain_http` says why."""
    if cluster.gateway is None or known(get(r.props, "spec", "type"), f"{r.name}'s type") != "LoadBalancer":
        return []
    name, namespace = k8s_name(r)
    selector = labels(known(get(r.props, "spec", "selector"), f"{r.name}'s selector"))
    owner = next(
        (w for w in cluster.workloads if w.namespace == namespace and selector.get("app.kubernetes.io/name") == w.name),
        None,
    )
    if owner is not None and owner.plain_http is not None:
        return []
    plain = _http_ports(r)
    if not plain:
        return []
    return [
        f"{where(namespace, name)} puts {', '.join(plain)} on the LAN in plain HTTP: web apps are reached through "
        "the gateway over HTTPS; give the workload plain_http with the reason if it must stay so"
    ]


def check_routes_declared(cluster: Cluster, resources: Iterable[Declared]) -> list[Finding]:
    """Every route the spec plans is declared (judged once the k3s objects are known)."""
    planned = _planned(cluster)
    if not planned:
        return []
    declared = [r for r in resources if r.resource_type == HTTP_ROUTE]
    k3s_objects_known(declared, "whether every exposed web app has its route")
    found = {(k8s_name(r)[1] or "", k8s_name(r)[0]) for r in declared}
    return [
        (f"{namespace}/{name} has an exposed HTTP port and no HTTPRoute: the gateway does not reach it", None)
        for (namespace, name) in sorted(planned)
        if (namespace, name) not in found
    ]


def check_gateway_address(r: Declared, cluster: Cluster) -> list[str]:
    if as_str(get(r.props, "chart")) != GATEWAY_CHART:
        return []
    gateway = cluster.gateway
    if gateway is None:
        return [f"{r.name}: the gateway's chart is declared, and the spec has no gateway"]
    raw = known(get(r.props, "values", "service", "annotations", KUBE_VIP_LB_ANNOTATION), f"{r.name}'s address")
    try:
        address = IPv4Address(str(raw))
    except ValueError:
        return [
            f"{r.name}: its Service has no fixed address ({KUBE_VIP_LB_ANNOTATION}: {raw}); every name points at it"
        ]
    out: list[str] = []
    lan, pool = cluster.networks.lan.cidr, cluster.k3s.load_balancer_pool if cluster.k3s else None
    if address != gateway.address:
        out.append(f"{r.name}: its address {address} is not the spec's gateway.address {gateway.address}")
    if address not in lan:
        out.append(f"{r.name}: its address {address} is outside the LAN {lan}")
    if pool is not None and address in pool:
        out.append(
            f"{r.name}: its address {address} is inside k3s.load_balancer_pool ({pool.start}-{pool.end}), which "
            "the cloud provider may hand to another Service first"
        )
    taken = {w.load_balancer_ip: w.name for w in cluster.workloads if w.load_balancer_ip is not None}
    if address in taken:
        out.append(f"{r.name}: its address {address} is pinned by workload {taken[address]} too")
    return out
