"""Guests and HA as the engine would see them: nodes, disks on Ceph, templates, HA rules."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import pytest

from offline.engine import Shape
from plan.placement import plan_guests
from policies import tokens
from tests.shell import run_with_stubs
from tests.support import STACKS, patched, program, program_with, stack_cluster, stack_data


@pytest.mark.parametrize("stack", STACKS)
def test_every_guest_runs_on_its_placed_node(stack: str) -> None:
    cluster = stack_cluster(stack)
    placement = plan_guests(cluster).where
    run = program(stack)
    machines = {
        r.name: r.inputs for r in run.of_type(tokens.VM) + run.of_type(tokens.CONTAINER) if not r.inputs.get("template")
    }
    assert set(machines) == {g.name for g in cluster.guests}
    for guest in cluster.guests:
        assert machines[guest.name]["nodeName"] == placement[guest.name]
        assert machines[guest.name]["vmId"] == guest.vm_id


def test_vm_inputs_are_power_friendly_and_on_ceph() -> None:
    run = program("home")
    vm = run.named("k3s-server-1").inputs
    assert vm["cpu"] == {"type": "host", "cores": 2}
    assert vm["memory"] == {"dedicated": 4096, "floating": 2048}
    assert vm["agent"]["enabled"] is True
    assert vm["tabletDevice"] is False
    assert vm["vga"] == {"type": "serial0"}
    assert [d["datastoreId"] for d in vm["disks"]] == ["vm-disks"]
    assert vm["disks"][0]["size"] == 32
    # LAN (VLAN 1, tagged explicitly so no other VLAN is trunked to it), and the Ceph public VLAN
    # for the CSI driver; both on the bonded bridge.
    assert vm["networkDevices"] == [
        {"bridge": "vmbr0", "model": "virtio", "vlanId": 1, "firewall": True},
        {"bridge": "vmbr0", "model": "virtio", "vlanId": 40, "firewall": True},
    ]
    assert vm["initialization"]["ipConfigs"][0]["ipv4"] == {"address": "10.0.10.31/24", "gateway": "10.0.10.1"}
    assert vm["initialization"]["ipConfigs"][1]["ipv4"] == {"address": "10.0.40.31/24"}
    assert vm["migrate"] is True and vm["onBoot"] is True


def test_vms_are_full_clones_of_the_template_with_retries() -> None:
    run = program("home")
    template = run.named("debian-13-template")
    assert template.inputs["template"] is True
    assert template.inputs["disks"][0]["datastoreId"] == "vm-disks"
    vms = [r for r in run.of_type(tokens.VM) if not r.inputs.get("template")]
    for vm in vms:
        assert vm.inputs["clone"]["vmId"] == template.inputs["vmId"]
        assert vm.inputs["clone"]["full"] is True
        assert template.urn in vm.dependencies
        # Proxmox may find the template locked by a simultaneous clone: the provider retries.
        assert vm.inputs["clone"]["retries"] == 5


def test_vm_user_data_snippet_is_referenced() -> None:
    run = program("home", Shape.UPDATE)  # ids are known once the snippets exist
    vm = run.named("k3s-agent-1").inputs
    snippet = next(r for r in run.of_type(tokens.SNIPPET) if r.inputs["nodeName"] == "pve1")
    assert vm["initialization"]["userDataFileId"] == f"{snippet.name}-id"


def test_first_boot_inputs_never_replace_a_running_vm() -> None:
    run = program("home")
    for vm in run.of_type(tokens.VM):
        # A fixed VM id: any replacement must delete the old VM first, or the create fails.
        assert vm.delete_before_replace, vm.name
        if not vm.inputs.get("template"):
            # New user-data or a new template would make the provider rebuild every VM at once.
            assert set(vm.ignore_changes) == {"clone", "initialization.userDataFileId"}, vm.name
    for ct in run.of_type(tokens.CONTAINER):
        assert ct.delete_before_replace and not ct.ignore_changes
    assert run.named("debian-13-image").delete_before_replace
    # Old user-data stays on the nodes: VMs still name it, and Proxmox reads it at every start.
    snippets = run.of_type(tokens.SNIPPET)
    assert snippets and all(s.retain_on_delete for s in snippets)


@pytest.mark.parametrize("stack", STACKS)
def test_guests_kept_apart_are_changed_one_at_a_time(stack: str) -> None:
    run, cluster = program(stack), stack_cluster(stack)
    machines = {
        r.name: r for r in run.of_type(tokens.VM) + run.of_type(tokens.CONTAINER) if not r.inputs.get("template")
    }
    groups: dict[str, list[str]] = {}
    for guest in cluster.guests:
        if guest.anti_affinity is not None:
            groups.setdefault(guest.anti_affinity, []).append(guest.name)
    assert groups
    for members in groups.values():
        for before, after in pairwise(members):
            assert machines[before].urn in machines[after].dependencies, f"{after} must follow {before}"
        # Nothing else chains them: other guests (and other groups) are not held back.
        others = {machines[n].urn for n in machines if n not in members}
        assert not others & set(machines[members[0]].dependencies)


def test_guests_wait_for_the_ceph_pools() -> None:
    run = program("home")
    for name in ("k3s-server-1", "backup", "debian-13-image", "debian-13-template"):
        assert any(d.endswith("ceph-pool-vm-disks") for d in run.named(name).dependencies), name


def test_lxc_is_unprivileged_on_local_storage_and_protected() -> None:
    ct = program("home").named("backup")
    assert ct.inputs["unprivileged"] is True
    assert ct.inputs["disk"]["datastoreId"] == "local-lvm"
    assert ct.inputs["nodeName"] == "pve3"
    assert ct.protect and ct.inputs["protection"] is True


def test_ha_resources_for_every_ha_guest() -> None:
    cluster = stack_cluster("home")
    run = program("home")
    ids = {r.inputs["resourceId"] for r in run.of_type(tokens.HA_RESOURCE)}
    assert ids == {f"vm:{g.vm_id}" for g in cluster.guests if g.ha}
    assert "ct:300" not in ids  # the backup LXC is not HA


def test_pve9_rules_keep_servers_apart_and_prefer_nodes() -> None:
    run = program("home")
    rules = {r.inputs["rule"]: r.inputs for r in run.of_type(tokens.HA_RULE)}
    apart = rules["k3s-servers-apart"]
    assert apart["type"] == "resource-affinity" and apart["affinity"] == "negative"
    assert sorted(apart["resources"]) == ["vm:201", "vm:202", "vm:203"]
    prefers = rules["k3s-agent-1-prefers-pve1"]
    assert prefers["type"] == "node-affinity"
    assert prefers["nodes"] == {"pve1": 1} and prefers["strict"] is False
    assert prefers["resources"] == ["vm:211"]
    assert not run.of_type(tokens.HA_GROUP)


def test_pve8_uses_groups_not_rules() -> None:
    # The lab (a storage bond: PVE 8 has no SDN fabric for a mesh), with k3s-1 pinned to lab1.
    data = patched(stack_data("lab"), {"proxmox.version": 8, "guests[0].node": "lab1"})
    run = program_with("lab", data)
    assert not run.of_type(tokens.HA_RULE)
    groups = {r.inputs["group"]: r.inputs for r in run.of_type(tokens.HA_GROUP)}
    assert groups["prefer-lab1"]["nodes"] == {"lab1": 2, "lab2": 1, "lab3": 1}
    server = next(r for r in run.of_type(tokens.HA_RESOURCE) if r.inputs["resourceId"] == "vm:201")
    assert server.inputs["group"] == "prefer-lab1"


def test_draining_a_node_moves_its_guests_and_parks_what_must_stay_apart() -> None:
    data = patched(stack_data("home"), {"nodes[0].maintenance": True})
    run = program_with("home", data)
    vms = {r.name: r.inputs for r in run.of_type(tokens.VM) if not r.inputs.get("template")}
    assert vms["k3s-agent-1"]["nodeName"] != "pve1"
    # k3s-server-2 ran on pve1; with the other servers on pve2 and pve3 it waits there, stopped.
    assert vms["k3s-server-2"]["nodeName"] == "pve1"
    assert vms["k3s-server-2"]["started"] is False
    assert all(vm["started"] is True for name, vm in vms.items() if name != "k3s-server-2")
    states = {r.name: r.inputs["state"] for r in run.of_type(tokens.HA_RESOURCE)}
    assert states["k3s-server-2-ha"] == "stopped" and states["k3s-agent-1-ha"] == "started"


def test_snippets_are_allowed_on_the_storage_before_any_is_uploaded() -> None:
    run = program("home")
    allow = run.named("local-allow-snippets")
    for snippet in run.of_type(tokens.SNIPPET):
        assert allow.urn in snippet.dependencies


STORAGE_CFG = """dir: local
\tpath /var/lib/vz
\tcontent iso,vztmpl,backup

lvmthin: local-lvm
\tthinpool data
\tcontent rootdir,images
"""


@pytest.mark.parametrize(
    ("cfg", "call"),
    [
        (STORAGE_CFG, ["pvesm", "set", "local", "--content", "iso,vztmpl,backup,snippets"]),
        (STORAGE_CFG.replace("iso,vztmpl,backup", "iso,snippets,backup"), None),
    ],
    ids=["adds-snippets", "already-allowed"],
)
def test_the_snippets_script_adds_snippets_to_the_storage_once(
    cfg: str, call: list[str] | None, tmp_path: Path
) -> None:
    # The program's own rendering, with storage.cfg read from a file of the test's.
    (tmp_path / "storage.cfg").write_text(cfg)
    text = program("home").named("local-allow-snippets").inputs["create"]
    run = run_with_stubs(text.replace("/etc/pve/storage.cfg", str(tmp_path / "storage.cfg")), tmp_path, {"pvesm": ""})
    assert run.returncode == 0, run.stderr
    assert [c for c in run.calls if c[0] == "pvesm"] == ([call] if call else [])


def test_the_snippets_script_stops_on_a_storage_it_does_not_find(tmp_path: Path) -> None:
    (tmp_path / "storage.cfg").write_text(STORAGE_CFG.replace("dir: local\n", "dir: other\n"))
    text = program("home").named("local-allow-snippets").inputs["create"]
    run = run_with_stubs(text.replace("/etc/pve/storage.cfg", str(tmp_path / "storage.cfg")), tmp_path, {"pvesm": ""})
    assert run.returncode == 1
    assert "storage local is not in" in run.stderr and "has no content line" in run.stderr
    assert "pvesm" not in run.commands()


def test_lxc_template_is_downloaded_on_the_containers_node_first() -> None:
    run = program("home")
    download = run.named("pve3-lxc-template-debian-13-standard")
    script = download.inputs["create"]
    assert "TEMPLATE=debian-13-standard_13.1-2_amd64.tar.zst" in script and "pveam download" in script
    assert download.inputs["connection"]["host"] == "10.0.10.13"
    assert download.urn in run.named("backup").dependencies


def test_a_template_keeps_its_id_when_an_image_is_added_before_it() -> None:
    # A new image whose key sorts first, used by one more VM: debian-13's template stays 9000.
    data = stack_data("home")
    data["images"]["alma-9"] = {
        "template_vm_id": 9001,
        "url": "https://example.org/alma-9.qcow2",
        "file_name": "alma-9.qcow2.img",
        "checksum": "ab" * 64,
    }
    data["guests"][3]["image"] = "alma-9"
    run = program_with("home", data)
    templates = {r.name: r.inputs["vmId"] for r in run.of_type(tokens.VM) if r.inputs.get("template")}
    assert templates == {"debian-13-template": 9000, "alma-9-template": 9001}
    clones = {r.name: r.inputs["clone"]["vmId"] for r in run.of_type(tokens.VM) if not r.inputs.get("template")}
    assert clones["k3s-agent-1"] == 9001 and clones["k3s-server-1"] == 9000


def test_a_drained_node_is_no_guests_preferred_node_while_it_is_drained() -> None:
    # HA would move a guest back to the node its rule prefers (failback): the rule follows placement.
    data = patched(stack_data("home"), {"nodes[0].maintenance": True})
    run = program_with("home", data)
    vms = {r.name: r.inputs["nodeName"] for r in run.of_type(tokens.VM) if not r.inputs.get("template")}
    rules = {
        r.inputs["resources"][0]: r.inputs for r in run.of_type(tokens.HA_RULE) if r.inputs["type"] == "node-affinity"
    }
    agent = rules["vm:211"]  # k3s-agent-1, pinned to pve1 in the spec
    assert vms["k3s-agent-1"] != "pve1"
    assert agent["nodes"] == {vms["k3s-agent-1"]: 1} and agent["rule"] == f"k3s-agent-1-prefers-{vms['k3s-agent-1']}"
    # Back from maintenance, it prefers pve1 again.
    back = [r.inputs for r in program("home").of_type(tokens.HA_RULE) if r.inputs["resources"] == ["vm:211"]]
    assert [inputs["nodes"] for inputs in back] == [{"pve1": 1}]
