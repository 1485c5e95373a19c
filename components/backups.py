"""Backups off the cluster: the guests to a Proxmox Backup Server (a Proxmox storage and one
vzdump job for every guest the spec does not skip), and the k3s etcd snapshots to an S3 store.

The job is cluster-wide with a list of VM ids: each node backs up the listed guests it runs at the
time, so a guest HA moved is backed up where it is. Snapshot mode (the guest keeps running; a VM's
dirty bitmap makes each run after the first incremental on PBS), runs missed while a node was off
are caught up at its next boot (`repeat-missed`), and old copies are pruned after each run.
Failures are reported through Proxmox's notification system: with no `mailto` on the job
(pve-guest-common src/PVE/VZDump/Common.pm, `notification-mode` auto), its default matcher
mails root@pam's address, the one the installer asked for.
"""

from __future__ import annotations

from collections.abc import Mapping

import pulumi
import pulumi_kubernetes as k8s
import pulumi_proxmoxve as proxmoxve

from components.backup_server import BackupServer
from components.k3s import ETCD_S3_SECRET
from components.stack import secret_config, waits_for
from plan.backups import backed_up_guests
from spec.backups import PBS_ENCRYPTION_KEY, PBS_PASSWORD, PBS_STORAGE, S3_ACCESS_KEY, S3_SECRET_KEY, S3Store
from spec.models import Cluster

GUEST_JOB = "homelab-guests"


def job_retention(cluster: Cluster) -> dict[str, str]:
    """What the nodes prune after each backup: the spec's retention, or nothing when PBS is the
    program's own, which prunes by its own job (the nodes' user may not delete: backup_server.py)."""
    assert cluster.backups is not None
    if cluster.backups.pbs.host is not None:
        return {"keep-all": "1"}
    return cluster.backups.guests.retention.prune_options()


class GuestBackups(pulumi.ComponentResource):
    """The PBS storage (certificate fingerprint pinned, client-side encryption on) and the job."""

    def __init__(
        self,
        cluster: Cluster,
        machines: Mapping[str, pulumi.Resource],
        server: BackupServer | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("homelab:backups:GuestBackups", f"{cluster.name}-guest-backups", None, opts)
        assert cluster.backups is not None  # the program builds this only for a spec with backups
        backups, pbs = cluster.backups, cluster.backups.pbs
        fingerprint: pulumi.Input[str] = server.fingerprint if server is not None else str(pbs.fingerprint)
        self.storage = proxmoxve.storage.Pbs(
            PBS_STORAGE,
            proxmoxve.storage.PbsArgs(
                resource_id=PBS_STORAGE,
                server=str(pbs.address),
                datastore=pbs.datastore,
                namespace=pbs.namespace,
                username=pbs.username,
                password=secret_config(PBS_PASSWORD),
                # The nodes talk to this certificate only: no one else on the LAN gets the backups.
                fingerprint=fingerprint,
                # Encrypted on the node before it leaves: PBS (or whoever takes its disks) holds
                # ciphertext. The key is this stack's secret; without it the backups are noise.
                encryption_key=secret_config(PBS_ENCRYPTION_KEY),
                contents=["backup"],
            ),
            # Removing the storage from Proxmox leaves the backups on PBS, but a restore then
            # needs it declared again: kept out of an accidental destroy. A new password would
            # replace it (bpg's fwprovider/storage/resource_pbs.go: RequiresReplace), which
            # `protect` refuses: the nodes get a new one with `pvesm set` (README).
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[*waits_for(opts), *(server.ready if server else [])],
                protect=True,
                ignore_changes=["password"],
            ),
        )
        guests = backed_up_guests(cluster)
        # A job lists at least one guest (PVE refuses one without `vmid`): none when all are skipped.
        self.job = (
            None
            if not guests
            else proxmoxve.backup.Job(
                GUEST_JOB,
                proxmoxve.backup.JobArgs(
                    resource_id=GUEST_JOB,
                    storage=PBS_STORAGE,
                    schedule=backups.guests.schedule,
                    vmids=[str(g.vm_id) for g in guests],
                    mode="snapshot",
                    prune_backups=job_retention(cluster),
                    repeat_missed=True,
                    enabled=True,
                    notes_template="{{guestname}} (homelab)",
                ),
                opts=pulumi.ResourceOptions(
                    parent=self, depends_on=[self.storage, *(machines[g.name] for g in guests)]
                ),
            )
        )
        self.register_outputs({"storage": PBS_STORAGE, "guests": [g.name for g in guests]})


def etcd_s3_settings(cluster: Cluster, store: S3Store) -> dict[str, pulumi.Input[str]]:
    """The k3s S3 config Secret's keys: the `--etcd-s3-*` flags by name (docs.k3s.io
    cli/etcd-snapshot, "S3 Configuration Secret"), the CA inline as PEM."""
    settings: dict[str, pulumi.Input[str]] = {
        "etcd-s3-endpoint": store.endpoint,
        "etcd-s3-bucket": store.bucket,
        "etcd-s3-region": store.region,
        # One store may hold several clusters' snapshots.
        "etcd-s3-folder": f"{cluster.name}/etcd",
        "etcd-s3-access-key": secret_config(S3_ACCESS_KEY),
        "etcd-s3-secret-key": secret_config(S3_SECRET_KEY),
        # HTTPS, with the certificate checked: etcd's snapshot holds every object of the cluster.
        "etcd-s3-insecure": "false",
        "etcd-s3-skip-ssl-verify": "false",
    }
    if store.ca_certificate is not None:
        settings["etcd-s3-endpoint-ca"] = store.ca_certificate
    return settings


class EtcdSnapshotsOffCluster(pulumi.ComponentResource):
    """The Secret k3s reads at each scheduled etcd snapshot to upload it to the S3 store (the
    servers' config names it: components/k3s.py node_config). The Secret carries no retention
    (k3s pkg/etcd/s3/config_secret.go reads none), so k3s does not prune the store: the bucket's
    own lifecycle rule does (README). A restore cannot read the Secret (the API server is down
    then): the README gives the flags."""

    def __init__(self, cluster: Cluster, provider: pulumi.ProviderResource, opts: pulumi.ResourceOptions) -> None:
        super().__init__("homelab:backups:EtcdSnapshotsOffCluster", f"{cluster.name}-etcd-s3", None, opts)
        assert cluster.backups is not None and cluster.backups.s3 is not None
        self.secret = k8s.core.v1.Secret(
            ETCD_S3_SECRET,
            k8s.core.v1.SecretInitArgs(
                metadata=k8s.meta.v1.ObjectMetaArgs(name=ETCD_S3_SECRET, namespace="kube-system"),
                type="etcd.k3s.cattle.io/s3-config-secret",
                string_data=etcd_s3_settings(cluster, cluster.backups.s3),
            ),
            opts=pulumi.ResourceOptions(parent=self, provider=provider, depends_on=waits_for(opts)),
        )
        self.register_outputs({"secret": ETCD_S3_SECRET})
