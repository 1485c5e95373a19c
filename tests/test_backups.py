"""Guest backups to PBS off the cluster: what the program declares, the schedules as systemd parses
them, the three backup policies, and the RPO table."""

from __future__ import annotations

import itertools
import subprocess
from datetime import datetime

import pytest

from components.api_access import required_privileges
from components.backup_server import PRUNE_SCHEDULE
from components.k3s import ETCD_S3_SECRET
from offline.harness import UNKNOWN, Resource, config_for
from offline.policy_run import Violation, run_policies
from offline.reports import Reports
from plan.backups import interval_hours
from policies import tokens
from spec import parse_cluster
from spec.backups import PBS_STORAGE
from tests.policy_support import edit, full_stack
from tests.support import STACKS, patched, program, program_with, stack_cluster, stack_data
from tests.test_k8s_hardening import install_config


@pytest.mark.parametrize("stack", STACKS)
def test_every_guest_not_skipped_goes_nightly_to_pbs_encrypted(stack: str) -> None:
    run, cluster = program(stack), stack_cluster(stack)
    assert cluster.backups is not None
    [storage] = run.of_type(tokens.PBS_STORAGE)
    pbs = cluster.backups.pbs
    assert storage.inputs["server"] == str(pbs.address)
    # Pinned: the spec's, or (a managed PBS) the one read from it, unknown before it is set up.
    assert storage.inputs["fingerprint"] == (pbs.fingerprint if pbs.host is None else UNKNOWN)
    assert storage.inputs["contents"] == ["backup"] and storage.protect
    # A new password would replace the protected storage: the nodes get it with `pvesm set`.
    assert storage.ignore_changes == ["password"]
    # The password and the client-side key are secrets, never plain in the state.
    assert {"password", "encryptionKey"} <= set(storage.secret_paths)
    [job] = run.of_type(tokens.BACKUP_JOB)
    expected = {str(g.vm_id) for g in cluster.guests if g.name not in cluster.backups.skip}
    assert set(job.inputs["vmids"]) == expected
    assert job.inputs["storage"] == PBS_STORAGE and storage.urn in job.dependencies
    assert job.inputs["mode"] == "snapshot" and job.inputs["repeatMissed"] is True
    # The nodes prune to the spec, unless PBS is the program's own and prunes itself.
    prune = job.inputs["pruneBackups"]
    assert prune == {"keep-all": "1"} if pbs.host is not None else int(prune["keep-daily"]) >= 7
    # The token may point a job at that storage (pve-manager PVE/API2/Backup.pm).
    assert "Datastore.Allocate" in required_privileges(cluster)[f"/storage/{PBS_STORAGE}"]


def test_a_stateless_guest_can_be_skipped_with_its_reason() -> None:
    run, cluster = program("home"), stack_cluster("home")
    assert cluster.backups is not None and "k3s-agent-1" in cluster.backups.skip
    [job] = run.of_type(tokens.BACKUP_JOB)
    assert str(cluster.guest("k3s-agent-1").vm_id) not in job.inputs["vmids"]


def systemd_gaps(schedule: str, iterations: int = 30) -> list[float]:
    """The hours between SCHEDULE's next runs, as systemd itself computes them."""
    out = subprocess.run(
        ["systemd-analyze", "calendar", f"--iterations={iterations}", "--base-time=2026-01-05 00:00:00 UTC", schedule],
        capture_output=True,
        text=True,
        check=True,
        env={"TZ": "UTC", "PATH": "/usr/bin:/bin"},
    ).stdout
    times = [
        datetime.strptime(line.split(": ", 1)[1].strip()[4:23], "%Y-%m-%d %H:%M:%S")
        for line in out.splitlines()
        if line.strip().startswith(("Next elapse:", "Iter. #"))
    ]
    return [(b - a).total_seconds() / 3600 for a, b in itertools.pairwise(times)]


@pytest.mark.parametrize(
    "schedule", ["*-*-* 02:30", "daily", "hourly", "*-*-* 00/6:00", "*-*-* 1,13:15", "*-*-* *:20", "03:00"]
)
def test_the_worst_case_loss_is_the_longest_gap_systemd_leaves(schedule: str) -> None:
    assert interval_hours(schedule) == max(systemd_gaps(schedule))


@pytest.mark.parametrize("stack", STACKS)
def test_the_stacks_schedules_are_calendar_events_systemd_accepts(stack: str) -> None:
    cluster = stack_cluster(stack)
    assert cluster.backups is not None
    assert systemd_gaps(cluster.backups.guests.schedule)
    # A managed PBS's own jobs (PBS reads systemd's calendar syntax too).
    host = cluster.backups.pbs.host
    for schedule in [PRUNE_SCHEDULE, *([host.gc_schedule, host.verify_schedule] if host else [])]:
        assert systemd_gaps(schedule), schedule


def violations(resources: list[Resource], stack: str = "home") -> list[Violation]:
    found = run_policies(resources, config_for(stack))
    return [v for v in found if v.policy.startswith("backup-") and not v.not_known_yet]


def test_shipped_stacks_pass_the_backup_policies() -> None:
    for stack in STACKS:
        assert violations(full_stack(stack), stack) == []


def test_a_guest_left_out_of_the_job_is_refused() -> None:
    stack = full_stack("home")
    cluster = stack_cluster("home")
    vmids = [str(g.vm_id) for g in cluster.guests if g.name in ("k3s-server-1", "k3s-server-2", "backup")]
    [v] = violations(edit(stack, "homelab-guests", {"vmids": vmids}, typ=tokens.BACKUP_JOB))
    assert v.policy == "backup-coverage"
    assert v.message.startswith("k3s-server-3 (VM id 203) is in no backup job: its data has no copy off the cluster")


def test_no_backups_at_all_is_refused_for_every_guest() -> None:
    stack = [r for r in full_stack("home") if r.type != tokens.BACKUP_JOB]
    found = violations(stack)
    assert {v.message.split(" ", 1)[0] for v in found} == {g.name for g in stack_cluster("home").guests} - {
        "k3s-agent-1",
        "k3s-agent-2",
    }


@pytest.mark.parametrize(
    ("server", "message"),
    [
        ("10.0.10.11", "homelab-pbs: server 10.0.10.11 is nodes[pve1].address: a copy there dies with the cluster"),
        ("10.0.10.31", "homelab-pbs: server 10.0.10.31 is guests[k3s-server-1].address: a copy there dies with"),
        ("10.0.10.20", "homelab-pbs: server 10.0.10.20 is the k3s API VIP or in its LoadBalancer pool"),
        ("10.0.40.200", "homelab-pbs: server 10.0.40.200 is on the Ceph public network 10.0.40.0/24"),
        ("pbs.example.org", "homelab-pbs: server pbs.example.org is not an address: the policy cannot tell"),
    ],
)
def test_a_backup_target_on_the_cluster_is_refused(server: str, message: str) -> None:
    found = violations(edit(full_stack("home"), PBS_STORAGE, {"server": server}, typ=tokens.PBS_STORAGE))
    assert [v.policy for v in found] == ["backup-off-cluster"]
    assert found[0].message.startswith(message)


def test_less_than_a_week_of_dailies_needs_a_reason() -> None:
    short = {"pruneBackups": {"keep-daily": "3", "keep-weekly": "4"}}
    [v] = violations(edit(full_stack("home"), "homelab-guests", short, typ=tokens.BACKUP_JOB))
    assert v.policy == "backup-retention"
    assert "keeps 3 daily copies, fewer than 7" in v.message
    [v] = violations(edit(full_stack("home"), "homelab-guests", {"pruneBackups": {}}, typ=tokens.BACKUP_JOB))
    assert "sets no retention" in v.message
    # With the reason in the spec, the same job passes.
    data = patched(
        stack_data("home"),
        {"backups.guests.retention": {"keep_daily": 3, "keep_weekly": 4, "short_because": "the PBS disk is small"}},
    )
    stack = full_stack("home")
    assert [
        v
        for v in run_policies(
            edit(stack, "homelab-guests", short, typ=tokens.BACKUP_JOB), config_for("home", cluster=data)
        )
        if v.policy.startswith("backup-") and not v.not_known_yet
    ] == []


def test_the_rpo_table_names_what_has_no_copy_off_the_cluster() -> None:
    cluster = stack_cluster("home")
    rows = {r["data"]: r for r in Reports.of(cluster).backups_json()}
    assert rows["guest k3s-server-1"]["worst_case_loss_hours"] == 24
    assert rows["guest k3s-server-1"]["back_days"] == 180 and rows["guest k3s-server-1"]["off_cluster"]
    assert rows["guest k3s-agent-1"]["copies"].startswith("skipped: stateless")
    assert (
        rows["volume jellyfin/config"]["off_cluster"] and rows["volume jellyfin/config"]["worst_case_loss_hours"] == 24
    )
    # etcd: every 6 hours, a week of them, to the S3 store (home) or only on the servers (lab).
    # On S3 the bucket's lifecycle rule decides how far back (k3s does not prune the store).
    assert rows["k3s etcd"]["worst_case_loss_hours"] == 6 and rows["k3s etcd"]["back_days"] is None
    assert rows["k3s etcd"]["off_cluster"] and rows["k3s etcd"]["copies"].startswith("S3 10.0.10.5:9000/")
    # Without a store, the snapshots stay on the servers; skipped, the table gives the reason.
    no_store = parse_cluster(patched(stack_data("home"), delete=["backups.s3"]))
    local = {r["data"]: r for r in Reports.of(no_store).backups_json()}["k3s etcd"]
    assert not local["off_cluster"] and local["back_days"] == 7
    text = "\n".join(Reports.of(cluster).backups_text())
    assert (
        text.splitlines()[-1].strip()
        == "Every piece of data has a copy off the cluster (or a stated reason to need none)."
    )
    # Without the store, the volumes and etcd have none, and the table says so.
    no_store = parse_cluster(patched(stack_data("home"), delete=["backups.s3"]))
    last = Reports.of(no_store).backups_text()[-1]
    assert last.strip().startswith("No copy off the cluster, lost with it: volume adguard-home/conf")
    assert last.strip().endswith("k3s etcd.") and "k3s-agent-1" not in last
    # Without a backups section, every guest is exposed too.
    bare = parse_cluster({k: v for k, v in stack_data("home").items() if k != "backups"})
    assert all(not r["off_cluster"] for r in Reports.of(bare).backups_json())


def test_etcd_snapshots_go_to_the_s3_store_with_credentials_kept_secret() -> None:
    run, cluster = program("home"), stack_cluster("home")
    assert cluster.backups is not None and cluster.backups.s3 is not None and cluster.k3s is not None
    for server in cluster.k3s.servers:
        _, config = install_config(run, server)
        # Only these two: with any other etcd-s3 flag, k3s ignores the Secret.
        assert {k: v for k, v in config.items() if k.startswith("etcd-s3")} == {
            "etcd-s3": True,
            "etcd-s3-config-secret": ETCD_S3_SECRET,
        }
    [secret] = [r for r in run.of_type(tokens.K8S_SECRET) if r.inputs["metadata"]["name"] == ETCD_S3_SECRET]
    assert secret.inputs["metadata"]["namespace"] == "kube-system"
    assert secret.inputs["type"] == "etcd.k3s.cattle.io/s3-config-secret"
    data = secret.inputs["stringData"]
    assert data["etcd-s3-endpoint"] == "10.0.10.5:9000" and data["etcd-s3-folder"] == "home/etcd"
    assert data["etcd-s3-endpoint-ca"] == cluster.backups.s3.ca_certificate
    assert data["etcd-s3-insecure"] == "false" and data["etcd-s3-skip-ssl-verify"] == "false"
    assert "stringData" in " ".join(secret.secret_paths)
    # A stack without a store keeps its snapshots on the servers, and says nothing of S3.
    data = patched(stack_data("home"), delete=["backups.s3"])
    bare = program_with("home", data)
    assert not [r for r in bare.of_type(tokens.K8S_SECRET) if r.inputs["metadata"]["name"] == ETCD_S3_SECRET]
    _, config = install_config(bare, cluster.k3s.servers[0])
    assert not [k for k in config if k.startswith("etcd-s3")]


def test_etcd_left_on_the_servers_needs_a_reason() -> None:
    data = patched(stack_data("home"), delete=["backups.s3"])
    found = [
        v.message
        for v in run_policies(full_stack("home"), config_for("home", cluster=data))
        if v.policy == "backup-coverage" and not v.not_known_yet
    ]
    assert found == [
        "the k3s etcd snapshots stay on the servers' own disks, on the cluster's Ceph: give the stack a backups.s3 "
        "store, or list etcd in backups.skip with the reason it needs no copy"
    ]
    skipped = patched(data, {"backups.skip.etcd": "a lab: rebuilt from the repository, nothing in it to keep"})
    assert not [
        v
        for v in run_policies(full_stack("home"), config_for("home", cluster=skipped))
        if v.policy == "backup-coverage" and not v.not_known_yet
    ]
    rows = {r["data"]: r for r in Reports.of(parse_cluster(skipped)).backups_json()}
    assert rows["k3s etcd"]["copies"] == "skipped: a lab: rebuilt from the repository, nothing in it to keep"


def test_an_s3_store_on_the_cluster_is_refused() -> None:
    data = patched(stack_data("home"), {"backups.s3.endpoint": "10.0.10.12:9000"})
    found = [
        v
        for v in run_policies(full_stack("home"), config_for("home", cluster=data))
        if v.policy == "backup-off-cluster"
    ]
    assert [v.message for v in found] == [
        "backups.s3.endpoint 10.0.10.12:9000: 10.0.10.12 is nodes[pve2].address: a copy there dies with the cluster"
    ]


def test_a_stack_that_skips_every_guest_declares_no_job() -> None:
    # PVE refuses a backup job without a guest (`vmid` missing).
    cluster = stack_cluster("lab")
    data = patched(stack_data("lab"), {"backups.skip": {g.name: "rebuilt from the repository" for g in cluster.guests}})
    run = program_with("lab", data)
    assert not run.of_type(tokens.BACKUP_JOB) and run.of_type(tokens.PBS_STORAGE)
