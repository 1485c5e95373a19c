"""What the pack looks for in a stack: resource type tokens and the label contract.

Pulumi-free, so the pack, the program's layers, the offline harness and the tests share one copy.
Tokens as the SDKs register them (checked against pulumi-proxmoxve 8.6.0, pulumi-kubernetes
4.34.2 and pulumi-command 1.2.1).
"""

VM = "proxmoxve:index/vmLegacy:VmLegacy"
CONTAINER = "proxmoxve:index/containerLegacy:ContainerLegacy"
HA_RESOURCE = "proxmoxve:index/haresource:Haresource"
CEPH_POOL = "proxmoxve:ceph/pool:Pool"
BOND = "proxmoxve:network/linux/bond:Bond"
FABRIC_NODE = "proxmoxve:sdn/fabric/node/openfabric:Openfabric"
REMOTE_COMMAND = "command:remote:Command"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
STATEFUL_SET = "kubernetes:apps/v1:StatefulSet"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
PVC = "kubernetes:core/v1:PersistentVolumeClaim"
# The component that forms the Proxmox cluster: corosync's links are checked on it.
CLUSTER_COMPONENT = "homelab:cluster:ProxmoxCluster"
# Components whose registered outputs list the quorum members they declared: `servers` (the
# etcd members) and `monitors` (the Ceph monitor hosts).
K3S_COMPONENT = "homelab:k3s:K3sCluster"
CEPH_COMPONENT = "homelab:storage:CephStorage"

# A Deployment or StatefulSet that must stay up through a node loss carries `homelab/ha: "true"`
# in its metadata.labels (the workloads layer sets it from the spec); replica-counts and
# disruption-budgets judge the objects that carry it.
HA_LABEL = "homelab/ha"
