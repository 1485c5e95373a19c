"""Everything the cluster downloads is checked against what the repository pins: every image it
runs by digest, each cloud image by checksum (the k3s installer: tests/test_k3s_scripts.py)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from offline.harness import ProgramRun
from policies import tokens
from spec.kubernetes import DIGEST
from tests.support import STACKS, program, script_param, stack_cluster

PINNED = re.compile(rf"^[a-z0-9./_-]+:[A-Za-z0-9._-]+{DIGEST}$")


def images_in(obj: Any) -> Iterator[str]:
    """Every container and init container image anywhere in a manifest or resource inputs."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key in ("containers", "initContainers") and isinstance(value, list):
                yield from (c["image"] for c in value if isinstance(c, dict) and "image" in c)
            else:
                yield from images_in(value)
    elif isinstance(obj, list):
        for item in obj:
            yield from images_in(item)


def kube_vip_manifest(run: ProgramRun, guest: str) -> list[Any]:
    return list(yaml.safe_load_all(script_param(run.named(f"{guest}-k3s").inputs["create"], "KUBE_VIP_MANIFEST")))


@pytest.mark.parametrize("stack", STACKS)
def test_every_image_the_cluster_runs_is_pinned_by_digest(stack: str) -> None:
    run, cluster = program(stack), stack_cluster(stack)
    assert cluster.k3s is not None
    seen: dict[str, str] = {}
    for resource in run.resources:
        if resource.type.startswith("kubernetes:") and resource.type != tokens.HELM_RELEASE:
            seen |= {image: resource.name for image in images_in(resource.inputs)}
    for server in cluster.k3s.servers:
        seen |= {image: f"{server} kube-vip" for image in images_in(kube_vip_manifest(run, server))}
    # The apps, the seed init container, the cloud provider and kube-vip.
    assert {w.image for w in cluster.workloads} | {cluster.k3s.kube_vip_image} <= set(seen)
    assert any("kube-vip-cloud-provider" in i for i in seen)
    assert any("busybox" in i for i in seen) == any(w.seed_files for w in cluster.workloads)
    unpinned = {image: where for image, where in seen.items() if not PINNED.match(image)}
    assert not unpinned


@pytest.mark.parametrize("stack", STACKS)
def test_every_cloud_image_is_checked_by_proxmox(stack: str) -> None:
    run, cluster = program(stack), stack_cluster(stack)
    downloads = [r for r in run.of_type(tokens.DOWNLOAD_FILE) if r.inputs.get("contentType") == "iso"]
    assert downloads
    for download in downloads:
        image = next(i for i in cluster.images.values() if i.url == download.inputs["url"])
        assert download.inputs["checksum"] == image.checksum
        assert download.inputs["checksumAlgorithm"] == image.checksum_algorithm
