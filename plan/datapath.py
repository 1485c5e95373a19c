"""The data path: which link carries each kind of traffic, how fast, and where it tops out.

The topology is the one `components/network.py` builds: on every node `bond0` under the bridge
`vmbr0` carries the LAN, and the Ceph public network as a VLAN on it when the spec gives it one
(`public_vlan` with a node `public_address`); Ceph's cluster network runs over the storage
network, a mesh of direct cables (OpenFabric) or a second bond `bond1`. With no public VLAN the
public and cluster networks are one, on the storage network (a monitor listens on a node's
public address, else its storage address: `Cluster.public_address`).

Ceph: a client reads from and writes to an object's primary OSD on the *public* network; for a
write the primary sends (size - 1) copies to the other OSDs on the *cluster* network. A write is
bounded by both, and the cluster network carries (size - 1) times the client write rate. VM
disks are written by the host's librbd (so on the host's public network link); Kubernetes
volumes by ceph-csi inside the k3s VMs, over their second NIC on the public VLAN.

Figures are what one flow (one TCP connection) gets: a bond puts a flow on one member
(active-backup uses one member at a time; 802.3ad hashes each flow onto one, and only many flows
add up), the mesh gives each peer its own cable. A write whose primary OSD is on the client's
own host does not cross the public link. Pure: no Pulumi.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from spec.ceph import Pool
from spec.models import Cluster
from spec.nodes import Bond, Node

# The interface names `components/network.py` gives (not imported: that module needs Pulumi).
LAN_BOND = "bond0"
LAN_BRIDGE = "vmbr0"
STORAGE_BOND = "bond1"
MESH = "mesh"  # the carrier key of the mesh cables, which the classes on them share

VM_DISKS = "VM disk I/O"
KUBERNETES_VOLUMES = "Kubernetes volumes"
REPLICATION = "Ceph replication"
COROSYNC_LAN = "corosync link 0"
COROSYNC_STORAGE = "corosync link 1"
LAN = "LAN"
LAN_USES = (
    "guests' and apps' traffic, the Proxmox API, SSH",
    "live migrations (only RAM for guests on Ceph): the program sets no migration network, so Proxmox uses this one",
)


def gb(gbps: float) -> str:
    return f"{round(gbps, 2):g} Gb/s"


def copies_of(n: int) -> str:
    return f"{n} cop{'y' if n == 1 else 'ies'}"


@dataclass(frozen=True)
class Link:
    """One node's link: a bond, or one mesh cable (`nic` to `peer`)."""

    node: str
    carrier: str  # LAN_BOND, STORAGE_BOND or MESH
    gbps: float  # what one flow gets
    aggregate_gbps: float  # what many flows at once get
    how: str
    nic: str = ""  # a mesh cable's NIC on this node
    peer: str = ""  # a mesh cable's far end
    sets_speed: bool = True  # False: the far end's NIC is the slower one

    @property
    def name(self) -> str:
        return f"{self.nic} to {self.peer}" if self.carrier == MESH else self.carrier

    @property
    def label(self) -> str:
        if self.carrier == MESH:
            return f"the mesh cable {self.node} {self.nic} to {self.peer}"
        return f"{self.carrier} on {self.node}"


@dataclass(frozen=True)
class Slowest:
    """The lowest per-flow figure among some links, and every link at it."""

    gbps: float
    links: tuple[Link, ...]
    of: int  # how many links were compared

    def where(self) -> str:
        """`bond0 on every node`, `bond1 on lab2`, `every mesh cable`, `the mesh cable pve2 en05 to pve1`."""
        carriers = {link.carrier for link in self.links}
        if carriers == {MESH}:
            if len(self.links) == self.of:
                return "every mesh cable"
            cables = {frozenset((link.node, link.peer)): link for link in reversed(self.links)}
            return ", ".join(link.label for link in self.links if cables[frozenset((link.node, link.peer))] is link)
        if len(carriers) == 1:
            nodes = [link.node for link in self.links]
            return f"{self.links[0].carrier} on {'every node' if len(nodes) == self.of else ', '.join(nodes)}"
        return ", ".join(link.label for link in self.links)


def slowest(links: Sequence[Link], per_flow: dict[Link, float] | None = None) -> Slowest:
    """The slowest of `links` (by `per_flow` where given); a cable is named from the end that slows it."""
    figure = {link: (per_flow or {}).get(link, link.gbps) for link in links}
    low = min(figure.values())
    at = [link for link in links if figure[link] == low]
    own = [link for link in at if link.sets_speed]
    return Slowest(low, tuple(own or at), len(links))


@dataclass(frozen=True)
class WriteCap:
    """How fast one client write can go: the public link, or the cluster link over the copies it carries."""

    gbps: float
    by: Slowest
    on_public: bool
    copies: int  # copies the primary sends per write (size - 1)


@dataclass(frozen=True)
class TrafficClass:
    name: str
    carrier: str
    network: str  # what carries it, in words
    links: tuple[Link, ...]  # per node, the links that carry it
    slowest: Slowest
    notes: tuple[str, ...] = ()
    writes: WriteCap | None = None  # for Ceph clients
    latency_only: bool = False  # corosync: latency matters, not bandwidth


@dataclass(frozen=True)
class DataPath:
    links: dict[str, tuple[Link, ...]]  # per node: its LAN bond, then its storage links
    classes: tuple[TrafficClass, ...]
    shared: dict[str, tuple[str, ...]]  # carrier -> the classes on it
    public_on_lan: bool
    bottleneck: str
    advice: str | None

    def of(self, name: str) -> TrafficClass:
        return next(c for c in self.classes if c.name == name)


# --- links --------------------------------------------------------------------------------


def nic_speed(node: Node, nic: str) -> float:
    return next(n.speed_gbps for n in node.hardware.nics if n.name == nic)


def bond_link(node: Node, bond: Bond, carrier: str) -> Link:
    speeds = [nic_speed(node, m) for m in bond.members]
    one, members = min(speeds), "+".join(bond.members)
    uneven = f"; members differ ({', '.join(gb(s) for s in speeds)}), the slower counts" if len(set(speeds)) > 1 else ""
    if bond.mode == "802.3ad":
        how = f"802.3ad {members}: one flow rides one member, {gb(sum(speeds))} over many flows{uneven}"
        return Link(node.name, carrier, one, sum(speeds), how)
    return Link(node.name, carrier, one, one, f"active-backup {members}: one member at a time{uneven}")


def mesh_cables(cluster: Cluster, node: Node) -> list[Link]:
    """Each cable runs at the slower of its two NICs."""
    cables = []
    for link in node.mesh_links:
        own, peer = nic_speed(node, link.nic), cluster.node(link.peer)
        back = next((b for b in peer.mesh_links if b.peer == node.name), None)
        far = nic_speed(peer, back.nic) if back is not None else own
        how = f"{link.nic} is {gb(own)}, {peer.name}'s {back.nic} {gb(far)}" if back and far != own else ""
        cables.append(Link(node.name, MESH, min(own, far), min(own, far), how, link.nic, peer.name, own <= far))
    return cables


def lan_link(node: Node) -> Link:
    return bond_link(node, node.bond, LAN_BOND)


def storage_links(cluster: Cluster, node: Node) -> list[Link]:
    if cluster.networks.storage.mode == "bond" and node.storage_bond is not None:
        return [bond_link(node, node.storage_bond, STORAGE_BOND)]
    return mesh_cables(cluster, node)


def public_on_lan(cluster: Cluster, node: Node) -> bool:
    """As `components/network.py` decides: a VLAN on vmbr0 only with `public_vlan` and the node's address there."""
    return cluster.networks.ceph.public_vlan is not None and node.public_address is not None


def public_links(cluster: Cluster, node: Node) -> list[Link]:
    return [lan_link(node)] if public_on_lan(cluster, node) else storage_links(cluster, node)


def replication_links(cluster: Cluster) -> list[Link]:
    """The cluster-network links between OSD hosts (every node's, when none has an OSD yet)."""
    hosts = set(cluster.osd_hosts) or {n.name for n in cluster.nodes}
    return [
        link
        for node in cluster.nodes
        if node.name in hosts
        for link in storage_links(cluster, node)
        if link.carrier != MESH or link.peer in hosts
    ]


def write_cap(public: Sequence[Link], cluster_links: Sequence[Link], pool: Pool) -> WriteCap:
    """min(public link, cluster link / the copies it carries per write). From the primary, a bond
    carries all (size - 1) copies; the mesh one per cable, each peer on its own cable."""
    copies = pool.size - 1
    front = slowest(public)
    if copies == 0 or not cluster_links:
        return WriteCap(front.gbps, front, True, copies)
    per_write = {link: link.gbps / (1 if link.carrier == MESH else copies) for link in cluster_links}
    back = slowest(cluster_links, per_write)
    if front.gbps <= back.gbps:
        return WriteCap(front.gbps, front, True, copies)
    return WriteCap(back.gbps, back, False, copies)


# --- the report ---------------------------------------------------------------------------


def storage_name(cluster: Cluster) -> str:
    return "the storage mesh" if cluster.networks.storage.mode == "mesh" else f"the storage bond {STORAGE_BOND}"


def _public_words(cluster: Cluster, on_lan: bool) -> str:
    vlan = cluster.networks.ceph.public_vlan
    if on_lan:
        return f"Ceph public network: VLAN {vlan} on {LAN_BRIDGE} over {LAN_BOND} (the LAN bond)"
    return f"Ceph public network, one with the cluster network: {storage_name(cluster)}"


def _cap_notes(cap: WriteCap, reads: Slowest) -> list[str]:
    notes = [f"writes: up to {gb(cap.gbps)}, set by {cap.by.where()}"]
    if not cap.on_public and cap.by.links[0].carrier != MESH:
        notes[0] += f" (the primary OSD sends {copies_of(cap.copies)} over one {gb(cap.by.links[0].gbps)} link)"
    notes.append(f"reads: up to {gb(reads.gbps)}, set by {reads.where()} (the primary OSD answers; no copies)")
    return notes


def _client_class(
    cluster: Cluster, name: str, network: str, public: list[Link], pool: Pool, first: str
) -> TrafficClass:
    cap = write_cap(public, replication_links(cluster), pool)
    reads = slowest(public)
    notes = [first, *_cap_notes(cap, reads)]
    return TrafficClass(name, public[0].carrier, network, tuple(public), reads, tuple(notes), cap)


def datapath(cluster: Cluster) -> DataPath:
    nets = cluster.networks
    on_lan = all(public_on_lan(cluster, n) for n in cluster.nodes)
    lan = [lan_link(n) for n in cluster.nodes]
    storage = [link for n in cluster.nodes for link in storage_links(cluster, n)]
    public = [link for n in cluster.nodes for link in public_links(cluster, n)]
    replication = replication_links(cluster)
    copies = cluster.ceph.guest_pool.size - 1
    mesh = nets.storage.mode == "mesh"
    pool = cluster.ceph.guest_pool.name
    ceph_disks = sum(any(cluster.disk_storage(d) in cluster.shared_storages for d in g.disks) for g in cluster.guests)
    classes = [
        _client_class(
            cluster,
            VM_DISKS,
            _public_words(cluster, on_lan),
            public,
            cluster.ceph.guest_pool,
            f"the host's librbd to the primary OSD ({ceph_disks} guest(s) with disks on {pool})",
        )
    ]
    if cluster.k3s is not None:
        vms = [*cluster.k3s.servers, *cluster.k3s.agents]
        classes.append(
            _client_class(
                cluster,
                KUBERNETES_VOLUMES,
                f"the k3s VMs' Ceph NIC: VLAN {nets.ceph.public_vlan} on {LAN_BRIDGE} over {LAN_BOND}",
                lan,
                cluster.ceph.kubernetes_pool,
                f"ceph-csi in {len(vms)} k3s VM(s) to the primary OSD ({cluster.ceph.kubernetes_pool.name})",
            )
        )
    spread = (
        "one copy per cable, as OpenFabric gives each peer its own cable (a cut cable's copies go through a third node)"
        if mesh
        else f"the primary sends each write's {copies_of(copies)} over its one {STORAGE_BOND}"
    )
    classes.append(
        TrafficClass(
            REPLICATION,
            replication[0].carrier,
            f"Ceph cluster network {nets.ceph.cluster}: {storage_name(cluster)}",
            tuple(replication),
            slowest(replication),
            (f"{copies}x the client write rate ({pool} size {copies + 1}); {spread}",),
        )
    )
    lan_class = TrafficClass(LAN, LAN_BOND, f"{LAN_BRIDGE} over {LAN_BOND}", tuple(lan), slowest(lan), LAN_USES)
    heavy = [*classes, lan_class]
    classes.append(_corosync(COROSYNC_LAN, LAN_BOND, f"the LAN: {LAN_BRIDGE} over {LAN_BOND}", lan, heavy))
    if "storage" in nets.corosync_links:
        classes.append(_corosync(COROSYNC_STORAGE, storage[0].carrier, storage_name(cluster), storage, heavy))
    classes.append(lan_class)
    shared = {k: [c.name for c in classes if c.carrier == k] for k in (LAN_BOND, STORAGE_BOND, MESH)}
    vm = classes[0]
    return DataPath(
        {n.name: (lan_link(n), *storage_links(cluster, n)) for n in cluster.nodes},
        tuple(classes),
        {k: tuple(v) for k, v in shared.items() if v},
        on_lan,
        _bottleneck(cluster, vm, slowest(replication), on_lan),
        _advice(cluster, vm, storage, replication) if on_lan else None,
    )


def _corosync(name: str, carrier: str, network: str, links: list[Link], before: list[TrafficClass]) -> TrafficClass:
    heavy = [c.name for c in before if c.carrier == carrier]
    shares = f"shares {carrier if carrier != MESH else 'the mesh'} with {', '.join(heavy)}" if heavy else "alone"
    return TrafficClass(
        name, carrier, network, tuple(links), slowest(links), (f"latency matters, not bandwidth; {shares}",), None, True
    )


def _bottleneck(cluster: Cluster, vm: TrafficClass, replication: Slowest, on_lan: bool) -> str:
    cap = vm.writes
    assert cap is not None
    head = f"VM disk writes are capped at {gb(cap.gbps)} by {cap.by.where()}"
    if cap.on_public and on_lan:
        storage = "mesh" if cluster.networks.storage.mode == "mesh" else f"storage bond {STORAGE_BOND}"
        rest = f"while the {gb(replication.gbps)} {storage} carries only replication"
        return f"{head} (the Ceph public network on the LAN), {rest}."
    if cap.on_public:
        return f"{head}, the storage network that carries both Ceph networks."
    link = cap.by.links[0]
    if link.carrier == MESH:
        return f"{head}: each copy of a write crosses one cable to its replica."
    tail = f"; reads reach {gb(vm.slowest.gbps)} over {vm.slowest.where()}" if vm.slowest.gbps > cap.gbps else ""
    return f"{head}: the primary OSD sends {copies_of(cap.copies)} of each write over one {gb(link.gbps)} link{tail}."


def _advice(cluster: Cluster, vm: TrafficClass, storage: list[Link], replication: list[Link]) -> str:
    """What moving the Ceph public network onto the storage network would do for the hosts' VM disks."""
    cap = vm.writes
    assert cap is not None
    moved = write_cap(storage, replication, cluster.ceph.guest_pool)
    if moved.gbps <= cap.gbps:
        return (
            f"Moving the Ceph public network off the LAN bond onto the storage network would not raise VM disk "
            f"writes: {moved.by.where()} would hold them at {gb(moved.gbps)}."
        )
    guests = ": the k3s VMs' Kubernetes volumes need the public VLAN" if cluster.k3s is not None else ""
    return (
        f"Every VM host is on the storage network, so with the Ceph public network there the hosts' VM disk "
        f"writes could reach {gb(moved.gbps)} instead of {gb(cap.gbps)}. This spec allows that only as one Ceph "
        f"network (public = cluster, no public_vlan), and then no guest reaches Ceph{guests}."
    )
