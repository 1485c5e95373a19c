"""The hosts' firewall: the cluster's own traffic allowed from its own networks, the firewall on
only after the rules, and no rule that could lock the owner or the deploy path out."""

from __future__ import annotations

import pytest

from offline.engine import Shape
from offline.harness import Resource, config_for
from offline.policy_run import Violation, run_policies
from policies import tokens
from tests.policy_support import edit, full_stack, resource
from tests.support import STACKS, program, stack_cluster


def groups(stack: str) -> dict[str, list[dict[str, object]]]:
    return {r.inputs["name"]: r.inputs["rules"] for r in program(stack).of_type(tokens.FIREWALL_GROUP)}


@pytest.mark.parametrize("stack", STACKS)
def test_ceph_and_ping_come_from_the_clusters_own_networks_only(stack: str) -> None:
    nets = stack_cluster(stack).networks
    g = groups(stack)
    ceph_sources = {r["source"] for r in g["homelab-ceph"]}
    assert ceph_sources == {str(nets.ceph.public), str(nets.ceph.cluster)}
    assert all(r["macro"] == "Ceph" and r["action"] == "ACCEPT" and r["type"] == "in" for r in g["homelab-ceph"])
    assert {r["source"] for r in g["homelab-ping"]} == {str(nets.lan.cidr), *ceph_sources}
    assert {(r["proto"], r["dport"], r["source"]) for r in g["homelab-mgmt"]} == {
        ("tcp", "8006", str(nets.lan.cidr)),
        ("tcp", "22", str(nets.lan.cidr)),
    }
    if stack_cluster(stack).ups is None:
        assert "homelab-nut" not in g
    else:
        # NUT from the other nodes only, not the LAN: the UPS node (pve1) needs none from itself.
        assert {(r["proto"], r["dport"], r["source"]) for r in g["homelab-nut"]} == {
            ("tcp", "3493", "10.0.10.12"),
            ("tcp", "3493", "10.0.10.13"),
        }


def test_the_firewall_goes_on_after_its_rules_dropping_the_rest() -> None:
    run = program("home")
    [on] = run.of_type(tokens.CLUSTER_FIREWALL)
    assert on.inputs["enabled"] is True and on.inputs["inputPolicy"] == "DROP"
    [rules] = run.of_type(tokens.FIREWALL_RULES)
    assert rules.urn in on.dependencies
    # The home stack has a UPS (its secondaries reach upsd on the UPS node) and monitoring (the
    # scraper on the k3s VMs reaches the hosts' exporters).
    groups = ["homelab-mgmt", "homelab-ceph", "homelab-ping", "homelab-nut", "homelab-metrics"]
    assert [r["securityGroup"] for r in rules.inputs["rules"]] == groups
    assert {g.urn for g in run.of_type(tokens.FIREWALL_GROUP)} <= set(rules.dependencies)
    assert "vmId" not in rules.inputs and "nodeName" not in rules.inputs  # cluster-wide


def check(resources: list[Resource]) -> list[Violation]:
    return [v for v in run_policies(resources, config_for("home")) if v.policy == "deploy-path-open"]


DROP_SSH = {"type": "in", "action": "DROP", "proto": "tcp", "dport": "22"}


@pytest.mark.parametrize("shape", list(Shape))
def test_a_rule_that_drops_the_deploy_path_is_refused(shape: Shape) -> None:
    stack = full_stack("home", shape)
    assert check(stack) == []
    rules = [*tokens_rules(stack), DROP_SSH]
    [v] = check(edit(stack, "home-firewall-rules", {"rules": rules}, typ=tokens.FIREWALL_RULES))
    assert v.message.startswith("home-firewall-rules: rule 5 drops TCP 22 from the LAN 10.0.10.0/24 before")
    # In a security group too, a range or a whole protocol.
    for bad in (
        {**DROP_SSH, "dport": "8000:8100"},
        {"type": "in", "action": "REJECT"},
        {"type": "in", "action": "DROP", "macro": "SSH"},
    ):
        group = edit(stack, "homelab-ping", {"rules": [bad]}, typ=tokens.FIREWALL_GROUP)
        assert [x.resource for x in check(group)] == [x.urn for x in group if x.name == "homelab-ping"], bad


def tokens_rules(stack: list[Resource]) -> list[object]:
    return list(next(r for r in stack if r.type == tokens.FIREWALL_RULES).inputs["rules"])


def test_rules_that_leave_the_deploy_path_alone_pass() -> None:
    stack = full_stack("home")
    fine = [
        {**DROP_SSH, "source": "192.168.99.0/24"},  # another network
        {**DROP_SSH, "dport": "3389"},
        {**DROP_SSH, "enabled": False},
        {"type": "out", "action": "DROP", "proto": "tcp", "dport": "22"},
        {"type": "in", "action": "DROP", "macro": "HTTP"},
    ]
    assert check(edit(stack, "home-firewall-rules", {"rules": fine}, typ=tokens.FIREWALL_RULES)) == []


def test_local_network_that_leaves_out_the_lan_is_refused() -> None:
    stack = full_stack("home")
    narrow = resource("home", tokens.FIREWALL_ALIAS, "local-network", {"name": "local_network", "cidr": "10.0.50.0/24"})
    [v] = check([*stack, narrow])
    assert "local_network 10.0.50.0/24 leaves out the LAN 10.0.10.0/24" in v.message
    wide = resource("home", tokens.FIREWALL_ALIAS, "local-network", {"name": "local_network", "cidr": "10.0.0.0/16"})
    assert check([*stack, wide]) == []
