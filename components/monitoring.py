"""The metrics stack on k3s: VictoriaMetrics, vmalert, Alertmanager and a blackbox exporter.

VictoriaMetrics (single node) over kube-prometheus-stack, on memory and CPU: one vmsingle
process scrapes and stores (no operator, no Prometheus server, no sidecars), and holds the same
series in a fraction of Prometheus' memory, which on 8 GiB agents is the difference that
counts. It reads Prometheus' scrape config and vmalert Prometheus' rule files, so both are
checked with `promtool` (plan/monitoring.py, tests/test_monitoring.py). Alertmanager is the
Prometheus project's own, its config (which holds the receiver's secrets) in a Secret.

What is scraped, alerted on and compared (watts) is plan/monitoring.py; this is where it runs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import yaml

from components.platform import STORAGE_CLASS
from components.stack import secret_config
from plan.backups import VOLSYNC_NAMESPACE
from plan.measured_power import power_dashboard
from plan.monitoring import (
    ALERTMANAGER,
    BLACKBOX,
    GATEWAY_TLS_MODULE,
    TCP_MODULE,
    TLS_MODULE,
    VMALERT,
    VMSINGLE,
    VOLSYNC_METRICS,
    VOLSYNC_METRICS_PORT,
    alertmanager_config,
    gateway_probe_name,
    rule_groups,
    scrape_config,
)
from plan.platform_load import METRICS_STACK, requests
from plan.power import ClusterDraw
from spec.models import Cluster
from spec.monitoring import WATCHDOG_URL

NAMESPACE = "observability"
VM_REPOSITORY = "https://victoriametrics.github.io/helm-charts/"
# renovate: datasource=helm depName=victoria-metrics-single registryUrl=https://victoriametrics.github.io/helm-charts/
VMSINGLE_VERSION = "0.45.0"
# renovate: datasource=helm depName=victoria-metrics-alert registryUrl=https://victoriametrics.github.io/helm-charts/
VMALERT_VERSION = "0.47.0"
COMMUNITY_REPOSITORY = "https://prometheus-community.github.io/helm-charts"
# renovate: datasource=helm depName=alertmanager registryUrl=https://prometheus-community.github.io/helm-charts
ALERTMANAGER_VERSION = "1.42.0"
# renovate: datasource=helm depName=prometheus-blackbox-exporter registryUrl=https://prometheus-community.github.io/helm-charts
BLACKBOX_VERSION = "11.17.2"
ALERTMANAGER_SECRET = "alertmanager-config"
DASHBOARDS = "vmui-dashboards"
DASHBOARDS_MOUNT = "/dashboards"
POWER_DASHBOARD = "power.json"
ALERTMANAGER_FILE = "alertmanager.yml"
SECRET_MOUNT = "/etc/alertmanager-secret"


def resources(name: str) -> dict[str, dict[str, str]]:
    """What the power model counts (plan/platform_load.py)."""
    return requests(METRICS_STACK, name)


def vmsingle_values(cluster: Cluster) -> dict[str, Any]:
    assert cluster.monitoring is not None
    return {
        "server": {
            "fullnameOverride": VMSINGLE,
            "retentionPeriod": f"{cluster.monitoring.retention_days}d",
            "persistentVolume": {"enabled": True, "size": "10Gi", "storageClassName": STORAGE_CLASS},
            "resources": resources(VMSINGLE),
            "scrape": {"enabled": True, "config": scrape_config(cluster, f"{BLACKBOX}:9115")},
            # vmui's Dashboards tab: measured against modelled watts (no Grafana to run). The
            # scrape config is re-read each minute: the chart does not restart the pod when it
            # changes, and vmsingle does not check by default (lib/promscrape/scraper.go).
            "extraArgs": {"vmui.customDashboardsPath": DASHBOARDS_MOUNT, "promscrape.configCheckInterval": "1m"},
            "extraVolumes": [{"name": DASHBOARDS, "configMap": {"name": DASHBOARDS}}],
            "extraVolumeMounts": [{"name": DASHBOARDS, "mountPath": DASHBOARDS_MOUNT, "readOnly": True}],
        }
    }


def vmalert_values(cluster: Cluster, draw: ClusterDraw) -> dict[str, Any]:
    assert cluster.monitoring is not None
    store = f"http://{VMSINGLE}:8428"
    return {
        "server": {
            "fullnameOverride": VMALERT,
            "datasource": {"url": store},
            # Recording rules (the measured and modelled watts) are written back to the store.
            "remoteWrite": {"url": store},
            "remoteRead": {"url": store},
            "notifier": {"url": f"http://{ALERTMANAGER}:9093"},
            "resources": resources(VMALERT),
            "config": {"alerts": rule_groups(cluster, draw, cluster.monitoring.power_alert_minutes)},
        },
        "alertmanager": {"enabled": False},
    }


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def alertmanager_values(config_checksum: pulumi.Input[str] = "") -> dict[str, Any]:
    """The chart's own config off; the one in the Secret instead (the chart's `extraArgs`
    `config.file` and `extraSecretMounts`, prometheus-community charts/alertmanager). Alertmanager
    does not watch that file and the chart's own checksum is of its (empty) ConfigMap: the
    Secret's checksum on the pod restarts it when the Secret changes."""
    return {
        "fullnameOverride": ALERTMANAGER,
        "podAnnotations": {"checksum/alertmanager-config": config_checksum},
        "config": {"enabled": False},
        "extraArgs": {"config.file": f"{SECRET_MOUNT}/{ALERTMANAGER_FILE}"},
        "extraSecretMounts": [
            {
                "name": ALERTMANAGER_SECRET,
                "mountPath": SECRET_MOUNT,
                "secretName": ALERTMANAGER_SECRET,
                "readOnly": True,
            }
        ],
        "persistence": {"enabled": True, "size": "1Gi", "storageClass": STORAGE_CLASS},
        "resources": resources(ALERTMANAGER),
    }


def blackbox_values(cluster: Cluster) -> dict[str, Any]:
    modules: dict[str, Any] = {}
    if cluster.gateway is not None:
        tls = {"insecure_skip_verify": True, "server_name": gateway_probe_name(cluster)}
        modules[GATEWAY_TLS_MODULE] = {"prober": "tcp", "timeout": "5s", "tcp": {"tls": True, "tls_config": tls}}
    return {
        "fullnameOverride": BLACKBOX,
        "config": {
            "modules": {
                **modules,
                TCP_MODULE: {"prober": "tcp", "timeout": "5s"},
                # The certificate's expiry is what is read; Proxmox's own CA is not in the trust store.
                TLS_MODULE: {
                    "prober": "tcp",
                    "timeout": "5s",
                    "tcp": {"tls": True, "tls_config": {"insecure_skip_verify": True}},
                },
            }
        },
        "resources": resources(BLACKBOX),
    }


class MetricsStack(pulumi.ComponentResource):
    """The four releases in their namespace, and Alertmanager's config as a Secret."""

    def __init__(
        self,
        cluster: Cluster,
        draw: ClusterDraw,
        provider: pulumi.ProviderResource,
        after: Sequence[pulumi.Resource],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("homelab:monitoring:MetricsStack", f"{cluster.name}-metrics", None, opts)
        assert cluster.monitoring is not None

        def k8s_opts(*also: pulumi.Resource) -> pulumi.ResourceOptions:
            return pulumi.ResourceOptions(parent=self, provider=provider, depends_on=[*after, *also])

        namespace = k8s.core.v1.Namespace(
            NAMESPACE,
            k8s.core.v1.NamespaceInitArgs(
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    name=NAMESPACE, labels={"pod-security.kubernetes.io/enforce": "baseline"}
                )
            ),
            opts=k8s_opts(),
        )
        keys = [*cluster.monitoring.receiver.secrets(), WATCHDOG_URL]
        values = [secret_config(key) for key in keys]

        def render(found: list[str]) -> str:
            secrets = dict(zip(keys, found, strict=True))
            return yaml.safe_dump(alertmanager_config(cluster, secrets, secrets[WATCHDOG_URL]), sort_keys=False)

        # Made of secrets, so a secret itself (the engine keeps it encrypted in the state).
        config: pulumi.Output[str] = pulumi.Output.all(*values).apply(render)
        secret = k8s.core.v1.Secret(
            ALERTMANAGER_SECRET,
            k8s.core.v1.SecretInitArgs(
                metadata=k8s.meta.v1.ObjectMetaArgs(name=ALERTMANAGER_SECRET, namespace=NAMESPACE),
                string_data={ALERTMANAGER_FILE: config},
            ),
            opts=k8s_opts(namespace),
        )

        def release(
            name: str, chart: str, version: str, repo: str, chart_values: dict[str, Any], *also: pulumi.Resource
        ) -> k8s.helm.v3.Release:
            return k8s.helm.v3.Release(
                name,
                k8s.helm.v3.ReleaseArgs(
                    name=name,
                    chart=chart,
                    version=version,
                    repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=repo),
                    namespace=NAMESPACE,
                    values=chart_values,
                ),
                opts=k8s_opts(namespace, *also),
            )

        if cluster.backups is not None and cluster.backups.s3 is not None:
            # VolSync's metrics under a name the scrape config can hold: its chart's own Service
            # is named after the release, which Pulumi names (helm/volsync templates: the pods
            # carry app.kubernetes.io/name=volsync; the manager serves its metrics on 8443).
            k8s.core.v1.Service(
                VOLSYNC_METRICS,
                k8s.core.v1.ServiceInitArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(name=VOLSYNC_METRICS, namespace=VOLSYNC_NAMESPACE),
                    spec=k8s.core.v1.ServiceSpecArgs(
                        type="ClusterIP",
                        selector={"app.kubernetes.io/name": "volsync"},
                        ports=[
                            k8s.core.v1.ServicePortArgs(
                                name="https", port=VOLSYNC_METRICS_PORT, target_port=VOLSYNC_METRICS_PORT
                            )
                        ],
                    ),
                ),
                opts=k8s_opts(),
            )
        dashboards = k8s.core.v1.ConfigMap(
            DASHBOARDS,
            k8s.core.v1.ConfigMapInitArgs(
                metadata=k8s.meta.v1.ObjectMetaArgs(name=DASHBOARDS, namespace=NAMESPACE),
                data={POWER_DASHBOARD: json.dumps(power_dashboard(cluster), indent=2)},
            ),
            opts=k8s_opts(namespace),
        )
        self.releases = [
            release(
                BLACKBOX,
                "prometheus-blackbox-exporter",
                BLACKBOX_VERSION,
                COMMUNITY_REPOSITORY,
                blackbox_values(cluster),
            ),
            release(
                VMSINGLE,
                "victoria-metrics-single",
                VMSINGLE_VERSION,
                VM_REPOSITORY,
                vmsingle_values(cluster),
                dashboards,
            ),
            release(
                ALERTMANAGER,
                "alertmanager",
                ALERTMANAGER_VERSION,
                COMMUNITY_REPOSITORY,
                # A digest of a secret reveals nothing of it, and keeps the values out of secrecy.
                alertmanager_values(pulumi.Output.unsecret(config.apply(sha256_hex))),
                secret,
            ),
            release(VMALERT, "victoria-metrics-alert", VMALERT_VERSION, VM_REPOSITORY, vmalert_values(cluster, draw)),
        ]
        self.register_outputs({"namespace": NAMESPACE, "releases": [VMSINGLE, VMALERT, ALERTMANAGER, BLACKBOX]})
