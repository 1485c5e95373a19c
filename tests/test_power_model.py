"""The power model, pure: idle plus a share of (max - idle) by expected load."""

from __future__ import annotations

import pytest

from plan.placement import plan_guests
from plan.power import HOURS_PER_MONTH, cluster_draw, node_draw
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
    assert draw.idle_watts == 21
    assert 21 < draw.watts < 75
    assert draw.within_budget
    assert draw.kwh_per_month == pytest.approx(draw.watts * HOURS_PER_MONTH / 1000)
    assert draw.cost_per_month == pytest.approx(draw.kwh_per_month * 0.32)
    assert draw.budget_watts == 75 and [n.node for n in draw.nodes] == ["pve1", "pve2", "pve3"]


def test_over_budget_is_detected() -> None:
    cluster = parse_cluster(patched(stack_data("home"), {"power.budget_watts": 20}))
    assert not cluster_draw(cluster, plan_guests(cluster).where).within_budget


def test_a_down_node_draws_nothing() -> None:
    cluster = stack_cluster("home")
    draw = cluster_draw(cluster, plan_guests(cluster).where, down="pve1")
    assert [n.node for n in draw.nodes] == ["pve2", "pve3"]
