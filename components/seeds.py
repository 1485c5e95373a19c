"""Seed files: what an app finds on its volume at its first start (a configuration that skips a
first-run wizard, for instance), written only when absent so the app owns it afterwards.

The files travel as one Kubernetes Secret per workload (their `${NAME}` placeholders filled from
the stack's secret config), mounted read-only into an init container that copies each one onto
the app's volume unless the app already has it.
"""

from __future__ import annotations

import posixpath
import shlex

import pulumi
import pulumi_kubernetes as k8s

from components.stack import secret_config
from spec.kubernetes import PLACEHOLDER, SeedFile, Workload

# A shell and cp for the copy, from a small pinned image (the app's own may have no shell).
SEED_IMAGE = "busybox:1.37.0@sha256:bdf57e528e45e4433820e045b29b4597825a1c9e38353532d90a01445013f82e"
SEED_MOUNT = "/seed"
SEED_VOLUME = "seed-files"


def seed_secret_name(w: Workload) -> str:
    return f"{w.name}-seed"


def seed_script(files: list[tuple[str, str]]) -> str:
    """Copy each (source, destination) pair unless the destination exists."""
    steps = [
        f"if [ ! -e {shlex.quote(dest)} ]; then mkdir -p {shlex.quote(posixpath.dirname(dest))} && "
        f"cp {shlex.quote(src)} {shlex.quote(dest)} && echo seeded {shlex.quote(dest)}; fi"
        for src, dest in files
    ]
    return "set -e\n" + "\n".join(steps) + "\n"


def _rendered(seed: SeedFile) -> pulumi.Input[str]:
    """The file's content with its placeholders filled from the stack's secret config."""
    if not seed.secrets:
        return seed.content
    names = sorted(seed.secrets)
    values = [secret_config(seed.secrets[n]) for n in names]

    def fill(resolved: list[str]) -> str:
        table = dict(zip(names, resolved, strict=True))
        return PLACEHOLDER.sub(lambda m: table[m.group(1)], seed.content)

    return pulumi.Output.all(*values).apply(fill)


def seed_secret(
    w: Workload, key: str, labels: dict[str, str], opts: pulumi.ResourceOptions
) -> k8s.core.v1.Secret | None:
    if not w.seed_files:
        return None
    return k8s.core.v1.Secret(
        f"{key}-seed",
        k8s.core.v1.SecretInitArgs(
            metadata=k8s.meta.v1.ObjectMetaArgs(name=seed_secret_name(w), namespace=w.namespace, labels=labels),
            type="Opaque",
            string_data={f"file-{i}": _rendered(seed) for i, seed in enumerate(w.seed_files)},
        ),
        opts=opts,
    )


def seed_pod_parts(w: Workload) -> tuple[list[k8s.core.v1.ContainerArgs], list[k8s.core.v1.VolumeArgs]]:
    """The init container and the Secret's volume the pod needs (none when nothing is seeded)."""
    if not w.seed_files:
        return [], []
    files = [(f"{SEED_MOUNT}/file-{i}", seed.path) for i, seed in enumerate(w.seed_files)]
    init = k8s.core.v1.ContainerArgs(
        name="seed",
        image=SEED_IMAGE,
        command=["sh", "-c", seed_script(files)],
        volume_mounts=[
            *(k8s.core.v1.VolumeMountArgs(name=v.name, mount_path=v.mount_path) for v in w.volumes),
            k8s.core.v1.VolumeMountArgs(name=SEED_VOLUME, mount_path=SEED_MOUNT, read_only=True),
        ],
        resources=k8s.core.v1.ResourceRequirementsArgs(
            requests={"cpu": "10m", "memory": "16Mi"}, limits={"memory": "16Mi"}
        ),
    )
    volume = k8s.core.v1.VolumeArgs(
        name=SEED_VOLUME,
        secret=k8s.core.v1.SecretVolumeSourceArgs(secret_name=seed_secret_name(w), default_mode=0o400),
    )
    return [init], [volume]
