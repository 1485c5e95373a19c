"""`guest-nic-vlans`: every guest NIC on a VLAN-aware bridge names its VLAN.

Proxmox gives a NIC without a tag (and without `trunks`) every VLAN 2-4094 as a trunk besides
the untagged one (pve-common src/PVE/Network.pm, bridge_add_interface): its guest can send and
receive tagged frames on any VLAN of the bridge, the Ceph public VLAN among them. A tagged NIC
gets exactly its VLAN.
"""

from __future__ import annotations

from typing import Any

from policies.props import Declared, as_int, as_str, get, known_items
from policies.tokens import CONTAINER, VM
from spec import Cluster

NIC_TYPES = (VM, CONTAINER)


def check_guest_nic_vlans(r: Declared, cluster: Cluster) -> list[str]:
    field = "networkDevices" if r.resource_type == VM else "networkInterfaces"
    if r.resource_type == VM and get(r.props, "template") is True:
        return []
    nics: list[Any] = known_items(get(r.props, field), f"{r.name}'s {field}")
    out = []
    for i, nic in enumerate(nics):
        tag, trunks = as_int(get(nic, "vlanId")), as_str(get(nic, "trunks"))
        if not tag and not trunks:
            bridge = as_str(get(nic, "bridge")) or "its bridge"
            out.append(
                f"{r.name}: NIC {i} on {bridge} has no VLAN tag, so Proxmox trunks every VLAN 2-4094 to it and the "
                "guest can tag into any of them (the Ceph public VLAN too); give it vlan_id (1 for the LAN)"
            )
    return out
