"""The names-and-HTTPS policies, in-process on the home stack, each broken one rule at a time."""

from __future__ import annotations

import copy

from offline.engine import Shape
from offline.harness import Resource, config_for
from offline.policy_run import Violation, run_policies
from policies import tokens
from tests.policy_support import config_with, edit, full_stack, without
from tests.support import program_set_up, set_up_data

NAMES = ("https-routes", "https-only", "every-app-routed", "gateway-address")


def verdicts(resources: list[Resource], config: dict[str, str] | None = None) -> list[Violation]:
    found = run_policies(resources, config or config_for("home"))
    return [v for v in found if v.policy in NAMES and not v.not_known_yet]


def messages(resources: list[Resource], config: dict[str, str] | None = None) -> list[str]:
    return [f"{v.policy}: {v.message}" for v in verdicts(resources, config)]


def set_up_stack(shape: Shape = Shape.FIRST) -> tuple[list[Resource], dict[str, str]]:
    return list(program_set_up("home", shape).resources), config_with("home", set_up_data("home"))


def test_the_shipped_stack_passes_first_and_after_setup() -> None:
    assert messages(full_stack("home")) == []
    assert messages(full_stack("home", Shape.UPDATE)) == []
    resources, config = set_up_stack(Shape.UPDATE)
    assert messages(resources, config) == []


def test_a_host_outside_the_domain_or_off_plan_is_refused() -> None:
    stack = edit(full_stack("home"), "apps-whoami-route", {"spec.hostnames": ["whoami.example.com"]})
    found = messages(stack)
    assert any("host whoami.example.com is not one label under home.arpa" in m for m in found), found
    assert any("where the spec gives whoami the name whoami.home.arpa" in m for m in found), found


def test_a_route_to_a_port_the_service_lacks_is_refused() -> None:
    stack = edit(full_stack("home"), "dns-adguard-home-route", {"spec.rules[0].backendRefs[0].port": 80})
    assert messages(stack) == [
        "https-routes: dns/adguard-home sends to adguard-home-internal:80, which is not a port of adguard-home's "
        "Service adguard-home-internal (3000)"
    ]


def test_a_route_on_the_plain_http_listener_is_refused() -> None:
    stack = edit(full_stack("home"), "apps-whoami-route", {"spec.parentRefs[0].sectionName": "http"})
    assert messages(stack) == [
        "https-routes: apps/whoami must attach to the gateway's https listener only, where TLS ends"
    ]
    redirect = edit(full_stack("home"), "https-redirect", {"spec.parentRefs[0].sectionName": "https"})
    assert messages(redirect) == [
        "https-routes: gateway/https-redirect redirects to HTTPS and must attach to the gateway's http listener only"
    ]


def test_a_web_port_on_its_own_load_balancer_is_refused_unless_the_workload_says_why() -> None:
    stack = edit(
        full_stack("home"),
        "apps-whoami",
        {"spec.type": "LoadBalancer"},
        typ=tokens.K8S_SERVICE,
    )
    assert messages(stack) == [
        "https-only: apps/whoami puts http on the LAN in plain HTTP: web apps are reached through the gateway over "
        "HTTPS; give the workload plain_http with the reason if it must stay so"
    ]
    data = set_up_data("home")
    next(w for w in data["workloads"] if w["name"] == "whoami")["plain_http"] = "a wall tablet without a CA store"
    assert messages(without(stack, "apps-whoami-route"), config_with("home", data)) == []


def test_a_missing_route_is_found_once_the_cluster_answers() -> None:
    resources, config = set_up_stack(Shape.UPDATE)
    stack = without(resources, "media-jellyfin-route")
    assert messages(stack, config) == [
        "every-app-routed: media/jellyfin has an exposed HTTP port and no HTTPRoute: the gateway does not reach it"
    ]


def gateway_at(address: str) -> list[Resource]:
    """The home stack with the gateway's Service annotated with ADDRESS (the annotation's key holds
    dots, which `edit`'s paths cannot name)."""
    stack = full_stack("home")
    [release] = [r for r in stack if r.type == tokens.HELM_RELEASE and r.name == "traefik"]
    values = copy.deepcopy(release.inputs["values"])
    values["service"]["annotations"][tokens.KUBE_VIP_LB_ANNOTATION] = address
    return edit(stack, "traefik", {"values": values}, typ=tokens.HELM_RELEASE)


def test_the_gateways_address_must_be_the_specs_outside_the_pool() -> None:
    stack = gateway_at("10.0.10.215")
    assert messages(stack) == [
        "gateway-address: traefik: its address 10.0.10.215 is not the spec's gateway.address 10.0.10.204",
        "gateway-address: traefik: its address 10.0.10.215 is inside k3s.load_balancer_pool (10.0.10.210-"
        "10.0.10.229), which the cloud provider may hand to another Service first",
    ]
    off_lan = messages(gateway_at("192.168.1.4"))
    assert "gateway-address: traefik: its address 192.168.1.4 is outside the LAN 10.0.10.0/24" in off_lan
    assert "gateway-address: traefik: its address 10.0.10.200 is pinned by workload adguard-home too" in messages(
        gateway_at("10.0.10.200")
    )
