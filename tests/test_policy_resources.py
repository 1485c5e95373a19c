"""The pack's resource policies and `disruption-budgets`, on whole stacks in both preview shapes:
each declared resource judged on its inputs, as the engine's `Analyze` hands them over."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from offline.engine import Shape
from offline.harness import UNKNOWN, Resource, config_for
from offline.policy_run import Violation, run_policies
from policies import tokens
from tests.policy_support import config_with, edit, full_stack, named, resource, without
from tests.support import patched, program_set_up, set_up_data, stack_data

SHAPES = list(Shape)


def run(resources: list[Resource], stack: str = "home", config: dict[str, str] | None = None) -> list[Violation]:
    return run_policies(resources, config if config is not None else config_for(stack))


def check(resources: list[Resource], stack: str = "home", config: dict[str, str] | None = None) -> list[Violation]:
    """The verdicts (without the pack's "can't run during preview" notes)."""
    return [v for v in run(resources, stack, config) if not v.not_known_yet]


def of_policy(violations: list[Violation], policy: str) -> list[Violation]:
    return [v for v in violations if v.policy == policy]


def only(violations: list[Violation], policy: str) -> Violation:
    assert [v.policy for v in violations] == [policy], [v.message for v in violations]
    return violations[0]


def not_known(violations: list[Violation]) -> list[str]:
    return [v.policy for v in violations if v.not_known_yet]


# --- guests-as-planned --------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
def test_a_guest_declared_off_the_plan(shape: Shape) -> None:
    stack = full_stack("home", shape)
    wider = edit(stack, "k3s-agent-1", {"cpu.cores": 8})
    v = only(check(wider), "guests-as-planned")
    assert v.message.startswith("k3s-agent-1 is declared with vCPUs 8 where the plan has 4:")
    assert v.resource == named(wider, "k3s-agent-1").urn
    node = named(stack, "k3s-server-1").inputs["nodeName"]
    crowded = edit(stack, "k3s-server-2", {"nodeName": node, "memory.dedicated": 2048})
    v = only(check(crowded), "guests-as-planned")
    assert f"node {node} where the plan has {named(stack, 'k3s-server-2').inputs['nodeName']}" in v.message
    assert "memory MiB 2048 where the plan has 4096" in v.message
    parked = edit(stack, "k3s-agent-1", {"started": False})
    assert "running False where the plan has True" in only(check(parked), "guests-as-planned").message


def test_a_guest_the_spec_does_not_know() -> None:
    stray = resource("home", tokens.VM, "stray", {"name": "stray", "vmId": 999, "nodeName": "pve1"})
    found = {v.policy: v.message for v in check([*full_stack("home"), stray])}
    assert found["guests-as-planned"].startswith("stray (VM ID 999) is not one of the spec's guests")
    # Nor is it in the backup job, which covers the spec's guests.
    assert found["backup-coverage"].startswith("stray (VM id 999) is in no backup job")
    assert set(found) == {"guests-as-planned", "backup-coverage"}


def test_a_template_is_no_guest() -> None:
    stack = full_stack("home")
    assert [r.inputs.get("template") for r in stack if r.type == tokens.VM].count(True) == 1
    template = resource(
        "home", tokens.VM, "other-template", {"nodeName": "pve1", "vmId": 9001, "template": True, "cpu": {"cores": 8}}
    )
    assert check([*stack, template]) == []


def test_a_placement_known_only_after_up_is_not_judged_but_said() -> None:
    unknown = edit(full_stack("home"), "k3s-agent-1", {"nodeName": UNKNOWN})
    found = run(unknown)
    assert [v for v in found if not v.not_known_yet] == []
    assert "guests-as-planned" in not_known(found)


# --- replica-counts: pools ----------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
def test_pool_copies(shape: Shape) -> None:
    small = edit(full_stack("home", shape), "ceph-pool-vm-disks", {"size": 2, "minSize": 1})
    found = of_policy(check(small), "replica-counts")
    assert [v.resource for v in found] == [named(small, "ceph-pool-vm-disks").urn] * 2
    assert "Ceph pool vm-disks keeps 2 copies of each object" in found[0].message
    assert "Ceph pool vm-disks has min_size 1" in found[1].message
    wide = edit(full_stack("home", shape), "ceph-pool-k8s-volumes", {"size": 4})
    v = only(of_policy(check(wide), "replica-counts"), "replica-counts")
    assert "Ceph pool k8s-volumes keeps 4 copies but only 3 node(s) have OSDs" in v.message


def test_pool_left_at_proxmox_defaults_passes() -> None:
    defaults = edit(full_stack("home"), "ceph-pool-vm-disks", delete=["size", "minSize"])
    assert check(defaults) == []


def test_a_pool_size_known_only_after_up_is_not_read_as_the_default() -> None:
    unknown = edit(full_stack("home"), "ceph-pool-vm-disks", {"size": UNKNOWN})
    found = run(unknown)
    assert check(unknown) == [] and "replica-counts" in not_known(found)


# --- replica-counts: workloads and budgets ------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
def test_ha_workload_replicas(shape: Shape) -> None:
    one = edit(full_stack("home", shape), "apps-whoami", {"spec.replicas": 1}, typ=tokens.DEPLOYMENT)
    v = only(check(one), "replica-counts")
    assert 'Deployment apps/whoami (labelled homelab/ha: "true") runs 1 replica' in v.message
    assert v.resource == named(one, "apps-whoami", tokens.DEPLOYMENT).urn
    many = edit(full_stack("lab", shape), "apps-whoami", {"spec.replicas": 4}, typ=tokens.DEPLOYMENT)
    v = only(check(many, "lab"), "replica-counts")
    assert "runs 4 replicas but there are only 3 k3s nodes to spread them on" in v.message


def test_single_replica_workload_without_the_label_passes() -> None:
    unlabelled = edit(
        full_stack("home"),
        "apps-whoami",
        {"spec.replicas": 1, f"metadata.labels.{tokens.HA_LABEL}": "false"},
        typ=tokens.DEPLOYMENT,
    )
    assert check(unlabelled) == []


@pytest.mark.parametrize(
    ("change", "delete", "expect"),
    [
        ({"spec.maxUnavailable": 0}, [], "PodDisruptionBudget apps/whoami lets no pod be evicted"),
        ({"spec.maxUnavailable": "0%"}, [], "PodDisruptionBudget apps/whoami lets no pod be evicted"),
        ({"spec.maxUnavailable": "34%"}, [], None),
        ({"spec.minAvailable": 3}, ["spec.maxUnavailable"], "lets no pod of whoami (3 replicas) be evicted"),
        ({"spec.minAvailable": "100%"}, ["spec.maxUnavailable"], "lets no pod of whoami (3 replicas) be evicted"),
        ({"spec.minAvailable": 2}, ["spec.maxUnavailable"], None),
        ({"spec.minAvailable": "50%"}, ["spec.maxUnavailable"], None),
        ({}, ["spec.maxUnavailable"], "sets neither minAvailable nor maxUnavailable"),
    ],
)
@pytest.mark.parametrize("shape", SHAPES)
def test_disruption_budget_must_let_one_pod_go(
    change: dict[str, Any], delete: list[str], expect: str | None, shape: Shape
) -> None:
    stack = edit(full_stack("home", shape), "apps-whoami", change, typ=tokens.PDB, delete=delete)
    found = check(stack)
    if expect is None:
        assert found == []
        return
    v = only(found, "replica-counts")
    assert expect in v.message
    assert v.resource == named(stack, "apps-whoami", tokens.PDB).urn


def test_a_budget_that_blocks_drains_is_refused_for_single_replica_workloads_too() -> None:
    # Jellyfin runs one replica (not HA): one with minAvailable 1 would make every drain hang.
    blocking = edit(
        full_stack("home"), "media-jellyfin", {"spec.minAvailable": 1}, typ=tokens.PDB, delete=["spec.maxUnavailable"]
    )
    v = only(check(blocking), "replica-counts")
    assert "PodDisruptionBudget media/jellyfin lets no pod of jellyfin (1 replicas) be evicted" in v.message
    assert check(without(full_stack("home"), "media-jellyfin", typ=tokens.PDB)) == []


# --- disruption-budgets -------------------------------------------------------------------


def test_ha_workload_needs_a_disruption_budget_once_the_objects_are_known() -> None:
    missing = without(full_stack("home", Shape.UPDATE), "apps-whoami", typ=tokens.PDB)
    v = only(check(missing), "disruption-budgets")
    assert "Deployment apps/whoami is HA but no PodDisruptionBudget selects its pods" in v.message
    assert v.resource == named(missing, "apps-whoami", tokens.DEPLOYMENT).urn
    elsewhere = edit(full_stack("home", Shape.UPDATE), "apps-whoami", {"metadata.namespace": "other"}, typ=tokens.PDB)
    assert "no PodDisruptionBudget selects its pods" in only(check(elsewhere), "disruption-budgets").message


def test_a_first_preview_says_the_budgets_cannot_be_judged_yet_instead_of_passing() -> None:
    missing = without(full_stack("home", Shape.FIRST), "apps-whoami", typ=tokens.PDB)
    found = run(missing)
    assert check(missing) == []
    assert not_known(found) == ["disruption-budgets", "every-app-routed", "backup-coverage", "monitoring-coverage"]


# --- ha-shared-storage --------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
def test_ha_vm_disk_on_local_storage(shape: Shape) -> None:
    local = edit(full_stack("home", shape), "k3s-server-1", {"disks[0].datastoreId": "local-lvm"})
    v = only(check(local), "ha-shared-storage")
    vm = named(local, "k3s-server-1")
    assert v.resource == vm.urn
    node = vm.inputs["nodeName"]
    assert v.message == (
        f"k3s-server-1 (vm:201) is HA, but its disk scsi0 is on local-lvm, which only {node} has: when {node} "
        "fails, HA cannot start it anywhere else. Put it on the shared Ceph storage vm-disks."
    )


def test_an_ha_disk_whose_storage_is_known_only_after_up_is_said_not_passed() -> None:
    unknown = edit(full_stack("home", Shape.UPDATE), "k3s-server-1", {"disks[0].datastoreId": UNKNOWN})
    found = run(unknown)
    assert check(unknown) == [] and not_known(found) == ["ha-shared-storage"]
    assert "k3s-server-1's datastoreId is only known after `pulumi up`" in found[0].message


def test_ha_vm_disk_without_a_storage_gets_the_provider_default() -> None:
    default = edit(full_stack("home"), "k3s-agent-2", delete=["disks[0].datastoreId"])
    assert "its disk scsi0 is on local-lvm" in only(check(default), "ha-shared-storage").message


def test_ha_container_disks_on_local_storage() -> None:
    # The container takes an HA guest's VM ID: its root disk and a mount point on local-lvm.
    ha = edit(
        full_stack("home"),
        "backup",
        {"vmId": 201, "mountPoints": [{"path": "/data", "volume": "local-lvm:vm-201-disk-1"}]},
    )
    found = of_policy(check(ha), "ha-shared-storage")
    assert [v.message.split(", which")[0] for v in found] == [
        "k3s-server-1 (ct:201) is HA, but its root disk is on local-lvm",
        "k3s-server-1 (ct:201) is HA, but its mount point /data is on local-lvm",
    ]
    shared_path = edit(ha, "backup", {"mountPoints": [{"path": "/nas", "volume": "/mnt/nas", "shared": True}]})
    assert len(of_policy(check(shared_path), "ha-shared-storage")) == 1  # the root disk only


def test_local_disks_are_fine_for_guests_that_are_not_ha() -> None:
    backup = named(full_stack("home"), "backup")
    assert backup.inputs["disk"]["datastoreId"] == "local-lvm"
    assert check(full_stack("home")) == []


# --- redundant-links ----------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
def test_bond_with_one_nic(shape: Shape) -> None:
    single = edit(full_stack("home", shape), "pve2-bond0", {"slaves": ["enp1s0"]})
    v = only(check(single), "redundant-links")
    assert v.resource == named(single, "pve2-bond0").urn
    assert v.message.startswith("bond bond0 on pve2 has 1 member NIC(s) (enp1s0): one cable, switch port or NIC")


def test_storage_bond_with_one_nic() -> None:
    single = edit(full_stack("lab"), "lab3-bond1", {"slaves": ["ens20"]})
    assert "bond bond1 on lab3 has 1 member NIC(s)" in only(check(single, "lab"), "redundant-links").message


def test_mesh_node_with_one_cable() -> None:
    single = edit(full_stack("home"), "ceph-pve1", {"interfaceNames": ["en05"]})
    v = only(check(single), "redundant-links")
    assert v.message.startswith("storage mesh: pve1 has 1 direct cable(s) in the fabric (en05)")


def test_corosync_on_one_link() -> None:
    config = config_with("home", patched(stack_data("home"), {"networks.corosync_links": ["lan"]}))
    v = only(check(full_stack("home"), config=config), "redundant-links")
    assert v.message.startswith("corosync runs on 1 link (lan): if that network fails the nodes lose quorum")
    assert v.resource == next(r.urn for r in full_stack("home") if r.type == tokens.CLUSTER_COMPONENT)


@pytest.mark.parametrize("slaves", [UNKNOWN, ["enp1s0", UNKNOWN]], ids=["list", "element"])
def test_members_known_only_after_up_are_not_judged_but_said(slaves: Any) -> None:
    unknown = edit(full_stack("home", Shape.UPDATE), "pve1-bond0", {"slaves": slaves})
    found = run(unknown)
    assert check(unknown) == [] and not_known(found) == ["redundant-links"]
    assert "pve1-bond0's slaves is only known after `pulumi up`" in found[0].message


def test_budgets_and_pods_known_only_after_up_are_not_judged_but_said() -> None:
    stack = full_stack("home", Shape.UPDATE)
    for change in ({"spec.selector.matchLabels": UNKNOWN}, {"metadata.namespace": UNKNOWN}):
        unknown = edit(stack, "apps-whoami", change, typ=tokens.PDB)
        found = run(unknown)
        assert check(unknown) == [], change
        assert "disruption-budgets" in not_known(found), change


# --- protect-stateful ---------------------------------------------------------------------


def test_unprotected_pool_is_advisory() -> None:
    bare = edit(full_stack("home"), "ceph-pool-vm-disks", protect=False)
    v = only(check(bare), "protect-stateful")
    assert not v.mandatory and v.enforcement == "advisory"
    assert v.message.startswith("Ceph pool vm-disks is not protected")


def test_unprotected_volumes_are_advisory() -> None:
    bare = edit(full_stack("home"), "media-jellyfin", typ=tokens.STATEFUL_SET, protect=False)
    assert "StatefulSet media/jellyfin has volumeClaimTemplates" in only(check(bare), "protect-stateful").message
    claim = resource(
        "home",
        tokens.PVC,
        "data",
        {"metadata": {"name": "data", "namespace": "home"}, "spec": {"accessModes": ["ReadWriteOnce"]}},
    )
    stack = full_stack("home")
    found = only(check([*stack, claim]), "protect-stateful")
    assert "PersistentVolumeClaim home/data is not protected" in found.message
    assert check([*stack, dataclasses.replace(claim, protect=True)]) == []


# --- pod-security ---------------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
def test_host_network_only_where_the_spec_asks_and_in_a_namespace_that_admits_it(shape: Shape) -> None:
    stack = list(program_set_up("home", shape).resources)
    set_up_config = config_with("home", set_up_data("home"))
    assert not of_policy(
        check(stack, config=set_up_config), "pod-security"
    )  # home-assistant: host network, namespace privileged
    # A workload the spec keeps off the host network.
    jellyfin = edit(stack, "media-jellyfin", {"spec.template.spec.hostNetwork": True}, typ=tokens.STATEFUL_SET)
    v = only(check(jellyfin, config=set_up_config), "pod-security")
    assert v.message.startswith("media/jellyfin: its pods use the host network, which the spec does not ask for")
    # The namespace left at baseline: the API would refuse home-assistant's pods at `pulumi up`.
    baseline = {"metadata.labels": {"pod-security.kubernetes.io/enforce": "baseline"}}
    v = only(check(edit(stack, "home", baseline, typ=tokens.K8S_NAMESPACE), config=set_up_config), "pod-security")
    assert v.message == (
        "namespace home enforces Pod Security baseline, which refuses the pods of home-assistant on the host "
        "network; it must enforce privileged"
    )
    # A privileged namespace with nothing on the host network.
    privileged = {"metadata.labels": {"pod-security.kubernetes.io/enforce": "privileged"}}
    v = only(check(edit(stack, "media", privileged, typ=tokens.K8S_NAMESPACE), config=set_up_config), "pod-security")
    assert v.message.startswith("namespace media enforces Pod Security privileged, which admits any pod")


# --- guest-nic-vlans ------------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
def test_an_untagged_guest_nic_is_refused(shape: Shape) -> None:
    stack = full_stack("home", shape)
    assert not of_policy(check(stack), "guest-nic-vlans")
    untagged = edit(stack, "k3s-agent-1", {"networkDevices[0].vlanId": None})
    v = only(check(untagged), "guest-nic-vlans")
    assert v.message.startswith("k3s-agent-1: NIC 0 on vmbr0 has no VLAN tag, so Proxmox trunks every VLAN")
    container = edit(stack, "backup", {"networkInterfaces[0].vlanId": None}, typ=tokens.CONTAINER)
    assert "backup: NIC 0 on vmbr0 has no VLAN tag" in only(check(container), "guest-nic-vlans").message


# --- setup-pages-private ------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
def test_an_app_awaiting_setup_is_never_on_a_load_balancer(shape: Shape) -> None:
    stack = full_stack("home", shape)
    assert not of_policy(check(stack), "setup-pages-private")
    exposed = edit(stack, "media-jellyfin", {"spec.type": "LoadBalancer"}, typ=tokens.K8S_SERVICE)
    # (monitoring-coverage also says nothing probes it.)
    [v] = of_policy(check(exposed), "setup-pages-private")
    assert v.message.startswith("media/jellyfin puts jellyfin's ports on the LAN while its setup is pending")
