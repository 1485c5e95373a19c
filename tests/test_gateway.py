"""Names and HTTPS: the gateway, its routes and certificates, as the home stack declares them.

Every Gateway API and cert-manager object is checked against its upstream CRD schema, the charts'
values against their own values.schema.json, and the certificate chain is made for real (the
home's CA from tools.make_ca, a leaf as the Certificate asks) and verified for every name with
`cryptography`'s X.509 path validation, which applies the CA's name constraints as browsers do.
"""

from __future__ import annotations

import ipaddress
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pulumi
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from components.certificates import VERSION as CERT_MANAGER_VERSION
from components.dns_names import VERSION as EXTERNAL_DNS_VERSION
from components.gateway import GATEWAY_API_CRDS, TRAEFIK_VERSION
from components.k3s import CLUSTER_CIDR, PROXMOX_NODE_LABEL
from offline.harness import ROOT, Resource, config_for, run_program
from plan.routes import GATEWAY_NAMESPACE, WILDCARD_SECRET, addresses, routes
from policies import tokens
from spec import parse_cluster
from tests.crd_support import installed_crds, problems
from tests.support import (
    cluster_set_up,
    program,
    program_set_up,
    program_with,
    set_up_data,
    stack_cluster,
    stack_data,
)
from tools.make_ca import make_ca

GATEWAY_API = (tokens.GATEWAY, tokens.HTTP_ROUTE)
CERT_MANAGER = (tokens.CLUSTER_ISSUER, tokens.CERTIFICATE)
DNS = (tokens.DNS_ENDPOINT,)
CHART_SCHEMAS = Path(__file__).parent / "chart_schemas"
TLS_CERT = "tls:index/locallySignedCert:LocallySignedCert"
TLS_REQUEST = "tls:index/certRequest:CertRequest"


def of_type(resources: list[Resource], typ: str) -> list[Resource]:
    return [r for r in resources if r.type == typ]


def release_values(name: str) -> dict[str, Any]:
    [release] = [r for r in program("home").of_type(tokens.HELM_RELEASE) if r.name == name]
    values: dict[str, Any] = release.inputs["values"]
    return values


def test_every_web_app_gets_one_https_route_once_its_setup_is_done() -> None:
    run = program_set_up("home")
    found = {
        (r.inputs["metadata"]["namespace"], r.inputs["metadata"]["name"]): r.inputs["spec"]
        for r in of_type(run.resources, tokens.HTTP_ROUTE)
    }
    redirect = found.pop((GATEWAY_NAMESPACE, "https-redirect"))
    assert {host for spec in found.values() for host in spec["hostnames"]} == {
        "adguard.home.arpa",
        "home-assistant.home.arpa",
        "jellyfin.home.arpa",
        "uptime-kuma.home.arpa",
        "whoami.home.arpa",
    }
    assert all(spec["parentRefs"][0]["sectionName"] == "https" for spec in found.values())
    assert redirect["parentRefs"] == [{"name": "homelab", "sectionName": "http"}]
    assert redirect["rules"][0]["filters"][0]["requestRedirect"] == {"scheme": "https", "statusCode": 301}
    # While an app's setup is pending, its first-run page has no name either.
    shipped = {r.inputs["metadata"]["name"] for r in of_type(program("home").resources, tokens.HTTP_ROUTE)}
    assert shipped == {"adguard-home", "whoami", "https-redirect"}


def test_each_route_reaches_a_port_its_service_has_and_web_ports_leave_their_load_balancers() -> None:
    run = program_set_up("home")
    services = {
        (r.inputs["metadata"]["namespace"], r.inputs["metadata"]["name"]): r.inputs["spec"]
        for r in of_type(run.resources, tokens.K8S_SERVICE)
    }
    for route in of_type(run.resources, tokens.HTTP_ROUTE):
        namespace = route.inputs["metadata"]["namespace"]
        for backend in (b for rule in route.inputs["spec"]["rules"] for b in rule.get("backendRefs", [])):
            service = services[(namespace, backend["name"])]
            assert backend["port"] in {p["port"] for p in service["ports"]}, route.name
    balanced = {key: spec for key, spec in services.items() if spec["type"] == "LoadBalancer"}
    # AdGuard Home's DNS keeps its address; no web port is on a LoadBalancer of its own.
    assert list(balanced) == [("dns", "adguard-home")]
    assert {(p["port"], p["protocol"]) for p in balanced[("dns", "adguard-home")]["ports"]} == {
        (53, "UDP"),
        (53, "TCP"),
    }


def test_a_workload_that_says_why_keeps_plain_http_on_its_own_address() -> None:
    data = json.loads(json.dumps(cluster_set_up("home").model_dump(mode="json", exclude_none=True)))
    whoami = next(w for w in data["workloads"] if w["name"] == "whoami")
    whoami["plain_http"] = "an old tablet on the wall that cannot do HTTPS"
    run = program_with("home", data)
    [service] = [r for r in of_type(run.resources, tokens.K8S_SERVICE) if r.name == "apps-whoami"]
    assert service.inputs["spec"]["type"] == "LoadBalancer"
    assert "whoami" not in {r.inputs["metadata"]["name"] for r in of_type(run.resources, tokens.HTTP_ROUTE)}


# --- against the upstream schemas ----------------------------------------------------------


def test_every_gateway_api_and_cert_manager_object_matches_its_crd() -> None:
    run = program_set_up("home")
    found = [r for r in run.resources if r.type in (*GATEWAY_API, *CERT_MANAGER, *DNS)]
    assert {r.type for r in found} == {*GATEWAY_API, *CERT_MANAGER, *DNS}
    for r in found:
        assert problems(r.inputs) == [], r.name


def test_the_crd_schemas_catch_a_misspelt_or_wrong_field() -> None:
    run = program("home")
    [gateway] = [r for r in run.resources if r.type == GATEWAY_API[0]]
    wrong = json.loads(json.dumps(gateway.inputs))
    wrong["spec"]["listeners"][1]["tls"]["mode"] = "Terminated"
    assert any("Terminated" in p for p in problems(wrong))
    [certificate] = [r for r in run.resources if r.type == CERT_MANAGER[1]]
    misspelt = json.loads(json.dumps(certificate.inputs))
    misspelt["spec"]["dnsName"] = misspelt["spec"].pop("dnsNames")
    assert problems(misspelt)


def merged(base: Any, over: Any) -> Any:
    """Helm's merge of values over the chart's defaults: maps merge, anything else replaces."""
    if isinstance(base, dict) and isinstance(over, dict):
        return {k: merged(base.get(k), v) if k in base else v for k, v in over.items()} | {
            k: v for k, v in base.items() if k not in over
        }
    return over


@pytest.mark.parametrize(
    ("chart", "version"),
    [("traefik", TRAEFIK_VERSION), ("cert-manager", CERT_MANAGER_VERSION), ("external-dns", EXTERNAL_DNS_VERSION)],
)
def test_chart_values_pass_the_charts_own_schema(chart: str, version: str) -> None:
    schema = json.loads((CHART_SCHEMAS / f"{chart}-{version}.values.schema.json").read_text())
    defaults = yaml.safe_load((CHART_SCHEMAS / f"{chart}-{version}.values.yaml").read_text())
    values = merged(defaults, release_values(chart))
    jsonschema.validate(values, schema)


def test_the_traefik_schema_refuses_a_value_of_the_wrong_shape() -> None:
    schema = json.loads((CHART_SCHEMAS / f"traefik-{TRAEFIK_VERSION}.values.schema.json").read_text())
    defaults = yaml.safe_load((CHART_SCHEMAS / f"traefik-{TRAEFIK_VERSION}.values.yaml").read_text())
    values = merged(defaults, release_values("traefik"))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(merged(values, {"deployment": {"replicas": "two"}}), schema)


def test_the_gateway_is_ha_on_its_pinned_address() -> None:
    values = release_values("traefik")
    cluster = stack_cluster("home")
    assert cluster.gateway is not None
    assert values["service"]["annotations"] == {tokens.KUBE_VIP_LB_ANNOTATION: str(cluster.gateway.address)}
    assert values["deployment"]["replicas"] >= 2
    hard = [c for c in values["topologySpreadConstraints"] if c["whenUnsatisfiable"] == "DoNotSchedule"]
    assert [c["topologyKey"] for c in hard] == [PROXMOX_NODE_LABEL]
    assert values["podDisruptionBudget"] == {"enabled": True, "maxUnavailable": 1}


# --- the certificates, made and verified ------------------------------------------------------


def issue(
    ca_key: ec.EllipticCurvePrivateKey,
    ca: x509.Certificate,
    dns: list[str],
    ips: list[str] = (),  # type: ignore[assignment]
    hours: int = 2160,
) -> x509.Certificate:
    """A server certificate as an issuer of the chain signs it for DNS and IPS."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in dns]
    names += [x509.IPAddress(ipaddress.ip_address(a)) for a in ips]
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns[0])]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(hours=hours))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )


def verifies(ca: x509.Certificate, leaf: x509.Certificate, name: x509.DNSName | x509.IPAddress) -> bool:
    verifier = PolicyBuilder().store(Store([ca])).build_server_verifier(name)
    try:
        verifier.verify(leaf, [])
    except VerificationError:
        return False
    return True


@pytest.fixture(scope="module")
def home_ca() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    cluster = stack_cluster("home")
    return make_ca(cluster.name, cluster.domain, cluster.networks.lan.cidr)


def test_the_wildcard_certificate_verifies_for_every_apps_name(
    home_ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate],
) -> None:
    ca_key, ca = home_ca
    cluster = cluster_set_up("home")
    [certificate] = [r for r in program("home").resources if r.type == CERT_MANAGER[1]]
    spec = certificate.inputs["spec"]
    assert spec["secretName"] == WILDCARD_SECRET
    assert spec["issuerRef"] == {"kind": "ClusterIssuer", "name": "homelab-ca"}
    leaf = issue(ca_key, ca, spec["dnsNames"])
    hosts = [r.host for r in routes(cluster)]
    assert len(hosts) == 5
    for host in hosts:
        assert verifies(ca, leaf, x509.DNSName(host)), host
    # A name two labels down is not covered, and the CA's constraints keep it from vouching for
    # any other domain, even in a certificate it signed.
    assert not verifies(ca, leaf, x509.DNSName("a.b.home.arpa"))
    elsewhere = issue(ca_key, ca, ["bank.example.com"])
    assert not verifies(ca, elsewhere, x509.DNSName("bank.example.com"))


def test_each_proxmox_node_certificate_verifies_by_name_and_address(
    home_ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate],
) -> None:
    ca_key, ca = home_ca
    run = program("home")
    cluster = stack_cluster("home")
    requests = {r.name.removesuffix("-tls-request"): r.inputs for r in run.resources if r.type == TLS_REQUEST}
    assert set(requests) == {n.name for n in cluster.nodes}
    signed = [r.inputs for r in run.resources if r.type == TLS_CERT]
    assert all(s["validityPeriodHours"] <= 398 * 24 and s["earlyRenewalHours"] > 0 for s in signed)
    for node in cluster.nodes:
        ask = requests[node.name]
        leaf = issue(ca_key, ca, ask["dnsNames"], ask["ipAddresses"], hours=signed[0]["validityPeriodHours"])
        assert verifies(ca, leaf, x509.DNSName(f"{node.name}.home.arpa")), node.name
        assert verifies(ca, leaf, x509.IPAddress(node.address)), node.name
    certificates = [r.inputs for r in run.resources if r.type == "proxmoxve:index/certificateLegacy:CertificateLegacy"]
    assert sorted(c["nodeName"] for c in certificates) == sorted(n.name for n in cluster.nodes)
    assert all(c["overwrite"] is True for c in certificates)


def test_home_assistant_trusts_the_gateways_hops() -> None:
    """Home Assistant refuses a forwarded request from a proxy it does not trust (400): Traefik
    reaches its host-network pod from a pod address or, on another VM, from that VM's address."""
    cluster = stack_cluster("home")
    [ha] = [w for w in cluster.workloads if w.name == "home-assistant"]
    [seed] = [s for s in ha.seed_files if s.path == "/config/configuration.yaml"]
    http = yaml.safe_load(seed.content.replace("!include", ""))["http"]
    trusted = [ipaddress.ip_network(t) for t in http["trusted_proxies"]]
    assert http["use_x_forwarded_for"] is True
    assert cluster.k3s is not None
    hops = [ipaddress.ip_network(CLUSTER_CIDR)]
    hops += [ipaddress.ip_network(str(cluster.guest(g).address)) for g in (*cluster.k3s.servers, *cluster.k3s.agents)]
    for hop in hops:
        assert any(hop.subnet_of(t) for t in trusted), hop  # type: ignore[arg-type]


def test_the_gateway_api_crds_come_from_the_repository_before_traefik_and_the_gateway() -> None:
    run = program("home")
    [crds] = [r for r in run.resources if r.type == tokens.CONFIG_FILE]
    assert crds.inputs["file"] == GATEWAY_API_CRDS and (ROOT / GATEWAY_API_CRDS).is_file()
    [traefik] = [r for r in run.of_type(tokens.HELM_RELEASE) if r.name == "traefik"]
    assert crds.urn in traefik.dependencies
    [gateway] = [r for r in run.resources if r.type == tokens.GATEWAY]
    assert traefik.urn in gateway.dependencies
    # What Traefik 3.7 watches is all there: the kinds it reads, and ReferenceGrants.
    kinds = {c["spec"]["names"]["kind"] for c in installed_crds()}
    assert {"GatewayClass", "Gateway", "HTTPRoute", "GRPCRoute", "ReferenceGrant", "BackendTLSPolicy"} <= kinds


def test_external_dns_writes_the_names_into_adguard_home_through_the_service_that_has_its_api() -> None:
    run = program("home")
    values = release_values("external-dns")
    assert values["sources"] == ["gateway-httproute", "crd"] and values["domainFilters"] == ["home.arpa"]
    assert values["policy"] == "sync" and values["txtOwnerId"] == "home"
    [credentials] = [r for r in run.of_type(tokens.K8S_SECRET) if r.name == "adguard-credentials"]
    url = credentials.inputs["stringData"]["url"]
    # AdGuard Home's web port is behind the gateway, so its API is on the in-cluster Service.
    services = {
        (r.inputs["metadata"]["name"], r.inputs["metadata"]["namespace"]): r.inputs["spec"]
        for r in run.of_type(tokens.K8S_SERVICE)
    }
    assert url == "http://adguard-home-internal.dns.svc:3000/"
    assert 3000 in {p["port"] for p in services[("adguard-home-internal", "dns")]["ports"]}
    assert "stringData" in credentials.secret_paths
    # Each Proxmox node by the name its certificate carries, at its address.
    [nodes] = [r for r in run.resources if r.type == tokens.DNS_ENDPOINT]
    cluster = stack_cluster("home")
    assert {(e["dnsName"], e["targets"][0]) for e in nodes.inputs["spec"]["endpoints"]} == {
        (f"{n.name}.home.arpa", str(n.address)) for n in cluster.nodes
    }


def acme_stack() -> dict[str, Any]:
    """The home stack on a public domain of the owner's, with Let's Encrypt by DNS-01."""
    data = stack_data("home")
    data["domain"] = "lab.example.org"
    data["gateway"] = {"address": "10.0.10.204", "acme": {"email": "owner@example.org"}, "dns_server": "adguard-home"}
    next(w for w in data["workloads"] if w["name"] == "adguard-home")["host"] = "adguard.lab.example.org"
    return data


def test_a_public_domain_gets_lets_encrypt_by_dns01_for_the_apps_and_the_nodes() -> None:
    config = config_for("home", cluster=acme_stack())
    # By address, the API would stop matching the node's certificate once Let's Encrypt's is in.
    with pytest.raises(pulumi.RunError, match=r"names a node by its address, and with gateway.acme"):
        run_program("home", config)
    config["homelab:proxmoxEndpoint"] = "https://pve1.lab.example.org:8006/"
    run = run_program("home", config)
    [issuer] = [r for r in run.resources if r.type == tokens.CLUSTER_ISSUER]
    assert problems(issuer.inputs) == []
    acme = issuer.inputs["spec"]["acme"]
    assert acme["server"] == "https://acme-v02.api.letsencrypt.org/directory"
    assert acme["solvers"][0]["dns01"]["cloudflare"]["apiTokenSecretRef"] == {
        "name": "acme-dns-token",
        "key": "api-token",
    }
    [certificate] = [r for r in run.resources if r.type == tokens.CERTIFICATE]
    assert certificate.inputs["spec"]["dnsNames"] == ["*.lab.example.org", "lab.example.org"]
    assert certificate.inputs["spec"]["issuerRef"]["name"] == "letsencrypt"
    [token] = [r for r in run.of_type(tokens.K8S_SECRET) if r.name == "acme-dns-token"]
    assert "stringData" in token.secret_paths
    # The DNS-01 self-check asks public resolvers: the home's DNS has no TXT record for the challenge.
    assert release_values_of(run, "cert-manager")["dns01RecursiveNameserversOnly"] is True
    # Proxmox orders its own, through its ACME client and the same DNS provider.
    orders = [r.inputs for r in run.resources if r.type == "proxmoxve:acme/certificate:Certificate"]
    assert sorted(o["domains"][0]["domain"] for o in orders) == [
        "pve1.lab.example.org",
        "pve2.lab.example.org",
        "pve3.lab.example.org",
    ]
    [plugin] = [r.inputs for r in run.resources if r.type == "proxmoxve:acme/dns/plugin:Plugin"]
    assert plugin["api"] == "cf" and set(plugin["data"]) == {"CF_Token"}
    assert not [r for r in run.resources if r.type == TLS_CERT]


def release_values_of(run: Any, name: str) -> dict[str, Any]:
    [release] = [r for r in run.of_type(tokens.HELM_RELEASE) if r.name == name]
    values: dict[str, Any] = release.inputs["values"]
    return values


def test_make_ca_writes_the_key_for_the_owner_only_and_never_over_one(tmp_path: Path, capsys: Any) -> None:
    from tools import make_ca as tool

    key = tmp_path / "ca.key"
    assert tool.main(["--stack", "home", "--key-out", str(key)]) == 0
    assert key.stat().st_mode & 0o777 == 0o600
    root = x509.load_pem_x509_certificate(capsys.readouterr().out.encode())
    # What it prints is what the spec accepts as the home's CA.
    from spec.gateway import PrivateCa

    assert PrivateCa(certificate=root.public_bytes(serialization.Encoding.PEM).decode()).problems("home.arpa") == []
    assert PrivateCa(certificate=root.public_bytes(serialization.Encoding.PEM).decode()).problems("other.lan")
    before = key.read_bytes()
    assert tool.main(["--stack", "home", "--key-out", str(key)]) == 1
    assert key.read_bytes() == before


def test_each_listener_is_on_one_of_traefiks_entry_points() -> None:
    """Traefik serves a listener only on the entry point whose address has the listener's port
    (traefik pkg/provider/kubernetes/gateway/kubernetes.go `entryPointName`), not the Service's."""
    values = release_values("traefik")
    entry_points = {values["ports"]["web"]["port"]: "HTTP", values["ports"]["websecure"]["port"]: "HTTPS"}
    [gateway] = [r for r in program("home").resources if r.type == tokens.GATEWAY]
    listeners = {(listener["port"], listener["protocol"]) for listener in gateway.inputs["spec"]["listeners"]}
    assert listeners == set(entry_points.items())
    assert {values["ports"]["web"]["exposedPort"], values["ports"]["websecure"]["exposedPort"]} == {80, 443}


def test_the_preview_lists_what_an_owner_opens() -> None:
    shipped = {a.what: (a.url, a.how) for a in addresses(stack_cluster("home"))}
    assert shipped["whoami"] == ("https://whoami.home.arpa/", "through the gateway")
    assert shipped["adguard-home"][0] == "https://adguard.home.arpa/"
    assert shipped["jellyfin"] == (
        "https://jellyfin.home.arpa/",
        "setup pending: kubectl -n media port-forward svc/jellyfin 8096",
    )
    assert shipped["Proxmox pve2"][0] == "https://pve2.home.arpa:8006/"
    data = set_up_data("home")
    next(w for w in data["workloads"] if w["name"] == "jellyfin")["plain_http"] = "an old TV app without HTTPS"
    kept = {a.what: (a.url, a.how) for a in addresses(parse_cluster(data))}
    assert kept["jellyfin"] == ("http://10.0.10.202:8096/", "plain HTTP: an old TV app without HTTPS")
    assert kept["uptime-kuma"] == ("https://uptime-kuma.home.arpa/", "through the gateway")
    lab = {a.what: a.url for a in addresses(stack_cluster("lab"))}
    assert lab["whoami"] == "http://<pool address>:80/" and lab["Proxmox lab1"] == "https://192.168.100.11:8006/"
