"""VMs' cloud-init data, judged by cloud-init itself (the Debian `cloud-init` package): user-data
passes its schema check, and its NoCloud datasource reads each VM's hostname from the files."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
from pathlib import Path
from typing import cast

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
    assert "hostname" not in doc  # shared by VMs: each VM's hostname is in its SMBIOS serial
    assert doc["users"][0]["name"] == "homelab"
    assert snippet.inputs["sourceRaw"]["fileName"].startswith("homelab-user-data-")
    assert doc["users"][0]["ssh_authorized_keys"] == cluster.access.ssh_public_keys
    assert doc["ssh_pwauth"] is False
    assert {"qemu-guest-agent", "curl", "open-iscsi"} <= set(doc["packages"])
    assert ["systemctl", "enable", "--now", "qemu-guest-agent"] in doc["runcmd"]


# What cloud-init makes of a VM: its NoCloud datasource reads the seed (the same reader as for the
# cloud-init drive) and the SMBIOS serial number (here given as QEMU's `-smbios type=1,serial=`
# shows it to the guest), and `get_hostname_fqdn` is what its set_hostname, update_hostname and
# update_etc_hosts modules call. Run by Debian's cloud-init.
PROBE = """
import json, sys
from cloudinit import cloud, distros, dmi, helpers, util
from cloudinit.sources import DataSourceNoCloud
base, serial = sys.argv[1], sys.argv[2]
dmi.read_dmi_data = lambda key: serial if key == "system-serial-number" else None
paths = helpers.Paths({"cloud_dir": base + "/cloud", "run_dir": base + "/run"})
distro = distros.fetch("debian")("debian", {}, paths)
ds = DataSourceNoCloud.DataSourceNoCloud({}, distro, paths)
assert ds.get_data(), "NoCloud found no seed"
cfg = util.load_yaml(ds.get_userdata_raw().decode()) or {}
info = util.get_hostname_fqdn(cfg, cloud.Cloud(ds, paths, {}, distro, None))
print(json.dumps({"hostname": info.hostname, "fqdn": info.fqdn, "instance_id": ds.get_instance_id()}))
"""
# The meta-data Proxmox writes beside custom user-data (nocloud_metadata): an instance id only.
PROXMOX_META_DATA = "instance-id: 3f786850e387550fdab836ed7e6dc881de23001b\n"


def cloud_init_reads(user_data: str, serial: str, tmp_path: Path) -> dict[str, str]:
    seed = tmp_path / "cloud" / "seed" / "nocloud"
    seed.mkdir(parents=True)
    (seed / "user-data").write_text(user_data)
    (seed / "meta-data").write_text(PROXMOX_META_DATA)
    (tmp_path / "run").mkdir()
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    # Debian's cloud-init lives in the system Python, not in the project's venv.
    out = subprocess.run(
        ["/usr/bin/python3", str(probe), str(tmp_path), serial], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    return cast(dict[str, str], json.loads(out.stdout.splitlines()[-1]))


@needs_cloud_init
@pytest.mark.parametrize("stack", STACKS)
def test_each_vm_gets_its_own_hostname(stack: str, tmp_path: Path) -> None:
    run = program(stack, Shape.UPDATE)
    domain = stack_cluster(stack).domain
    files = {f"{r.name}-id": r.inputs["sourceRaw"]["data"] for r in run.of_type(tokens.SNIPPET)}
    vms = [vm for vm in run.of_type(tokens.VM) if "clone" in vm.inputs]  # not the templates
    assert len(vms) >= 3
    for vm in vms:
        name = vm.inputs["name"]
        user = files[vm.inputs["initialization"]["userDataFileId"]]
        got = cloud_init_reads(user, vm.inputs["smbios"]["serial"], tmp_path / name)
        assert (got["hostname"], got["fqdn"]) == (name, f"{name}.{domain}")
        # The instance id stays the one Proxmox writes: existing VMs are not new instances.
        assert got["instance_id"] == PROXMOX_META_DATA.split()[1]


@needs_cloud_init
def test_without_the_serial_a_vm_keeps_the_images_hostname(tmp_path: Path) -> None:
    # What every VM got before: cloud-init keeps the hostname it finds (here, this machine's).
    user = next(iter(snippets("home").values()))
    got = cloud_init_reads(user, "", tmp_path)
    assert got["hostname"] == socket.gethostname()


def test_the_hostname_rides_in_the_vm_config_not_in_per_vm_files() -> None:
    # Snippets stay linear in nodes: one shared user-data file per node, whatever the VM count.
    run = program("home")
    assert len(run.of_type(tokens.SNIPPET)) == len(stack_cluster("home").nodes)
