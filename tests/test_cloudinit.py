"""Every VM's user-data passes cloud-init's own schema check (the Debian `cloud-init` package)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from offline.engine import Shape
from policies import tokens
from tests.support import STACKS, program, stack_cluster

SCHEMA = Path("/usr/lib/python3/dist-packages/cloudinit/config/schemas/schema-cloud-config-v1.json")
CLOUD_INIT = shutil.which("cloud-init")
needs_cloud_init = pytest.mark.skipif(
    CLOUD_INIT is None and not os.environ.get("CI"), reason="cloud-init not installed (make tools)"
)


def known_top_level_keys() -> set[str]:
    schema = json.loads(SCHEMA.read_text())
    keys: set[str] = set()
    for part in schema["allOf"]:
        ref = part.get("$ref", "")
        definition = schema["$defs"][ref.rsplit("/", 1)[-1]] if ref else part
        keys |= set(definition.get("properties", {}))
    return keys


def snippets(stack: str) -> dict[str, str]:
    return {r.name: r.inputs["sourceRaw"]["data"] for r in program(stack).of_type(tokens.SNIPPET)}


@needs_cloud_init
@pytest.mark.parametrize("stack", STACKS)
def test_user_data_passes_the_cloud_init_schema(stack: str, tmp_path: Path) -> None:
    assert CLOUD_INIT is not None, "make tools installs cloud-init; CI must not skip this"
    known = known_top_level_keys()
    for name, data in snippets(stack).items():
        path = tmp_path / f"{name}.yaml"
        path.write_text(data)
        result = subprocess.run(
            [CLOUD_INIT, "schema", "--config-file", str(path)], check=False, capture_output=True, text=True
        )
        assert result.returncode == 0, f"{name}: {result.stdout}{result.stderr}"
        # `cloud-init schema` lets unknown top-level keys pass; a typo there would be ignored at boot.
        unknown = set(yaml.safe_load(data)) - known
        assert not unknown, f"{name}: keys cloud-init does not know: {unknown}"


@needs_cloud_init
def test_the_schema_check_catches_a_wrong_type(tmp_path: Path) -> None:
    assert CLOUD_INIT is not None
    path = tmp_path / "bad.yaml"
    path.write_text("#cloud-config\npackages: 5\n")
    result = subprocess.run(
        [CLOUD_INIT, "schema", "--config-file", str(path)], check=False, capture_output=True, text=True
    )
    assert result.returncode != 0


def test_user_data_content() -> None:
    cluster = stack_cluster("home")
    run = program("home", Shape.UPDATE)  # ids are known once the snippets exist
    vm = run.named("k3s-server-1").inputs
    snippet_id = vm["initialization"]["userDataFileId"]
    snippet = next(r for r in run.of_type(tokens.SNIPPET) if f"{r.name}-id" == snippet_id)
    # One copy per node, so an HA guest can restart anywhere; VMs with the same packages share it.
    copies = [r for r in run.of_type(tokens.SNIPPET) if r.name.rsplit("-", 1)[0] == snippet.name.rsplit("-", 1)[0]]
    assert sorted(r.inputs["nodeName"] for r in copies) == [n.name for n in cluster.nodes]
    assert len(run.of_type(tokens.SNIPPET)) == len(cluster.nodes)  # all home VMs install the same packages
    data = snippet.inputs["sourceRaw"]["data"]
    doc = yaml.safe_load(data)
    assert data.startswith("#cloud-config\n")
    assert "hostname" not in doc  # from the VM name, via Proxmox's meta-data
    assert doc["users"][0]["name"] == "homelab"
    assert snippet.inputs["sourceRaw"]["fileName"].startswith("homelab-user-data-")
    assert doc["users"][0]["ssh_authorized_keys"] == cluster.access.ssh_public_keys
    assert doc["ssh_pwauth"] is False
    assert {"qemu-guest-agent", "curl", "open-iscsi"} <= set(doc["packages"])
    assert ["systemctl", "enable", "--now", "qemu-guest-agent"] in doc["runcmd"]
