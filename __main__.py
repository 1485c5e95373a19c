"""homelab: a low-power, highly available cluster of mini PCs, built from one stack file.

Read top to bottom, this is the order the cluster comes up in.
"""

import pulumi

from components.backup_server import BackupServer
from components.backups import EtcdSnapshotsOffCluster, GuestBackups
from components.certificates import Certificates
from components.cluster import CorosyncStorageLink, ProxmoxCluster
from components.dns_names import DnsNames
from components.firewall import GuestFilters, ProxmoxFirewall
from components.gateway import HttpsGateway
from components.guests import Guests, GuestTemplates
from components.ha import HighAvailability
from components.host_metrics import HostMetrics
from components.k3s import K3sCluster
from components.monitoring import MetricsStack
from components.network import NodeNetwork, StorageMesh, StorageReachable
from components.node_certificates import NodeCertificates
from components.platform import Platform
from components.power import NodePowerTuning
from components.stack import connect, load_cluster
from components.storage import CephStorage
from components.ups import UpsShutdown
from components.volume_backups import VolumeBackups
from components.workloads import Workloads
from plan.placement import plan_guests
from plan.power import cluster_draw

# The spec: every figure of the cluster, validated before anything is declared.
cluster = load_cluster()
access = connect(cluster)

# 1. The Proxmox cluster forms over the LAN (corosync link 0).
members = ProxmoxCluster(cluster, access)

# 2. Every node: low-power tuning, bonded LAN uplink, VLAN-aware guest bridge, storage network.
for n in cluster.nodes:
    NodePowerTuning(n, access)
after_join = pulumi.ResourceOptions(provider=access.proxmox, depends_on=[members.ready])
node_networks: list[NodeNetwork] = []
for n in cluster.nodes:  # one node's LAN uplink changes at a time
    node_networks.append(NodeNetwork(cluster, n, access, node_networks[-1] if node_networks else None, after_join))
storage_network: list[pulumi.Resource] = list(node_networks)
if cluster.networks.storage.mode == "mesh":
    ports = {nn.node: nn.usb4_ports for nn in node_networks}
    storage_network.append(StorageMesh(cluster, ports, opts=after_join))

# 3. Once every node reaches the others on it, corosync link 1 on the storage network: quorum
#    survives the loss of either network.
reachable = StorageReachable(cluster, access, storage_network)
link1 = CorosyncStorageLink(cluster, access, members, reachable.checks)

# The hosts' firewall: the cluster's own traffic from its own networks, nothing else inbound.
firewall = ProxmoxFirewall(cluster, opts=pulumi.ResourceOptions(provider=access.proxmox, depends_on=link1.ready))

# Each node's web UI and API certificate, from the home's own CA or Let's Encrypt, when the
# spec has names.
if cluster.gateway is not None:
    NodeCertificates(cluster, access, after=link1.ready)

# On a power cut, the cluster rides the UPS for a while, then goes down in order (NUT on every
# node, the UPS node's upsd reached through the firewall) and comes back by itself.
ups: list[pulumi.Resource] = []
if cluster.ups is not None:
    ups.append(UpsShutdown(cluster, access, after=[firewall.enabled]))

# 4. Ceph on the storage network: monitors, managers and OSDs on the nodes, RBD pools for guest
#    disks (a Proxmox storage) and for Kubernetes volumes.
storage = CephStorage(cluster, access, depends_on=link1.ready)

# What the metrics stack reads on the hosts: the node exporter (watts from RAPL), the UPS's
# state, Ceph's own exporter.
if cluster.monitoring is not None:
    HostMetrics(cluster, access, ceph_ready=storage.ready, after=ups)

# 5. Guests on the shared RBD storage, each on the node placement picks, HA where the spec asks.
on_ceph = pulumi.ResourceOptions(provider=access.proxmox, depends_on=storage.ready)
templates = GuestTemplates(cluster, storage.guest_storage, opts=on_ceph)
plan = plan_guests(cluster)
guests = Guests(cluster, access, plan.where, plan.parked, storage.guest_storage, templates, opts=on_ceph)
HighAvailability(
    cluster, guests.machines, plan.where, guests.stopped, opts=pulumi.ResourceOptions(provider=access.proxmox)
)
# Each guest sends from its own MAC and addresses only: none can pose as a node or another guest.
GuestFilters(cluster, guests.machines, plan.where, opts=pulumi.ResourceOptions(provider=access.proxmox))
# Every guest the spec does not skip, backed up every night to PBS, off the cluster.
# A backup host the spec names is made a PBS first (over SSH); its certificate is pinned.
if cluster.backups is not None:
    server = BackupServer(cluster, access) if cluster.backups.pbs.host is not None else None
    GuestBackups(cluster, guests.machines, server, opts=pulumi.ResourceOptions(provider=access.proxmox))

# 6. k3s on the VMs (servers on distinct hosts, API behind a VIP), then volumes from Ceph,
#    LoadBalancer addresses, and the workloads spread across the Proxmox hosts.
if cluster.k3s is not None:
    k3s = K3sCluster(cluster, access, guests.machines, guests.placement)
    platform = Platform(cluster, storage, k3s)
    workloads = Workloads(cluster, k3s, platform)
    # Every web app at https://<host> through one gateway, its certificate from cert-manager, its
    # name in the home's DNS (AdGuard Home, through external-dns).
    if cluster.gateway is not None:
        gateway = HttpsGateway(cluster, k3s.provider, after=[platform, workloads])
        Certificates(cluster, k3s.provider, gateway.namespace, after=[platform])
        if cluster.gateway.dns_server is not None:
            DnsNames(cluster, k3s.provider, after=[gateway, workloads])
        pulumi.export("urls", gateway.routes)
        if cluster.gateway.private_ca is not None:
            # What each phone and laptop trusts once (README, "Names and HTTPS").
            pulumi.export("caCertificate", pulumi.Output.secret(cluster.gateway.private_ca.certificate))
    # Off the cluster, to the S3 store: the etcd snapshots, and a restic copy of every volume.
    volume_backups: list[pulumi.Resource] = []
    if cluster.backups is not None and cluster.backups.s3 is not None:
        EtcdSnapshotsOffCluster(cluster, k3s.provider, opts=pulumi.ResourceOptions(depends_on=[*k3s.installs.values()]))
        volume_backups.append(
            VolumeBackups(
                cluster,
                k3s.provider,
                storage.cluster_id,
                workloads.statefulsets,
                opts=pulumi.ResourceOptions(depends_on=[platform]),
            )
        )
    # Metrics, alerts to the owner, and each node's measured watts beside the modelled ones.
    if cluster.monitoring is not None:
        running = {g: n for g, n in plan.where.items() if g not in plan.parked}
        MetricsStack(cluster, cluster_draw(cluster, running), k3s.provider, after=[platform, *volume_backups])
    pulumi.export("kubeconfig", k3s.kubeconfig)
    # A secret output: restoring an etcd snapshot on rebuilt servers needs the token that took it.
    pulumi.export("k3sServerToken", k3s.token)

pulumi.export("nodes", [n.name for n in cluster.nodes])
