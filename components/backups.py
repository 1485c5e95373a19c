"""Backups of the guests: a Proxmox Backup Server outside the cluster as a Proxmox storage, and
one vzdump job for every guest the spec does not skip.

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
import pulumi_proxmoxve as proxmoxve

from components.stack import secret_config, waits_for
from plan.backups import backed_up_guests
from spec.backups import PBS_ENCRYPTION_KEY, PBS_PASSWORD, PBS_STORAGE
from spec.models import Cluster

GUEST_JOB = "homelab-guests"


class GuestBackups(pulumi.ComponentResource):
    """The PBS storage (certificate fingerprint pinned, client-side encryption on) and the job."""

    def __init__(
        self,
        cluster: Cluster,
        machines: Mapping[str, pulumi.Resource],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("homelab:backups:GuestBackups", f"{cluster.name}-guest-backups", None, opts)
        assert cluster.backups is not None  # the program builds this only for a spec with backups
        backups, pbs = cluster.backups, cluster.backups.pbs
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
                fingerprint=pbs.fingerprint,
                # Encrypted on the node before it leaves: PBS (or whoever takes its disks) holds
                # ciphertext. The key is this stack's secret; without it the backups are noise.
                encryption_key=secret_config(PBS_ENCRYPTION_KEY),
                contents=["backup"],
            ),
            # Removing the storage from Proxmox leaves the backups on PBS, but a restore then
            # needs it declared again: kept out of an accidental destroy.
            opts=pulumi.ResourceOptions(parent=self, depends_on=waits_for(opts), protect=True),
        )
        guests = backed_up_guests(cluster)
        self.job = proxmoxve.backup.Job(
            GUEST_JOB,
            proxmoxve.backup.JobArgs(
                resource_id=GUEST_JOB,
                storage=PBS_STORAGE,
                schedule=backups.guests.schedule,
                vmids=[str(g.vm_id) for g in guests],
                mode="snapshot",
                prune_backups=backups.guests.retention.prune_options(),
                repeat_missed=True,
                enabled=True,
                notes_template="{{guestname}} (homelab)",
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.storage, *(machines[g.name] for g in guests)]),
        )
        self.register_outputs({"storage": PBS_STORAGE, "guests": [g.name for g in guests]})
