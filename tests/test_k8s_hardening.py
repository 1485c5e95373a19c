"""The pod network closed but for what each app's Services promise, pods without capabilities they
do not need, traffic between the VMs encrypted, and the cloud provider reading only its own
ConfigMap.

NetworkPolicies are judged by what they let through, with the API's semantics (a pod selected by
no policy takes anything; one selected by some takes what one of their rules allows), for a LAN
client, a pod of another app and a node's own address in the pod network."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest
import yaml

from components import k3s
from components.k3s import node_config
from components.workloads import BUILTIN_NAMESPACES
from offline.harness import ProgramRun, Resource
from plan.routes import GATEWAY_NAMESPACE, lan_ports
from policies import tokens
from spec import parse_cluster
from spec.kubernetes import K3s, Workload
from spec.models import Cluster
from tests.netpol import INTERNET, KUBE_DNS_POD, LAN_CLIENT, NODE_IN_POD_NETWORK, OTHER_APP, Endpoint, allowed, selects
from tests.support import (
    STACKS,
    cluster_set_up,
    patched,
    program,
    program_set_up,
    program_with,
    script_param,
    set_up_data,
    stack_cluster,
)
from tests.test_workloads import kube_version, manifest, owner

NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
ROLE = "kubernetes:rbac.authorization.k8s.io/v1:Role"
ROLE_BINDING = "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding"
CLUSTER_ROLE = "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole"
CLUSTER_ROLE_BINDING = "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding"
PLATFORM_NAMESPACES = {"ceph-csi-rbd"}
# Pod Security Standards, baseline: the only capabilities a container may add.
BASELINE_CAPABILITIES = {
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
}
SERVER_ONLY = {
    "cluster-init",
    "tls-san",
    "disable",
    "etcd-snapshot-schedule-cron",
    "etcd-snapshot-retention",
    "flannel-backend",
    "secrets-encryption",
}
PROBE_PORTS = [22, 53, 80, 443, 1900, 3000, 3001, 5353, 8080, 8096, 8123, 9100, 10250]


# --- helpers -----------------------------------------------------------------------------------


def network_policies(run: ProgramRun) -> list[dict[str, Any]]:
    return [r.inputs for r in run.of_type(NETWORK_POLICY)]


def app_namespaces(cluster: Cluster) -> set[str]:
    """The namespaces Workloads declares: its apps', less k3s's own and the platform's."""
    return {w.namespace for w in cluster.workloads} - BUILTIN_NAMESPACES - PLATFORM_NAMESPACES


def pod_of(run: ProgramRun, w: Workload) -> Endpoint:
    labels = owner(run, w).inputs["spec"]["template"]["metadata"]["labels"]
    return Endpoint("10.42.3.3", w.namespace, labels)


def spec_of(cluster: Cluster) -> K3s:
    assert cluster.k3s is not None
    return cluster.k3s


def with_more_workloads() -> tuple[ProgramRun, Cluster]:
    """The home stack with an internal port on Jellyfin and an app that has no port at all."""
    data = set_up_data("home")
    jellyfin = next(i for i, w in enumerate(data["workloads"]) if w["name"] == "jellyfin")
    ports = [*data["workloads"][jellyfin]["ports"], {"name": "metrics", "port": 9100}]
    worker = {"name": "worker", "namespace": "jobs", "image": "example/worker:1.0@sha256:" + "0" * 64, "replicas": 2}
    with_worker = patched(data, {"workloads": [*data["workloads"], worker]})
    changed = patched(with_worker, {f"workloads[{jellyfin}].ports": ports})
    return program_with("home", changed), parse_cluster(changed)


# Traefik's pod, in the gateway's namespace.
GATEWAY_POD = Endpoint("10.42.4.4", GATEWAY_NAMESPACE, {"app.kubernetes.io/name": "traefik"})


# --- network policies --------------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_every_app_namespace_denies_by_default(stack: str) -> None:
    run, cluster = program(stack), stack_cluster(stack)
    policies = network_policies(run)
    namespaces = app_namespaces(cluster)
    assert namespaces
    for namespace in namespaces:
        stranger = Endpoint("10.42.9.9", namespace, {"app.kubernetes.io/name": "not-declared"})
        for port in PROBE_PORTS:
            for source in (LAN_CLIENT, OTHER_APP, NODE_IN_POD_NETWORK):
                assert not allowed(policies, "Ingress", stranger, source, port, "TCP"), (namespace, port, source)
    # k3s's own namespaces and the platform's are left as they are.
    touched = {p["metadata"]["namespace"] for p in policies}
    assert not touched & (BUILTIN_NAMESPACES | PLATFORM_NAMESPACES)


@pytest.mark.parametrize("stack", STACKS)
def test_each_workload_takes_its_exposed_ports_from_anywhere_and_nothing_else(stack: str) -> None:
    run, cluster = program_set_up(stack), cluster_set_up(stack)
    policies = network_policies(run)
    for w in cluster.workloads:
        if w.host_network:
            continue  # not subject to NetworkPolicies (test below)
        pod = pod_of(run, w)
        declared = {(p.port, p.protocol) for p in w.ports}
        on_lan = lan_ports(cluster, w)
        for p in w.ports:
            assert p.expose, "the shipped stacks expose every port; internal ones are tested below"
            # A web port is reached through the gateway: from its pods, never from the LAN itself.
            sources = (
                (LAN_CLIENT, OTHER_APP, NODE_IN_POD_NETWORK) if p in on_lan else (GATEWAY_POD, NODE_IN_POD_NETWORK)
            )
            for source in sources:
                assert allowed(policies, "Ingress", pod, source, p.port, p.protocol), (w.name, p.name, source)
            if p not in on_lan:
                assert not allowed(policies, "Ingress", pod, LAN_CLIENT, p.port, p.protocol), (w.name, p.name)
        for port in PROBE_PORTS:
            for protocol in ("TCP", "UDP"):
                if (port, protocol) in declared:
                    continue
                for source in (LAN_CLIENT, OTHER_APP, NODE_IN_POD_NETWORK):
                    assert not allowed(policies, "Ingress", pod, source, port, protocol), (w.name, port, protocol)


def test_an_internal_port_is_open_to_the_cluster_only_and_a_portless_app_to_nothing() -> None:
    run, cluster = with_more_workloads()
    policies = network_policies(run)
    jellyfin = next(w for w in cluster.workloads if w.name == "jellyfin")
    pod = pod_of(run, jellyfin)
    assert allowed(policies, "Ingress", pod, GATEWAY_POD, 8096, "TCP")
    assert allowed(policies, "Ingress", pod, OTHER_APP, 9100, "TCP")
    assert allowed(policies, "Ingress", pod, NODE_IN_POD_NETWORK, 9100, "TCP")
    assert not allowed(policies, "Ingress", pod, LAN_CLIENT, 9100, "TCP")
    assert not allowed(policies, "Ingress", pod, OTHER_APP, 9100, "UDP")
    worker = pod_of(run, next(w for w in cluster.workloads if w.name == "worker"))
    for port in PROBE_PORTS:
        for source in (LAN_CLIENT, OTHER_APP, NODE_IN_POD_NETWORK):
            assert not allowed(policies, "Ingress", worker, source, port, "TCP")
    assert "jobs" in app_namespaces(cluster)


def test_a_host_network_workload_gets_no_policy_that_would_pretend_to_hold_it() -> None:
    run, cluster = program_set_up("home"), cluster_set_up("home")
    [assistant] = [w for w in cluster.workloads if w.host_network]
    labels = pod_of(run, assistant).labels
    ingress = [
        p
        for p in network_policies(run)
        if p["metadata"]["namespace"] == assistant.namespace and p["spec"]["podSelector"].get("matchLabels")
    ]
    assert not [p for p in ingress if selects(p["spec"]["podSelector"], labels)]
    # Its namespace still isolates any other pod placed there.
    stranger = Endpoint("10.42.9.9", assistant.namespace, {"app.kubernetes.io/name": "other"})
    assert not allowed(network_policies(run), "Ingress", stranger, LAN_CLIENT, 8123, "TCP")


@pytest.mark.parametrize("stack", STACKS)
def test_apps_resolve_names_and_reach_the_lan_and_internet_but_not_ceph(stack: str) -> None:
    run, cluster = program(stack), stack_cluster(stack)
    policies = network_policies(run)
    ceph = cluster.networks.ceph
    for w in cluster.workloads:
        if w.host_network:
            continue
        pod = pod_of(run, w)
        assert allowed(policies, "Egress", pod, KUBE_DNS_POD, 53, "UDP")
        assert allowed(policies, "Egress", pod, KUBE_DNS_POD, 53, "TCP")
        assert allowed(policies, "Egress", pod, INTERNET, 443, "TCP")
        assert allowed(policies, "Egress", pod, LAN_CLIENT, 80, "TCP")
        assert allowed(policies, "Egress", pod, OTHER_APP, 3001, "TCP")  # another app, if it takes it
        for network in (ceph.public, ceph.cluster):
            monitor = Endpoint(str(next(network.hosts())))
            for port in (3300, 6789, 6800):
                assert not allowed(policies, "Egress", pod, monitor, port, "TCP"), (w.name, monitor)


@pytest.mark.parametrize("stack", STACKS)
def test_policies_and_roles_pass_kubernetes_validate_strict(stack: str) -> None:
    run, spec = program(stack), spec_of(stack_cluster(stack))
    objects = [r for r in run.resources if r.type in (NETWORK_POLICY, ROLE, ROLE_BINDING, CLUSTER_ROLE)]
    assert len([r for r in objects if r.type == NETWORK_POLICY]) >= 3
    for resource in objects:
        kubernetes_validate.validate(manifest(resource), kube_version(spec), strict=True)


# --- pod security ------------------------------------------------------------------------------


def containers(obj: Resource) -> list[dict[str, Any]]:
    pod = obj.inputs["spec"]["template"]["spec"]
    return [*pod["containers"], *pod.get("initContainers", [])]


@pytest.mark.parametrize("stack", STACKS)
def test_every_container_drops_its_capabilities_and_cannot_gain_more(stack: str) -> None:
    run, cluster = program(stack), stack_cluster(stack)
    for w in cluster.workloads:
        obj = owner(run, w)
        assert obj.inputs["spec"]["template"]["spec"]["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for c in containers(obj):
            context = c["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, (w.name, c["name"])
            assert context["capabilities"]["drop"] == ["ALL"], (w.name, c["name"])
            # Whatever comes back, the namespace's enforced level admits: baseline, or privileged
            # on the host network (Home Assistant's NET_RAW, as the spec names it).
            allowed = BASELINE_CAPABILITIES | ({"NET_RAW"} if w.host_network else set())
            assert set(context["capabilities"].get("add", [])) <= allowed, (w.name, c["name"])


def test_a_port_53_app_keeps_net_bind_service_and_a_high_port_app_does_not() -> None:
    run, cluster = program("home"), stack_cluster("home")

    def added(name: str) -> set[str]:
        [app] = owner(run, next(w for w in cluster.workloads if w.name == name)).inputs["spec"]["template"]["spec"][
            "containers"
        ]
        return set(app["securityContext"]["capabilities"].get("add", []))

    assert "NET_BIND_SERVICE" in added("adguard-home")  # DNS on 53, as root
    assert "NET_BIND_SERVICE" in added("whoami")  # port 80
    assert "NET_BIND_SERVICE" not in added("jellyfin")  # 8096
    # The seed copy (AdGuard Home's init container) binds nothing.
    adguard = owner(run, next(w for w in cluster.workloads if w.name == "adguard-home"))
    [seed] = adguard.inputs["spec"]["template"]["spec"]["initContainers"]
    assert "add" not in seed["securityContext"]["capabilities"]


@pytest.mark.parametrize("stack", STACKS)
def test_app_namespaces_enforce_baseline_and_warn_at_restricted(stack: str) -> None:
    run, cluster = program_set_up(stack), cluster_set_up(stack)
    namespaces = {
        r.inputs["metadata"]["name"]: r.inputs["metadata"]["labels"] for r in run.of_type(tokens.K8S_NAMESPACE)
    }
    for name in app_namespaces(cluster):
        on_host = any(w.host_network for w in cluster.workloads if w.namespace == name)
        expected = ("privileged", "baseline") if on_host else ("baseline", "restricted")
        labels = namespaces[name]
        assert labels["pod-security.kubernetes.io/enforce"] == expected[0], name
        assert labels["pod-security.kubernetes.io/warn"] == labels["pod-security.kubernetes.io/audit"] == expected[1]


# --- k3s ---------------------------------------------------------------------------------------


def install_config(run: ProgramRun, guest: str) -> tuple[str, dict[str, Any]]:
    """The config file a guest's install writes: its text and what k3s reads from it."""
    text = script_param(run.named(f"{guest}-k3s").inputs["create"], "K3S_CONFIG")
    return text, yaml.safe_load(text)


@pytest.mark.parametrize("stack", STACKS)
def test_servers_encrypt_pod_traffic_and_agents_carry_no_server_flag(stack: str) -> None:
    run, spec = program(stack), spec_of(stack_cluster(stack))
    for server in spec.servers:
        _, config = install_config(run, server)
        assert config["flannel-backend"] == "wireguard-native", server
        # From every server's first start: a value all servers share, never added later.
        assert config["secrets-encryption"] is True, server
    for agent in spec.agents:
        _, config = install_config(run, agent)
        assert not SERVER_ONLY & set(config), (agent, SERVER_ONLY & set(config))


def test_an_agent_restarts_when_the_servers_change_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    # The install script restarts k3s when the config file's text changes: an agent, which learns
    # the backend from its server at start only, must see its file change with the servers'.
    spec = spec_of(stack_cluster("home"))
    before = node_config(spec, "k3s-agent-1", "10.0.10.51", "agent")
    monkeypatch.setattr(k3s, "FLANNEL_BACKEND", "vxlan")
    after = node_config(spec, "k3s-agent-1", "10.0.10.51", "agent")
    assert before != after
    assert yaml.safe_load(before) == yaml.safe_load(after)  # still no flag of its own


# --- the cloud provider's rights ---------------------------------------------------------------


def can(run: ProgramRun, account: str, verb: str, resource: str, namespace: str, name: str) -> bool:
    """What RBAC grants the kube-system ServiceAccount ACCOUNT on one named object."""
    subject = {"kind": "ServiceAccount", "name": account, "namespace": "kube-system"}
    roles = {
        (r.type, r.inputs["metadata"].get("namespace"), r.inputs["metadata"]["name"]): r.inputs
        for r in run.resources
        if r.type in (ROLE, CLUSTER_ROLE)
    }
    for binding in run.resources:
        if binding.type not in (ROLE_BINDING, CLUSTER_ROLE_BINDING) or subject not in binding.inputs["subjects"]:
            continue
        bound_namespace = binding.inputs["metadata"].get("namespace")
        if bound_namespace is not None and bound_namespace != namespace:
            continue
        ref = binding.inputs["roleRef"]
        role = roles[
            (
                ROLE if ref["kind"] == "Role" else CLUSTER_ROLE,
                bound_namespace if ref["kind"] == "Role" else None,
                ref["name"],
            )
        ]
        for rule in role["rules"]:
            if (
                "" in rule["apiGroups"]
                and resource in rule["resources"]
                and (verb in rule["verbs"] or "*" in rule["verbs"])
                and ("resourceNames" not in rule or name in rule["resourceNames"])
            ):
                return True
    return False


@pytest.mark.parametrize("stack", STACKS)
def test_the_cloud_provider_reads_its_own_config_map_and_no_other(stack: str) -> None:
    run = program(stack)
    account = "kube-vip-cloud-provider"
    [pool] = [r for r in run.of_type(tokens.K8S_CONFIG_MAP) if "range-global" in r.inputs.get("data", {})]
    namespace, name = pool.inputs["metadata"]["namespace"], pool.inputs["metadata"]["name"]
    assert (namespace, name) == ("kube-system", "kubevip")
    assert can(run, account, "get", "configmaps", namespace, name)
    for verb in ("list", "watch", "create", "update", "patch", "delete"):
        assert not can(run, account, verb, "configmaps", namespace, name), verb
    assert not can(run, account, "get", "configmaps", namespace, "extension-apiserver-authentication")
    assert not can(run, account, "get", "configmaps", "default", name)
    # What it still needs to hand out addresses.
    assert can(run, account, "update", "services/status", "apps", "whoami")
    assert can(run, account, "list", "services", "apps", "whoami")
