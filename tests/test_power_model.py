"""The power model, pure: idle plus a share of (max - idle) by expected load."""

from __future__ import annotations

import pytest

from plan.placement import plan_guests
from plan.power import BACKUP_HOST, cluster_draw, node_draw
from spec import parse_cluster
from tests.support import patched, stack_cluster, stack_data


def test_idle_node_draws_idle_watts() -> None:
    node = stack_cluster("home").nodes[0]
    draw = node_draw(node, [])
    assert draw.watts == node.hardware.idle_watts
    assert draw.utilisation == 0


def test_draw_grows_with_load_and_caps_at_max() -> None:
    cluster = stack_cluster("home")
    node = cluster.nodes[0]
    one = cluster.guest("k3s-agent-1")  # 4 cores at 25 % load: one core busy of 8
    assert node_draw(node, [one]).watts == pytest.approx(7 + (28 - 7) * (4 * 0.25) / 8)
    busy = [one.model_copy(update={"load": 1.0, "cores": 8})] * 3
    assert node_draw(node, busy).watts == 28


def test_home_stack_figures() -> None:
    cluster = stack_cluster("home")
    draw = cluster_draw(cluster, plan_guests(cluster).where)
    # Three nodes idle at 7 W, and the backup host at 5 W.
    assert draw.idle_watts == 26
    assert 26 < draw.watts < 75
    assert draw.within_budget
    # 34.61 W all month long (730 h, a year's 8760 h / 12): 25.27 kWh, 8.08 EUR at 0.32 EUR/kWh (the
    # gateway's Traefik, cert-manager and external-dns count 0.39 W of it).
    assert draw.watts == pytest.approx(34.61)
    assert draw.kwh_per_month == pytest.approx(25.2653, abs=1e-4)
    assert draw.cost_per_month == pytest.approx(8.0849, abs=1e-4)
    assert draw.budget_watts == 75 and [n.node for n in draw.nodes] == ["pve1", "pve2", "pve3", BACKUP_HOST]


def test_over_budget_is_detected() -> None:
    cluster = parse_cluster(patched(stack_data("home"), {"power.budget_watts": 20}))
    assert not cluster_draw(cluster, plan_guests(cluster).where).within_budget


def test_a_draw_exactly_at_the_budget_is_within_it() -> None:
    # The model's sum is the float of 34.61: a budget of exactly that is met, a hair less is not.
    at = parse_cluster(patched(stack_data("home"), {"power.budget_watts": 34.61}))
    assert cluster_draw(at, plan_guests(at).where).within_budget
    under = parse_cluster(patched(stack_data("home"), {"power.budget_watts": 34.6099}))
    assert not cluster_draw(under, plan_guests(under).where).within_budget


def test_a_down_node_draws_nothing() -> None:
    cluster = stack_cluster("home")
    draw = cluster_draw(cluster, plan_guests(cluster).where, down="pve1")
    # The backup host is not a node of the cluster: it stays on.
    assert [n.node for n in draw.nodes] == ["pve2", "pve3", BACKUP_HOST]


def test_the_metrics_stack_busies_the_k3s_agents_hosts() -> None:
    cluster = stack_cluster("home")
    placement = plan_guests(cluster).where
    with_stack = cluster_draw(cluster, placement)
    without = cluster_draw(cluster.model_copy(update={"monitoring": None}), placement)
    # 180 millicores requested, half on each agent's host (pve1, pve2): 0.09 of 8 cores of 21 W.
    for node in ("pve1", "pve2"):
        added = next(d.watts for d in with_stack.nodes if d.node == node) - next(
            d.watts for d in without.nodes if d.node == node
        )
        assert added == pytest.approx(0.09 / 8 * 21)
    assert next(d.watts for d in with_stack.nodes if d.node == "pve3") == next(
        d.watts for d in without.nodes if d.node == "pve3"
    )
