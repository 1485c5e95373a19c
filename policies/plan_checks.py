"""Stack checks judged on the spec's plan: the draw, and what the loss of any node does.

Every figure is known at preview time, in a stack's first preview as in later ones: the nodes,
watts and budget come from the spec, and where each guest runs from `plan.placement`, the same
placement the program declares. `guests-as-planned` (guest_checks) holds each declared VM and
container to that plan, so what is judged here is what gets built.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from plan.failover import Running, running_from_spec, simulate, spec_pools
from plan.placement import PlacementError, plan_guests
from plan.power import cluster_draw
from plan.ups import ups_plan, ups_problems
from spec import Cluster

Finding = tuple[str, str | None]  # (message, URN of the resource at fault or None for the stack)


@dataclass(frozen=True)
class Plan:
    placement: Mapping[str, str]
    parked: frozenset[str]
    running: list[Running]


def plan_of(cluster: Cluster) -> Plan | str:
    """Where the program puts every guest, or why it cannot (the program stops on the same error).
    `plan_guests` computes it once per spec: every guest and workload is judged on the same plan."""
    try:
        placement = plan_guests(cluster)
    except PlacementError as exc:
        return f"the spec's guests cannot be placed: {exc}"
    return Plan(placement.where, placement.parked, running_from_spec(cluster, placement.where, placement.parked))


def check_power_budget(cluster: Cluster) -> list[Finding]:
    plan = plan_of(cluster)
    if isinstance(plan, str):
        return [(plan, None)]
    on_node = {n.name: [g.name for g in plan.running if g.node == n.name] for n in cluster.nodes}
    draw = cluster_draw(cluster, {g.name: g.node for g in plan.running})
    if draw.within_budget:
        return []
    per_node = "; ".join(
        f"{d.node} {d.watts:.1f} W = idle {d.idle_watts:g} W + {d.watts - d.idle_watts:.1f} W at "
        f"{d.utilisation:.0%} busy ({', '.join(on_node.get(d.node, [])) or 'no guests'})"
        for d in draw.nodes
    )
    return [
        (
            f"the cluster would draw {draw.watts:.1f} W, over the budget of {draw.budget_watts:g} W "
            f"(power.budget_watts) by {draw.watts - draw.budget_watts:.1f} W: {per_node}. "
            "Lower guests' cores or expected load, spread guests to idle nodes, or raise the budget.",
            None,
        )
    ]


def check_survives_any_node(cluster: Cluster) -> list[Finding]:
    """What each node's loss does (the quorum members as declared are counted by `quorum_checks`).

    Mandatory in normal operation. While a node is drained for maintenance the cluster has, by
    design, one node less of slack: that window is judged by `maintenance-redundancy`."""
    plan = plan_of(cluster)
    if isinstance(plan, str):
        return [(plan, None)]
    if any(n.maintenance for n in cluster.nodes):
        return []  # the drained window: see maintenance-redundancy
    return _node_losses(cluster, plan)


def check_maintenance_redundancy(cluster: Cluster) -> list[Finding]:
    """Advisory: what another node's loss would do while one is in maintenance."""
    drained = [n.name for n in cluster.nodes if n.maintenance]
    plan = plan_of(cluster)
    if not drained or isinstance(plan, str):
        return []
    prefix = f"while {', '.join(drained)} {'is' if len(drained) == 1 else 'are'} in maintenance, "
    return [(prefix + message, urn) for message, urn in _node_losses(cluster, plan)]


def _node_losses(cluster: Cluster, plan: Plan) -> list[Finding]:
    findings: list[Finding] = []
    for failure in simulate(cluster, plan.running, spec_pools(cluster)):
        findings += [(message, None) for message in failure.shortfall_problems()]
        findings += [(message, None) for message in failure.cluster_problems()]
    return findings


def check_ups_runtime(cluster: Cluster) -> list[Finding]:
    """With a UPS: it carries the modelled peak, and its battery outlasts the ride-through plus
    the orderly shutdown (plan/ups.py)."""
    if cluster.ups is None:
        return []
    plan = plan_of(cluster)
    if isinstance(plan, str):
        return [(plan, None)]
    ups = ups_plan(cluster, cluster_draw(cluster, {g.name: g.node for g in plan.running}))
    assert ups is not None
    return [(problem, None) for problem in ups_problems(ups)]
