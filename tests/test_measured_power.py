"""Measured against modelled watts: the records, the power alert, the dashboard and a smart plug,
checked by `promtool` on synthetic series (plan/measured_power.py)."""

from __future__ import annotations

import json
from pathlib import Path

from components.monitoring import DASHBOARDS, POWER_DASHBOARD
from offline.reports import Reports
from plan.measured_power import BUDGET, MEASURED, MODELLED
from plan.monitoring import VMSINGLE, rule_groups, scrape_config
from spec import parse_cluster
from tests.monitoring_support import DRAW, HOME, promtool_test, release_values, run, tool, write
from tests.support import patched, program, stack_data


def rapl_series(node: str, watts: float, minutes: int) -> dict[str, str]:
    """A RAPL package counter that rises by WATTS joules a second, sampled each minute."""
    return {
        "series": f'node_rapl_package_joules_total{{job="node",node="{node}",index="0"}}',
        "values": f"0+{watts * 60:g}x{minutes}",
    }


def test_the_power_alert_fires_over_the_budget_and_stays_quiet_under_it(tmp_path: Path) -> None:
    # Budget 75 W: the three nodes' baselines (4.2 W each) and the backup host (5 W) are 17.6 W.
    over = [rapl_series(n, 20, 60) for n in ("pve1", "pve2", "pve3")]  # 3 x 24.2 + 5 = 77.6 W
    under = [rapl_series(n, 15, 60) for n in ("pve1", "pve2", "pve3")]  # 3 x 19.2 + 5 = 62.6 W
    alert = {"alertname": "MeasuredPowerOverBudget"}
    firing = {
        "exp_labels": {"severity": "warning"},
        "exp_annotations": {"summary": "the cluster draws 77.6 W, over power.budget_watts"},
    }
    tests = [
        {
            "interval": "1m",
            "input_series": over,
            "alert_rule_test": [{**alert, "eval_time": "40m", "exp_alerts": [firing]}],
        },
        # Over the budget for less than power_alert_minutes: not yet.
        {"interval": "1m", "input_series": over, "alert_rule_test": [{**alert, "eval_time": "20m", "exp_alerts": []}]},
        {"interval": "1m", "input_series": under, "alert_rule_test": [{**alert, "eval_time": "40m", "exp_alerts": []}]},
    ]
    out = promtool_test(tmp_path, tests)
    assert out.returncode == 0, out.stdout + out.stderr


def test_measured_and_modelled_watts_are_side_by_side(tmp_path: Path) -> None:
    modelled = {d.node: round(d.watts, 2) for d in DRAW.nodes if d.node.startswith("pve")}
    tests = [
        {
            "interval": "1m",
            "input_series": [rapl_series("pve1", 6, 30)],
            "promql_expr_test": [
                {"expr": f'{MEASURED}{{node="pve1"}}', "eval_time": "20m",
                 "exp_samples": [{"labels": f'{MEASURED}{{node="pve1"}}', "value": 10.2}]},
                {"expr": f'{MODELLED}{{node="pve3"}}', "eval_time": "20m",
                 "exp_samples": [{"labels": f'{MODELLED}{{node="pve3"}}', "value": modelled["pve3"]}]},
                {"expr": BUDGET, "eval_time": "1m", "exp_samples": [{"labels": BUDGET, "value": 75}]},
            ],
        }
    ]  # fmt: skip
    out = promtool_test(tmp_path, tests)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_power_dashboard_queries_are_promql_and_read_the_recorded_series(tmp_path: Path) -> None:
    [configmap] = [r for r in program("home").resources if r.name == DASHBOARDS]
    dashboard = json.loads(configmap.inputs["data"][POWER_DASHBOARD])
    panels = [p for row in dashboard["rows"] for p in row["panels"]]
    exprs = [e for p in panels for e in p["expr"]]
    # promtool parses each query, as a recording rule of its own.
    rules = [{"record": f"homelab:dashboard_{i}", "expr": e} for i, e in enumerate(exprs)]
    out = run(
        tool("promtool"),
        "check",
        "rules",
        str(write(tmp_path / "q.yml", {"groups": [{"name": "q", "rules": rules}]})),
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    recorded = {r["record"] for r in rule_groups(HOME, DRAW, 30)["groups"][0]["rules"]}
    assert {MEASURED, MODELLED, BUDGET} <= recorded and all(any(s in e for s in recorded) for e in exprs)
    assert {f'{MEASURED}{{node="{n.name}"}}' for n in HOME.nodes} <= set(exprs)
    # vmsingle serves it from the ConfigMap it mounts.
    server = release_values(VMSINGLE)["server"]
    mount = server["extraVolumeMounts"][0]["mountPath"]
    assert server["extraArgs"]["vmui.customDashboardsPath"] == mount
    assert server["extraVolumes"][0]["configMap"]["name"] == DASHBOARDS


def test_a_node_with_a_smart_plug_is_measured_at_the_wall(tmp_path: Path) -> None:
    meter = {"target": "10.0.10.90:80", "metric": "tasmota_power_watts"}
    cluster = parse_cluster(patched(stack_data("home"), {"nodes[2].hardware.power_meter": meter}))
    draw = Reports.of(cluster).draw
    rules = write(tmp_path / "rules.yml", rule_groups(cluster, draw, 30))
    config = write(tmp_path / "prometheus.yml", scrape_config(cluster, "blackbox:9115") | {"rule_files": [str(rules)]})
    out = run(tool("promtool"), "check", "config", str(config), cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    [job] = [j for j in scrape_config(cluster, "b:1")["scrape_configs"] if j["job_name"] == "power-meter-pve3"]
    assert job["static_configs"] == [{"targets": ["10.0.10.90:80"], "labels": {"node": "pve3"}}]
    tests = [
        {
            "interval": "1m",
            "input_series": [
                {"series": 'tasmota_power_watts{job="power-meter",node="pve3"}', "values": "12.5x20"},
                # The plug's node: its RAPL counter is not what is read.
                {"series": 'node_rapl_package_joules_total{job="node",node="pve3"}', "values": "0+600x20"},
            ],
            "promql_expr_test": [
                {"expr": f'{MEASURED}{{node="pve3"}}', "eval_time": "10m",
                 "exp_samples": [{"labels": f'{MEASURED}{{node="pve3"}}', "value": 12.5}]},
            ],
        }
    ]  # fmt: skip
    doc = {"rule_files": [str(rules)], "evaluation_interval": "1m", "tests": tests}
    out = run(tool("promtool"), "test", "rules", str(write(tmp_path / "t.yml", doc)), cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
