"""The policy pack, run in-process on whole stacks as the engine hands them over: resource
policies on inputs, stack policies on outputs, in a stack's first preview and in a preview of a
stack already built. Each policy passes the shipped stacks in both and catches the broken variant
it exists for, with a message that names what to fix. (Resource checks: test_policy_resources.py.)"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from pulumi_policy import EnforcementLevel

from offline import preview
from offline.engine import Shape
from offline.harness import ROOT, Resource, config_for
from offline.policy_run import Violation, run_policies
from policies import plan_checks, rules, tokens
from spec import Cluster
from tests.policy_support import config_with, edit, full_stack, named, resource, without
from tests.support import STACKS, patched, program_with, stack_cluster, stack_data

SHAPES = list(Shape)


def check(resources: list[Resource], stack: str = "home", config: dict[str, str] | None = None) -> list[Violation]:
    """The verdicts (without the pack's "can't run during preview" notes)."""
    found = run_policies(resources, config if config is not None else config_for(stack))
    return [v for v in found if not v.not_known_yet]


def of_policy(violations: list[Violation], policy: str) -> list[Violation]:
    return [v for v in violations if v.policy == policy]


def only(violations: list[Violation], policy: str) -> Violation:
    """The single violation, which must be of `policy`."""
    assert [v.policy for v in violations] == [policy], [v.message for v in violations]
    return violations[0]


# --- the pack as a whole ------------------------------------------------------------------


def test_pack_levels() -> None:
    levels = {p.name: rules.enforcement_of(p) for p in rules.POLICIES}
    assert levels == {
        "power-budget": EnforcementLevel.MANDATORY,
        "ups-runtime": EnforcementLevel.MANDATORY,
        "guests-as-planned": EnforcementLevel.MANDATORY,
        "replica-counts": EnforcementLevel.MANDATORY,
        "disruption-budgets": EnforcementLevel.MANDATORY,
        "ha-shared-storage": EnforcementLevel.MANDATORY,
        "pod-security": EnforcementLevel.MANDATORY,
        "guest-nic-vlans": EnforcementLevel.MANDATORY,
        "deploy-path-open": EnforcementLevel.MANDATORY,
        "setup-pages-private": EnforcementLevel.MANDATORY,
        "https-routes": EnforcementLevel.MANDATORY,
        "https-only": EnforcementLevel.MANDATORY,
        "every-app-routed": EnforcementLevel.MANDATORY,
        "gateway-address": EnforcementLevel.MANDATORY,
        "backup-coverage": EnforcementLevel.MANDATORY,
        "backup-off-cluster": EnforcementLevel.MANDATORY,
        "backup-retention": EnforcementLevel.MANDATORY,
        "monitoring-coverage": EnforcementLevel.MANDATORY,
        "redundant-links": EnforcementLevel.MANDATORY,
        "survives-any-node": EnforcementLevel.MANDATORY,
        "maintenance-redundancy": EnforcementLevel.ADVISORY,
        "protect-stateful": EnforcementLevel.ADVISORY,
    }


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("stack", STACKS)
def test_shipped_stacks_pass_in_both_preview_shapes(stack: str, shape: Shape) -> None:
    found = run_policies(full_stack(stack, shape), config_for(stack))
    assert [v for v in found if not v.not_known_yet] == []
    notes = [(v.policy, v.enforcement) for v in found if v.not_known_yet]
    if shape is Shape.FIRST and any(w.volumes for w in stack_cluster(stack).workloads):
        # The policies that need the k3s objects' outputs wait, and say so: the budgets,
        # whether each web app has its route (lab has no gateway), whether each volume's claim is
        # copied (lab has no volumes), and the probes (lab has no monitoring).
        assert notes == [
            ("disruption-budgets", "advisory"),
            ("every-app-routed", "advisory"),
            ("backup-coverage", "advisory"),
            ("monitoring-coverage", "advisory"),
        ]
        assert all("have no outputs yet" in v.message for v in found)
    elif shape is Shape.FIRST:
        assert notes == [("disruption-budgets", "advisory")]
    else:
        assert notes == []


def test_a_first_preview_leaves_the_k3s_objects_without_outputs() -> None:
    # The shape the pack must survive: the Kubernetes provider is unconfigured until k3s answers.
    first = full_stack("home", Shape.FIRST)
    k8s = [r for r in first if r.custom and r.type.startswith("kubernetes:")]
    assert k8s and all(r.outputs == {} for r in k8s)
    assert all(r.id == "" for r in first if r.custom)
    vms = [r for r in first if r.type == tokens.VM]
    assert vms and all(r.outputs.get("nodeName") == r.inputs["nodeName"] for r in vms)  # planned state
    update = full_stack("home", Shape.UPDATE)
    assert all(r.outputs and r.id for r in update if r.custom and r.type.startswith("kubernetes:"))


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
    found = check(full_stack("home", Shape.UPDATE), config=config)
    needs_spec = {p.name for p in rules.POLICIES} - {"protect-stateful"}
    assert {v.policy for v in found} == needs_spec
    assert all(expect in v.message for v in found)
    assert all(v.mandatory for v in found if v.policy != "maintenance-redundancy")


# --- power-budget -------------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
def test_power_budget_gives_figures_per_node(shape: Shape) -> None:
    config = config_with("home", patched(stack_data("home"), {"power.budget_watts": 27}))
    v = only(check(full_stack("home", shape), config=config), "power-budget")
    assert v.mandatory and v.resource == ""
    # The shipped guests model at 34.6 W: 7 W idle per node plus their expected load and the
    # metrics stack's, and the backup host's 5 W.
    assert "the cluster would draw 34.6 W, over the budget of 27 W (power.budget_watts) by 7.6 W" in v.message
    for node in ("pve1", "pve2", "pve3"):
        assert f"{node} " in v.message
    assert "backup host 5.0 W = idle 5 W + 0.0 W at 0% busy (no guests)" in v.message
    assert "= idle 7 W +" in v.message and "% busy (" in v.message and "k3s-agent-1" in v.message


def test_power_budget_takes_load_from_the_spec() -> None:
    data = patched(stack_data("home"), {"power.budget_watts": 35})
    assert check(full_stack("home"), config=config_with("home", data)) == []
    busier = patched(data, {"guests[3].load": 1.0})
    assert stack_data("home")["guests"][3]["name"] == "k3s-agent-1"
    v = only(of_policy(check(full_stack("home"), config=config_with("home", busier)), "power-budget"), "power-budget")
    assert "over the budget of 35 W" in v.message


def test_a_parked_guest_draws_nothing() -> None:
    # pve1 in maintenance parks its k3s server (its peers hold the other two hosts): stopped, no draw.
    before = plan_checks.plan_of(stack_cluster("home"))
    drained = plan_checks.plan_of(_with_maintenance(stack_cluster("home"), "pve1"))
    assert not isinstance(before, str) and not isinstance(drained, str)
    server = next(g for g, node in before.placement.items() if node == "pve1" and g.startswith("k3s-server"))
    assert drained.parked == {server}
    assert server not in {g.name for g in drained.running}
    # Its 0.8 W of expected load leaves the modelled draw: 33.8 W, not the 34.6 W with it running.
    tight = _with_maintenance(stack_cluster("home"), "pve1")
    tight = tight.model_copy(update={"power": tight.power.model_copy(update={"budget_watts": 1})})
    ((message, _),) = plan_checks.check_power_budget(tight)
    assert message.startswith("the cluster would draw 33.8 W, over the budget of 1 W")


def _with_maintenance(cluster: Cluster, node: str) -> Cluster:
    nodes = [n.model_copy(update={"maintenance": n.name == node}) for n in cluster.nodes]
    return cluster.model_copy(update={"nodes": nodes})


# --- survives-any-node --------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
def test_ceph_must_stay_writable_after_a_node_loss(shape: Shape) -> None:
    strict = config_with("home", patched(stack_data("home"), {"ceph.guest_pool.min_size": 3}))
    found = of_policy(check(full_stack("home", shape), config=strict), "survives-any-node")
    assert len(found) == 3  # whichever of the three nodes fails
    assert "Ceph pool vm-disks has copies on only 2 host(s), below its min_size 3" in found[0].message


def test_memory_shortfall_after_a_node_loss() -> None:
    cluster = stack_cluster("home")
    # Fits on its own node beside one k3s server, but no other node has that much room left.
    usable = 32 * 1024 - 2048 - 2048
    big = [g.model_copy(update={"memory_mib": usable - 4096}) if g.name == "k3s-agent-1" else g for g in cluster.guests]
    messages = [m for m, _ in plan_checks.check_survives_any_node(cluster.model_copy(update={"guests": big}))]
    shortfall = [m for m in messages if "cannot restart anywhere" in m]
    assert shortfall, messages
    assert "HA guest k3s-agent-1 (" in shortfall[0] and "short of" in shortfall[0] and "MiB of memory" in shortfall[0]


def test_busy_cores_beyond_a_node_are_no_plan_at_all() -> None:
    # Placement keeps every node's expected busy cores within its cores, as failover does: a
    # guest that would keep a whole node busy on top of the others finds no place.
    cluster = stack_cluster("home")
    busy = [g.model_copy(update={"load": 1.0, "cores": 8}) if g.name == "k3s-agent-1" else g for g in cluster.guests]
    ((message, urn),) = plan_checks.check_survives_any_node(cluster.model_copy(update={"guests": busy}))
    assert urn is None
    # k3s-agent-1 takes all of pve1's 8 cores, so the k3s server that pve1 held has nowhere to go.
    assert message == (
        "the spec's guests cannot be placed: guests[k3s-server-3]: no node can take it: short of 0.3 busy cores "
        "of CPU (it needs 0.3; the nodes with room for it have at most 0.0 to spare)"
    )


@pytest.mark.parametrize("shape", SHAPES)
def test_quorum_members_are_counted_as_the_program_declares_them(shape: Shape) -> None:
    # The k3s and Ceph components register the etcd members and monitor hosts they declared.
    stack = full_stack("home", shape)
    k3s = next(r for r in stack if r.type == tokens.K3S_COMPONENT)
    ceph = next(r for r in stack if r.type == tokens.CEPH_COMPONENT)
    assert k3s.outputs["servers"] == ["k3s-server-1", "k3s-server-2", "k3s-server-3"]
    assert ceph.outputs["monitors"] == ["pve1", "pve2", "pve3"]
    fewer = [
        dataclasses.replace(r, outputs={**r.outputs, "servers": ["k3s-server-1", "k3s-server-2"]})
        if r is k3s
        else dataclasses.replace(r, outputs={**r.outputs, "monitors": ["pve1", "pve2", "pve3", "pve1"]})
        if r is ceph
        else r
        for r in stack
    ]
    assert [v.message for v in check(fewer) if v.policy == "survives-any-node"] == [
        "the program declares 2 k3s servers (etcd members): embedded etcd needs an odd number of at least 3 to keep "
        "quorum through a node loss",
        "the program declares 4 Ceph monitors: Ceph's monitor map needs an odd number of at least 3 to keep quorum "
        "through a node loss",
    ]
    no_k3s = [r for r in stack if r is not k3s]
    assert "the spec has a k3s section but the program declares no k3s cluster" in [v.message for v in check(no_k3s)]


# --- the offline preview ------------------------------------------------------------------


def test_preview_writes_no_violations_for_a_shipped_stack(tmp_path: Path) -> None:
    assert preview.main(["--stack", "home", "--out", str(tmp_path)]) == 0
    found = json.loads((tmp_path / "home.json").read_text())["violations"]
    assert [(v["policy"], v["not_known_yet"]) for v in found] == [
        ("disruption-budgets", True),
        ("every-app-routed", True),
        ("backup-coverage", True),
        ("monitoring-coverage", True),
    ]


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
    verdicts = [(v["policy"], v["enforcement"], v["resource"]) for v in doc["violations"] if not v["not_known_yet"]]
    assert verdicts == [("power-budget", "mandatory", "")]
    assert "over the budget of 25 W" in doc["violations"][0]["message"]
    out = capsys.readouterr().out
    assert "policies: 1 mandatory, 0 advisory violation(s); 4 policies cannot judge yet" in out
    assert "  mandatory: power-budget: the cluster would draw" in out


@pytest.mark.parametrize("shape", SHAPES)
def test_a_drain_is_judged_by_the_advisory_maintenance_policy(shape: Shape) -> None:
    data = patched(stack_data("home"), {"nodes[0].maintenance": True})
    run = program_with("home", data, shape)
    found = check(run.resources, config=config_with("home", data))
    assert not [v for v in found if v.mandatory], [v.message for v in found if v.mandatory]
    advisory = [v for v in found if v.policy == "maintenance-redundancy"]
    assert advisory and all(v.message.count("while pve1 is in maintenance") for v in advisory)
    assert any("etcd" in v.message for v in advisory)


@pytest.mark.parametrize("shape", SHAPES)
def test_the_ha_the_node_loss_check_counts_on_is_declared(shape: Shape) -> None:
    stack = full_stack("home", shape)
    missing = without(stack, "k3s-server-1-ha")
    v = only(check(missing), "survives-any-node")
    assert v.message.startswith("k3s-server-1 is HA in the spec but no HA resource vm:201 is declared")
    ignored = edit(stack, "k3s-server-1-ha", {"state": "ignored"})
    v = only(check(ignored), "survives-any-node")
    assert v.message == "HA resource vm:201 (k3s-server-1) is declared ignored, where the plan has started"
    assert v.resource == named(stack, "k3s-server-1-ha").urn
    extra = resource("home", tokens.HA_RESOURCE, "backup-ha", {"resourceId": "ct:300", "state": "started"})
    v = only(check([*stack, extra]), "survives-any-node")
    assert v.message.startswith("HA resource ct:300 is declared for backup, which the spec does not make HA")


def test_ha_resources_without_outputs_are_said_not_judged() -> None:
    stack = full_stack("home", Shape.UPDATE)
    blank = [dataclasses.replace(r, outputs={}) if r.type == tokens.HA_RESOURCE else r for r in stack]
    found = run_policies(blank, config_for("home"))
    assert [v for v in found if not v.not_known_yet] == []
    assert [v.policy for v in found if v.not_known_yet] == ["survives-any-node"]


def test_a_check_that_cannot_judge_yet_does_not_hide_the_others() -> None:
    # The k3s component's outputs not registered yet, and a spec whose Ceph stops writing after a
    # node loss: the node-loss verdict still comes, and the pack says what it could not judge.
    stack = [
        dataclasses.replace(r, outputs={}) if r.type == tokens.K3S_COMPONENT else r
        for r in full_stack("home", Shape.UPDATE)
    ]
    strict = config_with("home", patched(stack_data("home"), {"ceph.guest_pool.min_size": 3}))
    found = [v for v in run_policies(stack, strict) if v.policy == "survives-any-node"]
    assert len([v for v in found if v.mandatory]) == 3
    assert [v.message for v in found if v.not_known_yet] == [
        "can't run policy 'survives-any-node' during preview: home-k3s has registered no servers yet"
    ]
