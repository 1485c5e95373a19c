"""Resource type tokens, as the SDKs register them, and the pack's label contract.

The one copy: Pulumi-free, so the pack, the program's layers, the offline harness and the tests
all import it. Checked against pulumi-proxmoxve 8.6.0, pulumi-kubernetes 4.34.2 and
pulumi-command 1.2.1.
"""

VM = "proxmoxve:index/vmLegacy:VmLegacy"
CONTAINER = "proxmoxve:index/containerLegacy:ContainerLegacy"
HA_RESOURCE = "proxmoxve:index/haresource:Haresource"
CEPH_POOL = "proxmoxve:ceph/pool:Pool"
BOND = "proxmoxve:network/linux/bond:Bond"
FABRIC_NODE = "proxmoxve:sdn/fabric/node/openfabric:Openfabric"
REMOTE_COMMAND = "command:remote:Command"
SNIPPET = "proxmoxve:index/fileLegacy:FileLegacy"
HA_RULE = "proxmoxve:index/harule:Harule"
HA_GROUP = "proxmoxve:index/hagroup:Hagroup"
BRIDGE = "proxmoxve:network/linux/bridge:Bridge"
VLAN = "proxmoxve:network/linux/vlan:Vlan"
FABRIC = "proxmoxve:sdn/fabric/openfabric:Openfabric"
SDN_APPLIER = "proxmoxve:sdn/applier:Applier"
CLUSTER_FIREWALL = "proxmoxve:cluster/firewallLegacy:FirewallLegacy"
FIREWALL_RULES = "proxmoxve:firewall/rulesLegacy:RulesLegacy"
FIREWALL_GROUP = "proxmoxve:cluster/firewall/security/groupLegacy:GroupLegacy"
FIREWALL_ALIAS = "proxmoxve:firewall/aliasLegacy:AliasLegacy"
FIREWALL_OPTIONS = "proxmoxve:firewall/optionsLegacy:OptionsLegacy"
FIREWALL_IPSET = "proxmoxve:firewall/ipsetLegacy:IpsetLegacy"
DOWNLOAD_FILE = "proxmoxve:download/file:File"
BACKUP_JOB = "proxmoxve:backup/job:Job"
PBS_STORAGE = "proxmoxve:storage/pbs:Pbs"
HTTP_ROUTE = "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"
GATEWAY = "kubernetes:gateway.networking.k8s.io/v1:Gateway"
CLUSTER_ISSUER = "kubernetes:cert-manager.io/v1:ClusterIssuer"
CERTIFICATE = "kubernetes:cert-manager.io/v1:Certificate"
DNS_ENDPOINT = "kubernetes:externaldns.k8s.io/v1alpha1:DNSEndpoint"
REPLICATION_SOURCE = "kubernetes:volsync.backube/v1alpha1:ReplicationSource"
VOLUME_SNAPSHOT_CLASS = "kubernetes:snapshot.storage.k8s.io/v1:VolumeSnapshotClass"
K8S_SECRET = "kubernetes:core/v1:Secret"
K8S_SERVICE = "kubernetes:core/v1:Service"
K8S_NAMESPACE = "kubernetes:core/v1:Namespace"
K8S_CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
STORAGE_CLASS = "kubernetes:storage.k8s.io/v1:StorageClass"
HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
CONFIG_FILE = "kubernetes:yaml/v2:ConfigFile"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
STATEFUL_SET = "kubernetes:apps/v1:StatefulSet"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
PVC = "kubernetes:core/v1:PersistentVolumeClaim"
# The program's components that the pack reads. The component that forms the Proxmox cluster:
# corosync's links are checked on it.
CLUSTER_COMPONENT = "homelab:cluster:ProxmoxCluster"
# Components whose registered outputs list the quorum members they declared: `servers` (the
# etcd members) and `monitors` (the Ceph monitor hosts).
K3S_COMPONENT = "homelab:k3s:K3sCluster"
CEPH_COMPONENT = "homelab:storage:CephStorage"

# A Deployment or StatefulSet that must stay up through a node loss carries `homelab/ha: "true"`
# in its metadata.labels (the workloads layer sets it from the spec); replica-counts and
# disruption-budgets judge the objects that carry it.
HA_LABEL = "homelab/ha"

# The annotation that gives a LoadBalancer Service its fixed address (kube-vip's own).
KUBE_VIP_LB_ANNOTATION = "kube-vip.io/loadbalancerIPs"
