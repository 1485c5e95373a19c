"""The volumes of a StatefulSet: the claim templates it starts with, and the claims it made,
grown in place when the spec asks for more.

A StatefulSet's `volumeClaimTemplates` cannot change (the API refuses the update), and the
program protects StatefulSets with claims, so a larger `size_gib` could never apply through the
template. The claims themselves can grow: the StorageClass allows expansion and ceph-csi resizes
the RBD image and the file system online. So the template is set once (later changes ignored)
and each claim the controller made (`<volume>-<statefulset>-<ordinal>`) is patched to the spec's
size. Kubernetes refuses to shrink a claim, with its own message, at `pulumi up`.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from spec.kubernetes import Workload, claim_name

# Server-side apply takes the size over from the StatefulSet controller, which set it.
PATCH_FORCE = "pulumi.com/patchForce"


def claim_templates(
    w: Workload, storage_class: pulumi.Input[str], labels: dict[str, str]
) -> list[k8s.core.v1.PersistentVolumeClaimArgs]:
    return [
        k8s.core.v1.PersistentVolumeClaimArgs(
            metadata=k8s.meta.v1.ObjectMetaArgs(name=v.name, labels=labels),
            spec=k8s.core.v1.PersistentVolumeClaimSpecArgs(
                access_modes=["ReadWriteOnce"],
                storage_class_name=storage_class,
                resources=k8s.core.v1.VolumeResourceRequirementsArgs(requests={"storage": f"{v.size_gib}Gi"}),
            ),
        )
        for v in w.volumes
    ]


def grown_claims(w: Workload, key: str, opts: pulumi.ResourceOptions) -> list[k8s.core.v1.PersistentVolumeClaimPatch]:
    """Each claim of each replica at the spec's size. `opts` must wait for the StatefulSet, whose
    pods' claims exist once it is ready."""
    return [
        k8s.core.v1.PersistentVolumeClaimPatch(
            f"{key}-{claim_name(v.name, w.name, i)}",
            k8s.core.v1.PersistentVolumeClaimPatchInitArgs(
                metadata=k8s.meta.v1.ObjectMetaPatchArgs(
                    name=claim_name(v.name, w.name, i), namespace=w.namespace, annotations={PATCH_FORCE: "true"}
                ),
                spec=k8s.core.v1.PersistentVolumeClaimSpecPatchArgs(
                    resources=k8s.core.v1.VolumeResourceRequirementsPatchArgs(requests={"storage": f"{v.size_gib}Gi"})
                ),
            ),
            opts=opts,
        )
        for v in w.volumes
        for i in range(w.replicas)
    ]
