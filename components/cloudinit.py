"""Cloud-init user-data for VMs: the login user, its SSH keys, the guest agent, packages.

Nothing in it is specific to one VM (the hostname comes from the VM's name through the
meta-data Proxmox generates), so VMs with the same packages share one snippet file. That keeps
the copies linear in nodes: every node needs every snippet, since Proxmox rebuilds the
cloud-init drive wherever an HA guest restarts.
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
