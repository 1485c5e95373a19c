"""k3s on the guests, as the engine would see it, and the install script's decisions under stubs."""

from __future__ import annotations

import re
from pathlib import Path

import kubernetes_validate
import pytest

from components.k3s import (
    PROXMOX_NODE_LABEL,
    K3sPlacementError,
    check_server_spread,
    cordoned,
)
from components.kube_vip import kube_vip_documents
from offline.engine import Shape
from offline.harness import UNKNOWN, ProgramRun, Resource, config_for, run_program
from policies import tokens
from spec.kubernetes import K3s
from spec.models import Cluster
from tests.shell import run_with_stubs
from tests.support import STACKS, patched, program, program_with, stack_cluster, stack_data

K8S_PROVIDER = "pulumi:providers:kubernetes"
PARAM = re.compile(r"^(?P<name>[A-Z][A-Z0-9_]*)=(?P<value>.*)$", re.MULTILINE)


def spec_of(cluster: Cluster) -> K3s:
    assert cluster.k3s is not None
    return cluster.k3s


def kube_version(spec: K3s) -> str:
    """`v1.33.5+k3s1` -> `1.33`, the schema version kubernetes-validate checks against."""
    return ".".join(spec.version.removeprefix("v").split(".")[:2])


def install(run: ProgramRun, guest: str) -> Resource:
    return run.named(f"{guest}-k3s")


def urn(run: ProgramRun, name: str, typ: str = tokens.REMOTE_COMMAND) -> str:
    return next(r.urn for r in run.resources if r.name == name and r.type == typ)


def params(script: str) -> dict[str, str]:
    """The one-line `NAME=value` parameters remote.script puts before a script body."""
    return {m["name"]: m["value"].strip("'") for m in PARAM.finditer(script)}


@pytest.mark.parametrize("stack", STACKS)
def test_servers_run_on_three_different_proxmox_hosts(stack: str) -> None:
    run, spec = program(stack), spec_of(stack_cluster(stack))
    hosts = {r.name: r.inputs["nodeName"] for r in run.of_type(tokens.VM)}
    server_hosts = [hosts[s] for s in spec.servers]
    assert len(server_hosts) == 3
    assert len(set(server_hosts)) == len(server_hosts), server_hosts
    # Each node's label names the host its VM is on: what the workloads spread across. Only the
    # label command sets it: k3s would put a label from its own config back on every restart.
    for name in [*spec.servers, *spec.agents]:
        label = f"{PROXMOX_NODE_LABEL}={hosts[name]}"
        assert f"LABEL={label}" in run.named(f"{name}-k3s-label").inputs["create"]
        assert PROXMOX_NODE_LABEL not in install(run, name).inputs["create"]


@pytest.mark.parametrize("stack", STACKS)
def test_first_server_starts_etcd_and_the_others_join_after_it_one_at_a_time(stack: str) -> None:
    run, cluster = program(stack), stack_cluster(stack)
    spec = spec_of(cluster)
    first, *others = spec.servers
    assert params(install(run, first).inputs["create"])["ROLE"] == "server-init"
    token = urn(run, f"{cluster.name}-k3s-token")
    assert install(run, first).urn in run.named(f"{cluster.name}-k3s-token").dependencies
    previous = install(run, first)
    for server in others:
        joined = install(run, server)
        assert params(joined.inputs["create"])["ROLE"] == "server-join"
        assert previous.urn in joined.dependencies, f"{server} must join after {previous.name}"
        assert token in joined.dependencies
        previous = joined
    for agent in spec.agents:
        joined = install(run, agent)
        assert params(joined.inputs["create"])["ROLE"] == "agent"
        assert {install(run, s).urn for s in spec.servers} <= set(joined.dependencies)
    # Every install waits for its own VM.
    for name in [*spec.servers, *spec.agents]:
        assert urn(run, name, tokens.VM) in install(run, name).dependencies


@pytest.mark.parametrize("stack", STACKS)
def test_version_is_pinned_and_an_upgrade_reruns_the_install(stack: str) -> None:
    run, spec = program(stack), spec_of(stack_cluster(stack))
    for name in [*spec.servers, *spec.agents]:
        inputs = install(run, name).inputs
        assert params(inputs["create"])["VERSION"] == spec.version
        assert inputs["triggers"][0] == spec.version
        assert "delete" not in inputs  # neither a replacement nor a destroy uninstalls k3s


def test_a_rebuilt_vm_reruns_its_k3s_install_and_label() -> None:
    # A VM created anew gets a new MAC: its install and label commands then run again. In a
    # preview of the built stack each VM's first NIC has the MAC Proxmox gave it.
    run = run_program("home", config_for("home"), shape=Shape.UPDATE)
    spec = spec_of(stack_cluster("home"))
    for name in [*spec.servers, *spec.agents]:
        vm_id = stack_cluster("home").guest(name).vm_id
        mac = f"BC:24:11:{vm_id // 256:02X}:{vm_id % 256:02X}:00"
        assert install(run, name).inputs["triggers"] == [spec.version, mac]
        assert run.named(f"{name}-k3s-label").inputs["triggers"][1] == mac


def test_before_the_vms_exist_their_macs_are_unknown_not_empty() -> None:
    # A first preview cannot know the MACs Proxmox will give: the triggers say so, never "".
    run = run_program("home", config_for("home"), shape=Shape.FIRST)
    spec = spec_of(stack_cluster("home"))
    for name in [*spec.servers, *spec.agents]:
        assert install(run, name).inputs["triggers"] == [spec.version, UNKNOWN]


@pytest.mark.parametrize("stack", STACKS)
def test_join_token_is_a_secret_on_stdin_never_in_a_script(stack: str) -> None:
    run, cluster = program(stack), stack_cluster(stack)
    spec = spec_of(cluster)
    token = run.named(f"{cluster.name}-k3s-token")
    assert "stdout" in token.additional_secret_outputs
    assert token.inputs["logging"] == "stderr"  # the token never reaches the engine's log
    assert "stdin" not in install(run, spec.servers[0]).inputs
    for name in [*spec.servers[1:], *spec.agents]:
        joined = install(run, name)
        assert "stdin" in joined.secret_paths
        # Known at preview: the script text carries no secret, so it is shellchecked as it runs.
        assert joined.inputs["create"] != UNKNOWN
        assert "create" not in joined.secret_paths


@pytest.mark.parametrize("stack", STACKS)
def test_kubeconfig_is_a_secret_that_points_at_the_api_vip(stack: str) -> None:
    run, cluster = program(stack, Shape.UPDATE), stack_cluster(stack)
    spec = spec_of(cluster)
    read = run.named(f"{cluster.name}-kubeconfig")
    assert "stdout" in read.additional_secret_outputs
    assert read.inputs["logging"] == "stderr"
    assert params(read.inputs["create"])["API_VIP"] == str(spec.api_vip)
    # Read from a fixed server, never from whoever answers at the VIP.
    assert read.inputs["connection"]["host"] == str(cluster.guest(spec.servers[0]).address)
    # Read again on an upgrade, which restarts k3s and so renews its client certificate.
    assert read.inputs["triggers"] == [spec.version]
    # Read once the whole cluster is up, so nothing using it races the joins.
    assert {install(run, n).urn for n in [*spec.servers, *spec.agents]} <= set(read.dependencies)
    provider = next(r for r in run.of_type(K8S_PROVIDER))
    assert "kubeconfig" in provider.secret_paths
    assert read.urn in provider.dependencies


@pytest.mark.parametrize("stack", STACKS)
def test_guests_are_reached_as_the_cloud_init_user_checking_their_host_key(stack: str) -> None:
    # A built stack's preview: the host keys are the key commands' outputs, known by then.
    run, cluster = program(stack, Shape.UPDATE), stack_cluster(stack)
    spec = spec_of(cluster)
    for name in [*spec.servers, *spec.agents]:
        connection = install(run, name).inputs["connection"]
        assert connection["host"] == str(cluster.guest(name).address)
        assert connection["user"] == cluster.access.user
        # The key the VM holds, read through Proxmox from the first node (vm-host-key.sh).
        key = run.named(f"{name}-host-key")
        assert connection["hostKey"] == key.outputs["stdout"].strip()
        assert key.inputs["connection"]["host"] == str(cluster.nodes[0].address)
        assert "connection" in install(run, name).secret_paths  # it carries the private key
    # In a first preview the key is not known yet, and neither is the connection as a whole.
    assert program(stack).named(f"{spec.servers[0]}-k3s").inputs["connection"] == UNKNOWN


@pytest.mark.parametrize("stack", STACKS)
def test_kube_vip_manifest_is_valid_and_on_every_server_only(stack: str) -> None:
    run, spec = program(stack), spec_of(stack_cluster(stack))
    for doc in kube_vip_documents(spec):
        kubernetes_validate.validate(doc, kube_version(spec), strict=True)
    daemonsets = {d["metadata"]["name"]: d for d in kube_vip_documents(spec) if d["kind"] == "DaemonSet"}
    assert set(daemonsets) == {"kube-vip", "kube-vip-services"}

    def env_of(name: str) -> dict[str, str]:
        pod = daemonsets[name]["spec"]["template"]["spec"]
        container = pod["containers"][0]
        assert container["image"] == spec.kube_vip_image
        return {e["name"]: e.get("value") for e in container["env"]}

    # The API VIP: on the servers only, one leader among them.
    cp = env_of("kube-vip")
    assert daemonsets["kube-vip"]["spec"]["template"]["spec"]["nodeSelector"] == {
        "node-role.kubernetes.io/control-plane": "true"
    }
    assert cp["address"] == str(spec.api_vip) and cp["vip_interface"] == spec.vip_interface
    assert cp["vip_arp"] == cp["vip_leaderelection"] == cp["cp_enable"] == "true" and cp["svc_enable"] == "false"
    # Service addresses: every node, one election per Service, so a Local Service is announced
    # where its pod runs.
    svc = env_of("kube-vip-services")
    assert "nodeSelector" not in daemonsets["kube-vip-services"]["spec"]["template"]["spec"]
    assert svc["svc_enable"] == svc["svc_election"] == "true" and svc["cp_enable"] == "false"
    assert "address" not in svc
    assert cp["prometheus_server"] != svc["prometheus_server"]  # both on a server's host network
    for name in spec.servers:
        assert "KUBE_VIP_MANIFEST=" in install(run, name).inputs["create"]
    for name in spec.agents:
        assert "KUBE_VIP_MANIFEST=" not in install(run, name).inputs["create"]
    # The rules kube-vip's generator writes for v0.9.2 (pkg/kubevip/config_generator.go).
    role = next(d for d in kube_vip_documents(spec) if d["kind"] == "ClusterRole")
    granted = {(r["apiGroups"][0], res, verb) for r in role["rules"] for res in r["resources"] for verb in r["verbs"]}
    assert ("", "pods", "list") in granted and ("", "services/status", "update") in granted
    assert ("coordination.k8s.io", "leases", "create") in granted and len(role["rules"]) == 6


def test_servers_sharing_a_host_are_refused() -> None:
    check_server_spread(["a", "b", "c"], {"a": "pve1", "b": "pve2", "c": "pve3"})
    with pytest.raises(K3sPlacementError, match=r"k3s.servers: a, b on pve1\. Losing that host"):
        check_server_spread(["a", "b", "c"], {"a": "pve1", "b": "pve1", "c": "pve3"})
    with pytest.raises(K3sPlacementError, match="no Proxmox host was chosen for c"):
        check_server_spread(["a", "b", "c"], {"a": "pve1", "b": "pve2"})


def test_program_refuses_servers_pinned_to_one_host() -> None:
    data = stack_data("home")
    servers = [i for i, g in enumerate(data["guests"]) if g["name"].startswith("k3s-server")]
    changes: dict[str, object] = {}
    for i in servers:
        changes[f"guests[{i}].anti_affinity"] = None
    changes[f"guests[{servers[0]}].node"] = "pve1"
    changes[f"guests[{servers[1]}].node"] = "pve1"
    with pytest.raises(K3sPlacementError, match="k3s-server-1, k3s-server-2 on pve1"):
        program_with("home", patched(data, changes))


def test_only_nodes_parked_on_a_host_in_maintenance_are_cordoned() -> None:
    spec = spec_of(stack_cluster("home"))
    placement = {"k3s-server-1": "pve1", "k3s-server-2": "pve2", "k3s-server-3": "pve3"}
    placement |= {"k3s-agent-1": "pve2", "k3s-agent-2": "pve3"}
    assert cordoned(spec, placement, set()) == []
    assert cordoned(spec, placement, {"pve1"}) == ["k3s-server-1"]
    assert cordoned(spec, placement, {"pve3"}) == ["k3s-server-3", "k3s-agent-2"]


def test_maintenance_cordons_the_parked_server_and_uncordons_when_it_ends(tmp_path: Path) -> None:
    run = program_with("home", patched(stack_data("home"), {"nodes[0].maintenance": True}))
    hosts = {r.name: r.inputs["nodeName"] for r in run.of_type(tokens.VM)}
    cordons = {r.name: r for r in run.of_type(tokens.REMOTE_COMMAND) if r.name.endswith("-k3s-cordon")}
    parked = [n for n in hosts if n.startswith("k3s-") and hosts[n] == "pve1"]
    assert parked, "a k3s server stays parked on pve1"
    assert set(cordons) == {f"{n}-k3s-cordon" for n in parked}
    for name, cordon in cordons.items():
        # What the program declared, run against stubs: the node is drained, and uncordoned on delete.
        node = name.removesuffix("-k3s-cordon")
        ready = {"sudo": 'case "$*" in *jsonpath*) echo True ;; esac', "sleep": "exit 0"}
        (tmp_path / "create").mkdir()
        create = run_with_stubs(cordon.inputs["create"], tmp_path / "create", ready)
        assert create.returncode == 0, create.stderr
        assert any(c[3:6] == ["kubectl", "drain", node] for c in create.calls), create.calls
        (tmp_path / "delete").mkdir()
        delete = run_with_stubs(cordon.inputs["delete"], tmp_path / "delete", ready)
        assert delete.returncode == 0, delete.stderr
        assert any(c[3:6] == ["kubectl", "uncordon", node] for c in delete.calls), delete.calls
    assert not any(r.name.endswith("-k3s-cordon") for r in program("home").resources)


def test_admin_commands_go_to_a_fixed_server_off_any_host_in_maintenance() -> None:
    from components.k3s import admin_server

    spec = spec_of(stack_cluster("home"))
    placement = {"k3s-server-1": "pve1", "k3s-server-2": "pve2", "k3s-server-3": "pve3"}
    assert admin_server(spec, placement, set()) == "k3s-server-1"
    assert admin_server(spec, placement, {"pve1"}) == "k3s-server-2"
    run = program("home", Shape.UPDATE)
    vip = str(spec.api_vip)
    admin = [r for r in run.of_type(tokens.REMOTE_COMMAND) if r.name.endswith(("-k3s-label", "-kubeconfig"))]
    assert admin and all(r.inputs["connection"]["host"] != vip for r in admin)
