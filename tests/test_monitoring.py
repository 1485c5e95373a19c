"""The metrics stack's configuration, checked by Prometheus' and Alertmanager's own tools.

`promtool check config` reads the scrape config, `promtool check rules` the rule groups, and
`promtool test rules` fires each alert on synthetic series (and keeps it quiet where it must);
`amtool check-config` reads Alertmanager's config. All from Debian (`make tools`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from components.monitoring import (
    ALERTMANAGER_FILE,
    ALERTMANAGER_SECRET,
    ALERTMANAGER_VERSION,
)
from offline.engine import Shape
from offline.harness import Resource, config_for
from offline.policy_run import Violation, run_policies
from offline.reports import Reports
from plan.monitoring import (
    ALERTMANAGER,
    GATEWAY_TLS_MODULE,
    TCP_MODULE,
    VMALERT,
    VMSINGLE,
    alertmanager_config,
    probe_targets,
    rule_groups,
    scrape_config,
)
from plan.routes import lan_ports
from policies import tokens
from spec import parse_cluster
from tests.monitoring_support import HOME, promtool_test, release_values, run, tool, write
from tests.policy_support import edit, full_stack
from tests.support import STACKS, patched, program, stack_cluster, stack_data

SECRETS = {
    "alertWebhookUrl": "https://ntfy.example.org/homelab-alerts",
    "pushoverUserKey": "u" * 30,
    "pushoverToken": "a" * 30,
    "smtpPassword": "stand-in",
}
WATCHDOG = "https://hc-ping.example.org/0b7e6a1c"


@pytest.mark.parametrize("stack", STACKS)
def test_the_scrape_config_and_rules_are_what_prometheus_loads(stack: str, tmp_path: Path) -> None:
    cluster = stack_cluster(stack)
    rules = write(tmp_path / "rules.yml", rule_groups(cluster, Reports.of(cluster).draw, 30))
    config = scrape_config(cluster, "blackbox:9115") | {"rule_files": [str(rules)]}
    out = run(tool("promtool"), "check", "config", str(write(tmp_path / "prometheus.yml", config)), cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout and "rules found" in out.stdout


@pytest.mark.parametrize("kind", ["webhook", "pushover", "email"])
def test_alertmanagers_config_is_what_alertmanager_loads(kind: str, tmp_path: Path) -> None:
    receiver: dict[str, Any] = {"kind": kind}
    if kind == "email":
        receiver |= {"to": "me@example.org", "smarthost": "smtp.example.org:587", "sender": "lab@example.org"}
        receiver |= {"username": "lab@example.org"}
    cluster = parse_cluster(patched(stack_data("home"), {"monitoring.receiver": receiver}))
    config = alertmanager_config(cluster, SECRETS, WATCHDOG)
    out = run(tool("amtool"), "check-config", str(write(tmp_path / "am.yml", config)), cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    # The Watchdog goes to the dead-man's switch, every 5 minutes, never to the owner.
    [route] = config["route"]["routes"]
    assert route["matchers"] == ['alertname="Watchdog"'] and route["repeat_interval"] == "5m"


# --- the alerts, fired on synthetic series ------------------------------------------------


def test_each_alert_fires_on_what_it_watches(tmp_path: Path) -> None:
    lb = probe_targets(HOME)[TCP_MODULE][0]

    def case(alert: str, series: list[dict[str, str]], at: str, labels: dict[str, str], summary: str) -> dict[str, Any]:
        exp = {"exp_labels": labels, "exp_annotations": {"summary": summary}}
        return {"interval": "1m", "input_series": series,
                "alert_rule_test": [{"alertname": alert, "eval_time": at, "exp_alerts": [exp]}]}  # fmt: skip

    gw = "10.0.10.204:443"
    tests = [
        case("Watchdog", [], "1m", {"severity": "none"}, "the alerting pipeline works"),
        # Expires at 20 days: 14 days before that, it fires (every node reports it).
        case("ApiTokenExpiresSoon",
             [{"series": f'homelab_api_token_expiry_seconds{{tokenid="homelab@pve!deploy",node="{n}"}}',
               "values": f"{20 * 86400}x10100"} for n in ("pve1", "pve2")], "7d",
             {"severity": "warning", "tokenid": "homelab@pve!deploy"},
             "Proxmox API token homelab@pve!deploy expires in less than 2 weeks: renew it (pveum user token modify)"),
        # Every node's exporter says the same: one alert, not one per node.
        case("HaFencing", [{"series": f'pve_ha_state{{id="qemu/201",state="fence",node="{n}"}}', "values": "1x5"}
                           for n in ("pve1", "pve2")], "3m",
             {"severity": "critical", "id": "qemu/201", "state": "fence"},
             "HA is fencing or recovering qemu/201: a node was lost and its guests move"),
        case("HaError", [{"series": 'pve_ha_state{id="qemu/202",state="error",node="pve3"}', "values": "1x5"}], "3m",
             {"severity": "critical", "id": "qemu/202", "state": "error"},
             "HA put qemu/202 in error (a failed start or migration): ha-manager status says why"),
        case("NodeDown", [{"series": 'up{job="node",node="pve2"}', "values": "0x10"}], "5m",
             {"severity": "critical", "job": "node", "node": "pve2"}, "Proxmox node pve2 does not answer"),
        case("CephNotHealthy", [{"series": "ceph_health_status", "values": "1x10"}], "10m", {"severity": "warning"},
             "Ceph is not HEALTH_OK: ceph health detail says why"),
        case("CephOsdDown", [{"series": 'ceph_osd_up{ceph_daemon="osd.1"}', "values": "0x10"}], "10m",
             {"severity": "critical", "ceph_daemon": "osd.1"}, "Ceph OSD osd.1 is down"),
        case("CephOsdNearFull", [{"series": 'ceph_health_detail{name="OSD_NEARFULL"}', "values": "1x10"}], "10m",
             {"severity": "warning", "name": "OSD_NEARFULL"},
             "a Ceph OSD is nearly full: delete data or add a disk before writes stop"),
        case("AddressUnreachable", [{"series": f'probe_success{{job="probe-{TCP_MODULE}",instance="{lb}"}}',
                                     "values": "0x10"}], "5m",
             {"severity": "critical", "job": f"probe-{TCP_MODULE}", "instance": lb},
             f"{lb} does not answer: kube-vip, the workload or the node behind it is down"),
        case("EtcdLeaderChanges", [{"series": "etcd_server_leader_changes_seen_total", "values": "0+1x10"}], "10m",
             {"severity": "warning"}, "etcd changed leader more than 3 times in an hour: a server is flapping"),
        case("UpsOnBattery", [{"series": 'homelab_ups_on_battery{node="pve1"}', "values": "1"}], "0m",
             {"severity": "critical", "node": "pve1"},
             "the UPS runs on battery: the cluster shuts down in order if the power stays off"),
        # The gateway's wildcard, renewed by cert-manager with 30 days left: 20 days left means
        # its renewal has failed for ten.
        case("CertificateExpiresSoon",
             [{"series": f'probe_ssl_earliest_cert_expiry{{job="probe-{GATEWAY_TLS_MODULE}",instance="{gw}"}}',
               "values": f"{20 * 86400}x100"}], "90m",
             {"severity": "warning", "job": f"probe-{GATEWAY_TLS_MODULE}", "instance": gw},
             f"the certificate of {gw} expires in less than 3 weeks"),
        case("VolumeBackupLate", [{"series": 'volsync_volume_out_of_sync{obj_name="x",obj_namespace="apps"}',
                                   "values": "1x90"}], "70m",
             {"severity": "warning", "obj_name": "x", "obj_namespace": "apps"},
             "the copy of volume x in apps is late or failed"),
    ]  # fmt: skip
    out = promtool_test(tmp_path, tests)
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_exposed_port_is_probed_at_its_address_or_its_service() -> None:
    # whoami kept on plain HTTP: its LoadBalancer address comes from the pool.
    data = stack_data("home")
    next(w for w in data["workloads"] if w["name"] == "whoami")["plain_http"] = "a wall tablet without a CA store"
    cluster = parse_cluster(data)
    targets = probe_targets(cluster)[TCP_MODULE]
    exposed = [(w, p.port) for w in cluster.workloads for p in lan_ports(cluster, w) if p.protocol == "TCP"]
    fixed = {f"{w.load_balancer_ip}:{port}" for w, port in exposed if w.load_balancer_ip is not None}
    pooled = {f"{w.name}.{w.namespace}.svc:{port}" for w, port in exposed if w.load_balancer_ip is None}
    assert fixed == {"10.0.10.200:53"} and pooled == {"whoami.apps.svc:80"}
    # The gateway's HTTPS is probed too; the web ports behind it are not on the LAN any more.
    assert set(targets) == fixed | pooled | {"10.0.10.204:443"}


# --- what the program deploys -------------------------------------------------------------


def test_the_deployed_configs_are_the_checked_ones(tmp_path: Path) -> None:
    scrape = release_values(VMSINGLE)["server"]["scrape"]["config"]
    rules = write(tmp_path / "rules.yml", release_values(VMALERT)["server"]["config"]["alerts"])
    config = write(tmp_path / "prometheus.yml", scrape | {"rule_files": [str(rules)]})
    out = run(tool("promtool"), "check", "config", str(config), cwd=tmp_path)
    assert out.returncode == 0 and "SUCCESS" in out.stdout, out.stdout + out.stderr
    secret = program("home").named(ALERTMANAGER_SECRET)
    assert "stringData" in secret.secret_paths
    am = tmp_path / "alertmanager.yml"
    # The offline stand-ins for the two URLs (homelab:alertWebhookUrl, homelab:watchdogUrl), made
    # URLs as the owner's secrets are.
    text = secret.inputs["stringData"][ALERTMANAGER_FILE]
    for key in ("alertWebhookUrl", "watchdogUrl"):
        stand = config_for("home")[f"homelab:{key}"]
        assert stand in text
        text = text.replace(stand, f"https://example.org/{key}")
    am.write_text(text)
    out = run(tool("amtool"), "check-config", str(am), cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    # Alertmanager reads that Secret, not the chart's own config, and restarts when it changes
    # (its pod carries the Secret's digest: Alertmanager does not watch the file).
    values = release_values(ALERTMANAGER)
    assert values["config"] == {"enabled": False}
    rendered = secret.inputs["stringData"][ALERTMANAGER_FILE]
    assert values["podAnnotations"]["checksum/alertmanager-config"] == hashlib.sha256(rendered.encode()).hexdigest()
    # vmsingle re-reads its scrape config: the chart does not restart it when the config changes.
    assert release_values(VMSINGLE)["server"]["extraArgs"]["promscrape.configCheckInterval"] == "1m"
    assert values["extraArgs"]["config.file"].startswith(values["extraSecretMounts"][0]["mountPath"] + "/")


def merged(base: Any, over: Any) -> Any:
    """Helm's merge of values over the chart's defaults: maps merge, anything else replaces."""
    if isinstance(base, dict) and isinstance(over, dict):
        return {k: merged(base.get(k), v) if k in base else v for k, v in over.items()} | {
            k: v for k, v in base.items() if k not in over
        }
    return over


def test_alertmanagers_values_pass_the_charts_schema() -> None:
    folder = Path(__file__).parent / "chart_schemas"
    schema = json.loads((folder / f"alertmanager-{ALERTMANAGER_VERSION}.values.schema.json").read_text())
    defaults = yaml.safe_load((folder / f"alertmanager-{ALERTMANAGER_VERSION}.values.yaml").read_text())
    values = merged(defaults, release_values(ALERTMANAGER))
    jsonschema.validate(values, schema)
    # The schema is not empty-handed: a value of the wrong shape is refused.
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(merged(values, {"extraSecretMounts": "not a list"}), schema)


# --- monitoring-coverage ------------------------------------------------------------------


def coverage(resources: list[Resource]) -> list[Violation]:
    return [v for v in run_policies(resources, config_for("home")) if v.policy == "monitoring-coverage"]


def test_the_shipped_stack_probes_every_exposed_port_and_has_its_watchdog() -> None:
    assert coverage(full_stack("home", Shape.UPDATE)) == []
    # A first preview cannot read the k3s objects yet, and says so.
    [waiting] = coverage(full_stack("home"))
    assert waiting.not_known_yet


def test_an_exposed_port_without_a_probe_is_refused() -> None:
    stack = full_stack("home", Shape.UPDATE)
    scrape = release_values(VMSINGLE)["server"]["scrape"]["config"]
    jobs = [j for j in scrape["scrape_configs"] if j["job_name"] != f"probe-{TCP_MODULE}"]
    edited = edit(stack, VMSINGLE, {"values.server.scrape.config.scrape_configs": jobs}, typ=tokens.HELM_RELEASE)
    found = coverage(edited)
    assert found and all(v.policy == "monitoring-coverage" and not v.not_known_yet for v in found)
    messages = [v.message for v in found]
    lb = next(t for t in probe_targets(HOME)[TCP_MODULE] if t.startswith("10."))
    assert any(f"on the LAN and nothing probes {lb}: the owner would not hear" in m for m in messages), messages
    assert any("dns/adguard-home puts TCP 53 on the LAN and nothing probes 10.0.10.200:53" in m for m in messages)


def test_no_watchdog_is_refused() -> None:
    stack = full_stack("home", Shape.UPDATE)
    groups = release_values(VMALERT)["server"]["config"]["alerts"]["groups"]
    quiet = [{**g, "rules": [r for r in g["rules"] if r.get("alert") != "Watchdog"]} for g in groups]
    edited = edit(stack, VMALERT, {"values.server.config.alerts.groups": quiet}, typ=tokens.HELM_RELEASE)
    [v] = coverage(edited)
    assert v.message.startswith("vmalert has no Watchdog alert (expr vector(1))")
    # Named otherwise, the same rule is not the Watchdog Alertmanager routes to the switch.
    renamed = [
        {**g, "rules": [{**r, "alert": "Heartbeat"} if r.get("alert") == "Watchdog" else r for r in g["rules"]]}
        for g in groups
    ]
    edited = edit(stack, VMALERT, {"values.server.config.alerts.groups": renamed}, typ=tokens.HELM_RELEASE)
    assert [v.message[:30] for v in coverage(edited)] == ["vmalert has no Watchdog alert "]


def test_a_guest_whose_newest_copy_is_too_old_or_missing_is_late(tmp_path: Path) -> None:
    # The home schedule runs nightly: a copy may be 24 h + 3 h old. At 40 h: server 1's newest copy
    # is 30 h old, server 2's is 2 h old, and server 3 has none.
    at = 40 * 3600
    series = [
        {"series": 'homelab_guest_backup_newest_seconds{vmid="201",node="pve1"}', "values": f"{at - 30 * 3600}x50"},
        {"series": 'homelab_guest_backup_newest_seconds{vmid="202",node="pve1"}', "values": f"{at - 2 * 3600}x50"},
    ]
    guests = {str(g.vm_id): g.name for g in HOME.guests}

    def late(vmid: str) -> dict[str, Any]:
        return {
            "exp_labels": {"severity": "warning", "vmid": vmid, "guest": guests[vmid]},
            "exp_annotations": {
                "summary": f"guest {guests[vmid]} (VM {vmid}) has no copy on PBS as recent as its schedule makes: its "
                "backup failed or did not run (the job's task log on the node says why)"
            },
        }

    backed_up = {str(g.vm_id) for g in HOME.guests if g.name not in HOME.backups.skip}  # type: ignore[union-attr]
    expected = [late(v) for v in sorted(backed_up - {"202"})]
    tests = [
        {
            "interval": "1h",
            "input_series": series,
            "alert_rule_test": [{"alertname": "GuestBackupLate", "eval_time": "40h", "exp_alerts": expected}],
        }
    ]
    out = promtool_test(tmp_path, tests)
    assert out.returncode == 0, out.stdout + out.stderr
