"""Cluster-wide settings: the power budget, the networks, Proxmox, the quorum device, images, access."""

from __future__ import annotations

from functools import cache
from ipaddress import IPv4Address, IPv4Network
from typing import Annotated, Literal
from zoneinfo import available_timezones

from pydantic import Field, field_validator, model_validator

from spec.base import TEMPLATE_VM_IDS, LinuxUser, Model, StorageId, VlanId, refuse

# One OpenSSH public key, one line: `<type> <base64 blob> [comment]` (sshd(8), AUTHORIZED_KEYS
# FILE FORMAT), of the types OpenSSH accepts today. No options prefix (`command="..."`,
# `from=...`), and a comment of printable ASCII only: the keys become lines of authorized_keys
# (cloud-init's `ssh_authorized_keys` for the VMs' user, Proxmox's `ssh-public-keys` for the
# containers' root), where a newline would add a line of its own, options and all. Every blob
# starts with AAAA: the big-endian length of the type name that opens it.
HOST_KEY_TYPES = r"ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)"
_KEY_AND_COMMENT = r" AAAA[A-Za-z0-9+/]+={0,2}( [\x20-\x7e]*)?$"
SSH_PUBLIC_KEY = (
    rf"^({HOST_KEY_TYPES}|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com){_KEY_AND_COMMENT}"
)
# A host's own key: the same syntax, of the types sshd holds as host keys (no security keys).
SSH_HOST_KEY = rf"^({HOST_KEY_TYPES}){_KEY_AND_COMMENT}"
# An IANA time zone name (`Area/Location`, `Etc/GMT+1`, `EST5EDT`): no dots, so no `..`, which
# cloud-init would join onto /usr/share/zoneinfo (cc_timezone, distro._find_tz_file).
TIMEZONE = r"^[A-Za-z_][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$"
# A cloud image's file name on the images storage. Proxmox's download-url takes an `iso` file
# only with an .iso or .img extension, and puts `_` for anything outside [a-zA-Z0-9_.-] (pve-storage
# src/PVE/API2/Storage/Status.pm, download_url; PVE/Storage.pm normalize_content_filename); a
# first letter or digit keeps out `.`, `..` and a leading `-`.
IMAGE_FILE_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]*\.(img|iso)$"


@cache
def known_timezones() -> frozenset[str]:
    """The time zones of this machine's IANA database (empty where it has none)."""
    return frozenset(available_timezones())


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
    ssh_user: LinuxUser = "root"
    local_storage: StorageId = "local-lvm"
    snippets_storage: StorageId = "local"
    images_storage: StorageId = "local"


class QuorumDevice(Model):
    """External corosync-qnetd vote (e.g. on a Raspberry Pi) that a two-node cluster needs."""

    host: str
    address: IPv4Address


class Image(Model):
    # The VM ID of the template made from it, fixed here: an ID derived from the images' order
    # would move an existing template when a new image sorts before it.
    template_vm_id: Annotated[int, Field(ge=TEMPLATE_VM_IDS.start, le=TEMPLATE_VM_IDS.stop - 1)]
    # Printable ASCII, no space: one URL for Proxmox to fetch.
    url: Annotated[str, Field(pattern=r"^https://[\x21-\x7e]+$")]
    # Required: Proxmox checks the download against it (pve-storage src/PVE/API2/Storage/
    # Status.pm, download_url) before a template is made from it, so a mirror or anyone on the
    # path cannot hand every VM another disk. A dated image folder's SHA512SUMS has it (the file
    # behind a `latest` URL changes under its sum).
    checksum: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$|^[0-9a-f]{128}$")]
    checksum_algorithm: Literal["sha256", "sha512"] = "sha512"
    file_name: Annotated[str, Field(pattern=IMAGE_FILE_NAME)]

    @model_validator(mode="after")
    def _one_fixed_file(self) -> Image:
        problems: list[str] = []
        digits = {"sha256": 64, "sha512": 128}[self.checksum_algorithm]
        if len(self.checksum) != digits:
            problems.append(
                f"checksum has {len(self.checksum)} hex digits; a {self.checksum_algorithm} has {digits} "
                "(set checksum_algorithm to match the sum)"
            )
        if "/latest/" in self.url:
            problems.append(
                f"url {self.url} is a `latest` folder, whose file changes under its checksum; name a dated folder"
            )
        refuse(problems)
        return self


class Access(Model):
    """Login for guests: the user cloud-init creates and the keys it trusts."""

    user: LinuxUser = "homelab"
    ssh_public_keys: list[Annotated[str, Field(pattern=SSH_PUBLIC_KEY)]] = Field(min_length=1)
    timezone: Annotated[str, Field(pattern=TIMEZONE)] = "Etc/UTC"

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, timezone: str) -> str:
        # Checked where the database is there to check against (a machine without tzdata has
        # none, and the pattern still holds); the guests' tzdata may be older than this machine's.
        known = known_timezones()
        if known and timezone not in known:
            raise ValueError(f"timezone {timezone} is not a time zone of the IANA database (e.g. Europe/Berlin)")
        return timezone
