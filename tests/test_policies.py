"""The policy pack, run in-process on whole stacks: each policy passes the shipped stacks and
catches the broken variant it exists for, with a message that names what to fix."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from pulumi_policy import EnforcementLevel

from offline import preview
from offline.harness import ROOT, Resource, config_for
from offline.policy_run import Violation, policy_resources, run_policies
from plan.failover import PoolSize
from policies import rules
from spec import Cluster
from tests.policy_support import config_with, edit, full_stack, named, of_type, resource, without
from tests.support import STACKS, patched, stack_cluster, stack_data

UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"  # how the engine marks a value known only after `up`


def check(resources: list[Resource], stack: str = "home", config: dict[str, str] | None = None) -> list[Violation]:
    return run_policies(resources, config if config is not None else config_for(stack))


def of_policy(violations: list[Violation], policy: str) -> list[Violation]:
    return [v for v in violations if v.policy == policy]


def only(violations: list[Violation], policy: str) -> Violation:
    """The single violation, which must be of `policy`."""
    assert [v.policy for v in violations] == [policy], [v.message for v in violations]
    return violations[0]


# --- the pack as a whole ------------------------------------------------------------------


def test_pack_lists_six_policies_mandatory_but_protect_stateful() -> None:
    levels = {p.name: rules.enforcement_of(p) for p in rules.POLICIES}
    assert levels == {
        "power-budget": EnforcementLevel.MANDATORY,
        "replica-counts": EnforcementLevel.MANDATORY,
        "ha-shared-storage": EnforcementLevel.MANDATORY,
        "redundant-links": EnforcementLevel.MANDATORY,
        "survives-any-node": EnforcementLevel.MANDATORY,
        "maintenance-redundancy": EnforcementLevel.ADVISORY,
        "protect-stateful": EnforcementLevel.ADVISORY,
    }


def test_ha_label_contract_matches_the_workloads_layer() -> None:
    from components import workloads

    assert workloads.HA_LABEL == rules.HA_LABEL


@pytest.mark.parametrize("stack", STACKS)
def test_shipped_stacks_pass(stack: str) -> None:
    assert check(full_stack(stack), stack) == []


@pytest.mark.parametrize(
    ("value", "expect"),
    [
        (None, "homelab:cluster is missing from this stack's config"),
        ("{not json", "homelab:cluster in this stack's config is not valid JSON"),
        (json.dumps({"name": "home"}), "power: Field required"),
    ],
)
def test_missing_or_invalid_spec_is_a_violation(value: str | None, expect: str) -> None:
    config = config_for("home")
    if value is None:
        del config["homelab:cluster"]
    else:
        config["homelab:cluster"] = value
    found = check(full_stack("home"), config=config)
    needs_spec = {
        "power-budget",
        "replica-counts",
        "ha-shared-storage",
        "redundant-links",
        "survives-any-node",
        "maintenance-redundancy",
    }
    assert {v.policy for v in found} == needs_spec
    assert all(expect in v.message for v in found)
    assert all(v.mandatory for v in found if v.policy != "maintenance-redundancy")


# --- power-budget -------------------------------------------------------------------------


def test_power_budget_gives_figures_per_node() -> None:
    config = config_with("home", patched(stack_data("home"), {"power.budget_watts": 22}))
    v = only(check(full_stack("home"), config=config), "power-budget")
    assert v.mandatory and v.resource == ""
    assert "over the budget of 22 W (power.budget_watts)" in v.message
    for node in ("pve1", "pve2", "pve3"):
        assert f"{node} " in v.message
    assert "= idle 7 W +" in v.message and "% busy (" in v.message and "k3s-agent-1" in v.message


def test_power_budget_takes_cores_from_the_declared_vm_and_load_from_the_spec() -> None:
    budget = 30  # the shipped guests model at about 28.7 W
    config = config_with("home", patched(stack_data("home"), {"power.budget_watts": budget}))
    assert check(full_stack("home"), config=config) == []
    wider = edit(full_stack("home"), "k3s-agent-1", {"cpu.cores": 8})
    v = only(check(wider, config=config), "power-budget")
    assert f"over the budget of {budget} W" in v.message


def test_a_template_vm_draws_nothing() -> None:
    assert [r.inputs.get("template") for r in of_type(full_stack("home"), rules.VM)].count(True) == 1
    template = resource(
        "home",
        rules.VM,
        "debian-13-template",
        {"nodeName": "pve1", "vmId": 9000, "template": True, "cpu": {"cores": 8}, "memory": {"dedicated": 30000}},
    )
    config = config_with("home", patched(stack_data("home"), {"power.budget_watts": 30}))
    assert check([*full_stack("home"), template], config=config) == []


def test_a_stopped_guest_draws_nothing() -> None:
    budget = 27  # the shipped guests model at about 28.7 W; k3s-agent-1 accounts for about 2.6 W
    config = config_with("home", patched(stack_data("home"), {"power.budget_watts": budget}))
    assert "over the budget of 27 W" in only(check(full_stack("home"), config=config), "power-budget").message
    parked = edit(full_stack("home"), "k3s-agent-1", {"started": False})
    assert check(parked, config=config) == []


def test_guest_on_an_unknown_node_is_reported() -> None:
    broken = edit(full_stack("home"), "backup", {"nodeName": "pve9"})
    v = only(check(broken), "power-budget")
    assert "backup is declared on node pve9, which is not in the spec's nodes" in v.message
    assert v.resource == named(broken, "backup").urn


# --- replica-counts -----------------------------------------------------------------------


def test_pool_copies() -> None:
    small = edit(full_stack("home"), "ceph-pool-vm-disks", {"size": 2, "minSize": 1})
    found = of_policy(check(small), "replica-counts")
    assert [v.resource for v in found] == [named(small, "ceph-pool-vm-disks").urn] * 2
    assert "Ceph pool vm-disks keeps 2 copies of each object" in found[0].message
    assert "Ceph pool vm-disks has min_size 1" in found[1].message
    wide = edit(full_stack("home"), "ceph-pool-k8s-volumes", {"size": 4})
    v = only(check(wide), "replica-counts")
    assert "Ceph pool k8s-volumes keeps 4 copies but only 3 node(s) have OSDs" in v.message


def test_pool_left_at_proxmox_defaults_passes() -> None:
    defaults = edit(full_stack("home"), "ceph-pool-vm-disks", delete=["size", "minSize"])
    assert check(defaults) == []


def test_quorum_member_counts() -> None:
    # Counted in what the program declares: one server join less, one monitor more.
    cluster = stack_cluster("home")
    inv = rules.inventory(policy_resources(full_stack("home")), cluster)
    joins = [x for x in inv.scripts if "ROLE=server-join" in x]
    mons = [x for x in inv.scripts if "pveceph mon create" in x]
    assert len(joins) == 2 and len(mons) == 3
    even = dataclasses.replace(inv, scripts=[x for x in inv.scripts if x is not joins[0]] + [mons[0]])
    messages = [m for m, _ in rules.check_replica_counts(cluster, even)]
    assert messages == [
        "k3s.servers lists 2 servers: embedded etcd needs an odd number of at least 3 to keep quorum through a node "
        "loss",
        "ceph.monitors lists 4 monitor hosts: Ceph's monitor map needs an odd number of at least 3 to keep quorum "
        "through a node loss",
    ]
    assert rules.check_replica_counts(cluster, inv) == []


def test_ha_workload_replicas() -> None:
    one = edit(full_stack("home"), "apps-whoami", {"spec.replicas": 1}, typ=rules.DEPLOYMENT)
    v = only(check(one), "replica-counts")
    assert 'Deployment apps/whoami (labelled homelab/ha: "true") runs 1 replica' in v.message
    assert v.resource == named(one, "apps-whoami", rules.DEPLOYMENT).urn
    many = edit(full_stack("lab"), "apps-whoami", {"spec.replicas": 4}, typ=rules.DEPLOYMENT)
    v = only(check(many, "lab"), "replica-counts")
    assert "runs 4 replicas but there are only 3 k3s nodes to spread them on" in v.message


def test_single_replica_workload_without_the_label_passes() -> None:
    unlabelled = edit(
        full_stack("home"),
        "apps-whoami",
        {"spec.replicas": 1, f"metadata.labels.{rules.HA_LABEL}": "false"},
        typ=rules.DEPLOYMENT,
    )
    assert check(unlabelled) == []


@pytest.mark.parametrize(
    ("change", "delete", "bad"),
    [
        ({"spec.maxUnavailable": 0}, [], True),
        ({"spec.maxUnavailable": "0%"}, [], True),
        ({"spec.maxUnavailable": "34%"}, [], False),
        ({"spec.minAvailable": 3}, ["spec.maxUnavailable"], True),
        ({"spec.minAvailable": "100%"}, ["spec.maxUnavailable"], True),
        ({"spec.minAvailable": 2}, ["spec.maxUnavailable"], False),
        ({"spec.minAvailable": "50%"}, ["spec.maxUnavailable"], False),
    ],
)
def test_disruption_budget_must_let_one_pod_go(change: dict[str, Any], delete: list[str], bad: bool) -> None:
    stack = edit(full_stack("home"), "apps-whoami", change, typ=rules.PDB, delete=delete)
    found = check(stack)
    if not bad:
        assert found == []
        return
    v = only(found, "replica-counts")
    assert "PodDisruptionBudget apps/whoami lets no pod of whoami (3 replicas) be evicted" in v.message
    assert v.resource == named(stack, "apps-whoami", rules.PDB).urn


def test_a_budget_that_blocks_drains_is_refused_for_single_replica_workloads_too() -> None:
    # Jellyfin runs one replica (not HA): no budget is required, but one with minAvailable 1
    # would make every drain of its node hang.
    blocking = edit(
        full_stack("home"), "media-jellyfin", {"spec.minAvailable": 1}, typ=rules.PDB, delete=["spec.maxUnavailable"]
    )
    v = only(check(blocking), "replica-counts")
    assert "PodDisruptionBudget media/jellyfin lets no pod of jellyfin (1 replica) be evicted" in v.message
    assert check(without(full_stack("home"), "media-jellyfin", typ=rules.PDB)) == []


def test_ha_workload_needs_a_disruption_budget() -> None:
    missing = without(full_stack("home"), "apps-whoami", typ=rules.PDB)
    v = only(check(missing), "replica-counts")
    assert "Deployment apps/whoami is HA but no PodDisruptionBudget selects its pods" in v.message
    elsewhere = edit(full_stack("home"), "apps-whoami", {"metadata.namespace": "other"}, typ=rules.PDB)
    assert "no PodDisruptionBudget selects its pods" in only(check(elsewhere), "replica-counts").message
    empty = edit(full_stack("home"), "apps-whoami", typ=rules.PDB, delete=["spec.maxUnavailable"])
    assert "sets neither minAvailable nor maxUnavailable" in only(check(empty), "replica-counts").message


def test_unknown_namespace_or_selector_is_not_a_missing_budget() -> None:
    unknown_ns = edit(full_stack("home"), "apps-whoami", {"metadata.namespace": UNKNOWN}, typ=rules.PDB)
    assert check(unknown_ns) == []
    unknown_selector = edit(full_stack("home"), "apps-whoami", {"spec.selector.matchLabels": UNKNOWN}, typ=rules.PDB)
    assert check(unknown_selector) == []
    unknown_limit = edit(full_stack("home"), "apps-whoami", {"spec.maxUnavailable": UNKNOWN}, typ=rules.PDB)
    assert check(unknown_limit) == []


# --- ha-shared-storage --------------------------------------------------------------------


def test_ha_vm_disk_on_local_storage() -> None:
    local = edit(full_stack("home"), "k3s-server-1", {"disks[0].datastoreId": "local-lvm"})
    v = only(check(local), "ha-shared-storage")
    vm = named(local, "k3s-server-1")
    assert v.resource == vm.urn
    node = vm.inputs["nodeName"]
    assert v.message == (
        f"k3s-server-1 (vm:201) is HA, but its disk scsi0 is on local-lvm, which only {node} has: when {node} "
        "fails, HA cannot start it anywhere else. Put it on the shared Ceph storage vm-disks."
    )


def test_ha_vm_disk_without_a_storage_gets_the_provider_default() -> None:
    default = edit(full_stack("home"), "k3s-agent-2", delete=["disks[0].datastoreId"])
    assert "its disk scsi0 is on local-lvm" in only(check(default), "ha-shared-storage").message


def test_ha_container_root_disk_on_local_storage() -> None:
    ha_backup = [*full_stack("home"), resource("home", rules.HA_RESOURCE, "backup-ha", {"resourceId": "ct:300"})]
    v = only(check(ha_backup), "ha-shared-storage")
    assert v.message.startswith("backup (ct:300) is HA, but its root disk is on local-lvm")


def test_local_disks_are_fine_for_guests_that_are_not_ha() -> None:
    backup = named(full_stack("home"), "backup")
    assert backup.inputs["disk"]["datastoreId"] == "local-lvm"
    not_ha = edit(without(full_stack("home"), "k3s-server-1-ha"), "k3s-server-1", {"disks[0].datastoreId": "local-lvm"})
    assert of_policy(check(not_ha), "ha-shared-storage") == []
    ignored = edit(full_stack("home"), "k3s-server-1-ha", {"state": "ignored"})
    ignored = edit(ignored, "k3s-server-1", {"disks[0].datastoreId": "local-lvm"})
    assert of_policy(check(ignored), "ha-shared-storage") == []


# --- redundant-links ----------------------------------------------------------------------


def test_bond_with_one_nic() -> None:
    single = edit(full_stack("home"), "pve2-bond0", {"slaves": ["enp1s0"]})
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
    assert v.resource == next(r.urn for r in full_stack("home") if r.type == rules.CLUSTER_COMPONENT)


def test_unknown_members_are_not_judged() -> None:
    unknown = edit(full_stack("home"), "pve1-bond0", {"slaves": UNKNOWN})
    assert check(unknown) == []


# --- survives-any-node --------------------------------------------------------------------


def test_memory_shortfall_after_a_node_loss() -> None:
    stack = full_stack("home")
    agent = named(stack, "k3s-agent-1")
    node = agent.inputs["nodeName"]
    # Still fits on its own node next to one k3s server, but no other node has that much room left.
    usable = 32 * 1024 - 2048 - 2048
    big = edit(stack, "k3s-agent-1", {"memory.dedicated": usable - 4096})
    found = of_policy(check(big), "survives-any-node")
    shortfall = [v for v in found if "cannot restart anywhere" in v.message]
    assert shortfall, [v.message for v in found]
    assert shortfall[0].message.startswith(f"if {node} fails, HA guest k3s-agent-1 (")
    assert "short of" in shortfall[0].message and "MiB of memory" in shortfall[0].message
    assert shortfall[0].resource == agent.urn


def test_overcommitted_node_is_reported_before_any_failure() -> None:
    stack = full_stack("home")
    node = named(stack, "k3s-agent-1").inputs["nodeName"]
    big = edit(stack, "k3s-agent-1", {"memory.dedicated": 30000})
    messages = [v.message for v in of_policy(check(big), "survives-any-node")]
    assert any(m.startswith(f"even with every node up, the guests on {node} need") for m in messages)


def test_two_k3s_servers_on_one_node_lose_etcd_quorum() -> None:
    stack = full_stack("lab")
    node = named(stack, "k3s-1").inputs["nodeName"]
    crowded = edit(stack, "k3s-2", {"nodeName": node})
    messages = [v.message for v in of_policy(check(crowded, "lab"), "survives-any-node")]
    assert f"if {node} fails, only 1 of 3 k3s servers stay up, no majority" in " ".join(messages)


def test_ceph_must_stay_writable_after_a_node_loss() -> None:
    strict = edit(full_stack("home"), "ceph-pool-vm-disks", {"minSize": 3})
    found = of_policy(check(strict), "survives-any-node")
    assert len(found) == 3  # whichever of the three nodes fails
    assert "Ceph pool vm-disks has copies on only 2 host(s), below its min_size 3" in found[0].message


def test_anti_affinity_leftovers_are_not_shortfalls() -> None:
    # Every node loss leaves one k3s server down by design (the other two nodes hold one each).
    cluster = stack_cluster("home")
    inv = rules.inventory(policy_resources(full_stack("home")), cluster)
    assert rules.check_survives_any_node(cluster, inv) == []
    # (Registration order is not fixed: the program declares resources concurrently.)
    assert set(inv.pool_sizes(cluster)) == {PoolSize("vm-disks", 3, 2), PoolSize("k8s-volumes", 3, 2)}


def test_unknown_placement_is_skipped_not_guessed() -> None:
    unknown = edit(full_stack("home"), "k3s-agent-1", {"nodeName": UNKNOWN})
    assert check(unknown) == []


# --- protect-stateful ---------------------------------------------------------------------


def test_unprotected_pool_is_advisory() -> None:
    bare = edit(full_stack("home"), "ceph-pool-vm-disks", protect=False)
    v = only(check(bare), "protect-stateful")
    assert not v.mandatory and v.enforcement == "advisory"
    assert v.message.startswith("Ceph pool vm-disks is not protected")


def test_unprotected_volumes_are_advisory() -> None:
    bare = edit(full_stack("home"), "media-jellyfin", typ=rules.STATEFUL_SET, protect=False)
    assert "StatefulSet media/jellyfin has volumeClaimTemplates" in only(check(bare), "protect-stateful").message
    claim = resource(
        "home",
        rules.PVC,
        "data",
        {"metadata": {"name": "data", "namespace": "home"}, "spec": {"accessModes": ["ReadWriteOnce"]}},
    )
    stack = full_stack("home")
    found = only(check([*stack, claim]), "protect-stateful")
    assert "PersistentVolumeClaim home/data is not protected" in found.message
    assert check([*stack, dataclasses.replace(claim, protect=True)]) == []


# --- the offline preview ------------------------------------------------------------------


def test_preview_writes_no_violations_for_a_shipped_stack(tmp_path: Path) -> None:
    assert preview.main(["--stack", "home", "--out", str(tmp_path)]) == 0
    assert json.loads((tmp_path / "home.json").read_text())["violations"] == []


def test_preview_exits_3_on_a_mandatory_violation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = preview.load_spec

    def tight_budget(stack: str, root: Path = ROOT) -> tuple[Cluster, dict[str, str]]:
        cluster, config = real(stack, root)
        config["homelab:cluster"] = json.dumps(patched(stack_data(stack), {"power.budget_watts": 25}))
        return cluster, config

    monkeypatch.setattr(preview, "load_spec", tight_budget)
    assert preview.main(["--stack", "home", "--out", str(tmp_path)]) == preview.EXIT_POLICY
    doc = json.loads((tmp_path / "home.json").read_text())
    assert [(v["policy"], v["enforcement"], v["resource"]) for v in doc["violations"]] == [
        ("power-budget", "mandatory", "")
    ]
    assert "over the budget of 25 W" in doc["violations"][0]["message"]
    out = capsys.readouterr().out
    assert "policies: 1 mandatory, 0 advisory violation(s)" in out
    assert "  mandatory: power-budget: the cluster would draw" in out


def test_a_drain_is_judged_by_the_advisory_maintenance_policy() -> None:
    import json

    from offline.harness import config_for
    from offline.policy_run import run_policies
    from tests.support import patched, program_with, stack_data

    data = patched(stack_data("home"), {"nodes[0].maintenance": True})
    run = program_with("home", data)
    config = config_for("home")
    config["homelab:cluster"] = json.dumps(data)
    found = run_policies(run.resources, config)
    assert not [v for v in found if v.mandatory], [v.message for v in found if v.mandatory]
    advisory = [v for v in found if v.policy == "maintenance-redundancy"]
    assert advisory and all(v.message.count("while pve1 is in maintenance") for v in advisory)
    assert any("etcd" in v.message for v in advisory)
