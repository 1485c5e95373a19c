"""Cloud-init for VMs: the user-data (login user, SSH keys, guest agent, packages) and the hostname.

A custom user-data snippet replaces the user-data Proxmox generates, the only place Proxmox
writes `hostname`; the meta-data it generates holds just `instance-id` (qemu-server
src/PVE/QemuServer/Cloudinit.pm, cloudinit_userdata and nocloud_metadata). Proxmox also rebuilds
the cloud-init drive at every start, from the snippets on the node the VM starts on (qemu-server
src/PVE/QemuServer.pm, vm_start: apply_cloudinit_config). So a snippet must be on every node an HA
guest may restart on, and one per VM would be VMs x nodes files.

The hostname therefore travels in the VM's own config: its SMBIOS serial number reads
`ds=nocloud;h=<fqdn>`, which cloud-init's NoCloud datasource takes as `local-hostname`, ahead of
the drive's meta-data (cloud-init cloudinit/sources/DataSourceNoCloud.py: the DMI serial is
parsed like the kernel command line and merged first). The cluster replicates the VM's config to
every node, and the user-data holds nothing specific to one VM, so VMs with the same packages share
one file and the copies stay linear in nodes. The instance id stays Proxmox's, so existing VMs
are not taken for new instances.
"""

from __future__ import annotations

import hashlib
from typing import Any

import yaml

from spec.models import Cluster

# The guest agent lets Proxmox shut guests down cleanly, freeze filesystems for backups and
# report IPs; curl fetches the k3s installer (not every cloud image ships it).
BASE_PACKAGES = ("curl", "qemu-guest-agent")


def user_data(cluster: Cluster, packages: list[str]) -> str:
    doc: dict[str, Any] = {
        "manage_etc_hosts": True,
        "timezone": cluster.access.timezone,
        "users": [
            {
                "name": cluster.access.user,
                "groups": ["sudo"],
                "shell": "/bin/bash",
                "sudo": "ALL=(ALL) NOPASSWD:ALL",
                "lock_passwd": True,
                "ssh_authorized_keys": list(cluster.access.ssh_public_keys),
            }
        ],
        "ssh_pwauth": False,
        "disable_root": True,
        "package_update": True,
        "packages": sorted({*BASE_PACKAGES, *packages}),
        "runcmd": [["systemctl", "enable", "--now", "qemu-guest-agent"]],
    }
    return "#cloud-config\n" + yaml.safe_dump(doc, sort_keys=False)


def snippet_name(content: str) -> str:
    """A stable file name from the content: same content, same file, on every node."""
    return f"homelab-user-data-{hashlib.sha256(content.encode()).hexdigest()[:12]}.yaml"


def nocloud_serial(cluster: Cluster, name: str) -> str:
    """The VM's SMBIOS serial: cloud-init sets the hostname from it at every boot (the short name
    from its first label, the FQDN in /etc/hosts from the whole)."""
    return f"ds=nocloud;h={name}.{cluster.domain}"
