"""What the cluster gives its apps: Ceph RBD volumes and LoadBalancer addresses.

Ceph RBD volumes through ceph-csi (a restricted Ceph client, its key a Pulumi secret) behind a
default StorageClass, and LoadBalancer addresses from the spec's pool (kube-vip-cloud-provider
hands them out; the kube-vip DaemonSet on the servers announces them). Every Kubernetes object
goes through the k3s cluster's provider, named explicitly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import pulumi
import pulumi_kubernetes as k8s

from components.k3s import K3sCluster
from components.stack import waits_for
from spec.kubernetes import AddressRange
from spec.models import Cluster

CSI_NAMESPACE = "ceph-csi-rbd"
CSI_CHART = "ceph-csi-rbd"
CSI_REPOSITORY = "https://ceph.github.io/csi-charts"
CSI_DRIVER = "rbd.csi.ceph.com"
CSI_SECRET = "csi-rbd-secret"
STORAGE_CLASS = "ceph-rbd"
# kube-vip-cloud-provider has no spec field: it only allocates addresses, so its version is
# pinned here next to the manifest it matches.
KUBE_VIP_CLOUD_PROVIDER = "ghcr.io/kube-vip/kube-vip-cloud-provider:v0.0.12@sha256:f8f4e3401f7637dd55faefb35571e731a477f65d5c3f062aef73dfd31a8da596"  # noqa: E501
# The address pool's ConfigMap, in kube-system: the name the cloud provider looks for.
KUBE_VIP_CONFIG_MAP = "kubevip"
Meta = k8s.meta.v1.ObjectMetaArgs
Selector = k8s.meta.v1.LabelSelectorArgs


class CephClient(Protocol):
    """What Platform needs from the Ceph layer (components.storage.CephStorage provides it)."""

    @property
    def kubernetes_pool(self) -> str: ...
    @property
    def monitor_addresses(self) -> Sequence[str]: ...
    @property
    def cluster_id(self) -> pulumi.Output[str]: ...
    @property
    def client_name(self) -> str: ...
    @property
    def client_key(self) -> pulumi.Output[str]: ...


class Platform(pulumi.ComponentResource):
    """ceph-csi RBD with a default StorageClass, and LoadBalancer addresses from the spec's pool."""

    storage_class: str
    namespaces: set[str]

    def __init__(
        self,
        cluster: Cluster,
        storage: CephClient,
        k3s: K3sCluster,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("homelab:k3s:Platform", f"{cluster.name}-platform", None, opts)
        spec = k3s.spec
        # The pools and the client must exist before a volume is provisioned from them.
        ceph_ready = [storage] if isinstance(storage, pulumi.Resource) else []
        before = waits_for(opts)

        def k8s_opts(*depends_on: pulumi.Resource) -> pulumi.ResourceOptions:
            return pulumi.ResourceOptions(parent=self, provider=k3s.provider, depends_on=[*before, *depends_on])

        # Objects name each other by their fixed names, with the order in `depends_on`, rather than
        # through another object's outputs: until the k3s cluster answers (a first preview, a k3s
        # upgrade) its provider returns no outputs, and every input read from one would be
        # unknown to the preview and to the policy pack (offline/engine.py).

        namespace = k8s.core.v1.Namespace(
            CSI_NAMESPACE,
            k8s.core.v1.NamespaceInitArgs(
                # The node plugin mounts host paths and runs privileged: the namespace must allow it.
                metadata=Meta(name=CSI_NAMESPACE, labels={"pod-security.kubernetes.io/enforce": "privileged"}),
            ),
            opts=k8s_opts(),
        )
        self.namespaces = {CSI_NAMESPACE}
        secret = k8s.core.v1.Secret(
            CSI_SECRET,
            k8s.core.v1.SecretInitArgs(
                metadata=Meta(name=CSI_SECRET, namespace=CSI_NAMESPACE),
                type="Opaque",
                # The restricted client (RBD on the Kubernetes pool only), never client.admin.
                string_data={"userID": storage.client_name, "userKey": storage.client_key},
            ),
            opts=k8s_opts(namespace, *ceph_ready),
        )
        self.csi = k8s.helm.v3.Release(
            CSI_CHART,
            k8s.helm.v3.ReleaseArgs(
                chart=CSI_CHART,
                version=spec.ceph_csi_chart_version,
                repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=CSI_REPOSITORY),
                name=CSI_CHART,
                namespace=CSI_NAMESPACE,
                values={
                    "csiConfig": [{"clusterID": storage.cluster_id, "monitors": list(storage.monitor_addresses)}],
                    # Both are declared below as typed resources, so the key stays a Pulumi secret.
                    "storageClass": {"create": False},
                    "secret": {"create": False},
                },
            ),
            opts=k8s_opts(namespace, *ceph_ready),
        )
        self.storage_class = STORAGE_CLASS
        secret_namespace = CSI_NAMESPACE
        self.storage = k8s.storage.v1.StorageClass(
            STORAGE_CLASS,
            k8s.storage.v1.StorageClassInitArgs(
                metadata=Meta(name=STORAGE_CLASS, annotations={"storageclass.kubernetes.io/is-default-class": "true"}),
                provisioner=CSI_DRIVER,
                parameters={
                    "clusterID": storage.cluster_id,
                    "pool": storage.kubernetes_pool,
                    # The kernel RBD client maps only images with features it knows; layering is safe.
                    "imageFeatures": "layering",
                    "csi.storage.k8s.io/fstype": "ext4",
                    "csi.storage.k8s.io/provisioner-secret-name": CSI_SECRET,
                    "csi.storage.k8s.io/provisioner-secret-namespace": secret_namespace,
                    "csi.storage.k8s.io/controller-expand-secret-name": CSI_SECRET,
                    "csi.storage.k8s.io/controller-expand-secret-namespace": secret_namespace,
                    "csi.storage.k8s.io/node-stage-secret-name": CSI_SECRET,
                    "csi.storage.k8s.io/node-stage-secret-namespace": secret_namespace,
                },
                # A deleted claim keeps its image: a mistaken `pulumi destroy` or a renamed
                # workload must not wipe a home's data.
                reclaim_policy="Retain",
                allow_volume_expansion=True,
                # Freed blocks go back to the pool (thin images on a small cluster).
                mount_options=["discard"],
            ),
            opts=k8s_opts(self.csi, secret, *ceph_ready),
        )

        self.load_balancer = self._kube_vip_cloud_provider(spec.load_balancer_pool, k8s_opts)
        self.register_outputs(
            {
                "storage_class": STORAGE_CLASS,
                "load_balancer_pool": f"{spec.load_balancer_pool.start}-{spec.load_balancer_pool.end}",
            }
        )

    def _kube_vip_cloud_provider(self, pool: AddressRange, k8s_opts: _OptsFactory) -> k8s.apps.v1.Deployment:
        """kube-vip-cloud-provider: gives each LoadBalancer Service an address from the pool."""
        name = "kube-vip-cloud-provider"
        config = k8s.core.v1.ConfigMap(
            KUBE_VIP_CONFIG_MAP,
            k8s.core.v1.ConfigMapInitArgs(
                # The cloud provider reads this fixed name; range-global serves every namespace.
                metadata=Meta(name=KUBE_VIP_CONFIG_MAP, namespace="kube-system"),
                data={"range-global": f"{pool.start}-{pool.end}"},
            ),
            opts=k8s_opts(),
        )
        account = k8s.core.v1.ServiceAccount(
            name, k8s.core.v1.ServiceAccountInitArgs(metadata=Meta(name=name, namespace="kube-system")), opts=k8s_opts()
        )
        role = k8s.rbac.v1.ClusterRole(
            name,
            k8s.rbac.v1.ClusterRoleInitArgs(
                metadata=Meta(name=f"system:{name}"),
                rules=[
                    k8s.rbac.v1.PolicyRuleArgs(
                        api_groups=["coordination.k8s.io"],
                        resources=["leases"],
                        verbs=["get", "list", "watch", "create", "update"],
                    ),
                    # ConfigMaps are not here: the Role below reads the one it uses.
                    k8s.rbac.v1.PolicyRuleArgs(
                        api_groups=[""],
                        resources=["endpoints", "events", "services/status"],
                        verbs=["get", "list", "watch", "create", "update", "patch"],
                    ),
                    k8s.rbac.v1.PolicyRuleArgs(
                        api_groups=[""], resources=["nodes", "services"], verbs=["list", "get", "watch", "update"]
                    ),
                ],
            ),
            opts=k8s_opts(),
        )
        binding = k8s.rbac.v1.ClusterRoleBinding(
            name,
            k8s.rbac.v1.ClusterRoleBindingInitArgs(
                metadata=Meta(name=f"system:{name}"),
                role_ref=k8s.rbac.v1.RoleRefArgs(
                    api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=f"system:{name}"
                ),
                subjects=[k8s.rbac.v1.SubjectArgs(kind="ServiceAccount", name=name, namespace="kube-system")],
            ),
            opts=k8s_opts(role),
        )
        # Its pool, and nothing else among ConfigMaps. kube-vip-cloud-provider v0.0.12 only gets
        # it by name (pkg/provider/config.go getConfigMap, KubeVipClientConfig "kubevip" in
        # KubeVipClientConfigNamespace "kube-system"): it lists and watches no ConfigMap and writes
        # none, since its allocations go on the Services. The CCM framework would read kube-system's
        # extension-apiserver-authentication, but its main.go sets --authentication-skip-lookup.
        # Only `get`: RBAC cannot hold a `create` to one name (the name is not known when the
        # request is authorized), so the provider's fallback of creating an empty ConfigMap when
        # it finds none fails, and it retries until this one, declared here, is there. A Role in
        # kube-system, so neither the name nor the namespace is open.
        config_role = k8s.rbac.v1.Role(
            f"{name}-config",
            k8s.rbac.v1.RoleInitArgs(
                metadata=Meta(name=f"{name}-config", namespace="kube-system"),
                rules=[
                    k8s.rbac.v1.PolicyRuleArgs(
                        api_groups=[""],
                        resources=["configmaps"],
                        resource_names=[KUBE_VIP_CONFIG_MAP],
                        verbs=["get"],
                    )
                ],
            ),
            opts=k8s_opts(),
        )
        config_binding = k8s.rbac.v1.RoleBinding(
            f"{name}-config",
            k8s.rbac.v1.RoleBindingInitArgs(
                metadata=Meta(name=f"{name}-config", namespace="kube-system"),
                role_ref=k8s.rbac.v1.RoleRefArgs(
                    api_group="rbac.authorization.k8s.io", kind="Role", name=f"{name}-config"
                ),
                subjects=[k8s.rbac.v1.SubjectArgs(kind="ServiceAccount", name=name, namespace="kube-system")],
            ),
            opts=k8s_opts(config_role),
        )
        labels = {"app.kubernetes.io/name": name}
        return k8s.apps.v1.Deployment(
            name,
            k8s.apps.v1.DeploymentInitArgs(
                metadata=Meta(name=name, namespace="kube-system", labels=labels),
                spec=k8s.apps.v1.DeploymentSpecArgs(
                    # One replica: it only allocates addresses to new Services; those already
                    # announced keep working while it is rescheduled after a node loss.
                    replicas=1,
                    selector=Selector(match_labels=labels),
                    template=k8s.core.v1.PodTemplateSpecArgs(
                        metadata=Meta(labels=labels),
                        spec=k8s.core.v1.PodSpecArgs(
                            service_account_name=name,
                            containers=[
                                k8s.core.v1.ContainerArgs(
                                    name=name,
                                    image=KUBE_VIP_CLOUD_PROVIDER,
                                    command=[
                                        "/kube-vip-cloud-provider",
                                        "--leader-elect-resource-name=kube-vip-cloud-controller",
                                    ],
                                    resources=k8s.core.v1.ResourceRequirementsArgs(
                                        requests={"cpu": "10m", "memory": "32Mi"}
                                    ),
                                )
                            ],
                        ),
                    ),
                ),
            ),
            opts=k8s_opts(binding, config_binding, account, config),
        )


class _OptsFactory(Protocol):
    def __call__(self, *depends_on: pulumi.Resource) -> pulumi.ResourceOptions: ...
