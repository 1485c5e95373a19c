"""The guests: VMs and LXC containers, their size, disks, addresses and HA."""

from __future__ import annotations

import re
from ipaddress import IPv4Address
from typing import Annotated, Literal

from pydantic import Field, model_validator

from spec.base import Fraction, Model, Name, StorageId, refuse

# HA rule and group ids, as the provider validates them (bpg/terraform-provider-proxmox,
# fwprovider/cluster/ha/resource_harule.go and resource_hagroup.go): Proxmox refuses others.
# Proxmox's own format is narrower still: `pve-configid` (pve-ha-manager src/PVE/HA/Tools.pm,
# pve-common JSONSchema.pm CONFIGID_RE `[a-z][a-z0-9_-]+`/i) takes no `.`.
HA_ID = re.compile(r"^[a-zA-Z][a-zA-Z0-9\-_.]*[a-zA-Z0-9]$")


# A Debian package name (Debian Policy 5.6.1): nothing apt could take for an option (`-o...`)
# or a version, release or path. Names only: the stacks pin no versions.
PACKAGE = r"^[a-z0-9][a-z0-9+.-]+$"
# A Proxmox tag (pve-common src/PVE/JSONSchema.pm, PVE_TAG_RE), in lower case: the API takes the
# list `;`-separated, so a `;` or `,` would make tags of its own.
TAG = r"^[a-z0-9_][a-z0-9_+.-]*$"


def node_rule_id(guest: str, node: str) -> str:
    """The HA rule that keeps an HA guest on its preferred node (PVE 9)."""
    return f"{guest}-prefers-{node}"


def apart_rule_id(group: str) -> str:
    """The HA rule that keeps an anti-affinity group's guests on different nodes (PVE 9)."""
    return f"{group}-apart"


def prefer_group_id(node: str) -> str:
    """The HA group that prefers a node (PVE 8)."""
    return f"prefer-{node}"


class Disk(Model):
    size_gib: Annotated[int, Field(ge=1)]
    storage: StorageId | None = None  # None: the Ceph RBD storage for guest disks


class Guest(Model):
    name: Name
    kind: Literal["vm", "lxc"] = "vm"
    vm_id: Annotated[int, Field(ge=100, le=999_999_999)]
    node: Name | None = None  # preferred node; placement picks one when absent
    address: IPv4Address | None = None  # static LAN address (cloud-init); k3s nodes need one
    ceph_address: IPv4Address | None = None  # on the Ceph public VLAN, for a Ceph client (k3s CSI)
    cores: Annotated[int, Field(ge=1)] = 2
    memory_mib: Annotated[int, Field(ge=64)] = 2048
    # Ballooning lets an idle VM hand memory back to the host; 0 turns it off.
    balloon_min_mib: Annotated[int, Field(ge=0)] = 0
    disks: list[Disk] = Field(min_length=1)
    image: str | None = None  # VM: key of `images`
    # LXC: a template of Proxmox's appliance index, as the volume it becomes (downloaded by pveam).
    # The file name starts with a letter or digit: lxc-template.sh hands it to pveam as an argument.
    template: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]*:vztmpl/[A-Za-z0-9][A-Za-z0-9._+-]*$")] | None = None
    ha: bool = False
    load: Fraction = 0.1  # expected share of its vCPUs busy, for the power model
    # A group name; spec.checks holds it to the HA rule id it becomes (`<group>-apart`).
    anti_affinity: str | None = None
    # Guard a guest that holds data: Pulumi refuses to delete it and so does Proxmox.
    protect: bool = False
    packages: list[Annotated[str, Field(pattern=PACKAGE)]] = Field(default_factory=list)
    tags: list[Annotated[str, Field(pattern=TAG)]] = Field(default_factory=list)

    @property
    def ha_id(self) -> str:
        """How Proxmox HA names this guest: `vm:201` or `ct:300`."""
        return f"{'vm' if self.kind == 'vm' else 'ct'}:{self.vm_id}"

    @model_validator(mode="after")
    def _shape(self) -> Guest:
        problems: list[str] = []
        if self.balloon_min_mib > self.memory_mib:
            problems.append(f"balloon_min_mib {self.balloon_min_mib} is above memory_mib {self.memory_mib}")
        if self.kind == "vm" and self.image is None:
            problems.append("image: a VM needs a cloud image (a key of `images`)")
        if self.kind == "lxc" and self.template is None:
            problems.append("template: an LXC needs a template volume (e.g. local:vztmpl/debian-13-standard.tar.zst)")
        refuse(problems)
        return self
