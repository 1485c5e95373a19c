"""Backups: where copies of the cluster's data go, how often, and for how long.

Every copy goes off the cluster: Ceph's replicas protect against a dead disk or node, not against a
mistake, a bad upgrade or the loss of the whole cluster. Guests go to a Proxmox Backup Server
(PBS) outside the cluster, encrypted on the client with a key kept as this stack's secret.
"""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import Annotated

from pydantic import Field, model_validator

from spec.base import ABSOLUTE_PATH, Model, Watts, refuse
from spec.settings import SSH_HOST_KEY

PBS_PASSWORD = "pbsPassword"  # the PBS user's password or API token secret
PBS_ENCRYPTION_KEY = "pbsEncryptionKey"  # the client-side key (proxmox-backup-client key create)
PBS_SECRETS = (PBS_PASSWORD, PBS_ENCRYPTION_KEY)
S3_ACCESS_KEY = "s3AccessKey"  # the object store's access key ID
S3_SECRET_KEY = "s3SecretKey"
S3_SECRETS = (S3_ACCESS_KEY, S3_SECRET_KEY)
RESTIC_PASSWORD = "resticPassword"  # encrypts the volumes' restic repositories
# The Proxmox storage ID the backups go to (components/backups.py), whose ACL the token needs.
PBS_STORAGE = "homelab-pbs"

# A systemd calendar event (PVE schedules are parsed as such: pve-common
# src/PVE/CalendarEvent.pm); printable ASCII without quotes or backslashes, checked for real by
# `systemd-analyze calendar` in the tests.
Schedule = Annotated[str, Field(pattern=r"^[A-Za-z0-9*,.:/~ -]{1,100}$")]
# Why something needs no backup: a sentence the coverage policy and the report repeat.
Reason = Annotated[str, Field(min_length=10, max_length=300, pattern=r"^[^\n\r]+$")]
# The skip key of the k3s etcd snapshots (guests by name, volumes as `<workload>/<volume>`).
ETCD = "etcd"
# A week of dailies: less than that, and a mistake noticed after a long weekend has no copy left.
MIN_DAILIES = 7


class Retention(Model):
    """How many copies of each age are kept (PVE's prune options, also PBS's)."""

    keep_last: Annotated[int, Field(ge=0)] = 0
    keep_hourly: Annotated[int, Field(ge=0)] = 0
    keep_daily: Annotated[int, Field(ge=0)] = 7
    keep_weekly: Annotated[int, Field(ge=0)] = 4
    keep_monthly: Annotated[int, Field(ge=0)] = 6
    keep_yearly: Annotated[int, Field(ge=0)] = 0
    # Fewer than MIN_DAILIES daily copies, on purpose: the reason (the backup-retention policy).
    short_because: Reason | None = None

    def prune_options(self) -> dict[str, str]:
        """PVE's `prune-backups` keys with a count above zero (a zero key is not sent)."""
        counts = {
            "keep-last": self.keep_last,
            "keep-hourly": self.keep_hourly,
            "keep-daily": self.keep_daily,
            "keep-weekly": self.keep_weekly,
            "keep-monthly": self.keep_monthly,
            "keep-yearly": self.keep_yearly,
        }
        return {key: str(count) for key, count in counts.items() if count > 0}

    @model_validator(mode="after")
    def _keeps_something(self) -> Retention:
        if not self.prune_options():
            refuse(["keeps no copy: set at least one keep_* above 0"])
        return self


_NS_PART = r"[A-Za-z0-9_][A-Za-z0-9._-]{0,30}"


class PbsHost(Model):
    """A Debian 13 machine of the owner's that the program makes the Proxmox Backup Server, over
    SSH as root with the stack's SSH key (components/backup_server.py): PBS's packages from
    Proxmox's repository, the datastore, the user the nodes log in as, and PBS's own prune,
    garbage-collection and verify jobs. It draws power all day, so it counts in the budget."""

    # Its SSH host key (`ssh-keyscan -t ed25519 <address>`): the program talks to this machine only.
    ssh_host_key: Annotated[str, Field(pattern=SSH_HOST_KEY)]
    # Where the datastore's chunks go, on the host's own disk; default /srv/pbs/<datastore>.
    datastore_path: Annotated[str, Field(pattern=ABSOLUTE_PATH)] | None = None
    idle_watts: Watts
    max_watts: Watts
    # PBS's own jobs, as PBS calendar events (systemd's syntax): garbage collection frees the
    # chunks pruned copies no longer use; verify re-reads each copy's chunks once a month, so a
    # rotting disk is found before a restore needs it.
    gc_schedule: Schedule = "*-*-* 05:00"
    verify_schedule: Schedule = "Sat *-*-* 06:00"

    @model_validator(mode="after")
    def _watts(self) -> PbsHost:
        if self.max_watts < self.idle_watts:
            refuse([f"max_watts {self.max_watts} is below idle_watts {self.idle_watts}"])
        return self


class Pbs(Model):
    """A Proxmox Backup Server outside the cluster: one that exists, given by address and its
    certificate's fingerprint, or one the program sets up on the owner's machine (`host`)."""

    address: IPv4Address
    # A datastore name: a safe ID (letters, digits, `_.-`), 3 to 32 characters.
    datastore: Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9._-]{2,31}$")]
    # A PBS user (user@pbs) or its API token (user@pbs!token); its secret is homelab:pbsPassword.
    username: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]+@(pbs|pam)(![A-Za-z0-9._-]+)?$")]
    # The SHA-256 fingerprint of PBS's certificate (`proxmox-backup-manager cert info`): pinned,
    # so the nodes send backups and the key's fingerprint to that server only. A managed host's
    # is read from it over SSH (whose host key is pinned) and is not given.
    fingerprint: Annotated[str, Field(pattern=r"^([0-9A-Fa-f]{2}:){31}[0-9A-Fa-f]{2}$")] | None = None
    # A PBS namespace within the datastore: one datastore may serve several clusters.
    namespace: (
        Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,30}(/[A-Za-z0-9_][A-Za-z0-9._-]{0,30}){0,6}$")]
        | None
    ) = None
    host: PbsHost | None = None

    @property
    def datastore_path(self) -> str:
        """Where a managed host keeps the datastore."""
        given = self.host.datastore_path if self.host is not None else None
        return given or f"/srv/pbs/{self.datastore}"

    @model_validator(mode="after")
    def _managed_or_given(self) -> Pbs:
        problems: list[str] = []
        if self.host is None and self.fingerprint is None:
            problems.append(
                "fingerprint is missing: give the certificate fingerprint `proxmox-backup-manager cert info` "
                "prints on the PBS, or a host for the program to set up"
            )
        if self.host is not None:
            if self.fingerprint is not None:
                problems.append("fingerprint is read from a managed host over SSH: leave it out")
            if not self.username.endswith("@pbs"):
                # The program sets this user's password from homelab:pbsPassword on every run; a
                # token's secret is shown once, at creation, and cannot be set.
                problems.append(f"username {self.username} must be a PBS user (name@pbs, no token) on a managed host")
            if self.namespace is not None:
                # A managed PBS serves this cluster alone; PBS's CLI cannot make a namespace
                # (proxmox-backup src/bin/proxmox_backup_manager has no namespace command).
                problems.append("namespace is for a PBS shared by several clusters: a managed host has none")
        refuse(problems)
        return self


class S3Store(Model):
    """An S3-compatible object store off the cluster (Garage, MinIO or a provider's), for the k3s
    etcd snapshots. Its credentials are homelab:s3AccessKey and homelab:s3SecretKey."""

    # host[:port], as k3s's etcd-s3-endpoint takes it; always over HTTPS.
    endpoint: Annotated[str, Field(pattern=r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:\d{1,5})?$")]
    bucket: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")]
    region: Annotated[str, Field(pattern=r"^[a-z0-9-]{1,32}$")] = "us-east-1"
    # The CA of a store whose certificate no public CA signed (PEM; public, not a secret).
    ca_certificate: (
        Annotated[str, Field(pattern=r"^-----BEGIN CERTIFICATE-----\n[A-Za-z0-9+/=\n]+-----END CERTIFICATE-----\n?$")]
        | None
    ) = None

    @property
    def host(self) -> str:
        return self.endpoint.rsplit(":", 1)[0] if ":" in self.endpoint else self.endpoint


class GuestBackups(Model):
    """One vzdump job for every guest not in `skip`: snapshot mode, to PBS."""

    schedule: Schedule = "*-*-* 02:30"
    retention: Retention = Field(default_factory=Retention)


class VolumeBackups(Model):
    """Each workload volume, copied by VolSync with restic from a CSI snapshot of it to its own
    repository on the S3 store, once a day within `hour` (each volume at its own minute, so the
    copies do not all read Ceph and write the store at once)."""

    hour: Annotated[int, Field(ge=0, le=23)] = 3
    retention: Retention = Field(default_factory=Retention)
    # restic's prune (a full read of the repository's index) only this often.
    prune_interval_days: Annotated[int, Field(ge=1, le=90)] = 7


class Backups(Model):
    pbs: Pbs
    # The S3 store for the k3s etcd snapshots and the volumes' restic repositories; None: the
    # snapshots stay on the servers and the volumes have no copy off the cluster.
    s3: S3Store | None = None
    guests: GuestBackups = Field(default_factory=GuestBackups)
    volumes: VolumeBackups = Field(default_factory=VolumeBackups)
    # What needs no backup, each with its reason: a guest by name (e.g. rebuilt from the
    # repository), a workload volume as `<workload>/<volume>` (e.g. a cache), `etcd` for the
    # k3s etcd snapshots.
    skip: dict[str, Reason] = Field(default_factory=dict)
