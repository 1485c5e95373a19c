"""k3s on the guests, as the engine would see it, and the install script's decisions under stubs."""

from __future__ import annotations

import re
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from components import remote
from components.k3s import (
    CONFIG_FILE,
    INSTALLER,
    JOIN_TOKEN_FILE,
    OUT_OF_SERVICE,
    PROXMOX_NODE_LABEL,
    K3sPlacementError,
    check_server_spread,
    cordoned,
    kube_vip_documents,
    kube_vip_manifest,
    node_config,
)
from offline.engine import Shape
from offline.harness import UNKNOWN, ProgramRun, Resource, config_for, run_program
from policies import tokens
from spec.kubernetes import K3s
from spec.models import Cluster
from tests.shell import ScriptRun, run_with_stubs
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
    run, cluster = program(stack), stack_cluster(stack)
    spec = spec_of(cluster)
    read = run.named(f"{cluster.name}-kubeconfig")
    assert "stdout" in read.additional_secret_outputs
    assert read.inputs["logging"] == "stderr"
    assert params(read.inputs["create"])["API_VIP"] == str(spec.api_vip)
    assert read.inputs["connection"]["host"] == str(spec.api_vip)
    # Read again on an upgrade, which restarts k3s and so renews its client certificate.
    assert read.inputs["triggers"] == [spec.version]
    # Read once the whole cluster is up, so nothing using it races the joins.
    assert {install(run, n).urn for n in [*spec.servers, *spec.agents]} <= set(read.dependencies)
    provider = next(r for r in run.of_type(K8S_PROVIDER))
    assert "kubeconfig" in provider.secret_paths
    assert read.urn in provider.dependencies


@pytest.mark.parametrize("stack", STACKS)
def test_guests_are_reached_as_the_cloud_init_user(stack: str) -> None:
    run, cluster = program(stack), stack_cluster(stack)
    spec = spec_of(cluster)
    for name in [*spec.servers, *spec.agents]:
        connection = install(run, name).inputs["connection"]
        assert connection["host"] == str(cluster.guest(name).address)
        assert connection["user"] == cluster.access.user
        assert "connection" in install(run, name).secret_paths  # it carries the private key


@pytest.mark.parametrize("stack", STACKS)
def test_kube_vip_manifest_is_valid_and_on_every_server_only(stack: str) -> None:
    run, spec = program(stack), spec_of(stack_cluster(stack))
    for doc in kube_vip_documents(spec):
        kubernetes_validate.validate(doc, kube_version(spec), strict=True)
    daemonset = next(d for d in kube_vip_documents(spec) if d["kind"] == "DaemonSet")
    container = daemonset["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["address"] == str(spec.api_vip)
    assert env["vip_interface"] == spec.vip_interface
    assert env["vip_arp"] == env["vip_leaderelection"] == env["cp_enable"] == env["svc_enable"] == "true"
    assert container["image"].endswith(f":{spec.kube_vip_version}")
    for name in spec.servers:
        assert "KUBE_VIP_MANIFEST=" in install(run, name).inputs["create"]
    for name in spec.agents:
        assert "KUBE_VIP_MANIFEST=" not in install(run, name).inputs["create"]


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


def test_maintenance_cordons_the_parked_server_and_uncordons_when_it_ends() -> None:
    run = program_with("home", patched(stack_data("home"), {"nodes[0].maintenance": True}))
    hosts = {r.name: r.inputs["nodeName"] for r in run.of_type(tokens.VM)}
    cordons = {r.name: r for r in run.of_type(tokens.REMOTE_COMMAND) if r.name.endswith("-k3s-cordon")}
    parked = [n for n in hosts if n.startswith("k3s-") and hosts[n] == "pve1"]
    assert parked, "a k3s server stays parked on pve1"
    assert set(cordons) == {f"{n}-k3s-cordon" for n in parked}
    for cordon in cordons.values():
        assert "kubectl drain" in cordon.inputs["create"]
        assert "kubectl uncordon" in cordon.inputs["delete"]
    assert not any(r.name.endswith("-k3s-cordon") for r in program("home").resources)


# --- the install script, run against stub commands ------------------------------------------

TOKEN = "K10deadbeef::server:s3cret"
VERSION = "v1.33.5+k3s1"


def render(role: str, version: str = VERSION) -> str:
    spec = spec_of(stack_cluster("home"))
    params: dict[str, str | int] = {
        "role": role,
        "version": version,
        "node_name": "k3s-server-1",
        "api_vip": str(spec.api_vip),
        "installer": INSTALLER,
        "token_file": JOIN_TOKEN_FILE,
        "config_file": CONFIG_FILE,
        "data_dir": "/var/lib/rancher/k3s",
        "k3s_config": node_config(spec, "k3s-server-1", "10.0.10.31", role),
    }
    if role != "agent":
        params |= {"manifests": "/var/lib/rancher/k3s/server/manifests", "kube_vip_manifest": "kind: DaemonSet"}
    return remote.script("k3s-install", **params)


def run_install(
    tmp_path: Path,
    role: str,
    installed: str | None,
    active: bool = True,
    files_differ: bool = True,
    vip_answers: bool = False,
    has_etcd_data: bool = False,
    flags_in_unit: bool = False,
) -> ScriptRun:
    tmp_path.mkdir(parents=True, exist_ok=True)
    text = render(role)
    # What pulumi-command pipes to the joins: the token on stdin (nothing for the first server).
    stdin = f"exec 0<<<'{TOKEN}'\n" if role != "server-init" else "exec 0</dev/null\n"
    text = text.replace(remote.HEADER, remote.HEADER + stdin, 1)
    stubs = {
        # sudo runs nothing: it records, keeps what is written through it, and reports every file
        # as differing (so every write shows) or as already up to date.
        "sudo": (
            f'if [ "$2" = cmp ]; then exit {1 if files_differ else 0}; fi\n'
            f'if [ "$2" = test ]; then exit {0 if has_etcd_data else 1}; fi\n'
            f'if [ "$2" = grep ]; then exit {0 if flags_in_unit else 1}; fi\n'
            'if [ "$2" = sh ]; then cat >"$STATE/$(basename "${*: -1}")"; exit 0; fi\n'
            "if [ -p /dev/stdin ]; then cat >/dev/null; fi"
        ),
        "k3s": f"echo 'k3s version {installed} (1a2b3c4d)'" if installed else "exit 127",
        "systemctl": "exit 0" if active else "exit 3",
        # The VIP answers for a join (an earlier server holds it); for the first server only when
        # a cluster already runs there.
        "curl": f'case "$*" in *cacerts*) exit {0 if vip_answers or role != "server-init" else 7} ;; '
        '*) echo "echo installer" ;; esac',
        "cloud-init": "exit 0",
        "sleep": "exit 0",
    }
    return run_with_stubs(text, tmp_path, stubs)


def installer_args(run: ScriptRun) -> list[str]:
    calls = [c for c in run.calls if c[:3] == ["sudo", "-n", "env"]]
    assert len(calls) == 1, run.calls
    call = calls[0]
    assert f"INSTALL_K3S_VERSION={VERSION}" in call
    return call[call.index("-") + 1 :]


def written_config(tmp_path: Path) -> dict[str, object]:
    config: dict[str, object] = yaml.safe_load((tmp_path / "state" / Path(CONFIG_FILE).name).read_text())
    return config


def test_first_server_installs_with_cluster_init(tmp_path: Path) -> None:
    run = run_install(tmp_path, "server-init", installed=None)
    assert run.returncode == 0, run.stderr
    # Every flag is in the config file; the installer's own arguments would be baked into the unit.
    assert installer_args(run) == ["server"]
    spec = spec_of(stack_cluster("home"))
    assert written_config(tmp_path) == {
        "node-name": "k3s-server-1",
        "node-ip": "10.0.10.31",
        "flannel-iface": spec.vip_interface,
        "cluster-init": True,
        "tls-san": [str(spec.api_vip)],
        "disable": ["servicelb", "traefik", "local-storage"],
        "etcd-snapshot-schedule-cron": "0 */6 * * *",
        "etcd-snapshot-retention": 28,
    }
    assert (tmp_path / "state" / "kube-vip.yaml").read_text() == "kind: DaemonSet\n"
    assert run.called("sudo", "-n", "modprobe", "rbd")
    # The next server waits for this one: its API server (etcd included) ready, its node Ready.
    assert run.called("sudo", "-n", "k3s", "kubectl", "get", "--raw", "/readyz")
    assert run.called(
        "sudo", "-n", "k3s", "kubectl", "wait", "--for=condition=Ready", "node/k3s-server-1", "--timeout=5s"
    )


def test_a_rebuilt_first_server_never_starts_a_second_cluster(tmp_path: Path) -> None:
    # No etcd data here, yet a cluster answers on the VIP: cluster-init would split it.
    run = run_install(tmp_path / "rebuilt", "server-init", installed=None, vip_answers=True)
    assert run.returncode == 1
    assert "has no etcd data" in run.stderr and "list it last in k3s.servers" in run.stderr
    assert not any(c[:3] == ["sudo", "-n", "env"] for c in run.calls)
    assert not (tmp_path / "rebuilt" / "state" / Path(CONFIG_FILE).name).exists()
    # The first server itself, re-run: it has its etcd data, so the VIP answering is its own.
    own = run_install(tmp_path / "own", "server-init", installed=VERSION, vip_answers=True, has_etcd_data=True)
    assert own.returncode == 0, own.stderr


def test_joining_server_uses_the_vip_and_the_token_from_stdin(tmp_path: Path) -> None:
    run = run_install(tmp_path, "server-join", installed=None)
    assert run.returncode == 0, run.stderr
    assert installer_args(run) == ["server"]
    vip = str(spec_of(stack_cluster("home")).api_vip)
    config = written_config(tmp_path)
    assert "cluster-init" not in config
    assert config["server"] == f"https://{vip}:6443"
    assert config["token-file"] == JOIN_TOKEN_FILE
    assert (tmp_path / "state" / Path(JOIN_TOKEN_FILE).name).read_text() == TOKEN + "\n"
    assert all(TOKEN not in " ".join(call) for call in run.calls)  # never on a command line
    assert run.called("curl", "-ksf", "--max-time", "5", f"https://{vip}:6443/cacerts")


def test_agent_joins_without_server_flags(tmp_path: Path) -> None:
    run = run_install(tmp_path, "agent", installed=None)
    assert run.returncode == 0, run.stderr
    assert installer_args(run) == ["agent"]
    config = written_config(tmp_path)
    assert not {"tls-san", "disable", "cluster-init", "etcd-snapshot-schedule-cron"} & set(config)
    assert config["server"] == f"https://{spec_of(stack_cluster('home')).api_vip}:6443"
    assert not (tmp_path / "state" / "kube-vip.yaml").exists()
    assert not any("kubectl" in call for call in run.calls)  # an agent has no admin kubeconfig


@pytest.mark.parametrize("role", ["server-init", "server-join", "agent"])
def test_rerun_at_the_pinned_version_with_the_same_config_changes_nothing(tmp_path: Path, role: str) -> None:
    run = run_install(tmp_path, role, installed=VERSION, files_differ=False, has_etcd_data=True)
    assert run.returncode == 0, run.stderr
    assert "already installed" in run.stdout
    assert not any(c[:3] == ["sudo", "-n", "env"] for c in run.calls)
    assert not any(c[0] == "curl" for c in run.calls)
    assert not any("restart" in c for c in run.calls)


@pytest.mark.parametrize(("role", "service"), [("server-init", "k3s"), ("server-join", "k3s"), ("agent", "k3s-agent")])
def test_a_changed_config_restarts_a_running_node_without_reinstalling(tmp_path: Path, role: str, service: str) -> None:
    run = run_install(tmp_path, role, installed=VERSION, files_differ=True, has_etcd_data=True)
    assert run.returncode == 0, run.stderr
    assert run.called("sudo", "-n", "systemctl", "restart", service)
    assert not any(c[:3] == ["sudo", "-n", "env"] for c in run.calls)


def test_a_unit_still_carrying_installer_flags_is_reinstalled_bare(tmp_path: Path) -> None:
    # Written by an older install: its flags would override the config file at every start.
    run = run_install(tmp_path, "agent", installed=VERSION, files_differ=False, flags_in_unit=True)
    assert run.returncode == 0, run.stderr
    assert installer_args(run) == ["agent"]


def test_without_curl_the_install_stops_with_a_reason(tmp_path: Path) -> None:
    text = render("server-init").replace(remote.HEADER, remote.HEADER + "exec 0</dev/null\n", 1)
    # Only the stubs' folder on PATH, plus what bash needs for `seq`: no curl anywhere.
    text = text.replace(remote.HEADER, remote.HEADER + 'PATH="${PATH%%:*}"\n', 1)
    run = run_with_stubs(text, tmp_path, {"sudo": "exit 0", "cloud-init": "exit 0"})
    assert run.returncode == 1
    assert "curl is not installed" in run.stderr


def test_other_version_or_stopped_service_reinstalls(tmp_path: Path) -> None:
    upgrade = run_install(tmp_path / "upgrade", "server-join", installed="v1.32.9+k3s1")
    assert upgrade.returncode == 0, upgrade.stderr
    assert installer_args(upgrade) == ["server"]
    # An install interrupted after the binary landed: same version, service not running.
    interrupted = run_install(tmp_path / "interrupted", "agent", installed=VERSION, active=False)
    assert interrupted.returncode == 0, interrupted.stderr
    assert installer_args(interrupted) == ["agent"]


def test_node_config_never_carries_a_node_label() -> None:
    spec = spec_of(stack_cluster("home"))
    for role in ("server-init", "server-join", "agent"):
        assert "node-label" not in yaml.safe_load(node_config(spec, "k3s-agent-1", "10.0.10.51", role))


def test_kube_vip_manifest_has_no_yaml_aliases() -> None:
    # Shared label dicts must be written out in full: not every YAML reader takes anchors.
    text = kube_vip_manifest(spec_of(stack_cluster("home")))
    assert "&id" not in text and "*id" not in text


def test_join_without_a_token_stops(tmp_path: Path) -> None:
    text = render("agent").replace(remote.HEADER, remote.HEADER + "exec 0</dev/null\n", 1)
    run = run_with_stubs(text, tmp_path, {"sudo": "exit 0", "k3s": "exit 127", "curl": "exit 0"})
    assert run.returncode == 1
    assert "no join token on stdin" in run.stderr
    assert not any(c[:3] == ["sudo", "-n", "env"] for c in run.calls)


def test_unknown_role_stops(tmp_path: Path) -> None:
    text = render("agent").replace("ROLE=agent", "ROLE=worker")
    run = run_with_stubs(text, tmp_path, {"sudo": "exit 0"})
    assert run.returncode == 1 and "ROLE must be" in run.stderr


def test_cordon_taints_out_of_service_only_a_node_that_is_down(tmp_path: Path) -> None:
    text = remote.script("k3s-cordon", node="k3s-server-1", out_of_service=OUT_OF_SERVICE, timeout="10m")
    (tmp_path / "down").mkdir()
    down = run_with_stubs(
        text, tmp_path / "down", {"sudo": 'case "$*" in *jsonpath*) echo Unknown ;; esac', "sleep": "exit 0"}
    )
    assert down.returncode == 0, down.stderr
    assert down.called("sudo", "-n", "k3s", "kubectl", "taint", "node", "k3s-server-1", OUT_OF_SERVICE, "--overwrite")
    assert any(c[3:5] == ["kubectl", "drain"] for c in down.calls)
    # Ready or NotReady (False): a kubelet is still running there, so its volumes stay attached.
    for status in ("True", "False"):
        (tmp_path / status).mkdir()
        up = run_with_stubs(
            text, tmp_path / status, {"sudo": f'case "$*" in *jsonpath*) echo {status} ;; esac', "sleep": "exit 0"}
        )
        assert up.returncode == 0, up.stderr
        assert not any("taint" in c for c in up.calls), status
        assert any(c[3:5] == ["kubectl", "drain"] for c in up.calls)
