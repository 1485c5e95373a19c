"""Host networking: the LAN bond and guest bridge on every node, and the storage network.

A node reaches the LAN through `bond0` over two NICs and the VLAN-aware bridge `vmbr0` that
holds its management address, so one dead cable, port or NIC changes nothing. The storage
network (Ceph replication, corosync link 1) is either a second bond (`bond1`) or a full mesh of
direct cables routed by a Proxmox SDN OpenFabric fabric: with three nodes, a cut cable is routed
around through the third node. The Ceph public network, which guests use, is a VLAN on vmbr0.
"""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_command as command
import pulumi_proxmoxve as proxmoxve
from pulumi_proxmoxve.network import linux

from components import remote
from components.stack import Access, waits_for
from spec.models import Cluster
from spec.nodes import Bond, Node

LAN_BOND = "bond0"
LAN_BRIDGE = "vmbr0"
# The LAN itself, untagged on vmbr0: VLAN 1, the bridge's PVID. A guest NIC is tagged into it
# explicitly: an untagged NIC on a VLAN-aware bridge is also given every VLAN 2-4094 as a trunk
# (pve-common src/PVE/Network.pm, bridge_add_interface), so its guest could tag into the Ceph VLAN.
LAN_VLAN = 1
STORAGE_BOND = "bond1"
LAN_BOND_COMMENT = "LAN uplink: survives one cable or port failure"
LAN_BRIDGE_COMMENT = "management address and guest bridge (VLAN aware)"
GUEST_VLANS = "2-4094"
# How long a new LAN configuration has to be confirmed before the node restores the previous one:
# room for a switch port's spanning-tree wait (30-50 s) and the confirming SSH connection.
ROLLBACK_SECONDS = 240
# thunderbolt-net's largest MTU: fewer, larger frames for Ceph replication between USB4 ports.
USB4_MTU = 65520


def bond_args(
    node: str, name: str, bond: Bond, comment: str, address: str | None = None, mtu: int | None = None
) -> linux.BondArgs:
    """A bond as the Proxmox API creates it. Link monitoring needs no input: Proxmox writes
    `bond-miimon 100` for every bond, so a dead member leaves the bond within 100 ms."""
    lacp = bond.mode == "802.3ad"
    return linux.BondArgs(
        node_name=node,
        name=name,
        slaves=sorted(bond.members),  # as Proxmox lists them, so a read-back shows no change
        bond_mode=bond.mode,
        # layer3+4 spreads flows across both links; only meaningful with LACP.
        bond_xmit_hash_policy="layer3+4" if lacp else None,
        bond_primary=bond.primary if not lacp else None,
        autostart=True,
        comment=comment,
        address=address,
        mtu=mtu,
    )


class NodeNetwork(pulumi.ComponentResource):
    """The bonded LAN uplink and guest bridge of one node, plus its storage bond if any.

    The installer leaves `vmbr0` with one NIC as its port. `lan-uplink.sh` moves it onto `bond0`
    commit-confirm style (applied at once, confirmed over a new SSH connection, rolled back by
    the node itself otherwise), and the provider's Bond and Bridge then adopt what is there: on
    `pulumi up` they import `node:bond0` and `node:vmbr0`, whose settings match the inputs, so
    the import changes nothing. A preview does not import (the engine would read the node, and
    on a fresh one bond0 does not exist yet), so a first preview shows both as created.
    """

    bridge: str
    node: str
    storage_interfaces: list[str]
    uplink_confirmed: command.remote.Command

    def __init__(
        self,
        cluster: Cluster,
        node: Node,
        access: Access,
        after: NodeNetwork | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """`after`: the node whose LAN uplink changes first. One node at a time: a change that
        cuts nodes off cuts off one, and the others keep corosync's quorum."""
        super().__init__("homelab:network:NodeNetwork", node.name, None, opts)
        wait = waits_for(opts)
        child = pulumi.ResourceOptions(parent=self, depends_on=wait)
        lan = cluster.networks.lan
        bond = bond_args(node.name, LAN_BOND, node.bond, LAN_BOND_COMMENT)
        bridge = linux.BridgeArgs(
            node_name=node.name,
            name=LAN_BRIDGE,
            ports=[LAN_BOND],
            vlan_aware=True,
            vids=GUEST_VLANS,
            address=f"{node.address}/{lan.cidr.prefixlen}",
            gateway=str(lan.gateway),
            autostart=True,
            comment=LAN_BRIDGE_COMMENT,
        )
        uplink_script = remote.script(
            "lan-uplink",
            node=node.name,
            slaves=" ".join(sorted(node.bond.members)),
            bond_mode=node.bond.mode,
            bond_primary=node.bond.primary if node.bond.mode != "802.3ad" and node.bond.primary else "",
            hash_policy="layer3+4" if node.bond.mode == "802.3ad" else "",
            bond_comment=LAN_BOND_COMMENT,
            cidr=f"{node.address}/{lan.cidr.prefixlen}",
            gateway=str(lan.gateway),
            vids=GUEST_VLANS,
            bridge_comment=LAN_BRIDGE_COMMENT,
            rollback_seconds=ROLLBACK_SECONDS,
        )
        self.uplink = remote.run(
            f"{node.name}-lan-uplink",
            access.connection(str(node.address)),
            uplink_script,
            pulumi.ResourceOptions(parent=self, depends_on=[*wait, *([after.uplink_confirmed] if after else [])]),
        )
        self.uplink_confirmed = remote.run(
            f"{node.name}-lan-uplink-confirm",
            access.connection(str(node.address)),
            remote.script("lan-uplink-confirm", gateway=str(lan.gateway), tries=60),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.uplink]),
            # Confirms each new application of the uplink.
            triggers=[uplink_script],
        )
        adopt = not pulumi.runtime.is_dry_run()
        # protect: deleting either would take the node off the network.
        self.lan_bond = linux.Bond(
            f"{node.name}-{LAN_BOND}",
            bond,
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[self.uplink_confirmed],
                import_=f"{node.name}:{LAN_BOND}" if adopt else None,
                protect=True,
            ),
        )
        self.bridge_resource = linux.Bridge(
            f"{node.name}-{LAN_BRIDGE}",
            bridge,
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[self.lan_bond],
                import_=f"{node.name}:{LAN_BRIDGE}" if adopt else None,
                protect=True,
            ),
        )
        self.bridge = LAN_BRIDGE
        self.node = node.name
        ceph = cluster.networks.ceph
        self.public_vlan: linux.Vlan | None = None
        if ceph.public_vlan is not None and node.public_address is not None:
            # The Ceph public network as a VLAN on the bridge: guests (k3s CSI) reach the
            # monitors and OSDs through the same bonded uplink, tagged.
            self.public_vlan = linux.Vlan(
                f"{node.name}-{LAN_BRIDGE}.{ceph.public_vlan}",
                linux.VlanArgs(
                    node_name=node.name,
                    name=f"{LAN_BRIDGE}.{ceph.public_vlan}",
                    interface=LAN_BRIDGE,
                    vlan=ceph.public_vlan,
                    address=f"{node.public_address}/{ceph.public.prefixlen}",
                    autostart=True,
                    comment="Ceph public network: monitors and clients",
                ),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[*wait, self.bridge_resource]),
            )
        # USB4 mesh ports: named by PCI path, kept up across a peer's reboot (usb4-ports.sh).
        self.usb4_ports: pulumi.Resource | None = None
        usb4 = [link for link in node.mesh_links if link.pci_path]
        if usb4:
            self.usb4_ports = remote.run(
                f"{node.name}-usb4-ports",
                access.connection(str(node.address)),
                remote.script(
                    "usb4-ports", ports=" ".join(f"{link.nic}={link.pci_path}" for link in usb4), mtu=USB4_MTU
                ),
                child,
            )
        self.storage_interfaces = [STORAGE_BOND] if node.storage_bond else [link.nic for link in node.mesh_links]
        self.storage_bond: linux.Bond | None = None
        if node.storage_bond is not None:
            self.storage_bond = linux.Bond(
                f"{node.name}-{STORAGE_BOND}",
                bond_args(
                    node.name,
                    STORAGE_BOND,
                    node.storage_bond,
                    "storage network: Ceph and corosync link 1",
                    address=f"{node.storage_address}/{cluster.networks.ceph.cluster.prefixlen}",
                    mtu=cluster.networks.storage.mtu,
                ),
                opts=child,
            )
        self.register_outputs({"bridge": self.bridge, "storage_interfaces": self.storage_interfaces})


# OpenFabric timers, in seconds: a dead cable is routed around within a few hellos.
HELLO_INTERVAL = 1
CSNP_INTERVAL = 2


class StorageMesh(pulumi.ComponentResource):
    """A full mesh of direct node-to-node cables for Ceph, routed by an SDN OpenFabric fabric.

    OpenFabric (IS-IS) finds a path over the remaining cables when one fails, so every node
    keeps reaching every other on the storage network. Each node's storage address is its
    router address in the fabric.
    """

    def __init__(
        self,
        cluster: Cluster,
        ports: dict[str, pulumi.Resource | None],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """`ports`: per node, what names its mesh ports (USB4 ones), which its place in the
        fabric waits for."""
        super().__init__("homelab:network:StorageMesh", cluster.networks.storage.fabric, None, opts)
        net = cluster.networks
        wait = waits_for(opts)
        self.fabric = proxmoxve.sdn.fabric.Openfabric(
            f"{net.storage.fabric}-fabric",
            proxmoxve.sdn.fabric.OpenfabricArgs(
                resource_id=net.storage.fabric,
                ip_prefix=str(net.ceph.cluster),
                hello_interval=HELLO_INTERVAL,
                csnp_interval=CSNP_INTERVAL,
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=wait),
        )
        self.nodes = [
            proxmoxve.sdn.fabric.node.Openfabric(
                f"{net.storage.fabric}-{node.name}",
                proxmoxve.sdn.fabric.node.OpenfabricArgs(
                    fabric_id=net.storage.fabric,
                    node_id=node.name,
                    ip=str(node.storage_address),
                    interface_names=[link.nic for link in node.mesh_links],
                ),
                opts=pulumi.ResourceOptions(
                    parent=self, depends_on=[self.fabric, *filter(None, [ports.get(node.name)])]
                ),
            )
            for node in cluster.nodes
        ]
        # SDN changes are staged until applied cluster-wide. The applier acts when it is created,
        # so it is replaced whenever what it applies changes.
        staged = [str(net.ceph.cluster), f"hello={HELLO_INTERVAL}", f"csnp={CSNP_INTERVAL}"] + [
            f"{n.name}={n.storage_address}:{','.join(link.nic for link in n.mesh_links)}" for n in cluster.nodes
        ]
        self.applied = proxmoxve.sdn.Applier(
            f"{net.storage.fabric}-apply",
            proxmoxve.sdn.ApplierArgs(),
            opts=pulumi.ResourceOptions(parent=self, depends_on=self.nodes, replacement_trigger=" ".join(staged)),
        )
        self.register_outputs({"fabric": net.storage.fabric})


class StorageReachable(pulumi.ComponentResource):
    """Every node reaches every other on its storage address before corosync link 1 and Ceph use
    the storage network: a check per node that waits (bounded) for the peers to answer."""

    # Two minutes: time for an SDN apply's reloads and a bond's or fabric link's negotiation.
    TRIES = 60
    WAIT_SECONDS = 2

    def __init__(
        self,
        cluster: Cluster,
        access: Access,
        storage_network: Sequence[pulumi.Resource],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("homelab:network:StorageReachable", f"{cluster.name}-storage-reachable", None, opts)
        self.checks: list[pulumi.Resource] = []
        for node in cluster.nodes:
            peers = " ".join(str(n.storage_address) for n in cluster.nodes if n.name != node.name)
            self.checks.append(
                remote.run(
                    f"{node.name}-storage-reachable",
                    access.connection(str(node.address)),
                    remote.script(
                        "storage-reachable",
                        address=str(node.storage_address),
                        peers=peers,
                        tries=self.TRIES,
                        wait_seconds=self.WAIT_SECONDS,
                    ),
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[*waits_for(opts), *storage_network]),
                    # Checked again whenever the storage addresses change.
                    triggers=[str(node.storage_address), peers],
                )
            )
        self.register_outputs({"nodes": [n.name for n in cluster.nodes]})
