"""What the metrics stack scrapes, the alerts it raises and the watts it compares, from the spec.

Pure data in Prometheus' own formats (scrape config, rule groups, Alertmanager's config), so the
real `promtool` and `amtool` check exactly what the cluster runs (tests/test_monitoring.py).
VictoriaMetrics reads the same scrape config and vmalert the same rule groups.

The watts, measured against modelled, are plan/measured_power.py's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from plan.backups import VOLSYNC_NAMESPACE, backed_up_guests, interval_hours
from plan.measured_power import BUDGET, MEASURED, POWER_METER_JOB, Rule, power_rules
from plan.power import ClusterDraw
from plan.routes import lan_ports
from spec.models import Cluster

NODE_EXPORTER_PORT = 9100
CEPH_MGR_PORT = 9283
PVE_EXPORTER_PORT = 9221
ETCD_METRICS_PORT = 2381  # k3s `etcd-expose-metrics`: plain HTTP on the server's address
API_PORT = 6443
# Blackbox exporter's modules (its config: components/monitoring.py).
TCP_MODULE = "tcp_connect"
TLS_MODULE = "tls_connect"
# The gateway's certificate: a TLS handshake at its address naming a host under the domain, so
# Traefik shows the wildcard certificate cert-manager keeps (by address alone it would show its
# own default one).
GATEWAY_TLS_MODULE = "tls_gateway"

# The releases of the metrics stack (components/monitoring.py), named so that their Services are.
VMSINGLE = "vmsingle"
VMALERT = "vmalert"
ALERTMANAGER = "alertmanager"
BLACKBOX = "blackbox"
SCHEDULER_PORT = 10259
CONTROLLER_MANAGER_PORT = 10257
VOLSYNC_METRICS = "volsync-controller-metrics"
VOLSYNC_METRICS_PORT = 8443
SERVICE_ACCOUNT_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"
IN_CLUSTER_AUTH: dict[str, Any] = {
    "scheme": "https",
    "bearer_token_file": SERVICE_ACCOUNT_TOKEN,
    "tls_config": {"insecure_skip_verify": True},
}
BACKUP_MAX_AGE = "homelab:guest_backup_max_age_seconds"


def scrape_config(cluster: Cluster, blackbox: str, interval_seconds: int = 30) -> dict[str, Any]:
    """Prometheus' scrape config: the Proxmox hosts (node_exporter, Ceph's mgr), the k3s
    servers' etcd, and the blackbox probes of every address an owner reaches."""
    nodes = [{"targets": [f"{n.address}:{NODE_EXPORTER_PORT}"], "labels": {"node": n.name}} for n in cluster.nodes]
    # A mgr runs beside each monitor (components/storage.py); the active one serves the metrics,
    # the standbys an empty page.
    mgrs = [
        {"targets": [f"{cluster.node(m).address}:{CEPH_MGR_PORT}"], "labels": {"node": m}}
        for m in cluster.ceph.monitors
    ]
    pves = [{"targets": [f"{n.address}:{PVE_EXPORTER_PORT}"], "labels": {"node": n.name}} for n in cluster.nodes]
    jobs: list[dict[str, Any]] = [
        {"job_name": "node", "static_configs": nodes},
        {"job_name": "ceph", "honor_labels": True, "static_configs": mgrs},
        # Each node's exporter reads the cluster's API on its own loopback: any one answers for all.
        {"job_name": "pve", "metrics_path": "/pve", "params": {"target": ["localhost"]}, "static_configs": pves},
    ]
    meters = [(n.name, n.hardware.power_meter) for n in cluster.nodes if n.hardware.power_meter is not None]
    for name, meter in meters:
        jobs.append(
            {
                "job_name": f"{POWER_METER_JOB}-{name}",
                "metrics_path": meter.metrics_path,
                "static_configs": [{"targets": [meter.target], "labels": {"node": name}}],
                # One job name for all plugs in the rules: the rules read `job="power-meter"`.
                "relabel_configs": [{"target_label": "job", "replacement": POWER_METER_JOB}],
            }
        )
    if cluster.k3s is not None:
        servers = [
            {"targets": [f"{cluster.guest(s).address}:{ETCD_METRICS_PORT}"], "labels": {"server": s}}
            for s in cluster.k3s.servers
        ]
        jobs.append({"job_name": "etcd", "static_configs": servers})
        # The scheduler and the controller manager: HTTPS with a self-signed certificate, and
        # /metrics for a token the API server lets read it (vmsingle's service account, whose
        # ClusterRole has `nonResourceURLs: /metrics`).
        for job, port in (("kube-scheduler", SCHEDULER_PORT), ("kube-controller-manager", CONTROLLER_MANAGER_PORT)):
            secured = [
                {"targets": [f"{cluster.guest(s).address}:{port}"], "labels": {"server": s}}
                for s in cluster.k3s.servers
            ]
            jobs.append({"job_name": job, **IN_CLUSTER_AUTH, "static_configs": secured})
        if cluster.backups is not None and cluster.backups.s3 is not None:
            # VolSync's controller (its own HTTPS :8443, checking the caller's token against RBAC:
            # volsync cmd/main.go, --metrics-require-rbac), through a Service of fixed name
            # (components/monitoring.py: the release's own is named after Helm's release name).
            target = f"{VOLSYNC_METRICS}.{VOLSYNC_NAMESPACE}.svc:{VOLSYNC_METRICS_PORT}"
            jobs.append({"job_name": "volsync", **IN_CLUSTER_AUTH, "static_configs": [{"targets": [target]}]})
    for module, targets in probe_targets(cluster).items():
        jobs.append(
            {
                "job_name": f"probe-{module}",
                "metrics_path": "/probe",
                "params": {"module": [module]},
                "static_configs": [{"targets": targets}],
                # The target becomes a parameter, the exporter the address (blackbox's README).
                "relabel_configs": [
                    {"source_labels": ["__address__"], "target_label": "__param_target"},
                    {"source_labels": ["__param_target"], "target_label": "instance"},
                    {"target_label": "__address__", "replacement": blackbox},
                ],
            }
        )
    return {"global": {"scrape_interval": f"{interval_seconds}s"}, "scrape_configs": jobs}


def probe_target(name: str, namespace: str, address: object | None, port: int) -> str:
    """A workload's exposed TCP port as probed: its fixed LoadBalancer address, or (an address
    kube-vip takes from the pool, unknown until it does) its Service's name in the cluster."""
    return f"{address}:{port}" if address else f"{name}.{namespace}.svc:{port}"


def probe_targets(cluster: Cluster) -> dict[str, list[str]]:
    """What the blackbox exporter probes: every TCP port on a LoadBalancer (the workloads' own
    and the gateway's HTTPS), and the TLS endpoints whose certificates expire (the k3s API behind
    its VIP, each Proxmox API)."""
    tcp = [
        probe_target(w.name, w.namespace, w.load_balancer_ip, p.port)
        for w in cluster.workloads
        for p in lan_ports(cluster, w)
        if p.protocol == "TCP"
    ]
    if cluster.gateway is not None:
        tcp.append(f"{cluster.gateway.address}:443")
    tls = [f"{n.address}:8006" for n in cluster.nodes]
    if cluster.k3s is not None:
        tls.insert(0, f"{cluster.k3s.api_vip}:{API_PORT}")
    targets = {TCP_MODULE: sorted(set(tcp)), TLS_MODULE: tls}
    if cluster.gateway is not None:
        targets[GATEWAY_TLS_MODULE] = [f"{cluster.gateway.address}:443"]
    return targets


def gateway_probe_name(cluster: Cluster) -> str:
    """The name the gateway's certificate probe asks for: any one label under the domain."""
    return f"probe.{cluster.domain}"


def backup_rules(cluster: Cluster) -> list[Rule]:
    """How old each backed-up guest's newest copy may get: its schedule's longest gap, and 3 h
    for the run itself (the nodes report the copies' times: components/host_metrics.py)."""
    rules: list[Rule] = []
    if cluster.backups is None:
        return rules
    every = interval_hours(cluster.backups.guests.schedule) or 24
    for guest in backed_up_guests(cluster):
        rules.append(
            {
                "record": BACKUP_MAX_AGE,
                "expr": f"vector({(every + 3) * 3600:g})",
                "labels": {"vmid": str(guest.vm_id), "guest": guest.name},
            }
        )
    return rules


def alert_rules(cluster: Cluster, power_minutes: int) -> list[Rule]:
    """The alerts that reach the owner, each with what to do in its description."""

    def alert(name: str, expr: str, minutes: int, severity: str, summary: str) -> Rule:
        return {
            "alert": name,
            "expr": expr,
            "for": f"{minutes}m",
            "labels": {"severity": severity},
            "annotations": {"summary": summary},
        }

    rules = [
        # Always firing: Alertmanager sends it to the dead-man's switch, which tells the owner
        # when it stops (the metrics stack, its node or the network is down).
        {
            "alert": "Watchdog",
            "expr": "vector(1)",
            "labels": {"severity": "none"},
            "annotations": {"summary": "the alerting pipeline works"},
        },
        alert("NodeDown", 'up{job="node"} == 0', 2, "critical", "Proxmox node {{ $labels.node }} does not answer"),
        alert(
            "CephNotHealthy",
            "max(ceph_health_status) > 0",
            5,
            "warning",
            "Ceph is not HEALTH_OK: ceph health detail says why",
        ),
        alert("CephOsdDown", "ceph_osd_up == 0", 5, "critical", "Ceph OSD {{ $labels.ceph_daemon }} is down"),
        alert(
            "CephOsdNearFull",
            'ceph_health_detail{name=~"OSD_NEARFULL|OSD_BACKFILLFULL|OSD_FULL"} > 0',
            5,
            "warning",
            "a Ceph OSD is nearly full: delete data or add a disk before writes stop",
        ),
        alert(
            "MeasuredPowerOverBudget",
            f"sum({MEASURED}) > scalar({BUDGET})",
            power_minutes,
            "warning",
            "the cluster draws {{ $value | humanize }} W, over power.budget_watts",
        ),
        alert(
            "AddressUnreachable",
            'probe_success{job=~"probe-.+"} == 0',
            3,
            "critical",
            "{{ $labels.instance }} does not answer: kube-vip, the workload or the node behind it is down",
        ),
        alert(
            "ApiTokenExpiresSoon",
            "min by (tokenid) (homelab_api_token_expiry_seconds) - time() < 14 * 86400",
            60,
            "warning",
            "Proxmox API token {{ $labels.tokenid }} expires in less than 2 weeks: renew it (pveum user token modify)",
        ),
        alert(
            "CertificateExpiresSoon",
            # cert-manager renews the gateway's with 30 days left: at 21, its renewal has failed for
            # 9 days.
            f'probe_ssl_earliest_cert_expiry{{job=~"probe-({TLS_MODULE}|{GATEWAY_TLS_MODULE})"}} - time() < 21 * 86400',
            60,
            "warning",
            "the certificate of {{ $labels.instance }} expires in less than 3 weeks",
        ),
    ]
    # HA's state of each guest and node, as any node's exporter reads it (the max: one answer).

    def ha(states: str) -> str:
        return f'max by (id, state) (pve_ha_state{{state=~"{states}"}}) == 1'

    rules += [
        alert(
            "HaFencing",
            ha("fence|recovery"),
            1,
            "critical",
            "HA is fencing or recovering {{ $labels.id }}: a node was lost and its guests move",
        ),
        alert(
            "HaError",
            ha("error"),
            1,
            "critical",
            "HA put {{ $labels.id }} in error (a failed start or migration): ha-manager status says why",
        ),
        alert(
            "HaMigrationStuck",
            ha("migrate|relocate"),
            15,
            "warning",
            "{{ $labels.id }} has been moving for 15 minutes",
        ),
    ]
    if cluster.k3s is not None:
        rules += [
            alert(
                "EtcdSlowFsync",
                "histogram_quantile(0.99, sum by (server, le) (rate(etcd_disk_wal_fsync_duration_seconds_bucket[5m])))"
                " > 0.5",
                10,
                "warning",
                "etcd on {{ $labels.server }} waits over 0.5 s for its disk (p99): Ceph is slow or busy",
            ),
            alert(
                "EtcdLeaderChanges",
                "sum(increase(etcd_server_leader_changes_seen_total[1h])) > 3",
                0,
                "warning",
                "etcd changed leader more than 3 times in an hour: a server is flapping",
            ),
        ]
    if cluster.ups is not None:
        rules.append(
            alert(
                "UpsOnBattery",
                "homelab_ups_on_battery == 1",
                0,
                "critical",
                "the UPS runs on battery: the cluster shuts down in order if the power stays off",
            )
        )
    if cluster.backups is not None and backed_up_guests(cluster):
        newest = "max by (vmid) (homelab_guest_backup_newest_seconds)"
        rules += [
            alert(
                "GuestBackupLate",
                f"((time() - {newest}) > on (vmid) group_right {BACKUP_MAX_AGE})"
                f" or ({BACKUP_MAX_AGE} unless on (vmid) {newest})",
                30,
                "warning",
                "guest {{ $labels.guest }} (VM {{ $labels.vmid }}) has no copy on PBS as recent as its schedule "
                "makes: its backup failed or did not run (the job's task log on the node says why)",
            ),
            alert(
                "BackupStorageUnreachable",
                "max(homelab_backup_storage_up) == 0",
                30,
                "critical",
                "no node can read the PBS storage: backups cannot run",
            ),
        ]
    if cluster.backups is not None and cluster.backups.s3 is not None:
        rules.append(
            alert(
                "VolumeBackupLate",
                "volsync_volume_out_of_sync == 1",
                60,
                "warning",
                "the copy of volume {{ $labels.obj_name }} in {{ $labels.obj_namespace }} is late or failed",
            )
        )
    return rules


def rule_groups(cluster: Cluster, draw: ClusterDraw, power_minutes: int) -> dict[str, Any]:
    """The rule file vmalert loads (Prometheus' format)."""
    return {
        "groups": [
            {"name": "homelab-power", "interval": "1m", "rules": power_rules(cluster, draw)},
            *([{"name": "homelab-backups", "rules": backup_rules(cluster)}] if backup_rules(cluster) else []),
            {"name": "homelab-alerts", "rules": alert_rules(cluster, power_minutes)},
        ]
    }


def alertmanager_config(cluster: Cluster, secrets: Mapping[str, str], watchdog_url: str) -> dict[str, Any]:
    """Alertmanager's config: the Watchdog to the dead-man's switch every 5 minutes, everything
    else to the owner's receiver, grouped by alert."""
    assert cluster.monitoring is not None
    r = cluster.monitoring.receiver
    owner: dict[str, Any] = {"name": "owner"}
    if r.kind == "webhook":
        owner["webhook_configs"] = [{"url": secrets["alertWebhookUrl"], "send_resolved": True}]
    elif r.kind == "pushover":
        owner["pushover_configs"] = [
            {"user_key": secrets["pushoverUserKey"], "token": secrets["pushoverToken"], "send_resolved": True}
        ]
    else:
        owner["email_configs"] = [
            {
                "to": r.to,
                "from": r.sender,
                "smarthost": r.smarthost,
                "auth_username": r.username,
                "auth_password": secrets["smtpPassword"],
                "require_tls": True,
                "send_resolved": True,
            }
        ]
    return {
        "route": {
            "receiver": "owner",
            "group_by": ["alertname"],
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "4h",
            "routes": [
                {
                    "receiver": "watchdog",
                    "matchers": ['alertname="Watchdog"'],
                    "group_wait": "0s",
                    "group_interval": "1m",
                    "repeat_interval": "5m",
                }
            ],
        },
        "receivers": [
            owner,
            {"name": "watchdog", "webhook_configs": [{"url": watchdog_url, "send_resolved": False}]},
        ],
    }
