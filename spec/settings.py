"""Cluster-wide settings: the power budget, the networks, Proxmox, the quorum device, images, access."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from typing import Annotated, Literal

from pydantic import Field, model_validator

from spec.base import TEMPLATE_VM_IDS, Model, Name, VlanId, refuse


class Power(Model):
    budget_watts: Annotated[float, Field(gt=0)]
    price_per_kwh: Annotated[float, Field(ge=0)]
    currency: str = "EUR"


class Lan(Model):
    cidr: IPv4Network
    gateway: IPv4Address
    # The LAN's VLAN on the switch, which the node ports carry untagged; other VLANs (Ceph's
    # public one, guests') ride the same bond tagged and must differ from it.
    vlan: VlanId | None = None
    dns: list[IPv4Address] = Field(default_factory=list)

    @model_validator(mode="after")
    def _gateway_inside(self) -> Lan:
        problems: list[str] = []
        if self.gateway not in self.cidr:
            problems.append(f"gateway {self.gateway} is outside the LAN {self.cidr}")
        refuse(problems)
        return self


class CephNetworks(Model):
    """Ceph's client (public) and replication (cluster) networks.

    The cluster network rides the storage path (mesh or storage bond) with corosync link 1.
    The public network is where clients reach the monitors and OSDs: for guests such as the
    k3s nodes (Ceph CSI) to reach it, it is a VLAN on the LAN bridge (`public_vlan`), and each
    node has an address there. With no guest using Ceph directly, both may be one network.
    """

    public: IPv4Network
    cluster: IPv4Network
    public_vlan: VlanId | None = None

    @model_validator(mode="after")
    def _same_or_disjoint(self) -> CephNetworks:
        problems: list[str] = []
        if self.public != self.cluster and self.public.overlaps(self.cluster):
            problems.append(
                f"public {self.public} and cluster {self.cluster} overlap: "
                "use one network for both or two disjoint ones"
            )
        refuse(problems)
        return self


class StorageNetwork(Model):
    """How the storage network is carried between nodes.

    `bond`: a second bond on each node to a storage switch. `mesh`: direct node-to-node cables
    (Thunderbolt/USB4 or spare NICs) routed by a Proxmox SDN OpenFabric fabric, which reroutes
    through the third node when one cable dies.
    """

    mode: Literal["bond", "mesh"]
    # MTU of the storage bond (jumbo frames need every switch port to agree). The mesh NICs keep
    # the MTU their driver sets, so it is an error to give one in mesh mode.
    mtu: Annotated[int, Field(ge=1280, le=65520)] | None = None
    fabric: Annotated[str, Field(pattern=r"^[a-z][a-z0-9]{0,7}$")] = "ceph"


class Networks(Model):
    lan: Lan
    ceph: CephNetworks
    storage: StorageNetwork
    corosync_links: list[Literal["lan", "storage"]] = Field(default_factory=lambda: ["lan", "storage"], min_length=1)  # type: ignore[arg-type]

    @model_validator(mode="after")
    def _disjoint(self) -> Networks:
        problems: list[str] = []
        if self.storage.mode == "mesh" and self.storage.mtu is not None:
            problems.append("storage.mtu applies to a storage bond; the mesh NICs keep their own MTU")
        if self.lan.vlan is not None and self.lan.vlan == self.ceph.public_vlan:
            problems.append(f"ceph.public_vlan {self.ceph.public_vlan} is the LAN's own VLAN; give Ceph its own")
        for label, net in (("ceph.public", self.ceph.public), ("ceph.cluster", self.ceph.cluster)):
            if net.overlaps(self.lan.cidr):
                problems.append(f"{label} {net} overlaps the LAN {self.lan.cidr}")
        if self.corosync_links[0] != "lan":
            problems.append("corosync_links: the cluster forms over the LAN, so `lan` must be link 0")
        if len(set(self.corosync_links)) != len(self.corosync_links):
            problems.append(f"corosync_links {self.corosync_links} names a link twice")
        refuse(problems)
        return self


class Proxmox(Model):
    version: Literal[8, 9] = 9
    ssh_user: str = "root"
    local_storage: str = "local-lvm"
    snippets_storage: str = "local"
    images_storage: str = "local"


class QuorumDevice(Model):
    """External corosync-qnetd vote (e.g. on a Raspberry Pi) that a two-node cluster needs."""

    host: str
    address: IPv4Address


class Image(Model):
    # The VM ID of the template made from it, fixed here: an ID derived from the images' order
    # would move an existing template when a new image sorts before it.
    template_vm_id: Annotated[int, Field(ge=TEMPLATE_VM_IDS.start, le=TEMPLATE_VM_IDS.stop - 1)]
    url: Annotated[str, Field(pattern=r"^https://")]
    checksum: Annotated[str, Field(pattern=r"^[0-9a-f]{64,128}$")] | None = None
    checksum_algorithm: Literal["sha256", "sha512"] = "sha512"
    file_name: str


class Access(Model):
    """Login for guests: the user cloud-init creates and the keys it trusts."""

    user: Name = "homelab"
    ssh_public_keys: list[Annotated[str, Field(pattern=r"^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp256) ")]] = Field(
        min_length=1
    )
    timezone: str = "Etc/UTC"
