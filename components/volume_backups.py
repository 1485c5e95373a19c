"""The workload volumes, copied off the cluster: VolSync takes a CSI snapshot of each volume
(ceph-csi RBD: a snapshot and a clone in the Kubernetes pool) and copies it with restic to its own
repository on the S3 store, encrypted with the stack's restic password.

What it takes on the cluster: the CSI snapshot controller and the snapshot CRDs (the piraeus
chart: k3s ships neither), a VolumeSnapshotClass for ceph-csi, and VolSync (its chart, which
installs its CRDs and needs no webhook). Then per volume a Secret with the repository and its
credentials and a ReplicationSource. The movers run in the app's namespace, "privileged"
(VolSync's word: CHOWN, DAC_OVERRIDE and FOWNER, which Pod Security `baseline` allows), so they
read every file whatever its owner and a restore puts ownership back; the namespace's
`allow-egress` policy lets them reach the store. A restore is a ReplicationDestination (README;
`offline/restore.py` prints one for a volume).
"""

from __future__ import annotations

from collections.abc import Mapping

import pulumi
import pulumi_kubernetes as k8s

from components.platform import CSI_DRIVER, CSI_NAMESPACE, CSI_SECRET, STORAGE_CLASS
from components.stack import secret_config, waits_for
from plan.backups import VOLSYNC_NAMESPACE, VolumeCopy, backed_up_volumes
from spec.backups import RESTIC_PASSWORD, S3_ACCESS_KEY, S3_SECRET_KEY, Backups
from spec.models import Cluster

SNAPSHOT_CONTROLLER_CHART = "snapshot-controller"
SNAPSHOT_CONTROLLER_REPOSITORY = "https://piraeus.io/helm-charts/"
# renovate: datasource=helm depName=snapshot-controller registryUrl=https://piraeus.io/helm-charts/
SNAPSHOT_CONTROLLER_VERSION = "5.2.0"
VOLSYNC_CHART = "volsync"
VOLSYNC_REPOSITORY = "https://backube.github.io/helm-charts/"
# renovate: datasource=helm depName=volsync registryUrl=https://backube.github.io/helm-charts/
VOLSYNC_VERSION = "0.16.0"
SNAPSHOT_CLASS = "ceph-rbd-snapshots"
# Where a namespace lets VolSync's movers run with the capabilities they need to read and
# restore every file (VolSync internal/controller/utils/namespace.go).
PRIVILEGED_MOVERS = "volsync.backube/privileged-movers"
CA_CONFIG_MAP = "volsync-s3-ca"
CA_KEY = "ca.crt"


class VolumeSnapshotClass(pulumi.CustomResource):
    """A `snapshot.storage.k8s.io/v1` VolumeSnapshotClass, whose fields sit beside `metadata`
    rather than under `spec`: the Python SDK's CustomResource sends only `spec`, so this registers
    the object as it does (pulumi-kubernetes apiextensions/CustomResource.py, the type token
    `kubernetes:<apiVersion>:<kind>`), with the class's own fields."""

    def __init__(
        self, name: str, driver: str, parameters: Mapping[str, pulumi.Input[str]], opts: pulumi.ResourceOptions
    ) -> None:
        props = {
            "apiVersion": "snapshot.storage.k8s.io/v1",
            "kind": "VolumeSnapshotClass",
            "metadata": {"name": name},
            "driver": driver,
            # A snapshot VolSync no longer needs goes with its RBD snapshot.
            "deletionPolicy": "Delete",
            "parameters": dict(parameters),
        }
        super().__init__("kubernetes:snapshot.storage.k8s.io/v1:VolumeSnapshotClass", name, props, opts)


def repository_secret_name(copy: VolumeCopy) -> str:
    return f"{copy.workload.name}-{copy.volume.name}-restic"


def repository_settings(backups: Backups, copy: VolumeCopy) -> dict[str, pulumi.Input[str]]:
    """The restic mover's environment (VolSync mover-restic/entry.sh): the repository, its
    password, and the store's credentials."""
    assert backups.s3 is not None
    return {
        "RESTIC_REPOSITORY": copy.repository,
        "RESTIC_PASSWORD": secret_config(RESTIC_PASSWORD),
        "AWS_ACCESS_KEY_ID": secret_config(S3_ACCESS_KEY),
        "AWS_SECRET_ACCESS_KEY": secret_config(S3_SECRET_KEY),
        "AWS_DEFAULT_REGION": backups.s3.region,
    }


def replication_source(backups: Backups, copy: VolumeCopy) -> dict[str, object]:
    """The ReplicationSource's spec (VolSync api/v1alpha1 replicationsource_types.go)."""
    r = backups.volumes.retention
    counts = {"hourly": r.keep_hourly, "daily": r.keep_daily, "weekly": r.keep_weekly, "monthly": r.keep_monthly}
    retain: dict[str, int | str] = {k: v for k, v in (counts | {"yearly": r.keep_yearly}).items() if v}
    if r.keep_last:
        retain["last"] = str(r.keep_last)  # a string in the CRD, unlike the others
    restic: dict[str, object] = {
        "repository": repository_secret_name(copy),
        # A point-in-time copy: the app keeps running while restic reads a snapshot of it.
        "copyMethod": "Snapshot",
        "volumeSnapshotClassName": SNAPSHOT_CLASS,
        "storageClassName": STORAGE_CLASS,
        "accessModes": ["ReadWriteOnce"],
        "retain": retain,
        "pruneIntervalDays": backups.volumes.prune_interval_days,
    }
    if backups.s3 is not None and backups.s3.ca_certificate is not None:
        restic["customCA"] = {"configMapName": CA_CONFIG_MAP, "key": CA_KEY}
    return {"sourcePVC": copy.claim, "trigger": {"schedule": copy.schedule}, "restic": restic}


def restore_manifest(cluster: Cluster, key: str, as_of: str | None = None) -> dict[str, object]:
    """The ReplicationDestination that restores volume KEY (`<workload>/<volume>`) into its own
    claim, in place, once: the latest copy, or the last one made at or before AS_OF (RFC 3339).
    Applied with the app scaled to 0 (README, "Restore a volume"); `make restore` prints it."""
    backups = cluster.backups
    copy = next((c for c in backed_up_volumes(cluster) if c.key == key), None)
    if backups is None or copy is None:
        known = ", ".join(c.key for c in backed_up_volumes(cluster)) or "none"
        raise ValueError(f"{key} is not a volume this stack backs up (those it does: {known})")
    restic: dict[str, object] = {
        "repository": repository_secret_name(copy),
        "destinationPVC": copy.claim,
        # Straight into the claim the app uses (no snapshot in between), files not in the
        # copy removed: the volume becomes the copy.
        "copyMethod": "Direct",
        "enableFileDeletion": True,
    }
    if as_of is not None:
        restic["restoreAsOf"] = as_of
    if backups.s3 is not None and backups.s3.ca_certificate is not None:
        restic["customCA"] = {"configMapName": CA_CONFIG_MAP, "key": CA_KEY}
    return {
        "apiVersion": "volsync.backube/v1alpha1",
        "kind": "ReplicationDestination",
        "metadata": {"name": f"{copy.workload.name}-{copy.volume.name}-restore", "namespace": copy.workload.namespace},
        "spec": {"trigger": {"manual": "restore-once"}, "restic": restic},
    }


class VolumeBackups(pulumi.ComponentResource):
    """The snapshot controller, the snapshot class, VolSync, and a copy of every volume."""

    def __init__(
        self,
        cluster: Cluster,
        provider: pulumi.ProviderResource,
        cluster_id: pulumi.Input[str],
        statefulsets: Mapping[str, pulumi.Resource],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("homelab:backups:VolumeBackups", f"{cluster.name}-volume-backups", None, opts)
        backups = cluster.backups
        assert backups is not None and backups.s3 is not None
        before = waits_for(opts)

        def k8s_opts(*after: pulumi.Resource) -> pulumi.ResourceOptions:
            return pulumi.ResourceOptions(parent=self, provider=provider, depends_on=[*before, *after])

        controller = k8s.helm.v3.Release(
            SNAPSHOT_CONTROLLER_CHART,
            k8s.helm.v3.ReleaseArgs(
                chart=SNAPSHOT_CONTROLLER_CHART,
                version=SNAPSHOT_CONTROLLER_VERSION,
                repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=SNAPSHOT_CONTROLLER_REPOSITORY),
                namespace="kube-system",
                # The snapshot CRDs come with it (installCRDs, the chart's default).
                values={"installCRDs": True},
            ),
            opts=k8s_opts(),
        )
        # ceph-csi's RBD snapshot class (ceph-csi examples/rbd/snapshotclass.yaml): snapshots taken
        # with the restricted client's key, which may snapshot and clone in its own pool
        # (tests/test_ceph_real.py).
        snapshot_class = VolumeSnapshotClass(
            SNAPSHOT_CLASS,
            driver=CSI_DRIVER,
            parameters={
                "clusterID": cluster_id,
                "csi.storage.k8s.io/snapshotter-secret-name": CSI_SECRET,
                "csi.storage.k8s.io/snapshotter-secret-namespace": CSI_NAMESPACE,
            },
            opts=k8s_opts(controller),
        )
        namespace = k8s.core.v1.Namespace(
            VOLSYNC_NAMESPACE,
            k8s.core.v1.NamespaceInitArgs(
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    name=VOLSYNC_NAMESPACE, labels={"pod-security.kubernetes.io/enforce": "restricted"}
                )
            ),
            opts=k8s_opts(),
        )
        volsync = k8s.helm.v3.Release(
            VOLSYNC_CHART,
            k8s.helm.v3.ReleaseArgs(
                chart=VOLSYNC_CHART,
                version=VOLSYNC_VERSION,
                repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=VOLSYNC_REPOSITORY),
                namespace=VOLSYNC_NAMESPACE,
                values={"manageCRDs": True},
            ),
            # Its controllers watch VolumeSnapshots: the snapshot CRDs first.
            opts=k8s_opts(namespace, controller),
        )
        copies = backed_up_volumes(cluster)
        ca_maps: dict[str, pulumi.Resource] = {}
        for ns in sorted({c.workload.namespace for c in copies}):
            if backups.s3.ca_certificate is not None:
                ca_maps[ns] = k8s.core.v1.ConfigMap(
                    f"{ns}-{CA_CONFIG_MAP}",
                    k8s.core.v1.ConfigMapInitArgs(
                        metadata=k8s.meta.v1.ObjectMetaArgs(name=CA_CONFIG_MAP, namespace=ns),
                        data={CA_KEY: backups.s3.ca_certificate},
                    ),
                    opts=k8s_opts(*statefulsets.values()),
                )
        self.sources: dict[str, k8s.apiextensions.CustomResource] = {}
        for copy in copies:
            ns, key = copy.workload.namespace, f"{copy.workload.namespace}-{copy.workload.name}-{copy.volume.name}"
            secret = k8s.core.v1.Secret(
                f"{key}-restic",
                k8s.core.v1.SecretInitArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(name=repository_secret_name(copy), namespace=ns),
                    type="Opaque",
                    string_data=repository_settings(backups, copy),
                ),
                opts=k8s_opts(statefulsets[copy.workload.name]),
            )
            after = [volsync, snapshot_class, secret, statefulsets[copy.workload.name], *ca_maps.values()]
            self.sources[copy.key] = k8s.apiextensions.CustomResource(
                f"{key}-backup",
                api_version="volsync.backube/v1alpha1",
                kind="ReplicationSource",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=f"{copy.workload.name}-{copy.volume.name}", namespace=ns),
                spec=replication_source(backups, copy),
                opts=k8s_opts(*after),
            )
        self.register_outputs({"volumes": sorted(self.sources)})
