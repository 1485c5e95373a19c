"""Cloud-init user-data for a VM: the login user, its SSH keys, the guest agent, packages."""

from __future__ import annotations

from typing import Any

import yaml

from spec.models import Cluster, Guest

# The agent lets Proxmox shut guests down cleanly, freeze filesystems for backups and report IPs.
BASE_PACKAGES = ("qemu-guest-agent",)


def user_data(cluster: Cluster, guest: Guest) -> str:
    doc: dict[str, Any] = {
        "hostname": guest.name,
        "fqdn": f"{guest.name}.{cluster.domain}",
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
        "packages": sorted({*BASE_PACKAGES, *guest.packages}),
        "runcmd": [["systemctl", "enable", "--now", "qemu-guest-agent"]],
    }
    return "#cloud-config\n" + yaml.safe_dump(doc, sort_keys=False)
