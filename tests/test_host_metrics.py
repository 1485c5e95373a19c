"""The metrics the rules read on a Proxmox host, from Debian's own node exporter.

A real `prometheus-node-exporter` runs on 127.0.0.1 with a made-up sysfs holding one RAPL
package counter, and a textfile folder holding what the rendered `ups-metrics` script wrote
(with `upsc` a stub saying the UPS is on battery); one scrape, checked by `promtool check
metrics`, must carry the series plan/monitoring.py's rules read. The exporter is started and
stopped here, by PID.
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from components.host_metrics import (
    BACKUP_METRICS,
    METRICS_USER,
    PVE_EXPORTER_SERVICE,
    PVE_EXPORTER_VENV,
    PVE_EXPORTER_VERSION,
    RAPL_DROP_IN,
    RAPL_READABLE,
    TOKEN_METRICS,
    UPS_METRICS,
    node_metrics_script,
    pve_exporter_script,
    ups_metrics_script,
)
from offline.reports import Reports
from plan.measured_power import MEASURED
from plan.monitoring import rule_groups
from tests.ceph_cluster import free_port
from tests.shell import ScriptRun, run_with_stubs, shellcheck, systemd_verify
from tests.support import script_param, stack_cluster

HOME = stack_cluster("home")
ENERGY_UJ = 123_456_789  # µJ: 123.456789 J


def rule_metric_names() -> set[str]:
    """The raw metric names the power rules and the UPS alert read from the node exporter."""
    text = str(rule_groups(HOME, Reports.of(HOME).draw, 30))
    return set(re.findall(r"\b(node_rapl_\w+|homelab_ups_\w+)\b", text))


def test_a_real_node_exporter_serves_what_the_rules_read(tmp_path: Path) -> None:
    exporter = shutil.which("prometheus-node-exporter")
    promtool = shutil.which("promtool")
    if exporter is None or promtool is None:
        pytest.fail("prometheus-node-exporter or promtool is missing: `make tools` installs them from Debian")
    zone = tmp_path / "sys/class/powercap/intel-rapl:0"
    zone.mkdir(parents=True)
    (zone / "name").write_text("package-0\n")
    (zone / "energy_uj").write_text(f"{ENERGY_UJ}\n")
    (zone / "max_energy_range_uj").write_text("262143328850\n")
    textfiles = tmp_path / "textfile"
    textfiles.mkdir()
    # What the UPS node's timer writes, with upsc saying the UPS is on battery at 87 %.
    script = ups_metrics_script(HOME).replace(
        "TEXTFILE_DIR=/var/lib/prometheus/node-exporter", f"TEXTFILE_DIR={textfiles}"
    )
    (tmp_path / "ups").mkdir()
    upsc = 'case "$2" in ups.status) echo "OB DISCHRG" ;; battery.charge) echo 87 ;; esac'
    wrote = run_with_stubs(script, tmp_path / "ups", {"upsc": upsc})
    assert wrote.returncode == 0, wrote.stderr
    port = free_port()
    process = subprocess.Popen(
        [exporter, f"--web.listen-address=127.0.0.1:{port}", f"--path.sysfs={tmp_path / 'sys'}",
         "--collector.disable-defaults", "--collector.rapl", "--collector.textfile",
         f"--collector.textfile.directory={textfiles}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        body = ""
        for _ in range(50):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
                    body = response.read().decode()
                break
            except OSError:
                time.sleep(0.2)
        assert body, "the node exporter did not answer"
    finally:
        process.terminate()
        process.wait(timeout=10)
    lint = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, text=True, check=False)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    samples = {line.split(" ")[0]: float(line.split(" ")[1]) for line in body.splitlines() if not line.startswith("#")}
    assert samples['node_rapl_package_joules_total{index="0",path="' + str(zone) + '"}'] == pytest.approx(123.456789)
    assert samples['homelab_ups_on_battery{ups="ups@localhost"}'] == 1
    assert samples['homelab_ups_battery_charge_percent{ups="ups@localhost"}'] == 87
    served = {name.split("{")[0] for name in samples}
    assert rule_metric_names() and rule_metric_names() <= served
    assert MEASURED  # the records built on them: tests/test_monitoring.py fires them


def test_the_hosts_units_are_what_systemd_loads(tmp_path: Path) -> None:
    files = installed("pve1")
    units = {Path(p).name: text for p, text in files.items() if p.endswith((".service", ".timer"))}
    kinds = ("ups", "backup", "token")
    assert set(units) == {f"homelab-{k}-metrics.{t}" for k in kinds for t in ("service", "timer")}
    for name, unit in units.items():
        folder = tmp_path / name
        folder.mkdir()
        # A timer starts the service of its name: systemd checks that one too.
        service = name.replace(".timer", ".service")
        (folder / service).write_text(units[service])
        path = folder / name
        path.write_text(unit)
        assert systemd_verify(path, folder, [UPS_METRICS, BACKUP_METRICS, TOKEN_METRICS]) == "0:", name


def test_the_installed_scripts_pass_shellcheck(tmp_path: Path) -> None:
    files = installed("pve1")
    scripts = {p: text for p, text in files.items() if p.startswith("/usr/local/lib/homelab/")}
    assert set(scripts) == {UPS_METRICS, BACKUP_METRICS, TOKEN_METRICS, RAPL_READABLE}
    assert shellcheck(scripts, tmp_path) == {p: [] for p in scripts}


def installed(node: str) -> dict[str, str]:
    """The files the program puts on NODE for its metrics: path -> content."""
    lines = script_param(node_metrics_script(HOME, HOME.node(node)), "FILES").splitlines()
    return {path: base64.b64decode(data).decode() for path, _mode, data in (line.split() for line in lines)}


def test_only_the_ups_node_writes_the_ups_state_and_every_node_the_backups() -> None:
    on_ups, elsewhere = installed("pve1"), installed("pve2")
    assert "upsc" in on_ups[UPS_METRICS] and UPS_METRICS not in elsewhere
    assert BACKUP_METRICS in on_ups and BACKUP_METRICS in elsewhere
    timers = script_param(node_metrics_script(HOME, HOME.node("pve1")), "TIMERS").split()
    assert timers == ["homelab-token-metrics.timer", "homelab-backup-metrics.timer", "homelab-ups-metrics.timer"]
    # The exporter's start makes the RAPL counters readable, as root.
    assert on_ups[RAPL_DROP_IN] == f"[Service]\nExecStartPre=+{RAPL_READABLE}\n"


def test_each_guests_newest_backup_is_reported(tmp_path: Path) -> None:
    script = installed("pve2")[BACKUP_METRICS]
    textfiles = tmp_path / "textfile"
    textfiles.mkdir()
    script = script.replace("TEXTFILE_DIR=/var/lib/prometheus/node-exporter", f"TEXTFILE_DIR={textfiles}")
    content = (
        # The newest first: the order the API gives is not the age.
        '[{"volid":"homelab-pbs:backup/vm/201/2026-12-02T02:30:00Z","vmid":201,"ctime":1764642600},'
        '{"volid":"homelab-pbs:backup/vm/201/2026-12-01T02:30:00Z","vmid":201,"ctime":1764556200},'
        '{"volid":"homelab-pbs:backup/ct/301/2026-12-02T02:31:00Z","vmid":301,"ctime":1764642660}]'
    )
    (tmp_path / "run").mkdir()
    run = run_with_stubs(
        script,
        tmp_path / "run",
        {"hostname": "echo pve2", "pvesh": f"[ \"$2\" = /nodes/pve2/storage/homelab-pbs/content ] && echo '{content}'"},
    )
    assert run.returncode == 0, run.stderr
    body = (textfiles / "backups.prom").read_text()
    lint = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True, text=True, check=False)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert 'homelab_guest_backup_newest_seconds{vmid="201"} 1764642600\n' in body  # the newest of two
    assert 'homelab_guest_backup_newest_seconds{vmid="301"} 1764642660\n' in body
    assert 'homelab_backup_storage_up{storage="homelab-pbs"} 1\n' in body
    # The storage not answering: said so, and no ages.
    (tmp_path / "down").mkdir()
    down = run_with_stubs(script, tmp_path / "down", {"hostname": "echo pve2", "pvesh": "exit 1"})
    assert down.returncode == 0, down.stderr
    body = (textfiles / "backups.prom").read_text()
    assert 'homelab_backup_storage_up{storage="homelab-pbs"} 0\n' in body and "newest_seconds{" not in body


def test_the_pve_exporters_unit_is_what_systemd_loads(tmp_path: Path) -> None:
    unit = tmp_path / "homelab-pve-exporter.service"
    unit.write_text(PVE_EXPORTER_SERVICE)
    assert systemd_verify(unit, tmp_path, [f"{PVE_EXPORTER_VENV}/bin/pve_exporter"]) == "0:"


def run_pve_exporter(tmp_path: Path, config_exists: bool, token_exists: bool) -> ScriptRun:
    tmp_path.mkdir(parents=True, exist_ok=True)
    config = tmp_path / "pve.yml"
    if config_exists:
        config.write_text("default: {}\n")
    script = pve_exporter_script()
    for name, value in (("CONFIG", config), ("UNIT", tmp_path / "unit"), ("VENV", tmp_path / "venv")):
        script = re.sub(rf"^{name}=.*$", f"{name}='{value}'", script, count=1, flags=re.MULTILINE)
    (tmp_path / "venv/bin").mkdir(parents=True)
    (tmp_path / "venv/bin/pve_exporter").write_text("#!/bin/sh\n")
    (tmp_path / "venv/bin/pve_exporter").chmod(0o755)
    (tmp_path / "venv/bin/pip").write_text(f"#!/bin/sh\necho 'Version: {PVE_EXPORTER_VERSION}'\n")
    (tmp_path / "venv/bin/pip").chmod(0o755)
    tokens = '[{"tokenid":"pve2"}]' if token_exists else "[]"
    stubs = {
        "hostname": "echo pve2",
        "pveum": (
            'case "$1 $2" in\n'
            '"user list") echo \'[{"userid":"metrics@pve"}]\' ;;\n'
            f'"user token") case "$3" in list) echo \'{tokens}\' ;;\n'
            'add) echo \'{"value":"s3cret-uuid"}\' ;; esac ;;\n'
            "esac"
        ),
        "chgrp": "true",
        "systemctl": "true",
        "curl": "echo 'pve_up{id=\"node/pve2\"} 1.0'",
    }
    (tmp_path / "run").mkdir()
    return run_with_stubs(script, tmp_path / "run", stubs)


def test_the_pve_exporter_gets_a_read_only_token_of_its_own_once(tmp_path: Path) -> None:
    fresh = run_pve_exporter(tmp_path / "fresh", config_exists=False, token_exists=False)
    assert fresh.returncode == 0, fresh.stderr
    assert fresh.called("pveum", "user", "token", "add", METRICS_USER, "pve2", "--privsep", "1", "--comment",
                        "the pve exporter on pve2", "--output-format", "json")  # fmt: skip
    assert fresh.called("pveum", "acl", "modify", "/", "--roles", "PVEAuditor", "--tokens", f"{METRICS_USER}!pve2")
    assert fresh.called("pveum", "acl", "modify", "/", "--roles", "PVEAuditor", "--users", METRICS_USER)
    config = (tmp_path / "fresh/pve.yml").read_text()
    assert 'token_value: "s3cret-uuid"' in config and "user: metrics@pve" in config
    assert oct((tmp_path / "fresh/pve.yml").stat().st_mode & 0o777) == "0o640"
    # A re-run with its config and its token in place keeps both.
    again = run_pve_exporter(tmp_path / "again", config_exists=True, token_exists=True)
    assert again.returncode == 0, again.stderr
    assert not [c for c in again.calls if c[:4] == ["pveum", "user", "token", "add"]]
    assert not [c for c in again.calls if c[:4] == ["pveum", "user", "token", "remove"]]


def test_each_expiring_api_token_is_reported(tmp_path: Path) -> None:
    script = installed("pve3")[TOKEN_METRICS]
    textfiles = tmp_path / "textfile"
    textfiles.mkdir()
    # user.cfg as pve-access-control writes it: a token that expires, one that never does.
    user_cfg = tmp_path / "user.cfg"
    user_cfg.write_text(
        "user:root@pam:1:0:::root@example.org:::\n"
        "user:homelab@pve:1:0::::::\n"
        "token:homelab@pve!deploy:1767225600:1:the deploy path:\n"
        "token:metrics@pve!pve3:0:1:the pve exporter on pve3:\n"
    )
    script = script.replace("TEXTFILE_DIR=/var/lib/prometheus/node-exporter", f"TEXTFILE_DIR={textfiles}")
    script = script.replace("USER_CFG=/etc/pve/user.cfg", f"USER_CFG={user_cfg}")
    (tmp_path / "run").mkdir()
    run = run_with_stubs(script, tmp_path / "run", {})
    assert run.returncode == 0, run.stderr
    body = (textfiles / "tokens.prom").read_text()
    lint = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True, text=True, check=False)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert [line for line in body.splitlines() if not line.startswith("#")] == [
        'homelab_api_token_expiry_seconds{tokenid="homelab@pve!deploy"} 1767225600'
    ]
