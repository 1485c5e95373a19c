"""Backups judged on what the stack declares: every guest in a backup job or skipped with a reason
(`backup-coverage`), every backup target off the cluster (`backup-off-cluster`), and a week of
dailies unless the spec says why not (`backup-retention`). The rules themselves live in
`plan.backups`, shared with the preview's RPO table."""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Address, ip_address

from pulumi_policy import ResourceValidationArgs

from plan.backups import off_cluster_problems, retention_problem, store_address
from policies.guest_checks import GUESTS
from policies.plan_checks import Finding
from policies.props import Declared, get, k3s_objects_known, known
from policies.tokens import BACKUP_JOB, PBS_STORAGE, REPLICATION_SOURCE, STATEFUL_SET
from spec import Cluster
from spec.backups import ETCD
from spec.kubernetes import claim_name

BACKUP_TYPES = (BACKUP_JOB, REPLICATION_SOURCE)


def check_backup_coverage(cluster: Cluster, resources: Iterable[Declared]) -> list[Finding]:
    """Every VM and container declared (templates aside) is in a backup job, and the k3s etcd
    snapshots go to the S3 store, or the spec skips them with a reason."""
    declared = list(resources)
    covered: set[int] = set()
    every_guest = False
    for job in (r for r in declared if r.resource_type == BACKUP_JOB):
        if get(job.props, "all") is True:
            every_guest = True
        ids = known(get(job.props, "vmids"), f"the vmids of backup job {job.name}") or []
        covered |= {int(i) for i in ids}
    skipped = cluster.backups.skip if cluster.backups is not None else {}
    findings: list[Finding] = []
    store = cluster.backups.s3 if cluster.backups is not None else None
    if cluster.k3s is not None and store is None and ETCD not in skipped:
        findings.append(
            (
                "the k3s etcd snapshots stay on the servers' own disks, on the cluster's Ceph: give the stack a "
                "backups.s3 store, or list etcd in backups.skip with the reason it needs no copy",
                None,
            )
        )
    for guest in (r for r in declared if r.resource_type in GUESTS):
        if get(guest.props, "template") is True:
            continue  # a template holds the cloud image, which its URL and checksum bring back
        vm_id = known(get(guest.props, "vmId"), f"the VM id of {guest.name}")
        if every_guest or vm_id in covered or guest.name in skipped:
            continue
        findings.append(
            (
                f"{guest.name} (VM id {vm_id}) is in no backup job: its data has no copy off the cluster; add a "
                "`backups:` section, or list it in backups.skip with the reason it needs none",
                guest.urn,
            )
        )
    return findings


def check_volume_coverage(cluster: Cluster, resources: Iterable[Declared]) -> list[Finding]:
    """Every claim a StatefulSet makes is the source of a VolSync ReplicationSource in its
    namespace, or the spec skips its volume (`<workload>/<volume>`) with a reason."""
    declared = k3s_objects_known(
        [r for r in resources if r.resource_type in (STATEFUL_SET, REPLICATION_SOURCE)],
        "whether every volume's claim has a ReplicationSource is judged on the next preview",
    )
    sources = {
        (get(r.props, "metadata", "namespace"), get(r.props, "spec", "sourcePVC"))
        for r in declared
        if r.resource_type == REPLICATION_SOURCE
    }
    skipped = cluster.backups.skip if cluster.backups is not None else {}
    findings: list[Finding] = []
    for sts in (r for r in declared if r.resource_type == STATEFUL_SET):
        name, namespace = get(sts.props, "metadata", "name"), get(sts.props, "metadata", "namespace")
        replicas = get(sts.props, "spec", "replicas") or 1
        for template in get(sts.props, "spec", "volumeClaimTemplates") or []:
            volume = get(template, "metadata", "name")
            if f"{name}/{volume}" in skipped:
                continue
            for ordinal in range(int(replicas)):
                claim = claim_name(volume, name, ordinal)
                if (namespace, claim) not in sources:
                    findings.append(
                        (
                            f"volume {name}/{volume} (claim {namespace}/{claim}) has no copy off the cluster: no "
                            "ReplicationSource copies it; give the stack a backups.s3 store, or list "
                            f"{name}/{volume} in backups.skip with the reason it needs none",
                            sts.urn,
                        )
                    )
    return findings


def check_backup_targets(cluster: Cluster, resources: Iterable[Declared]) -> list[Finding]:
    """Every PBS storage's server and the spec's S3 store are none of the cluster's own addresses
    or networks."""
    findings: list[Finding] = []
    for storage in (r for r in resources if r.resource_type == PBS_STORAGE):
        server = known(get(storage.props, "server"), f"the server of {storage.name}")
        try:
            address = ip_address(str(server))
        except ValueError:
            findings.append(
                (
                    f"{storage.name}: server {server} is not an address: the policy cannot tell it is off the cluster",
                    storage.urn,
                )
            )
            continue
        if isinstance(address, IPv4Address):
            findings += [(f"{storage.name}: server {p}", storage.urn) for p in off_cluster_problems(cluster, address)]
    s3 = cluster.backups.s3 if cluster.backups is not None else None
    store = store_address(cluster)
    if s3 is not None and store is not None:
        findings += [(f"backups.s3.endpoint {s3.endpoint}: {p}", None) for p in off_cluster_problems(cluster, store)]
    return findings


def check_backup_retention(args: ResourceValidationArgs, cluster: Cluster) -> list[str]:
    if args.resource_type == REPLICATION_SOURCE:
        daily = known(get(args.props, "spec", "restic", "retain", "daily"), f"the retention of {args.name}") or 0
        reason = cluster.backups.volumes.retention.short_because if cluster.backups is not None else None
        problem = retention_problem(int(daily), reason, f"{args.name}: backups.volumes.retention")
        return [problem] if problem else []
    if args.resource_type != BACKUP_JOB:
        return []
    prune = known(get(args.props, "pruneBackups"), f"the retention of {args.name}") or {}
    if not prune:
        return [
            f"{args.name}: sets no retention, so the storage's applies (keep-all unless set there); "
            "set backups.guests.retention"
        ]
    if prune.get("keep-all") == "1":
        backups = cluster.backups
        if backups is None or backups.pbs.host is None:
            return []  # the nodes delete nothing, and the PBS is not the program's: every copy stays
        # The program's own PBS prunes by its job, made from the spec's retention (backup_server.py).
        return check_retention(backups.guests.retention.keep_daily, cluster, f"{args.name} (PBS's prune job)")
    return check_retention(int(prune.get("keep-daily", 0)), cluster, args.name)


def check_retention(keep_daily: int, cluster: Cluster, name: str) -> list[str]:
    reason = cluster.backups.guests.retention.short_because if cluster.backups is not None else None
    problem = retention_problem(keep_daily, reason, f"{name}: backups.guests.retention")
    return [problem] if problem else []
