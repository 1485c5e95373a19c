"""The stack spec: the whole cluster as one typed value (`homelab:cluster` in a stack file).

Pure data and cross-field checks, no Pulumi import, so it can be tested and reused by the
policy pack and the reports. Every error names the field path and what is wrong.
"""

from __future__ import annotations

import re
from collections import Counter
from ipaddress import IPv4Address, IPv4Network
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from spec.secrets import PROGRAM_KEYS, SECRET_NAME, ConfigKey, EnvName

HOSTNAME = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
Name = Annotated[str, Field(pattern=HOSTNAME)]
VlanId = Annotated[int, Field(ge=1, le=4094)]
Watts = Annotated[float, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]
# VM IDs of the templates made from cloud images; guests may not use them.
TEMPLATE_VM_IDS = range(9000, 9100)


class Model(BaseModel):
    """Strict base: unknown keys are errors, values never change after validation."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# --- cluster-wide settings -----------------------------------------------------------------


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
        if self.gateway not in self.cidr:
            raise ValueError(f"gateway {self.gateway} is outside the LAN {self.cidr}")
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
        if self.public != self.cluster and self.public.overlaps(self.cluster):
            raise ValueError(
                f"public {self.public} and cluster {self.cluster} overlap: "
                "use one network for both or two disjoint ones"
            )
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
        if self.storage.mode == "mesh" and self.storage.mtu is not None:
            raise ValueError("storage.mtu applies to a storage bond; the mesh NICs keep their own MTU")
        if self.lan.vlan is not None and self.lan.vlan == self.ceph.public_vlan:
            raise ValueError(f"ceph.public_vlan {self.ceph.public_vlan} is the LAN's own VLAN; give Ceph its own")
        for label, net in (("ceph.public", self.ceph.public), ("ceph.cluster", self.ceph.cluster)):
            if net.overlaps(self.lan.cidr):
                raise ValueError(f"{label} {net} overlaps the LAN {self.lan.cidr}")
        if self.corosync_links[0] != "lan":
            raise ValueError("corosync_links: the cluster forms over the LAN, so `lan` must be link 0")
        if len(set(self.corosync_links)) != len(self.corosync_links):
            raise ValueError(f"corosync_links {self.corosync_links} names a link twice")
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


# --- nodes --------------------------------------------------------------------------------


class Nic(Model):
    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9]{1,14}$")]
    speed_gbps: Annotated[float, Field(gt=0)] = 2.5


class Hardware(Model):
    model: str = ""
    cores: Annotated[int, Field(ge=1)]
    memory_gib: Annotated[int, Field(ge=1)]
    idle_watts: Watts
    max_watts: Watts
    nics: list[Nic] = Field(min_length=1)

    @model_validator(mode="after")
    def _watts(self) -> Hardware:
        if self.max_watts < self.idle_watts:
            raise ValueError(f"max_watts {self.max_watts} is below idle_watts {self.idle_watts}")
        names = [n.name for n in self.nics]
        dupes = sorted(n for n, c in Counter(names).items() if c > 1)
        if dupes:
            raise ValueError(f"nics: {', '.join(dupes)} listed twice")
        return self


class Bond(Model):
    """A Linux bond. active-backup works on any switch; 802.3ad (LACP) needs switch support."""

    mode: Literal["active-backup", "802.3ad"] = "active-backup"
    members: list[str]
    primary: str | None = None

    @field_validator("members")
    @classmethod
    def _two_members(cls, members: list[str]) -> list[str]:
        if len(members) < 2:
            raise ValueError(f"a bond needs at least two members to survive a cable or port failure, got {members}")
        if len(set(members)) != len(members):
            raise ValueError(f"members {members} names a NIC twice")
        return members


class MeshLink(Model):
    """A direct cable from this node to a peer, for the storage mesh."""

    peer: Name
    nic: str


class Osd(Model):
    device: Annotated[str, Field(pattern=r"^/dev/[A-Za-z0-9/_.-]+$")]
    device_class: Literal["nvme", "ssd", "hdd"] = "nvme"


class PowerTuning(Model):
    governor: Literal["powersave", "schedutil", "ondemand", "conservative", "performance"] = "powersave"
    pcie_aspm: Literal["default", "powersave", "powersupersave"] | None = "powersave"
    powertop_auto_tune: bool = True
    # USB autosuspend breaks some NICs and keyboards; off unless asked.
    usb_autosuspend: bool = False


class Node(Model):
    name: Name
    address: IPv4Address
    storage_address: IPv4Address  # on the Ceph cluster network (mesh or storage bond)
    public_address: IPv4Address | None = None  # on the Ceph public VLAN, when it is its own network
    hardware: Hardware
    bond: Bond
    storage_bond: Bond | None = None
    mesh_links: list[MeshLink] = Field(default_factory=list)
    osds: list[Osd] = Field(default_factory=list)
    power_tuning: PowerTuning = Field(default_factory=PowerTuning)
    # Day-2: a node in maintenance gets no guests; HA guests move off and its k3s node is cordoned.
    maintenance: bool = False

    @model_validator(mode="after")
    def _nics_exist(self) -> Node:
        nics = {n.name for n in self.hardware.nics}
        used: list[tuple[str, str]] = [("bond.members", m) for m in self.bond.members]
        if self.bond.primary is not None and self.bond.primary not in self.bond.members:
            raise ValueError(f"bond.primary {self.bond.primary} is not one of bond.members {self.bond.members}")
        if self.storage_bond is not None:
            used += [("storage_bond.members", m) for m in self.storage_bond.members]
        used += [(f"mesh_links[{i}].nic", link.nic) for i, link in enumerate(self.mesh_links)]
        seen: dict[str, str] = {}
        for where, nic in used:
            if nic not in nics:
                raise ValueError(f"{where}: NIC {nic} is not in hardware.nics {sorted(nics)}")
            if nic in seen:
                raise ValueError(f"{where}: NIC {nic} is already used by {seen[nic]}")
            seen[nic] = where
        devices = [o.device for o in self.osds]
        dupes = sorted(d for d, c in Counter(devices).items() if c > 1)
        if dupes:
            raise ValueError(f"osds: device {', '.join(dupes)} is listed twice")
        return self


# --- guests -------------------------------------------------------------------------------


class Disk(Model):
    size_gib: Annotated[int, Field(ge=1)]
    storage: str | None = None  # None: the Ceph RBD storage for guest disks


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
    template: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]*:vztmpl/[A-Za-z0-9._+-]+$")] | None = None
    ha: bool = False
    load: Fraction = 0.1  # expected share of its vCPUs busy, for the power model
    anti_affinity: str | None = None
    # Guard a guest that holds data: Pulumi refuses to delete it and so does Proxmox.
    protect: bool = False
    packages: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)

    @property
    def ha_id(self) -> str:
        """How Proxmox HA names this guest: `vm:201` or `ct:300`."""
        return f"{'vm' if self.kind == 'vm' else 'ct'}:{self.vm_id}"

    @model_validator(mode="after")
    def _shape(self) -> Guest:
        if self.balloon_min_mib > self.memory_mib:
            raise ValueError(f"balloon_min_mib {self.balloon_min_mib} is above memory_mib {self.memory_mib}")
        if self.kind == "vm" and self.image is None:
            raise ValueError("image: a VM needs a cloud image (a key of `images`)")
        if self.kind == "lxc" and self.template is None:
            raise ValueError("template: an LXC needs a template volume (e.g. local:vztmpl/debian-13-standard.tar.zst)")
        return self


# --- Ceph ---------------------------------------------------------------------------------


class Pool(Model):
    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,62}$")]
    size: Annotated[int, Field(ge=1, le=10)] = 3
    min_size: Annotated[int, Field(ge=1, le=10)] = 2

    @model_validator(mode="after")
    def _min_size(self) -> Pool:
        if self.min_size > self.size:
            raise ValueError(f"min_size {self.min_size} is above size {self.size}")
        return self


class Ceph(Model):
    monitors: list[Name]
    guest_pool: Pool = Field(default_factory=lambda: Pool(name="vm-disks"))
    kubernetes_pool: Pool = Field(default_factory=lambda: Pool(name="k8s-volumes"))
    kubernetes_client: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]*$")] = "kubernetes"

    @model_validator(mode="after")
    def _monitors(self) -> Ceph:
        if len(set(self.monitors)) != len(self.monitors):
            raise ValueError(f"monitors {self.monitors} names a host twice")
        if self.guest_pool.name == self.kubernetes_pool.name:
            raise ValueError(f"guest_pool and kubernetes_pool are both named {self.guest_pool.name}")
        return self


# --- k3s and workloads --------------------------------------------------------------------


class AddressRange(Model):
    start: IPv4Address
    end: IPv4Address

    @model_validator(mode="after")
    def _order(self) -> AddressRange:
        if int(self.end) < int(self.start):
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self

    def __contains__(self, address: object) -> bool:
        return isinstance(address, IPv4Address) and int(self.start) <= int(address) <= int(self.end)


class K3s(Model):
    version: Annotated[str, Field(pattern=r"^v1\.\d+\.\d+\+k3s\d+$")]
    servers: list[Name]
    agents: list[Name] = Field(default_factory=list)
    api_vip: IPv4Address
    kube_vip_version: Annotated[str, Field(pattern=r"^v\d+\.\d+\.\d+$")] = "v0.9.2"
    # The LAN NIC inside a k3s VM. Proxmox's generated cloud-init network config names NIC n
    # `eth<n>` by MAC (the program sets ip_configs for both NICs), so the LAN NIC is eth0 whatever
    # the image's own naming (ens18 on Debian cloud images).
    vip_interface: str = "eth0"
    load_balancer_pool: AddressRange
    ceph_csi_chart_version: Annotated[str, Field(pattern=r"^\d+\.\d+\.\d+$")] = "3.14.1"

    @model_validator(mode="after")
    def _servers(self) -> K3s:
        if len(self.servers) < 3 or len(self.servers) % 2 == 0:
            raise ValueError(
                f"servers: embedded etcd needs an odd number of at least 3 servers for HA, got {len(self.servers)}"
            )
        both = sorted(set(self.servers) & set(self.agents))
        if both:
            raise ValueError(f"{', '.join(both)} is both a server and an agent")
        if self.api_vip in self.load_balancer_pool:
            raise ValueError(f"api_vip {self.api_vip} is inside load_balancer_pool")
        return self


class Port(Model):
    name: Annotated[str, Field(pattern=r"^[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?$")]
    port: Annotated[int, Field(ge=1, le=65535)]
    protocol: Literal["TCP", "UDP"] = "TCP"
    expose: bool = False  # True: a LoadBalancer address on the LAN


class Volume(Model):
    name: Name
    size_gib: Annotated[int, Field(ge=1)]
    mount_path: Annotated[str, Field(pattern=r"^/")]


class Workload(Model):
    name: Name
    namespace: Name = "apps"
    image: Annotated[str, Field(pattern=r"^[a-z0-9./_-]+(:[A-Za-z0-9._-]+)?(@sha256:[0-9a-f]{64})?$")]
    replicas: Annotated[int, Field(ge=1)] = 2
    ports: list[Port] = Field(default_factory=list)
    cpu_millicores: Annotated[int, Field(ge=1)] = 100
    memory_mib: Annotated[int, Field(ge=8)] = 128
    volumes: list[Volume] = Field(default_factory=list)
    # Plain settings: they are written into the pod spec and the Pulumi state as they are.
    env: dict[EnvName, str] = Field(default_factory=dict)
    # Variables from secrets: NAME -> a key of this stack's secret config (`pulumi config set
    # --secret homelab:KEY`). They reach the pod through a Kubernetes Secret, never the pod spec.
    secret_env: dict[EnvName, ConfigKey] = Field(default_factory=dict)
    ha: bool = True
    # A fixed LAN address for the exposed ports, outside k3s.load_balancer_pool; None: one from the pool.
    load_balancer_ip: IPv4Address | None = None
    # A pod gets traffic (and counts for its disruption budget) once it answers on this TCP port
    # (default: its first TCP port); with ready_path, once an HTTP GET there succeeds.
    ready_port: str | None = None
    ready_path: Annotated[str, Field(pattern=r"^/")] | None = None

    @model_validator(mode="after")
    def _shape(self) -> Workload:
        if self.ha and self.replicas < 2:
            raise ValueError(f"replicas {self.replicas}: an HA workload needs at least 2; set ha: false to accept one")
        if self.ha and self.volumes:
            raise ValueError(
                "volumes: RBD volumes are read-write-once, so a workload with volumes runs one replica; set ha: false"
            )
        if not self.ha and self.volumes and self.replicas != 1:
            raise ValueError(f"replicas {self.replicas}: a workload with read-write-once volumes runs 1 replica")
        names = [p.name for p in self.ports]
        if len(set(names)) != len(names):
            raise ValueError(f"ports {names} names a port twice")
        both = sorted(set(self.env) & set(self.secret_env))
        if both:
            raise ValueError(f"env and secret_env both set {', '.join(both)}; keep each variable in one of them")
        secret_looking = sorted(name for name in self.env if SECRET_NAME.search(name))
        if secret_looking:
            raise ValueError(
                f"env.{secret_looking[0]} looks like a secret, and env values are plain text in the pod spec and "
                "the Pulumi state; put it in secret_env (NAME: a key set with `pulumi config set --secret`)"
            )
        own = sorted(set(self.secret_env.values()) & set(PROGRAM_KEYS))
        if own:
            raise ValueError(
                f"secret_env: {own[0]} is the program's own setting, not an app's secret; name a key of its own"
            )
        tcp = [p.name for p in self.ports if p.protocol == "TCP"]
        if self.ready_port is not None and self.ready_port not in tcp:
            raise ValueError(f"ready_port {self.ready_port} is not one of this workload's TCP ports {tcp}")
        if self.ready_path is not None and not tcp:
            raise ValueError("ready_path needs a TCP port to send the HTTP check to")
        return self

    @property
    def readiness_port(self) -> str | None:
        """The TCP port the readiness check uses, or None when the workload has none."""
        return self.ready_port or next((p.name for p in self.ports if p.protocol == "TCP"), None)


# --- the cluster --------------------------------------------------------------------------


class Cluster(Model):
    name: Name
    domain: Annotated[str, Field(pattern=r"^([a-z0-9-]+\.)+[a-z]{2,}$|^[a-z0-9-]+\.(lan|home\.arpa|internal)$")]
    power: Power
    networks: Networks
    proxmox: Proxmox = Field(default_factory=Proxmox)
    quorum_device: QuorumDevice | None = None
    access: Access
    images: dict[str, Image] = Field(default_factory=dict)
    nodes: list[Node] = Field(min_length=1)
    ceph: Ceph
    guests: list[Guest] = Field(default_factory=list)
    k3s: K3s | None = None
    workloads: list[Workload] = Field(default_factory=list)

    @model_validator(mode="after")
    def _cross(self) -> Cluster:
        _check_cluster(self)
        return self

    # Small lookups the components and reports share.
    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def guest(self, name: str) -> Guest:
        return next(g for g in self.guests if g.name == name)

    @property
    def shared_storages(self) -> set[str]:
        return {self.ceph.guest_pool.name}

    def disk_storage(self, disk: Disk) -> str:
        return disk.storage or self.ceph.guest_pool.name

    def public_address(self, node: Node) -> IPv4Address:
        """Where a node's monitor listens: its public VLAN address, else its storage address."""
        return node.public_address or node.storage_address

    @property
    def osd_hosts(self) -> list[str]:
        return [n.name for n in self.nodes if n.osds]


class SpecError(ValueError):
    """The stack spec is invalid; the message lists each problem with its field path."""


def _dupes(values: list[str]) -> list[str]:
    return sorted(v for v, c in Counter(values).items() if c > 1)


def _check_cluster(c: Cluster) -> None:  # noqa: C901 - one flat list of cross-field rules reads best
    lan = c.networks.lan.cidr
    ceph = c.networks.ceph
    split = ceph.public != ceph.cluster
    node_names = [n.name for n in c.nodes]
    known_nodes = set(node_names)
    for d in _dupes(node_names):
        raise ValueError(f"nodes: node name {d} is used twice")
    guest_names = [g.name for g in c.guests]
    for d in _dupes(guest_names):
        raise ValueError(f"guests: guest name {d} is used twice")
    for d in _dupes([str(g.vm_id) for g in c.guests]):
        raise ValueError(f"guests: vm_id {d} is used twice")
    for g in c.guests:
        if TEMPLATE_VM_IDS.start <= g.vm_id < TEMPLATE_VM_IDS.stop:
            raise ValueError(f"guests ({g.name}): vm_id {g.vm_id} is reserved for image templates (9000-9099)")
    addresses = [str(n.address) for n in c.nodes] + [str(n.storage_address) for n in c.nodes]
    addresses += [str(n.public_address) for n in c.nodes if n.public_address is not None]
    addresses += [str(g.address) for g in c.guests if g.address is not None]
    addresses += [str(g.ceph_address) for g in c.guests if g.ceph_address is not None]
    for d in _dupes(addresses):
        raise ValueError(f"address {d} is used twice (nodes and guests need their own)")
    if str(c.networks.lan.gateway) in addresses:
        raise ValueError(f"address {c.networks.lan.gateway} is the LAN gateway; a node or guest cannot use it")
    if c.quorum_device is not None and str(c.quorum_device.address) in addresses:
        raise ValueError(f"quorum_device.address {c.quorum_device.address} is already used by a node or guest")

    for i, n in enumerate(c.nodes):
        where = f"nodes[{i}] ({n.name})"
        if n.address not in lan:
            raise ValueError(f"{where}.address {n.address} is outside the LAN {lan}")
        if n.storage_address not in ceph.cluster:
            raise ValueError(
                f"{where}.storage_address {n.storage_address} is outside the Ceph cluster network {ceph.cluster}"
            )
        if split and n.public_address is None:
            raise ValueError(f"{where}.public_address is required: the Ceph public network {ceph.public} is its own")
        if n.public_address is not None and n.public_address not in ceph.public:
            raise ValueError(
                f"{where}.public_address {n.public_address} is outside the Ceph public network {ceph.public}"
            )
        if not split and n.public_address is not None:
            raise ValueError(f"{where}.public_address is set but the Ceph public and cluster networks are one")
        if c.networks.storage.mode == "bond" and n.storage_bond is None:
            raise ValueError(f"{where}.storage_bond is required when networks.storage.mode is bond")
        if c.networks.storage.mode == "mesh":
            if n.storage_bond is not None:
                raise ValueError(f"{where}.storage_bond is set but networks.storage.mode is mesh")
            peers = [link.peer for link in n.mesh_links]
            for p in peers:
                if p not in known_nodes or p == n.name:
                    raise ValueError(f"{where}.mesh_links: unknown peer node {p}")
            missing = sorted(known_nodes - set(peers) - {n.name})
            if missing:
                raise ValueError(f"{where}.mesh_links: no direct link to {', '.join(missing)} (a full mesh is needed)")
    if c.networks.lan.dns:
        for a in c.networks.lan.dns:
            if a.is_unspecified:
                raise ValueError(f"networks.lan.dns: {a} is not a usable address")

    if split and ceph.public_vlan is None:
        raise ValueError(
            "networks.ceph.public_vlan is required: a separate Ceph public network reaches the nodes and "
            "guests as a VLAN on the LAN bridge"
        )

    # Quorum: corosync needs a third vote when there are only two nodes.
    if len(c.nodes) == 2 and c.quorum_device is None:
        raise ValueError("quorum_device: a two-node cluster needs a quorum device (corosync-qnetd) to keep quorum")
    if c.quorum_device is not None and c.quorum_device.address not in lan:
        raise ValueError(f"quorum_device.address {c.quorum_device.address} is outside the LAN {lan}")

    # Ceph.
    if len(c.ceph.monitors) < 3 or len(c.ceph.monitors) % 2 == 0:
        raise ValueError(
            f"ceph.monitors: {len(c.ceph.monitors)} monitor hosts cannot keep quorum through a node loss; "
            "use an odd number of at least 3"
        )
    for m in c.ceph.monitors:
        if m not in known_nodes:
            raise ValueError(f"ceph.monitors: unknown node {m}")
    osd_hosts = len(c.osd_hosts)
    for label, pool in (("ceph.guest_pool", c.ceph.guest_pool), ("ceph.kubernetes_pool", c.ceph.kubernetes_pool)):
        if pool.size > osd_hosts:
            raise ValueError(
                f"{label}.size {pool.size} is larger than the {osd_hosts} nodes with OSDs: "
                "Ceph keeps each copy on a different host"
            )
    storages = {c.ceph.guest_pool.name, c.proxmox.local_storage}

    # Guests.
    biggest_mem = max(n.hardware.memory_gib * 1024 for n in c.nodes)
    biggest_cores = max(n.hardware.cores for n in c.nodes)
    for i, g in enumerate(c.guests):
        where = f"guests[{i}] ({g.name})"
        if g.node is not None and g.node not in known_nodes:
            raise ValueError(f"{where}.node: unknown node {g.node}")
        if g.memory_mib > biggest_mem:
            raise ValueError(f"{where}.memory_mib {g.memory_mib} is bigger than any node ({biggest_mem} MiB)")
        if g.cores > biggest_cores:
            raise ValueError(f"{where}.cores {g.cores} is more than any node has ({biggest_cores})")
        if not any(g.memory_mib <= n.hardware.memory_gib * 1024 and g.cores <= n.hardware.cores for n in c.nodes):
            raise ValueError(f"{where}: no single node has both {g.memory_mib} MiB and {g.cores} cores")
        if g.address is not None and g.address not in lan:
            raise ValueError(f"{where}.address {g.address} is outside the LAN {lan}")
        if g.ceph_address is not None and (ceph.public_vlan is None or g.ceph_address not in ceph.public):
            raise ValueError(
                f"{where}.ceph_address {g.ceph_address} must be on the Ceph public VLAN "
                f"(networks.ceph.public {ceph.public} with public_vlan set)"
            )
        if g.kind == "vm" and g.image not in c.images:
            raise ValueError(f"{where}.image: unknown image {g.image} (known: {sorted(c.images)})")
        for j, disk in enumerate(g.disks):
            s = c.disk_storage(disk)
            if s not in storages:
                raise ValueError(f"{where}.disks[{j}].storage: unknown storage {s} (known: {sorted(storages)})")
            if g.ha and s not in c.shared_storages:
                raise ValueError(
                    f"{where}.disks[{j}].storage: HA guest disk on {s}, which is local to one node; "
                    f"use the shared Ceph storage {c.ceph.guest_pool.name}"
                )

    # k3s.
    if c.k3s is not None:
        k = c.k3s
        for label, names in (("k3s.servers", k.servers), ("k3s.agents", k.agents)):
            for name in names:
                if name not in guest_names:
                    raise ValueError(f"{label}: unknown guest {name}")
                if c.guest(name).kind != "vm":
                    raise ValueError(f"{label}: {name} is an LXC; k3s nodes here are VMs")
                if c.guest(name).address is None:
                    raise ValueError(f"{label}: {name} has no address; k3s nodes need a static LAN address")
                if c.guest(name).ceph_address is None:
                    raise ValueError(
                        f"{label}: {name} has no ceph_address; k3s nodes reach Ceph (CSI volumes) on the public VLAN"
                    )
        if k.api_vip not in lan:
            raise ValueError(f"k3s.api_vip {k.api_vip} is outside the LAN {lan}")
        if k.load_balancer_pool.start not in lan or k.load_balancer_pool.end not in lan:
            raise ValueError(f"k3s.load_balancer_pool is outside the LAN {lan}")
        taken = set(addresses) | {str(lan.network_address), str(c.networks.lan.gateway)}
        if str(k.api_vip) in taken:
            raise ValueError(f"k3s.api_vip {k.api_vip} is already used by a node or the gateway")
        inside = sorted(a for a in taken if IPv4Address(a) in k.load_balancer_pool)
        if inside:
            raise ValueError(f"k3s.load_balancer_pool covers {', '.join(inside)}, already used by a node or guest")
    if c.workloads and c.k3s is None:
        raise ValueError("workloads: there are workloads but no k3s cluster to run them")
    for d in _dupes([f"{w.namespace}/{w.name}" for w in c.workloads]):
        raise ValueError(f"workloads: {d} is used twice")
    if c.k3s is not None:
        _pinned_load_balancer_ips(c, c.k3s, lan, taken)


def _pinned_load_balancer_ips(c: Cluster, k: K3s, lan: IPv4Network, taken: set[str]) -> None:
    """A pinned address sits on the LAN, outside the pool, and belongs to one workload only.

    kube-vip-cloud-provider counts an address as taken only once it has labelled the Service that
    pins it, so a pin inside the pool can first be handed to a Service without one: two Services
    on one address.
    """
    # `taken`: every node and guest address, the LAN's network address and its gateway.
    taken = taken | {str(lan.broadcast_address), str(k.api_vip)}
    taken |= {str(c.quorum_device.address)} if c.quorum_device is not None else set()
    pinned: dict[IPv4Address, str] = {}
    for i, w in enumerate(c.workloads):
        ip, where = w.load_balancer_ip, f"workloads[{i}] ({w.name}).load_balancer_ip {w.load_balancer_ip}"
        if ip is None:
            continue
        if not any(p.expose for p in w.ports):
            raise ValueError(f"{where} is set, but none of its ports has expose: true, so nothing would use it")
        if ip not in lan:
            raise ValueError(f"{where} is outside the LAN {lan}")
        if ip in k.load_balancer_pool:
            raise ValueError(
                f"{where} is inside k3s.load_balancer_pool, which is for Services without a pinned address "
                f"(the cloud provider could hand it to one of them first); pick an address outside "
                f"{k.load_balancer_pool.start}-{k.load_balancer_pool.end}"
            )
        if str(ip) in taken:
            raise ValueError(f"{where} is already used by a node, guest, the gateway, the API VIP or the qdevice")
        if ip in pinned:
            raise ValueError(f"{where} is already pinned by workload {pinned[ip]}")
        pinned[ip] = w.name


def format_errors(exc: Exception) -> str:
    """One line per problem: `field.path: message`, the way an owner reads it."""
    from pydantic import ValidationError

    if not isinstance(exc, ValidationError):
        return str(exc)
    lines = []
    for err in exc.errors():
        path = ".".join(str(p) for p in err["loc"])
        msg = re.sub(r"^Value error, ", "", err["msg"])
        if err["type"] == "extra_forbidden":
            msg = "unknown key (not part of the spec; check its spelling)"
        lines.append(f"{path}: {msg}" if path else msg)
    return "\n".join(lines)
