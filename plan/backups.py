"""What the backups cover, where each piece of data's copies live, and what a loss costs.

Pure functions of the spec, shared by the components (which guests a job covers), the policy
pack (`backup-coverage`, `backup-off-cluster`, `backup-retention`) and the preview's RPO table.
"""

from __future__ import annotations

import contextlib
import itertools
import re
from dataclasses import dataclass
from ipaddress import IPv4Address

from spec.backups import ETCD, MIN_DAILIES, Retention
from spec.checks import used_addresses
from spec.guests import Guest
from spec.kubernetes import Volume, Workload, claim_name
from spec.models import Cluster

# k3s's etcd snapshots on each server's own disk: every 6 hours, a week of them kept. The
# servers' config is made from these (components/k3s.py SNAPSHOT_CRON, SNAPSHOT_RETENTION).
ETCD_SNAPSHOT_HOURS = 6
# Where VolSync runs (components/volume_backups.py), and where its metrics are scraped from.
VOLSYNC_NAMESPACE = "volsync-system"
ETCD_SNAPSHOTS_KEPT = 28


def backed_up_guests(cluster: Cluster) -> list[Guest]:
    """The guests the vzdump job covers: every guest but those skipped with a reason."""
    if cluster.backups is None:
        return []
    return [g for g in cluster.guests if g.name not in cluster.backups.skip]


@dataclass(frozen=True)
class VolumeCopy:
    """One workload volume VolSync copies: its claim, its restic repository and its schedule."""

    workload: Workload
    volume: Volume
    claim: str  # the claim the StatefulSet made for its one replica
    repository: str  # restic's repository URL
    schedule: str  # a Kubernetes cron line

    @property
    def key(self) -> str:
        return f"{self.workload.name}/{self.volume.name}"


def backed_up_volumes(cluster: Cluster) -> list[VolumeCopy]:
    """The workload volumes VolSync copies to the S3 store: every one not skipped with a reason,
    each at its own minute of the spec's hour, so they do not all run at once."""
    b = cluster.backups
    if b is None or b.s3 is None:
        return []
    volumes = [(w, v) for w in cluster.workloads for v in w.volumes if f"{w.name}/{v.name}" not in b.skip]
    copies: list[VolumeCopy] = []
    for index, (w, v) in enumerate(volumes):
        minute = index * 60 // len(volumes)
        repository = f"s3:https://{b.s3.endpoint}/{b.s3.bucket}/{cluster.name}/volsync/{w.namespace}/{w.name}-{v.name}"
        copies.append(VolumeCopy(w, v, claim_name(v.name, w.name, 0), repository, f"{minute} {b.volumes.hour} * * *"))
    return copies


def mover_namespaces(cluster: Cluster) -> set[str]:
    """The namespaces where VolSync's movers copy a volume."""
    return {c.workload.namespace for c in backed_up_volumes(cluster)}


def off_cluster_problems(cluster: Cluster, address: IPv4Address) -> list[str]:
    """Why a backup target at ADDRESS is not off the cluster, if it is not: an address of a node
    or a guest, one kube-vip hands out, or one on the Ceph networks."""
    problems = [
        f"{address} is {where}: a copy there dies with the cluster"
        for where in used_addresses(cluster).get(str(address), [])
    ]
    k3s = cluster.k3s
    if k3s is not None and (address == k3s.api_vip or address in k3s.load_balancer_pool):
        problems.append(f"{address} is the k3s API VIP or in its LoadBalancer pool: a copy there dies with the cluster")
    for w in cluster.workloads:
        if w.load_balancer_ip == address:
            problems.append(f"{address} is workloads[{w.name}].load_balancer_ip: a copy there dies with the cluster")
    for name, network in (("public", cluster.networks.ceph.public), ("cluster", cluster.networks.ceph.cluster)):
        if address in network:
            problems.append(f"{address} is on the Ceph {name} network {network}: a backup target on the cluster's Ceph")
    return problems


def retention_problem(keep_daily: int, short_because: str | None, where: str) -> str | None:
    """A week of dailies at least, unless the spec says why not."""
    if keep_daily >= MIN_DAILIES or short_because is not None:
        return None
    return (
        f"{where} keeps {keep_daily} daily copies, fewer than {MIN_DAILIES}: a mistake noticed a week later "
        "has no copy left; keep more, or say why in retention.short_because"
    )


# --- how often: the common systemd calendar forms ------------------------------------------

_SHORTHAND = {"minutely": 1 / 60, "hourly": 1, "daily": 24, "weekly": 24 * 7}
_CLOCK = re.compile(r"^(?:\*-\*-\* )?(?P<hour>\*|\d{1,2}(?:/\d{1,2})?|\d{1,2}(?:,\d{1,2})+):(?P<minute>\d{2})(?::00)?$")


def interval_hours(schedule: str) -> float | None:
    """The longest time between two runs of SCHEDULE, in hours, for the forms a backup schedule
    takes: `daily`/`hourly`/`weekly`, `*-*-* HH:MM`, `*-*-* *:MM`, `*-*-* H/N:MM` and
    `*-*-* H1,H2:MM` (checked against `systemd-analyze calendar` in the tests); None otherwise."""
    if schedule in _SHORTHAND:
        return _SHORTHAND[schedule]
    m = _CLOCK.match(schedule)
    if m is None:
        return None
    hour = m["hour"]
    if hour == "*":
        return 1
    if "/" in hour:
        start, step = (int(x) for x in hour.split("/"))
        hours = list(range(start, 24, step))
    else:
        hours = sorted(int(x) for x in hour.split(","))
    if not hours or hours[-1] > 23:
        return None
    gaps = [b - a for a, b in itertools.pairwise(hours)] + [24 - hours[-1] + hours[0]]
    return float(max(gaps))


def reach_days(retention: Retention, every_hours: float | None) -> float:
    """How far back the copies go, in days: the oldest copy the prune options keep."""
    spans = [
        retention.keep_last * (every_hours or 24) / 24,
        retention.keep_hourly / 24,
        retention.keep_daily,
        retention.keep_weekly * 7,
        retention.keep_monthly * 30,
        retention.keep_yearly * 365,
    ]
    return max(spans)


@dataclass(frozen=True)
class Copy:
    """One piece of data and its copies: the RPO table's row."""

    data: str
    where: str  # where the copies live, or why there are none
    every_hours: float | None  # the worst-case data loss; None: see `schedule`
    schedule: str
    back_days: float | None  # how far back the copies go
    off_cluster: bool


def copies(cluster: Cluster) -> list[Copy]:
    """Every guest, workload volume and the k3s etcd, with where its copies live."""
    rows: list[Copy] = []
    b = cluster.backups
    covered = {g.name for g in backed_up_guests(cluster)}
    for g in cluster.guests:
        if b is not None and g.name in covered:
            every = interval_hours(b.guests.schedule)
            target = f"PBS {b.pbs.address}/{b.pbs.datastore}" + (f" ns {b.pbs.namespace}" if b.pbs.namespace else "")
            rows.append(
                Copy(f"guest {g.name}", target, every, b.guests.schedule, reach_days(b.guests.retention, every), True)
            )
        else:
            why = f"skipped: {b.skip[g.name]}" if b is not None and g.name in b.skip else "no backup"
            rows.append(Copy(f"guest {g.name}", why, None, "–", None, False))
    volumes = {c.key: c for c in backed_up_volumes(cluster)}
    for w in cluster.workloads:
        for v in w.volumes:
            data, copy = f"volume {w.name}/{v.name}", volumes.get(f"{w.name}/{v.name}")
            if b is not None and copy is not None:
                where = "restic " + copy.repository.removeprefix("s3:https://")
                rows.append(Copy(data, where, 24, copy.schedule, reach_days(b.volumes.retention, 24), True))
            elif b is not None and f"{w.name}/{v.name}" in b.skip:
                rows.append(Copy(data, f"skipped: {b.skip[f'{w.name}/{v.name}']}", None, "–", None, False))
            else:
                rows.append(Copy(data, "no backup (only Ceph's replicas)", None, "–", None, False))
    if cluster.k3s is not None:
        s3 = b.s3 if b is not None else None
        where = "snapshots on each server's own disk (on the cluster's Ceph)"
        if s3 is None and b is not None and ETCD in b.skip:
            where = f"skipped: {b.skip[ETCD]}"
        back: float | None = ETCD_SNAPSHOTS_KEPT * ETCD_SNAPSHOT_HOURS / 24
        if s3 is not None:
            # k3s does not prune the store from its S3 config Secret: the copies there go back
            # as far as the bucket's lifecycle rule keeps them, the servers' for a week.
            where = f"S3 {s3.endpoint}/{s3.bucket}/{cluster.name}/etcd (kept by the bucket's rule), and the servers"
            back = None
        cadence = f"every {ETCD_SNAPSHOT_HOURS} h"
        rows.append(Copy("k3s etcd", where, ETCD_SNAPSHOT_HOURS, cadence, back, s3 is not None))
    return rows


def store_address(cluster: Cluster) -> IPv4Address | None:
    """The S3 store's address, when the spec gives one (a store named by host name is not judged
    by address)."""
    s3 = cluster.backups.s3 if cluster.backups is not None else None
    if s3 is None:
        return None
    with contextlib.suppress(ValueError):
        return IPv4Address(s3.host)
    return None
