"""The Proxmox API token the program works with: the privileges it needs, path by path, and the
check that the token holds them before the provider makes its first call.

Each privilege comes from the permission check of an API call the provider (bpg
terraform-provider-proxmox) makes for a resource this program declares:
- `/`: HA resources and rules are read with Sys.Audit and written with Sys.Console
  (pve-ha-manager src/PVE/API2/HA/{Resources,Rules}.pm); Ceph pools need Sys.Modify (pve-manager
  PVE/API2/Ceph/Pool.pm, createpool); an image download needs Sys.Audit and Sys.Modify (pve-storage
  src/PVE/API2/Storage/Status.pm, download_url; pve-manager PVE/API2/Nodes.pm, query_url_metadata).
- `/storage`: Datastore.Allocate, for the storage a guest pool adds (Pool.pm, add_storages).
- `/storage/<s>`: Datastore.AllocateSpace for disks and templates, Datastore.Allocate to see
  snippet files and read a disk's format (pve-storage src/PVE/Storage.pm, check_volume_access),
  Datastore.AllocateTemplate where images are downloaded.
- `/nodes/<n>`: Sys.Modify for the node's network (pve-manager PVE/API2/Network.pm) and its place
  in the fabric, with Sys.Audit to read it (pve-network .../SDN/Fabrics/FabricNode.pm).
- `/vms/<id>`: the VM privileges of qemu-server src/PVE/API2/Qemu.pm and pve-container
  src/PVE/API2/LXC.pm: create, clone (from templates), configure (the cloud-init drive needs both
  VM.Config.Cloudinit and VM.Config.CDROM), start and stop, migrate; VM.GuestAgent.Audit because
  the provider pings the agent before it reboots a VM (qemu-server src/PVE/API2/Qemu/Agent.pm).
- `/sdn...`: SDN.Allocate for the fabric and its apply (pve-network src/PVE/API2/Network/SDN.pm),
  SDN.Use on the bridge and the VLAN guests' NICs use: without it the API hides vmbr0 (Network.pm,
  index) and refuses the NICs (pve-guest-common GuestHelpers.pm, check_vnet_access).
A privilege-separated token holds what both it and its user hold (pve-access-control
src/PVE/RPCEnvironment.pm, permissions), so the README grants the role to both.
"""

from __future__ import annotations

import pulumi
import pulumi_command as command

from components import remote
from spec.backups import PBS_STORAGE
from spec.models import Cluster

VM_PRIVILEGES = frozenset(
    {
        "VM.Allocate",
        "VM.Audit",
        "VM.Migrate",
        "VM.PowerMgmt",
        "VM.GuestAgent.Audit",
        *(
            f"VM.Config.{part}"
            for part in ("CDROM", "CPU", "Cloudinit", "Disk", "HWType", "Memory", "Network", "Options")
        ),
    }
)
STORAGE_PRIVILEGES = frozenset({"Datastore.Allocate", "Datastore.AllocateSpace"})


def required_privileges(cluster: Cluster) -> dict[str, frozenset[str]]:
    """Each ACL path the program's API calls check, with the privileges needed there."""
    need: dict[str, set[str]] = {
        "/": {"Sys.Audit", "Sys.Console", "Sys.Modify"},
        "/storage": {"Datastore.Allocate"},
        "/sdn/zones/localnetwork/vmbr0": {"SDN.Use"},
    }
    proxmox = cluster.proxmox
    storages = {proxmox.snippets_storage, proxmox.images_storage, cluster.ceph.guest_pool.name}
    storages |= {cluster.disk_storage(d) for g in cluster.guests for d in g.disks}
    storages |= {g.template.split(":", 1)[0] for g in cluster.guests if g.template}
    for storage in storages:
        need[f"/storage/{storage}"] = set(STORAGE_PRIVILEGES)
    need[f"/storage/{proxmox.images_storage}"].add("Datastore.AllocateTemplate")
    for node in cluster.nodes:
        need[f"/nodes/{node.name}"] = {"Sys.Audit", "Sys.Modify"}
    for guest in cluster.guests:
        need[f"/vms/{guest.vm_id}"] = set(VM_PRIVILEGES)
    for image in cluster.images.values():
        need[f"/vms/{image.template_vm_id}"] = {*VM_PRIVILEGES, "VM.Clone"}
    if cluster.backups is not None:
        # A backup job's storage (pve-manager PVE/API2/Backup.pm, assert_param_permission_create).
        need[f"/storage/{PBS_STORAGE}"] = {"Datastore.Allocate", *STORAGE_PRIVILEGES}
    if cluster.networks.ceph.public_vlan is not None:
        need[f"/sdn/zones/localnetwork/vmbr0/{cluster.networks.ceph.public_vlan}"] = {"SDN.Use"}
    if cluster.networks.storage.mode == "mesh":
        need["/sdn"] = {"SDN.Allocate"}
        need[f"/sdn/fabrics/{cluster.networks.storage.fabric}"] = {"SDN.Allocate"}
    return {path: frozenset(privs) for path, privs in sorted(need.items())}


def role_privileges(cluster: Cluster) -> list[str]:
    """The role to grant on `/`: every privilege any path needs."""
    return sorted(set().union(*required_privileges(cluster).values()))


def token_id(token: str) -> str:
    """`user@realm!name` of a token value `user@realm!name=secret`."""
    return token.split("=", 1)[0]


def token_check(
    cluster: Cluster, connection: command.remote.ConnectionArgs, token: pulumi.Output[str]
) -> command.remote.Command:
    """Checked on the first node, as root, before the provider's first call: a token that lacks a
    privilege stops the run there, with every missing privilege listed, rather than with a 403
    halfway through. Run again when the token or what the program needs changes."""
    required = "\n".join(f"{path} {' '.join(sorted(p))}" for path, p in required_privileges(cluster).items())
    first = cluster.nodes[0]
    script = token.apply(lambda t: remote.script("api-token-check", token_id=token_id(t), required=required))
    return remote.run(f"{first.name}-api-token-check", connection, script, opts=pulumi.ResourceOptions())
