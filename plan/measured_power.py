"""Measured against modelled watts, per node: this project's own edge.

Measured is the CPU package's energy counter (node_exporter's RAPL collector, joules over time)
plus the node's platform baseline from the spec, or a smart plug's reading at the wall where the
spec names one; modelled is what plan/power.py predicts for the node with its planned guests.
Both are recorded as series (vmalert's rules, plan/monitoring.py), so the dashboard and the
power alert put them side by side.
"""

from __future__ import annotations

from typing import Any

from plan.power import BACKUP_HOST, ClusterDraw
from spec.models import Cluster

MEASURED = "homelab:node_power_watts:measured"
MODELLED = "homelab:node_power_watts:modelled"
BUDGET = "homelab:cluster_power_budget_watts"
POWER_METER_JOB = "power-meter"
Rule = dict[str, Any]


def power_rules(cluster: Cluster, draw: ClusterDraw) -> list[Rule]:
    """Each node's measured and modelled draw, and the budget, as series."""
    modelled = {d.node: d.watts for d in draw.nodes if d.node != BACKUP_HOST}
    rules: list[Rule] = []
    for node in cluster.nodes:
        meter = node.hardware.power_meter
        if meter is not None:
            # The plug's own reading at the wall: everything the node draws.
            expr = f'max({meter.metric}{{job="{POWER_METER_JOB}",node="{node.name}"}})'
        else:
            # All RAPL package domains of the node (a board may have more than one), as watts,
            # and the rest of the node from the spec.
            expr = (
                f'sum(rate(node_rapl_package_joules_total{{job="node",node="{node.name}"}}[5m])) '
                f"+ {node.hardware.baseline_watts:g}"
            )
        rules.append({"record": MEASURED, "expr": expr, "labels": {"node": node.name}})
        rules.append({"record": MODELLED, "expr": f"vector({modelled[node.name]:.2f})", "labels": {"node": node.name}})
    host = cluster.backups.pbs.host if cluster.backups is not None else None
    if host is not None:
        # The backup host has no exporter of its own here: it counts at its idle draw.
        rules.append({"record": MEASURED, "expr": f"vector({host.idle_watts:g})", "labels": {"node": "backup-host"}})
    rules.append({"record": BUDGET, "expr": f"vector({cluster.power.budget_watts:g})"})
    return rules


def power_dashboard(cluster: Cluster) -> dict[str, Any]:
    """vmui's dashboard (its "Dashboards" tab; VictoriaMetrics app/vmui/packages/vmui/public/
    dashboards/README.md): each node's measured draw beside the model's, and the cluster's
    against the budget."""
    per_node = [
        {
            "title": f"{n.name}: measured and modelled",
            "unit": "W",
            "width": 4,
            "expr": [f'{MEASURED}{{node="{n.name}"}}', f'{MODELLED}{{node="{n.name}"}}'],
            "alias": ["measured (RAPL + platform baseline)", "modelled (plan/power.py)"],
        }
        for n in cluster.nodes
    ]
    total = {
        "title": "cluster: measured against the budget",
        "unit": "W",
        "width": 12,
        "expr": [f"sum({MEASURED})", f"sum({MODELLED})", BUDGET],
        "alias": ["measured", "modelled", "budget"],
    }
    ratio = {
        "title": "measured / modelled, per node (above 1: the model is low; calibrate, README)",
        "width": 12,
        "expr": [f"{MEASURED} / on (node) {MODELLED}"],
    }
    return {"title": "homelab power", "rows": [{"title": "watts", "panels": [*per_node, total, ratio]}]}
