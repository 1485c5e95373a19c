"""What the metrics stack reads on the Proxmox hosts: Prometheus' node exporter on every node
(with the CPU package's RAPL energy counter, the measured half of the watts), the UPS's state on
the UPS node, and Ceph's mgr prometheus module. The hosts' firewall lets the k3s VMs, where the
scraper runs, reach them (components/firewall.py)."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from pathlib import Path

import pulumi

from components import remote
from components.stack import Access
from plan.monitoring import NODE_EXPORTER_PORT, PVE_EXPORTER_PORT
from spec.backups import PBS_STORAGE
from spec.models import Cluster
from spec.nodes import Node

TEXTFILE_DIR = "/var/lib/prometheus/node-exporter"  # Debian's default for the textfile collector
UPS_METRICS = "/usr/local/lib/homelab/ups-metrics"
BACKUP_METRICS = "/usr/local/lib/homelab/backup-metrics"
TOKEN_METRICS = "/usr/local/lib/homelab/token-metrics"
RAPL_READABLE = "/usr/local/lib/homelab/rapl-readable"
RAPL_DROP_IN = "/etc/systemd/system/prometheus-node-exporter.service.d/homelab-rapl.conf"
UNITS = "/etc/systemd/system"
# renovate: datasource=pypi depName=prometheus-pve-exporter
PVE_EXPORTER_VERSION = "3.10.2"
PVE_EXPORTER_VENV = "/opt/homelab/pve-exporter"
PVE_EXPORTER_CONFIG = "/etc/prometheus/pve.yml"
PVE_EXPORTER_UNIT = f"{UNITS}/homelab-pve-exporter.service"
METRICS_USER = "metrics@pve"
PVE_EXPORTER_SERVICE = f"""[Unit]
Description=homelab: the Proxmox VE exporter (read-only token)
After=pve-cluster.service network-online.target
Wants=network-online.target

[Service]
User=prometheus
ExecStart={PVE_EXPORTER_VENV}/bin/pve_exporter --config.file={PVE_EXPORTER_CONFIG} \\
  --web.listen-address=[::]:{PVE_EXPORTER_PORT}
Restart=on-failure
NoNewPrivileges=yes
# gunicorn's workers make a temporary file each: a private /tmp, as ProtectSystem=strict makes
# every other path read-only.
PrivateTmp=yes
ProtectSystem=strict
ProtectHome=yes

[Install]
WantedBy=multi-user.target
"""


def textfile_units(name: str, what: str, script: str, every: str, after: str) -> tuple[str, str]:
    """A oneshot service that writes one textfile, and the timer that runs it EVERY."""
    service = f"""[Unit]
Description=homelab: {what} for the node exporter
After={after}

[Service]
Type=oneshot
ExecStart={script}
"""
    timer = f"""[Unit]
Description=homelab: {what} for the node exporter, every {every}

[Timer]
OnBootSec=1min
OnUnitActiveSec={every}
AccuracySec=1s

[Install]
WantedBy=timers.target
"""
    return service, timer


UPS_METRICS_SERVICE, UPS_METRICS_TIMER = textfile_units(
    "ups-metrics", "the UPS's state", UPS_METRICS, "15s", "nut-server.service"
)
TOKEN_METRICS_SERVICE, TOKEN_METRICS_TIMER = textfile_units(
    "token-metrics", "each API token's expiry", TOKEN_METRICS, "1h", "pve-cluster.service"
)
BACKUP_METRICS_SERVICE, BACKUP_METRICS_TIMER = textfile_units(
    "backup-metrics", "the age of each guest's newest backup", BACKUP_METRICS, "15min", "pve-cluster.service"
)


def ups_metrics_script(cluster: Cluster) -> str:
    assert cluster.ups is not None
    return remote.script("ups-metrics", ups=f"{cluster.ups.name}@localhost", textfile_dir=TEXTFILE_DIR)


def node_files(cluster: Cluster, node: Node) -> dict[str, tuple[str, str]]:
    """What NODE gets: path -> (mode, content)."""
    files = {
        RAPL_READABLE: ("0755", remote.script("rapl-readable")),
        RAPL_DROP_IN: ("0644", f"[Service]\nExecStartPre=+{RAPL_READABLE}\n"),
        # Every node reports the tokens' expiry too (the user config is the cluster's).
        TOKEN_METRICS: (
            "0755",
            remote.script("token-metrics", user_cfg="/etc/pve/user.cfg", textfile_dir=TEXTFILE_DIR),
        ),
        f"{UNITS}/homelab-token-metrics.service": ("0644", TOKEN_METRICS_SERVICE),
        f"{UNITS}/homelab-token-metrics.timer": ("0644", TOKEN_METRICS_TIMER),
    }
    if cluster.backups is not None:
        # Every node reports the backups' ages (the storage is the cluster's): one down, the others do.
        files |= {
            BACKUP_METRICS: ("0755", remote.script("backup-metrics", storage=PBS_STORAGE, textfile_dir=TEXTFILE_DIR)),
            f"{UNITS}/homelab-backup-metrics.service": ("0644", BACKUP_METRICS_SERVICE),
            f"{UNITS}/homelab-backup-metrics.timer": ("0644", BACKUP_METRICS_TIMER),
        }
    if cluster.ups is not None and cluster.ups.node == node.name:
        files |= {
            UPS_METRICS: ("0755", ups_metrics_script(cluster)),
            f"{UNITS}/homelab-ups-metrics.service": ("0644", UPS_METRICS_SERVICE),
            f"{UNITS}/homelab-ups-metrics.timer": ("0644", UPS_METRICS_TIMER),
        }
    return files


def node_metrics_script(cluster: Cluster, node: Node) -> str:
    files = node_files(cluster, node)
    timers = [Path(path).name for path in files if path.endswith(".timer")]
    return remote.script(
        "node-metrics",
        port=NODE_EXPORTER_PORT,
        files="\n".join(
            f"{path} {mode} {base64.b64encode(text.encode()).decode()}" for path, (mode, text) in files.items()
        ),
        timers=" ".join(timers),
    )


def pve_exporter_script() -> str:
    return remote.script(
        "pve-exporter",
        venv=PVE_EXPORTER_VENV,
        version=PVE_EXPORTER_VERSION,
        metrics_user=METRICS_USER,
        config=PVE_EXPORTER_CONFIG,
        unit=PVE_EXPORTER_UNIT,
        unit_text=PVE_EXPORTER_SERVICE.rstrip("\n"),
        port=PVE_EXPORTER_PORT,
    )


class HostMetrics(pulumi.ComponentResource):
    """The node exporter on each node (after NUT, on the UPS node), and Ceph's exporter."""

    def __init__(
        self,
        cluster: Cluster,
        access: Access,
        ceph_ready: Sequence[pulumi.Resource],
        after: Sequence[pulumi.Resource] = (),
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("homelab:monitoring:HostMetrics", f"{cluster.name}-host-metrics", None, opts)
        for node in cluster.nodes:
            exporter = remote.run(
                f"{node.name}-node-exporter",
                access.connection(str(node.address)),
                node_metrics_script(cluster, node),
                opts=pulumi.ResourceOptions(parent=self, depends_on=list(after)),
            )
            # HA's state, guests, storage: the cluster's API, read-only (it runs as the node
            # exporter's `prometheus` user, which that package made).
            remote.run(
                f"{node.name}-pve-exporter",
                access.connection(str(node.address)),
                pve_exporter_script(),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[exporter]),
            )
        first = cluster.nodes[0]
        # The module serves on every mgr, the active one with the cluster's metrics (:9283).
        remote.run(
            f"{cluster.name}-ceph-prometheus",
            access.connection(str(first.address)),
            remote.script("ceph-prometheus"),
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(ceph_ready)),
        )
        self.register_outputs({"nodes": [n.name for n in cluster.nodes]})
