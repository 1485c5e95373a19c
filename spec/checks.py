"""The spec's cross-field checks, grouped by subject: addresses, node networks, quorum, Ceph,
guests, their HA, k3s and workloads.

Each group returns every problem it finds, not just the first, as `where: what`, with items
named by their name (`nodes[pve1].address`, `guests[k3s-agent-1].memory_mib`): an owner fixing a
stack file sees all of it in one run. A group skips what an earlier problem makes meaningless (a
k3s server that is no guest has no address to check).
"""

from __future__ import annotations

from collections.abc import Callable
from ipaddress import IPv4Address, IPv4Network
from typing import TYPE_CHECKING

from spec.backups import ETCD
from spec.base import TEMPLATE_VM_IDS, dupes
from spec.ceph import pg_budget_problem
from spec.gateway import covered, gateway_problems, host_for
from spec.guests import HA_ID, apart_rule_id, node_rule_id

if TYPE_CHECKING:
    from spec.kubernetes import K3s
    from spec.models import Cluster


def problems(c: Cluster) -> list[str]:
    """Every cross-field problem of the spec, in the order of the stack file's sections."""
    groups: list[Callable[[Cluster], list[str]]] = [
        addresses,
        node_networks,
        quorum,
        ceph,
        guests,
        guest_ha,
        k3s,
        workloads,
        backups,
        ups,
        gateway,
    ]
    return [problem for group in groups for problem in group(c)]


def used_addresses(c: Cluster) -> dict[str, list[str]]:
    """Every fixed address of a node or guest -> where it is set."""
    found: dict[str, list[str]] = {}
    for n in c.nodes:
        for field, value in (("address", n.address), ("storage_address", n.storage_address)):
            found.setdefault(str(value), []).append(f"nodes[{n.name}].{field}")
        if n.public_address is not None:
            found.setdefault(str(n.public_address), []).append(f"nodes[{n.name}].public_address")
    for g in c.guests:
        for field, address in (("address", g.address), ("ceph_address", g.ceph_address)):
            if address is not None:
                found.setdefault(str(address), []).append(f"guests[{g.name}].{field}")
    return found


def addresses(c: Cluster) -> list[str]:
    """Names and IDs are unique, each address has one owner, and none is the gateway or the qdevice's."""
    out = [f"nodes[{d}]: node name {d} is used twice" for d in dupes(n.name for n in c.nodes)]
    out += [f"guests[{d}]: guest name {d} is used twice" for d in dupes(g.name for g in c.guests)]
    first_with: dict[int, str] = {}
    for g in c.guests:
        if g.vm_id in first_with:
            out.append(f"guests[{g.name}].vm_id {g.vm_id} is already used by guests[{first_with[g.vm_id]}]")
        first_with.setdefault(g.vm_id, g.name)
    out += [
        f"guests[{g.name}].vm_id {g.vm_id} is reserved for image templates (9000-9099)"
        for g in c.guests
        if g.vm_id in TEMPLATE_VM_IDS
    ]
    used = used_addresses(c)
    out += [f"{owners[1]}: address {a} is already used by {owners[0]}" for a, owners in used.items() if len(owners) > 1]
    gateway = str(c.networks.lan.gateway)
    out += [f"{owner}: address {gateway} is the LAN gateway" for owner in used.get(gateway, [])]
    qdevice = str(c.quorum_device.address) if c.quorum_device is not None else ""
    if qdevice in used:
        out.append(f"quorum_device.address {qdevice} is already used by {used[qdevice][0]}")
    out += [f"networks.lan.dns: {a} is not a usable address" for a in c.networks.lan.dns if a.is_unspecified]
    first_image: dict[int, str] = {}
    for key, image in c.images.items():
        vm_id = image.template_vm_id
        if vm_id in first_image:
            out.append(f"images[{key}].template_vm_id {vm_id} is already used by images[{first_image[vm_id]}]")
        first_image.setdefault(vm_id, key)
    return out


def node_networks(c: Cluster) -> list[str]:
    """Each node's addresses sit on their networks, and its storage path matches the storage mode."""
    lan, ceph_nets = c.networks.lan.cidr, c.networks.ceph
    split = ceph_nets.public != ceph_nets.cluster
    names = {n.name for n in c.nodes}
    out: list[str] = []
    for n in c.nodes:
        where = f"nodes[{n.name}]"
        if n.address not in lan:
            out.append(f"{where}.address {n.address} is outside the LAN {lan}")
        if n.storage_address not in ceph_nets.cluster:
            out.append(
                f"{where}.storage_address {n.storage_address} is outside the Ceph cluster network {ceph_nets.cluster}"
            )
        if split and n.public_address is None:
            out.append(f"{where}.public_address is required: the Ceph public network {ceph_nets.public} is its own")
        if n.public_address is not None and split and n.public_address not in ceph_nets.public:
            out.append(
                f"{where}.public_address {n.public_address} is outside the Ceph public network {ceph_nets.public}"
            )
        if not split and n.public_address is not None:
            out.append(f"{where}.public_address is set but the Ceph public and cluster networks are one")
        if c.networks.storage.mode == "bond" and n.storage_bond is None:
            out.append(f"{where}.storage_bond is required when networks.storage.mode is bond")
        if c.networks.storage.mode == "mesh":
            if n.storage_bond is not None:
                out.append(f"{where}.storage_bond is set but networks.storage.mode is mesh")
            peers = [link.peer for link in n.mesh_links]
            out += [f"{where}.mesh_links: unknown peer node {p}" for p in peers if p not in names or p == n.name]
            missing = sorted(names - set(peers) - {n.name})
            if missing:
                out.append(f"{where}.mesh_links: no direct link to {', '.join(missing)} (a full mesh is needed)")
    if c.networks.storage.mode == "mesh" and c.proxmox.version < 9:
        # SDN fabrics (OpenFabric, OSPF), which route the mesh, arrived with Proxmox VE 9.0.
        out.append(
            "networks.storage.mode mesh needs Proxmox VE 9 (its SDN fabrics route the mesh); on "
            f"proxmox.version {c.proxmox.version} use mode bond"
        )
    if split and ceph_nets.public_vlan is None:
        out.append(
            "networks.ceph.public_vlan is required: a separate Ceph public network reaches the nodes and "
            "guests as a VLAN on the LAN bridge"
        )
    return out


def quorum(c: Cluster) -> list[str]:
    """Ceph needs three nodes; a quorum device, where there is one, votes from the LAN."""
    out = []
    if len(c.nodes) < 3:
        # A quorum device would keep corosync voting with two nodes, but not Ceph: say so first.
        out.append(
            f"nodes: Ceph needs at least three nodes (three monitors for a quorum, each object's three copies on "
            f"different hosts); this cluster has {len(c.nodes)}, and a quorum device does not change that for Ceph"
        )
    if c.quorum_device is not None and c.quorum_device.address not in c.networks.lan.cidr:
        out.append(f"quorum_device.address {c.quorum_device.address} is outside the LAN {c.networks.lan.cidr}")
    return out


def ceph(c: Cluster) -> list[str]:
    """An odd monitor count of at least 3 on known nodes, and pools no wider than the OSD hosts."""
    out = []
    if len(c.ceph.monitors) < 3 or len(c.ceph.monitors) % 2 == 0:
        out.append(
            f"ceph.monitors: {len(c.ceph.monitors)} monitor hosts cannot keep quorum through a node loss; "
            "use an odd number of at least 3"
        )
    names = {n.name for n in c.nodes}
    out += [f"ceph.monitors: unknown node {m}" for m in c.ceph.monitors if m not in names]
    osd_hosts = len(c.osd_hosts)
    out += [
        f"{label}.size {pool.size} is larger than the {osd_hosts} nodes with OSDs: Ceph keeps each copy on a "
        "different host"
        for label, pool in (("ceph.guest_pool", c.ceph.guest_pool), ("ceph.kubernetes_pool", c.ceph.kubernetes_pool))
        if pool.size > osd_hosts
    ]
    budget = pg_budget_problem(c.pools, c.osd_count)
    return out + ([budget] if budget else [])


def guests(c: Cluster) -> list[str]:
    """Each guest fits some node, sits on its networks, has a known image, and keeps HA disks shared."""
    lan, ceph_nets = c.networks.lan.cidr, c.networks.ceph
    names = {n.name for n in c.nodes}
    biggest_mem = max(n.hardware.memory_gib * 1024 for n in c.nodes)
    biggest_cores = max(n.hardware.cores for n in c.nodes)
    storages = {c.ceph.guest_pool.name, c.proxmox.local_storage}
    out: list[str] = []
    for g in c.guests:
        where = f"guests[{g.name}]"
        if g.node is not None and g.node not in names:
            out.append(f"{where}.node: unknown node {g.node}")
        if g.memory_mib > biggest_mem:
            out.append(f"{where}.memory_mib {g.memory_mib} is bigger than any node ({biggest_mem} MiB)")
        if g.cores > biggest_cores:
            out.append(f"{where}.cores {g.cores} is more than any node has ({biggest_cores})")
        if (
            g.memory_mib <= biggest_mem
            and g.cores <= biggest_cores
            and not any(g.memory_mib <= n.hardware.memory_gib * 1024 and g.cores <= n.hardware.cores for n in c.nodes)
        ):
            out.append(f"{where}: no single node has both {g.memory_mib} MiB and {g.cores} cores")
        if g.address is not None and g.address not in lan:
            out.append(f"{where}.address {g.address} is outside the LAN {lan}")
        if g.ceph_address is not None and (ceph_nets.public_vlan is None or g.ceph_address not in ceph_nets.public):
            out.append(
                f"{where}.ceph_address {g.ceph_address} must be on the Ceph public VLAN "
                f"(networks.ceph.public {ceph_nets.public} with public_vlan set)"
            )
        if g.kind == "vm" and g.image not in c.images:
            out.append(f"{where}.image: unknown image {g.image} (known: {sorted(c.images)})")
        for j, disk in enumerate(g.disks):
            storage = c.disk_storage(disk)
            if storage not in storages:
                out.append(f"{where}.disks[{j}].storage: unknown storage {storage} (known: {sorted(storages)})")
            elif g.ha and storage not in c.shared_storages:
                out.append(
                    f"{where}.disks[{j}].storage: HA guest disk on {storage}, which is local to one node; "
                    f"use the shared Ceph storage {c.ceph.guest_pool.name}"
                )
    return out


_HA_ID_RULE = "start it with a letter, then letters, digits, '-', '_' or '.'"


def guest_ha(c: Cluster) -> list[str]:
    """HA as Proxmox and the provider can keep it: rule ids Proxmox accepts, containers that stay put."""
    out: list[str] = []
    for g in c.guests:
        where = f"guests[{g.name}]"
        if g.ha and g.node is not None and not HA_ID.match(rule := node_rule_id(g.name, g.node)):
            out.append(f"{where}.name: its HA rule would be {rule}, an id Proxmox refuses; {_HA_ID_RULE}")
        # Every guest's group, HA or not: the name is the group's, and set ha later it becomes the id.
        if g.anti_affinity is not None and not HA_ID.match(rule := apart_rule_id(g.anti_affinity)):
            out.append(f"{where}.anti_affinity: its HA rule would be {rule}, an id Proxmox refuses; {_HA_ID_RULE}")
        # The provider replaces a container whose node changes (node_name is ForceNew) and reads it
        # on the node in its state (bpg proxmoxtf/resource/container/container.go): a container
        # moved by HA drops out of the state, and one moved by placement is recreated, empty.
        if g.kind == "lxc" and g.ha:
            out.append(
                f"{where}.ha: an LXC cannot be HA here: after an HA move the provider no longer finds it, and the "
                "next `pulumi up` fails; run it as a VM, or set ha: false"
            )
        if g.kind == "lxc" and g.node is None:
            out.append(
                f"{where}.node: an LXC needs a fixed node: placement may move it, and the provider would replace "
                "a moved container with an empty one"
            )
    return out


def k3s(c: Cluster) -> list[str]:
    """k3s nodes are VMs with a LAN and a Ceph address; the API VIP and the pool sit free on the LAN."""
    if c.k3s is None:
        return []
    k, lan = c.k3s, c.networks.lan.cidr
    by_name = {g.name: g for g in c.guests}
    out: list[str] = []
    for label, names in (("k3s.servers", k.servers), ("k3s.agents", k.agents)):
        for name in names:
            g = by_name.get(name)
            if g is None:
                out.append(f"{label}: unknown guest {name}")
                continue
            if g.kind != "vm":
                out.append(f"{label}: {name} is an LXC; k3s nodes here are VMs")
            if g.address is None:
                out.append(f"{label}: {name} has no address; k3s nodes need a static LAN address")
            if g.ceph_address is None:
                out.append(
                    f"{label}: {name} has no ceph_address; k3s nodes reach Ceph (CSI volumes) on the public VLAN"
                )
    if k.api_vip not in lan:
        out.append(f"k3s.api_vip {k.api_vip} is outside the LAN {lan}")
    if k.load_balancer_pool.start not in lan or k.load_balancer_pool.end not in lan:
        out.append(f"k3s.load_balancer_pool is outside the LAN {lan}")
    taken = _taken(c)
    if str(k.api_vip) in taken:
        out.append(f"k3s.api_vip {k.api_vip} is already used by {taken[str(k.api_vip)]}")
    inside = sorted((a for a in taken if IPv4Address(a) in k.load_balancer_pool), key=IPv4Address)
    if inside:
        out.append(f"k3s.load_balancer_pool covers {', '.join(inside)}, already used by a node, guest or the gateway")
    return out


def _taken(c: Cluster) -> dict[str, str]:
    """Addresses no k3s VIP or pool may take: nodes', guests', the LAN's network address and gateway."""
    lan = c.networks.lan
    taken = {a: owners[0] for a, owners in used_addresses(c).items()}
    taken |= {str(lan.cidr.network_address): "the LAN's network address", str(lan.gateway): "the LAN gateway"}
    return taken


def workloads(c: Cluster) -> list[str]:
    """Workloads need k3s, a unique name per namespace, and pinned addresses that nothing else holds."""
    if c.workloads and c.k3s is None:
        return ["workloads: there are workloads but no k3s cluster to run them"]
    out = [f"workloads: {d} is used twice" for d in dupes(f"{w.namespace}/{w.name}" for w in c.workloads)]
    # Two host-network workloads may land on one VM, where only one can bind a port.
    host_ports = [f"{p.port}/{p.protocol}" for w in c.workloads if w.host_network for p in w.ports]
    out += [
        f"workloads: {port} is opened by more than one host-network workload ("
        + ", ".join(
            w.name for w in c.workloads if w.host_network and port in {f"{p.port}/{p.protocol}" for p in w.ports}
        )
        + "); two of them on one VM cannot both bind it"
        for port in dupes(host_ports)
    ]
    if c.k3s is not None:
        out += _pinned_load_balancer_ips(c, c.k3s, c.networks.lan.cidr)
    return out


def _pinned_load_balancer_ips(c: Cluster, k: K3s, lan: IPv4Network) -> list[str]:
    """A pinned address sits on the LAN, outside the pool, and belongs to one workload only.

    kube-vip-cloud-provider counts an address as taken only once it has labelled the Service that
    pins it, so a pin inside the pool can first be handed to a Service without one: two Services
    on one address.
    """
    taken = _taken(c) | {str(lan.broadcast_address): "the LAN's broadcast address", str(k.api_vip): "k3s.api_vip"}
    if c.quorum_device is not None:
        taken[str(c.quorum_device.address)] = "quorum_device.address"
    pinned: dict[IPv4Address, str] = {}
    out: list[str] = []
    for w in c.workloads:
        ip = w.load_balancer_ip
        if ip is None:
            continue
        where = f"workloads[{w.name}].load_balancer_ip {ip}"
        if not any(p.expose for p in w.ports):
            out.append(f"{where} is set, but none of its ports has expose: true, so nothing would use it")
        if ip not in lan:
            out.append(f"{where} is outside the LAN {lan}")
        if ip in k.load_balancer_pool:
            out.append(
                f"{where} is inside k3s.load_balancer_pool, which is for Services without a pinned address "
                f"(the cloud provider could hand it to one of them first); pick an address outside "
                f"{k.load_balancer_pool.start}-{k.load_balancer_pool.end}"
            )
        if str(ip) in taken:
            out.append(f"{where} is already used by {taken[str(ip)]}")
        if ip in pinned:
            out.append(f"{where} is already pinned by workload {pinned[ip]}")
        pinned[ip] = w.name
    if c.gateway is not None:
        ip, spot = c.gateway.address, f"gateway.address {c.gateway.address}"
        if ip not in lan:
            out.append(f"{spot} is outside the LAN {lan}")
        if ip in k.load_balancer_pool:
            out.append(
                f"{spot} is inside k3s.load_balancer_pool, which is for Services without a pinned address; pick "
                f"an address outside {k.load_balancer_pool.start}-{k.load_balancer_pool.end}"
            )
        if str(ip) in taken:
            out.append(f"{spot} is already used by {taken[str(ip)]}")
        if ip in pinned:
            out.append(f"{spot} is already pinned by workload {pinned[ip]}")
    return out


def backups(c: Cluster) -> list[str]:
    if c.backups is None:
        return []
    names = {g.name for g in c.guests} | {f"{w.name}/{v.name}" for w in c.workloads for v in w.volumes}
    names |= {ETCD} if c.k3s is not None else set()
    problems = [
        f"backups.skip.{name}: no guest, workload volume (`<workload>/<volume>`) or `{ETCD}` is named {name}"
        for name in sorted(c.backups.skip)
        if name not in names
    ]
    return problems


def gateway(c: Cluster) -> list[str]:
    """The gateway's issuer fits the domain; names are unique, one label under the domain (the
    gateway's certificate is `*.<domain>`); the DNS server it writes to is a DNS workload."""
    if c.gateway is None:
        hosts = [w.name for w in c.workloads if w.host is not None]
        return [f"workloads[{n}].host is set, but there is no gateway to reach it" for n in hosts]
    out = gateway_problems(c.gateway, c.domain, c.k3s is not None)
    # Every name a route may have, set up or not yet: one name, one app.
    named = {w.name: host_for(w.name, w.host, c.domain) for w in c.workloads if w.http_port and not w.plain_http}
    for name, host in named.items():
        if not covered(host, c.domain):
            out.append(
                f"workloads[{name}].host {host} is not one label under {c.domain}: the gateway's certificate is "
                f"*.{c.domain}, which covers no other name"
            )
    out += [f"workloads: host {h} is given to more than one workload" for h in dupes(named.values())]
    if c.gateway.dns_server is not None:
        server = next((w for w in c.workloads if w.name == c.gateway.dns_server), None)
        if server is None:
            out.append(f"gateway.dns_server: no workload is named {c.gateway.dns_server}")
        elif server.http_port is None or not any(p.port == 53 for p in server.ports):
            out.append(
                f"gateway.dns_server: {server.name} has no DNS port 53 and HTTP port; it should be AdGuard Home, "
                "whose API external-dns writes the names to"
            )
    return out


def ups(c: Cluster) -> list[str]:
    if c.ups is None:
        return []
    if c.ups.node not in {n.name for n in c.nodes}:
        return [f"ups.node: no node is named {c.ups.node} (the UPS's data cable goes to a node of the cluster)"]
    return []
