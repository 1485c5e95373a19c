"""The Proxmox layer as the engine would see it: cluster links, bonds, bridges, power tuning."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pulumi
import pytest

from components import remote
from components.power import tuning_script
from offline.engine import Shape
from offline.harness import ProgramRun
from policies import tokens
from spec.nodes import Node
from tests.shell import ScriptRun, run_with_stubs
from tests.support import program, stack_cluster


def commands(run: ProgramRun) -> dict[str, str]:
    return {r.name: r.inputs["create"] for r in run.of_type(tokens.REMOTE_COMMAND)}


@pytest.mark.parametrize("stack", ["home", "lab"])
def test_every_node_has_an_active_backup_lan_bond_over_two_nics(stack: str) -> None:
    run = program(stack)
    cluster = stack_cluster(stack)
    bonds = {r.inputs["nodeName"]: r.inputs for r in run.of_type(tokens.BOND) if r.inputs["name"] == "bond0"}
    assert set(bonds) == {n.name for n in cluster.nodes}
    for node in cluster.nodes:
        bond = bonds[node.name]
        assert bond["slaves"] == node.bond.members and len(bond["slaves"]) >= 2
        assert bond["bondMode"] == "active-backup"
        assert "bondXmitHashPolicy" not in bond


def test_lacp_bond_hashes_on_layer3_4() -> None:
    from components.network import bond_args
    from spec.nodes import Bond

    args = bond_args("pve1", "bond0", Bond(mode="802.3ad", members=["a1", "a2"]), "lan")
    assert args.bond_mode == "802.3ad" and args.bond_xmit_hash_policy == "layer3+4"
    assert args.bond_primary is None


@pytest.mark.parametrize("stack", ["home", "lab"])
def test_bridge_is_vlan_aware_on_the_bond_with_the_management_address(stack: str) -> None:
    run = program(stack)
    cluster = stack_cluster(stack)
    bridges = {r.inputs["nodeName"]: r for r in run.of_type(tokens.BRIDGE)}
    by_urn = run.by_urn()
    for node in cluster.nodes:
        bridge = bridges[node.name]
        assert bridge.inputs["ports"] == ["bond0"]
        assert bridge.inputs["vlanAware"] is True
        assert bridge.inputs["address"] == f"{node.address}/{cluster.networks.lan.cidr.prefixlen}"
        assert bridge.inputs["gateway"] == str(cluster.networks.lan.gateway)
        assert any(by_urn[d].type == tokens.BOND for d in bridge.dependencies)


def test_lab_storage_network_is_a_second_bond_with_jumbo_frames() -> None:
    run = program("lab")
    storage = [r.inputs for r in run.of_type(tokens.BOND) if r.inputs["name"] == "bond1"]
    assert len(storage) == 3
    for bond in storage:
        assert bond["slaves"] == ["ens20", "ens21"]
        assert bond["mtu"] == 9000
        assert bond["address"].startswith("192.168.111.")


def test_home_storage_network_is_an_openfabric_mesh() -> None:
    run = program("home")
    fabric = run.of_type(tokens.FABRIC)
    assert [f.inputs["resourceId"] for f in fabric] == ["ceph"]
    assert fabric[0].inputs["ipPrefix"] == "10.0.50.0/24"
    members = {r.inputs["nodeId"]: r.inputs for r in run.of_type(tokens.FABRIC_NODE)}
    assert members["pve1"]["interfaceNames"] == ["en05", "en06"]
    assert members["pve2"]["ip"] == "10.0.50.12"
    applier = run.of_type(tokens.SDN_APPLIER)
    assert len(applier) == 1 and len(applier[0].dependencies) == 3
    assert not any(r.inputs["name"] == "bond1" for r in run.of_type(tokens.BOND))


@pytest.mark.parametrize("stack", ["home", "lab"])
def test_ceph_public_network_is_a_vlan_on_the_bridge(stack: str) -> None:
    cluster = stack_cluster(stack)
    ceph = cluster.networks.ceph
    vlans = {r.inputs["nodeName"]: r.inputs for r in program(stack).of_type(tokens.VLAN)}
    assert set(vlans) == {n.name for n in cluster.nodes}
    for node in cluster.nodes:
        vlan = vlans[node.name]
        assert vlan["interface"] == "vmbr0" and vlan["vlan"] == ceph.public_vlan
        assert vlan["name"] == f"vmbr0.{ceph.public_vlan}"
        assert vlan["address"] == f"{node.public_address}/{ceph.public.prefixlen}"


def test_corosync_has_two_links_lan_first_then_storage() -> None:
    run = program("home")
    scripts = commands(run)
    assert "LINK0=10.0.10.11" in scripts["pve1-cluster-create"]
    assert "pvecm create" in scripts["pve1-cluster-create"]
    assert "LINK0=10.0.10.12" in scripts["pve2-cluster-join"]
    assert "FIRST_NODE=10.0.10.11" in scripts["pve2-cluster-join"]
    # A node joining after link 1 exists brings its link-1 address.
    assert "STORAGE_LINK=10.0.50.12" in scripts["pve2-cluster-join"]
    link1 = scripts["home-corosync-link1"]
    assert "RING1='pve1=10.0.50.11 pve2=10.0.50.12 pve3=10.0.50.13'" in link1
    # Link 1 waits for the last join (the joins are a chain) and for every node to reach the
    # others on the storage network, which waits for that network.
    deps = {d.rsplit("::", 1)[-1] for d in run.named("home-corosync-link1").dependencies}
    assert {"pve3-cluster-join", "pve1-storage-reachable", "pve2-storage-reachable", "pve3-storage-reachable"} <= deps
    checked = {d.rsplit("::", 1)[-1] for d in run.named("pve2-storage-reachable").dependencies}
    assert {"ceph-apply", "pve2-vmbr0"} <= checked
    assert params_of(scripts["pve2-storage-reachable"])["PEERS"] == "10.0.50.11 10.0.50.13"


def test_joins_run_one_after_another() -> None:
    run = program("home")
    assert any(d.endswith("pve1-cluster-create") for d in run.named("pve2-cluster-join").dependencies)
    assert any(d.endswith("pve2-cluster-join") for d in run.named("pve3-cluster-join").dependencies)


def test_node_networks_wait_for_the_cluster() -> None:
    run = program("home")
    # The uplink move itself must wait: a component's depends_on does not hold back its children.
    for name in ("pve3-lan-uplink", "ceph-fabric"):
        assert any(d.endswith("pve3-cluster-join") for d in run.named(name).dependencies), name
    # The provider's bond and bridge come after the move is confirmed.
    assert run.named("pve3-lan-uplink-confirm").dependencies == [run.named("pve3-lan-uplink").urn]
    assert run.named("pve3-bond0").dependencies == [run.named("pve3-lan-uplink-confirm").urn]
    assert run.named("pve3-vmbr0").dependencies == [run.named("pve3-bond0").urn]


def test_remote_commands_carry_the_ssh_key_as_a_secret() -> None:
    for r in program("home").of_type(tokens.REMOTE_COMMAND):
        assert "connection" in r.secret_paths or any(p.startswith("connection") for p in r.secret_paths)


def test_proxmox_api_token_is_a_secret() -> None:
    provider = program("home").of_type("pulumi:providers:proxmoxve")[0]
    assert "apiToken" in provider.secret_paths


@pytest.mark.parametrize("stack", ["home", "lab"])
def test_power_tuning_on_every_node(stack: str) -> None:
    cluster = stack_cluster(stack)
    scripts = commands(program(stack))
    for node in cluster.nodes:
        script = scripts[f"{node.name}-power-tuning"]
        assert f"GOVERNOR={node.power_tuning.governor}" in script
        assert "systemctl enable homelab-power.service" in script
    home = commands(program("home"))["pve1-power-tuning"]
    assert "ASPM=powersave" in home and "POWERTOP=yes" in home and "USB_AUTOSUSPEND=no" in home


# --- the power-tuning script, run against stub commands ---------------------------------------


def run_tuning(tmp_path: Path, node: Node, governors: str | None) -> tuple[ScriptRun, Path]:
    unit, offered = tmp_path / "homelab-power.service", tmp_path / "scaling_available_governors"
    if governors is not None:
        offered.write_text(governors + "\n")
    script = tuning_script(node, unit=str(unit), governors_file=str(offered))
    stubs = {"systemctl": "exit 0", "powertop": "exit 0", "apt-get": "exit 0"}
    return run_with_stubs(script, tmp_path, stubs), unit


def exec_starts(unit: Path) -> list[str]:
    return [line.removeprefix("ExecStart=") for line in unit.read_text().splitlines() if line.startswith("ExecStart=")]


def test_power_unit_keeps_network_devices_awake_and_never_stops_at_one_step(tmp_path: Path) -> None:
    node = stack_cluster("home").nodes[0]
    run, unit = run_tuning(tmp_path, node, "performance powersave")
    assert run.returncode == 0, run.stderr
    steps = exec_starts(unit)
    # Best effort at boot: a tunable the firmware refuses does not skip the others.
    assert steps and all(step.startswith("-") for step in steps)
    powertop = next(i for i, step in enumerate(steps) if "powertop --auto-tune" in step)
    # After powertop, the NICs and the USB4/Thunderbolt controllers are kept out of runtime sleep.
    assert any("/sys/class/net/*/device/power/control" in step for step in steps[powertop + 1 :])
    assert any("/sys/bus/pci/drivers/thunderbolt/" in step for step in steps[powertop + 1 :])
    # Each `sh -c` step parses, once systemd has turned $$ into $.
    for step in steps:
        inner = re.fullmatch(r"-/bin/sh -c '(.*)'", step)
        if inner:
            command = ["sh", "-n", "-c", inner[1].replace("$$", "$")]
            checked = subprocess.run(command, capture_output=True, text=True, check=False)
            assert checked.returncode == 0, f"{step}: {checked.stderr}"
    assert run.called("systemctl", "enable", "homelab-power.service")


def test_a_governor_the_cpu_driver_does_not_offer_is_refused(tmp_path: Path) -> None:
    node = stack_cluster("home").nodes[0]
    node = node.model_copy(update={"power_tuning": node.power_tuning.model_copy(update={"governor": "schedutil"})})
    run, unit = run_tuning(tmp_path, node, "performance powersave")
    assert run.returncode == 1
    assert "power_tuning.governor schedutil is not offered" in run.stderr and "performance powersave" in run.stderr
    assert not unit.exists()


def test_a_cpu_without_frequency_scaling_still_gets_its_unit(tmp_path: Path) -> None:
    # Nested lab nodes have no cpufreq: nothing to check, and the governor step skips itself.
    run, unit = run_tuning(tmp_path, stack_cluster("lab").nodes[0], governors=None)
    assert run.returncode == 0, run.stderr
    assert unit.exists()


def test_powertop_is_installed_waiting_for_the_dpkg_lock(tmp_path: Path) -> None:
    node = stack_cluster("home").nodes[0]
    unit, offered = tmp_path / "homelab-power.service", tmp_path / "scaling_available_governors"
    offered.write_text("performance powersave\n")
    script = tuning_script(node, unit=str(unit), governors_file=str(offered))
    # No powertop yet: apt-get installs it, each call waiting for a lock another apt run holds.
    run = run_with_stubs(script, tmp_path, {"systemctl": "exit 0", "apt-get": "exit 0"})
    apt = [c for c in run.calls if c[0] == "apt-get"]
    assert [c[1:3] for c in apt] == [["-o", "DPkg::Lock::Timeout=600"]] * 2
    assert [c[3] for c in apt] == ["update", "install"]


def test_the_qdevice_client_is_installed_waiting_for_the_dpkg_lock(tmp_path: Path) -> None:
    run = run_with_stubs(
        remote.script("qdevice-package"), tmp_path, {"dpkg-query": "echo not-installed", "apt-get": "exit 0"}
    )
    assert run.returncode == 0, run.stderr
    apt = [c for c in run.calls if c[0] == "apt-get"]
    assert [c[1:4] for c in apt] == [
        ["-o", "DPkg::Lock::Timeout=600", "update"],
        ["-o", "DPkg::Lock::Timeout=600", "install"],
    ]


def params_of(script: str) -> dict[str, str]:
    return {m[1]: m[2].strip("'") for m in re.finditer(r"^([A-Z][A-Z0-9_]*)=(.*)$", script, re.MULTILINE)}


@pytest.mark.parametrize(("down_for", "returncode"), [(0, 0), (2, 0), (99, 1)])
def test_the_storage_check_waits_for_its_peers_then_gives_up(tmp_path: Path, down_for: int, returncode: int) -> None:
    # 10.0.50.13 answers only after `down_for` failed pings (a reload still under way, a dead cable).
    script = commands(program("home"))["pve1-storage-reachable"]
    ping = (
        'if [ "${*: -1}" = 10.0.50.13 ]; then n=$(cat "$STATE/n" 2>/dev/null || echo 0); '
        f'echo $((n + 1)) > "$STATE/n"; [ "$n" -ge {down_for} ]; fi'
    )
    held = 'case "$*" in "-o address show to 10.0.50.11/32") echo "7: dummy_storage inet 10.0.50.11/32";; esac'
    stubs = {"ping": ping, "sleep": "exit 0", "hostname": "echo pve1", "ip": held}
    run = run_with_stubs(script, tmp_path, stubs)
    assert run.returncode == returncode, run.stderr
    pings = [c[-1] for c in run.calls if c[0] == "ping"]
    if returncode == 0:
        assert pings[-2:] == ["10.0.50.12", "10.0.50.13"] and pings.count("10.0.50.13") == down_for + 1
    else:
        assert pings.count("10.0.50.13") == 60  # TRIES, then it stops
        assert "pve1 does not reach 10.0.50.13 on the storage network after 60 tries" in run.stderr


def test_an_unverified_api_endpoint_is_refused() -> None:
    from components.stack import INSECURE_REFUSED
    from offline.harness import config_for, run_program

    config = {**config_for("home"), "homelab:proxmoxInsecure": "true"}
    with pytest.raises(pulumi.RunError, match=re.escape(INSECURE_REFUSED[:60])):
        run_program("home", config)
    provider = program("home").named("proxmox")
    assert provider.inputs["insecure"] in (False, "false")


@pytest.mark.parametrize("stack", ["home", "lab"])
def test_every_connection_to_a_node_checks_its_pinned_host_key(stack: str) -> None:
    keys = {str(n.address): n.ssh_host_key for n in stack_cluster(stack).nodes}
    commands = program(stack, Shape.UPDATE).of_type(tokens.REMOTE_COMMAND)
    on_nodes = [r for r in commands if r.inputs["connection"]["host"] in keys]
    assert len(on_nodes) > 10
    for r in on_nodes:
        assert r.inputs["connection"]["hostKey"] == keys[r.inputs["connection"]["host"]], r.name
