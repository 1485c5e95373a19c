"""Workload volumes copied off the cluster by VolSync: every object checked against its upstream
CRD schema (tests/crds), each claim the StatefulSets make covered, and the restore path."""

from __future__ import annotations

import json
import subprocess

import pytest

from components.platform import CSI_NAMESPACE, CSI_SECRET, STORAGE_CLASS
from components.volume_backups import PRIVILEGED_MOVERS, restore_manifest
from offline.engine import Shape
from offline.harness import ROOT, ProgramRun, Resource, config_for
from offline.policy_run import run_policies
from plan.backups import backed_up_volumes
from policies import tokens
from tests.crd_support import problems
from tests.policy_support import edit, full_stack, without
from tests.support import patched, program, program_with, stack_cluster, stack_data


def custom_objects(run: ProgramRun) -> list[Resource]:
    return [r for r in run.resources if r.type in (tokens.REPLICATION_SOURCE, tokens.VOLUME_SNAPSHOT_CLASS)]


def test_every_custom_resource_matches_its_upstream_schema() -> None:
    found = custom_objects(program("home"))
    assert {r.type for r in found} == {tokens.REPLICATION_SOURCE, tokens.VOLUME_SNAPSHOT_CLASS}
    for r in found:
        assert problems(r.inputs) == [], r.name
    for copy in backed_up_volumes(stack_cluster("home")):
        assert problems(restore_manifest(stack_cluster("home"), copy.key)) == [], copy.key


def test_the_schemas_catch_what_the_api_would_drop_or_refuse() -> None:
    [source, *_] = [r for r in custom_objects(program("home")) if r.type == tokens.REPLICATION_SOURCE]
    misspelt = json.loads(json.dumps(source.inputs))
    misspelt["spec"]["restic"]["volumeSnapshotClass"] = misspelt["spec"]["restic"].pop("volumeSnapshotClassName")
    assert any("volumeSnapshotClass" in p for p in problems(misspelt))
    wrong = json.loads(json.dumps(source.inputs))
    wrong["spec"]["restic"]["copyMethod"] = "Copy"
    assert any("copyMethod" in p for p in problems(wrong))


def test_volsync_starts_after_the_snapshot_crds_it_watches() -> None:
    run = program("home")
    releases = {r.name: r for r in run.of_type(tokens.HELM_RELEASE)}
    assert releases["snapshot-controller"].urn in releases["volsync"].dependencies


def test_every_claim_the_statefulsets_make_is_copied_at_its_own_minute() -> None:
    run, cluster = program("home"), stack_cluster("home")
    sources = {
        (r.inputs["metadata"]["namespace"], r.inputs["spec"]["sourcePVC"]): r
        for r in run.of_type(tokens.REPLICATION_SOURCE)
    }
    claims = set()
    for sts in run.of_type(tokens.STATEFUL_SET):
        for template in sts.inputs["spec"].get("volumeClaimTemplates", []):
            for ordinal in range(sts.inputs["spec"]["replicas"]):
                claims.add(
                    (
                        sts.inputs["metadata"]["namespace"],
                        f"{template['metadata']['name']}-{sts.inputs['metadata']['name']}-{ordinal}",
                    )
                )
    assert claims and set(sources) == claims
    schedules = [r.inputs["spec"]["trigger"]["schedule"] for r in sources.values()]
    assert len(set(schedules)) == len(schedules)  # staggered: never two at once
    assert cluster.backups is not None
    assert all(s.split()[1:] == [str(cluster.backups.volumes.hour), "*", "*", "*"] for s in schedules)
    for r in sources.values():
        restic = r.inputs["spec"]["restic"]
        assert restic["copyMethod"] == "Snapshot" and restic["retain"]["daily"] >= 7
        assert restic["customCA"] == {"configMapName": "volsync-s3-ca", "key": "ca.crt"}


def test_a_copy_takes_its_repository_and_credentials_from_secrets() -> None:
    run, cluster = program("home"), stack_cluster("home")
    assert cluster.backups is not None and cluster.backups.s3 is not None
    secrets = {
        (r.inputs["metadata"]["namespace"], r.inputs["metadata"]["name"]): r for r in run.of_type(tokens.K8S_SECRET)
    }
    for source in run.of_type(tokens.REPLICATION_SOURCE):
        ns = source.inputs["metadata"]["namespace"]
        secret = secrets[(ns, source.inputs["spec"]["restic"]["repository"])]
        data = secret.inputs["stringData"]
        # What VolSync's restic mover reads (mover-restic/entry.sh).
        assert {"RESTIC_REPOSITORY", "RESTIC_PASSWORD", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= set(data)
        assert data["RESTIC_REPOSITORY"].startswith(
            f"s3:https://{cluster.backups.s3.endpoint}/{cluster.backups.s3.bucket}/home/volsync/{ns}/"
        )
        assert "stringData" in " ".join(secret.secret_paths)
    repositories = [
        secrets[(s.inputs["metadata"]["namespace"], s.inputs["spec"]["restic"]["repository"])].inputs["stringData"][
            "RESTIC_REPOSITORY"
        ]
        for s in run.of_type(tokens.REPLICATION_SOURCE)
    ]
    assert len(set(repositories)) == len(repositories)  # one repository per volume


def test_the_snapshot_class_uses_the_storage_class_s_cluster_and_key() -> None:
    run = program("home")
    [snapshots] = run.of_type(tokens.VOLUME_SNAPSHOT_CLASS)
    [storage] = [r for r in run.of_type(tokens.STORAGE_CLASS) if r.inputs["metadata"]["name"] == STORAGE_CLASS]
    params = snapshots.inputs["parameters"]
    assert snapshots.inputs["driver"] == storage.inputs["provisioner"]
    assert params["clusterID"] == storage.inputs["parameters"]["clusterID"]
    assert (
        params["csi.storage.k8s.io/snapshotter-secret-name"],
        params["csi.storage.k8s.io/snapshotter-secret-namespace"],
    ) == (CSI_SECRET, CSI_NAMESPACE)


def test_movers_may_read_every_file_only_where_a_volume_is_copied() -> None:
    run, cluster = program("home"), stack_cluster("home")
    copied = {c.workload.namespace for c in backed_up_volumes(cluster)}
    for ns in run.of_type(tokens.K8S_NAMESPACE):
        annotations = ns.inputs["metadata"].get("annotations") or {}
        assert (annotations.get(PRIVILEGED_MOVERS) == "true") == (ns.inputs["metadata"]["name"] in copied), ns.name


def test_a_volume_without_a_copy_is_refused_unless_skipped_with_a_reason() -> None:
    # Judged once the cluster's objects are known: the stack as the last `up` left it.
    stack = without(full_stack("home", Shape.UPDATE), "media-jellyfin-config-backup", tokens.REPLICATION_SOURCE)
    found = [v for v in run_policies(stack, config_for("home")) if v.policy == "backup-coverage"]
    assert [v.message for v in found] == [
        "volume jellyfin/config (claim media/config-jellyfin-0) has no copy off the cluster: no ReplicationSource "
        "copies it; give the stack a backups.s3 store, or list jellyfin/config in backups.skip with the reason it "
        "needs none"
    ]
    skipped = patched(
        stack_data("home"), {"backups.skip.jellyfin/config": "metadata only: Jellyfin rebuilds it from the media"}
    )
    assert [v for v in run_policies(stack, config_for("home", cluster=skipped)) if v.policy == "backup-coverage"] == []


def test_without_a_store_the_volumes_are_refused() -> None:
    data = patched(stack_data("home"), delete=["backups.s3"])
    run = program_with("home", data, Shape.UPDATE)
    assert not run.of_type(tokens.REPLICATION_SOURCE)
    found = [
        v.message
        for v in run_policies(run.resources, config_for("home", cluster=data))
        if v.policy == "backup-coverage"
    ]
    volumes = [m for m in found if m.startswith("volume ")]
    assert len(volumes) == sum(len(w.volumes) for w in stack_cluster("home").workloads)
    assert len(found) == len(volumes) + 1  # and the etcd snapshots


def test_the_restore_goes_into_the_volume_s_own_claim() -> None:
    cluster = stack_cluster("home")
    manifest = restore_manifest(cluster, "jellyfin/config", as_of="2026-12-01T03:00:00Z")
    restic = manifest["spec"]["restic"]  # type: ignore[index]
    assert manifest["metadata"] == {"name": "jellyfin-config-restore", "namespace": "media"}
    assert restic["destinationPVC"] == "config-jellyfin-0" and restic["repository"] == "jellyfin-config-restic"
    assert restic["copyMethod"] == "Direct" and restic["restoreAsOf"] == "2026-12-01T03:00:00Z"
    assert restic["enableFileDeletion"] is True  # the volume becomes the copy
    with pytest.raises(ValueError, match="jellyfin/cache is not a volume this stack backs up"):
        restore_manifest(cluster, "jellyfin/cache")


def test_make_restore_prints_the_manifest_alone() -> None:
    out = subprocess.run(
        ["make", "-s", "restore", "STACK=home", "VOLUME=uptime-kuma/data"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.startswith("apiVersion: volsync.backube/v1alpha1\nkind: ReplicationDestination\n")


def test_a_volume_kept_less_than_a_week_needs_a_reason() -> None:
    stack = edit(
        full_stack("home"),
        "media-jellyfin-config-backup",
        {"spec.restic.retain.daily": 3},
        typ=tokens.REPLICATION_SOURCE,
    )
    found = [v for v in run_policies(stack, config_for("home")) if v.policy == "backup-retention"]
    assert [v.message for v in found] == [
        "media-jellyfin-config-backup: backups.volumes.retention keeps 3 daily copies, fewer than 7: a mistake noticed "
        "a week later has no copy left; keep more, or say why in retention.short_because"
    ]
    short = {"retention": {"keep_daily": 3, "short_because": "a cache the app refills"}}
    reason = patched(stack_data("home"), {"backups.volumes": short})
    assert not [v for v in run_policies(stack, config_for("home", cluster=reason)) if v.policy == "backup-retention"]
