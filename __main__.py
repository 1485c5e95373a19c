"""homelab: a low-power, highly available cluster of mini PCs, built from one stack file.

Read top to bottom, this is the order the cluster comes up in.
"""

import pulumi

from components.cluster import CorosyncStorageLink, ProxmoxCluster
from components.network import NodeNetwork, StorageMesh
from components.power import NodePowerTuning
from components.stack import connect, load_cluster

# The spec: every figure of the cluster, validated before anything is declared.
cluster = load_cluster()
access = connect(cluster)
proxmox = pulumi.ResourceOptions(provider=access.proxmox)

# 1. The Proxmox cluster forms over the LAN (corosync link 0).
members = ProxmoxCluster(cluster, access)

# 2. Every node: low-power tuning, bonded LAN uplink, VLAN-aware guest bridge, storage network.
for n in cluster.nodes:
    NodePowerTuning(n, access)
after_join = pulumi.ResourceOptions(provider=access.proxmox, depends_on=members.members)
networks = {n.name: NodeNetwork(cluster, n, opts=after_join) for n in cluster.nodes}
storage_network: list[pulumi.Resource] = [net for net in networks.values()]
if cluster.networks.storage.mode == "mesh":
    storage_network.append(StorageMesh(cluster, opts=after_join))

# 3. Corosync link 1 on the storage network: quorum survives the loss of either network.
CorosyncStorageLink(cluster, access, members, storage_network)

pulumi.export("nodes", [n.name for n in cluster.nodes])
