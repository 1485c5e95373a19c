"""The owner's apps on k3s, on what `components.platform` gives them.

`Workloads` turns each spec workload into a Deployment, or a StatefulSet when it has volumes,
with a Service, a PodDisruptionBudget and topology spread across Proxmox hosts: replicas of an
HA workload never share a physical host, so losing one host leaves the others serving, and a
drain never takes the last one down at once.

Each pod runs under the runtime's seccomp filter with every capability dropped but those it needs,
and takes connections only on its declared ports (components/network_policies.py).

Every Kubernetes object goes through the k3s cluster's provider, named explicitly.
"""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_kubernetes as k8s

from components.claims import claim_templates, grown_claims
from components.k3s import PROXMOX_NODE_LABEL, K3sCluster
from components.network_policies import allow_ingress, closed_networks, isolate_namespace
from components.platform import Platform
from components.seeds import seed_pod_parts, seed_secret
from components.stack import secret_config, waits_for
from components.volume_backups import PRIVILEGED_MOVERS
from plan.backups import mover_namespaces
from plan.routes import lan_ports
from policies.tokens import HA_LABEL, KUBE_VIP_LB_ANNOTATION
from spec.kubernetes import Port, Workload
from spec.models import Cluster

# Namespaces k3s creates itself; declaring one would fail with "already exists".
BUILTIN_NAMESPACES = frozenset({"default", "kube-system", "kube-public", "kube-node-lease"})

Meta = k8s.meta.v1.ObjectMetaArgs
Selector = k8s.meta.v1.LabelSelectorArgs


def secret_name(w: Workload) -> str:
    return f"{w.name}-env"


def _quantity_cpu(millicores: int) -> str:
    return f"{millicores}m"


def _quantity_mib(mib: int) -> str:
    return f"{mib}Mi"


def spread_constraints(workload: Workload, selector: dict[str, str]) -> list[k8s.core.v1.TopologySpreadConstraintArgs]:
    """Replicas spread over Proxmox hosts (hard for HA workloads), then over VMs (soft).

    nodeTaintsPolicy Honor: nodes of a dead or drained host (tainted unreachable/unschedulable)
    do not count as empty domains, which would otherwise block rescheduling the lost replica.
    """
    labels = Selector(match_labels=selector)
    return [
        k8s.core.v1.TopologySpreadConstraintArgs(
            max_skew=1,
            topology_key=PROXMOX_NODE_LABEL,
            when_unsatisfiable="DoNotSchedule" if workload.ha else "ScheduleAnyway",
            label_selector=labels,
            node_taints_policy="Honor",
        ),
        k8s.core.v1.TopologySpreadConstraintArgs(
            max_skew=1,
            topology_key="kubernetes.io/hostname",
            when_unsatisfiable="ScheduleAnyway",
            label_selector=labels,
            node_taints_policy="Honor",
        ),
    ]


def _service_ports(ports: Sequence[Port]) -> list[k8s.core.v1.ServicePortArgs]:
    return [
        k8s.core.v1.ServicePortArgs(name=p.name, port=p.port, target_port=p.name, protocol=p.protocol) for p in ports
    ]


def readiness_probe(w: Workload) -> k8s.core.v1.ProbeArgs | None:
    """Ready once the app answers: before that a Service sends it nothing, and a rollout or drain
    does not count it as serving."""
    port = w.readiness_port
    if port is None:
        return None
    if w.ready_path is not None:
        http = k8s.core.v1.HTTPGetActionArgs(path=w.ready_path, port=port)
        return k8s.core.v1.ProbeArgs(http_get=http, period_seconds=10, failure_threshold=3)
    tcp = k8s.core.v1.TCPSocketActionArgs(port=port)
    return k8s.core.v1.ProbeArgs(tcp_socket=tcp, period_seconds=10, failure_threshold=3)


def pod_security(namespace: str, workloads: Sequence[Workload]) -> dict[str, str]:
    """The namespace's Pod Security labels. Enforced: baseline, so no privileged pods, host
    namespaces or host paths for apps. Warned and audited: restricted, so what still stands
    between an app and it shows. Restricted is not enforced: it refuses a container that may run
    as root (`runAsNonRoot`), and the shipped apps' images (AdGuard Home, Home Assistant,
    Jellyfin, Uptime Kuma, whoami) start as root. A namespace holding a host-network workload
    must enforce `privileged`, the only level that admits a pod on the host network; it still
    warns and audits at baseline, so anything else a pod there asks beyond baseline shows."""
    if any(w.on_host_network for w in workloads if w.namespace == namespace):
        return {
            "pod-security.kubernetes.io/enforce": "privileged",
            "pod-security.kubernetes.io/warn": "baseline",
            "pod-security.kubernetes.io/audit": "baseline",
        }
    return {
        "pod-security.kubernetes.io/enforce": "baseline",
        "pod-security.kubernetes.io/warn": "restricted",
        "pod-security.kubernetes.io/audit": "restricted",
    }


def pod_security_context() -> k8s.core.v1.PodSecurityContextArgs:
    """The container runtime's default seccomp filter for every container of the pod (without
    it, a pod runs unconfined): what restricted asks, and baseline allows."""
    return k8s.core.v1.PodSecurityContextArgs(seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"))


def container_security_context(added: Sequence[str] = ()) -> k8s.core.v1.SecurityContextArgs:
    """No capability but ADDED, and no way to gain more (no setuid binary or file capability
    raises what the process has)."""
    return k8s.core.v1.SecurityContextArgs(
        allow_privilege_escalation=False,
        capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"], add=list(added) or None),
    )


def app_capabilities(w: Workload) -> list[str]:
    """What the app's container keeps. NET_BIND_SERVICE for a port below 1024 (AdGuard Home's 53,
    whoami's 80): these images run as root, and root binds such a port only with that
    capability. k3s's containerd lowers ip_unprivileged_port_start in a pod's own network
    namespace (enable_unprivileged_ports), but not on the host network, so it is kept wherever
    the pod runs. Both baseline and restricted allow adding it. Then what the spec names for the
    image (`capabilities`: Uptime Kuma's entrypoint needs SETGID for `setpriv --clear-groups`).

    Nothing else: the runtime's defaults (NET_RAW among them) are dropped too. Home Assistant's
    DHCP-watching discovery opens a raw socket, so the home stack names NET_RAW for it, which a
    host-network workload's privileged namespace admits (spec.kubernetes refuses it elsewhere)."""
    added = ["NET_BIND_SERVICE"] if any(p.port < 1024 for p in w.ports) else []
    # NET_RAW only where the namespace admits it: on the host network (not while setup is pending).
    wanted = [c for c in w.capabilities if c != "NET_RAW" or w.on_host_network]
    return [*added, *(c for c in wanted if c not in added)]


class Workloads(pulumi.ComponentResource):
    """Every workload of the spec, with its namespace, Service and disruption budget."""

    def __init__(
        self,
        cluster: Cluster,
        k3s: K3sCluster,
        platform: Platform,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("homelab:k3s:Workloads", f"{cluster.name}-workloads", None, opts)
        self.k3s = k3s
        self.platform = platform
        self.before = waits_for(opts)
        self.namespaces: dict[str, k8s.core.v1.Namespace] = {}
        # Each workload with volumes: its StatefulSet, whose claims the backups copy.
        self.statefulsets: dict[str, k8s.apps.v1.StatefulSet] = {}
        self.movers = mover_namespaces(cluster)
        self.workloads = cluster.workloads
        self.cluster = cluster
        for workload in cluster.workloads:
            self._workload(workload)
        # Each app namespace closed but for what its workloads' policies open
        # (components/network_policies.py); apps never reach the Ceph networks.
        ceph = cluster.networks.ceph
        closed = closed_networks([ceph.public, ceph.cluster])
        for name in self.namespaces:
            isolate_namespace(name, closed, self._opts(name))
        self.register_outputs({"workloads": [f"{w.namespace}/{w.name}" for w in cluster.workloads]})

    def _opts(
        self, namespace: str | None = None, after: Sequence[pulumi.Resource] = (), protect: bool = False
    ) -> pulumi.ResourceOptions:
        # The platform first: a StatefulSet's claims need the StorageClass and the driver. An
        # object waits for its namespace by name (see Platform on why not by its outputs).
        declared = [self.namespaces[namespace]] if namespace in self.namespaces else []
        return pulumi.ResourceOptions(
            parent=self,
            provider=self.k3s.provider,
            depends_on=[*self.before, self.platform, *declared, *after],
            protect=protect,
        )

    def _namespace(self, name: str, workloads: Sequence[Workload]) -> None:
        """The namespace, declared once; k3s's own and the platform's are used as they are."""
        if name in BUILTIN_NAMESPACES or name in self.platform.namespaces:
            return
        if name not in self.namespaces:
            self.namespaces[name] = k8s.core.v1.Namespace(
                name,
                k8s.core.v1.NamespaceInitArgs(
                    metadata=Meta(
                        name=name,
                        labels=pod_security(name, workloads),
                        # VolSync's movers may read and restore every file here (volume_backups.py).
                        annotations={PRIVILEGED_MOVERS: "true"} if name in self.movers else None,
                    )
                ),
                opts=self._opts(),
            )

    def _workload(self, w: Workload) -> None:
        self._namespace(w.namespace, self.workloads)
        namespace = w.namespace
        key = f"{w.namespace}-{w.name}"
        selector = {"app.kubernetes.io/name": w.name, "app.kubernetes.io/instance": key}
        labels = {**selector, "app.kubernetes.io/part-of": "homelab"}
        # The policy pack reads it: an HA workload needs at least two replicas.
        owner_labels = {**labels, HA_LABEL: "true" if w.ha else "false"}

        plain_env = [k8s.core.v1.EnvVarArgs(name=k, value=v) for k, v in sorted(w.env.items())]
        secret = self._secret_env(w, key, labels)
        seeds = seed_secret(w, key, labels, self._opts(w.namespace))
        init_containers, seed_volumes = seed_pod_parts(w)
        secret_env = [
            k8s.core.v1.EnvVarArgs(
                name=name,
                value_from=k8s.core.v1.EnvVarSourceArgs(
                    secret_key_ref=k8s.core.v1.SecretKeySelectorArgs(name=secret_name(w), key=name)
                ),
            )
            for name in sorted(w.secret_env)
        ]
        after = [r for r in (secret, seeds) if r is not None]
        container = k8s.core.v1.ContainerArgs(
            name=w.name,
            image=w.image,
            ports=[
                k8s.core.v1.ContainerPortArgs(name=p.name, container_port=p.port, protocol=p.protocol) for p in w.ports
            ],
            env=[*plain_env, *secret_env] or None,
            resources=k8s.core.v1.ResourceRequirementsArgs(
                requests={"cpu": _quantity_cpu(w.cpu_millicores), "memory": _quantity_mib(w.memory_mib)},
                # Memory limit = request: a pod never takes memory the scheduler did not count,
                # so a busy app cannot push a small VM into the OOM killer. CPU is left unlimited.
                limits={"memory": _quantity_mib(w.memory_mib)},
            ),
            volume_mounts=[k8s.core.v1.VolumeMountArgs(name=v.name, mount_path=v.mount_path) for v in w.volumes]
            or None,
            readiness_probe=readiness_probe(w),
            security_context=container_security_context(app_capabilities(w)),
        )
        for init in init_containers:
            # The seed copy runs as root into the volume's root-owned folders and reads the
            # root-owned Secret files: no capability needed.
            init.security_context = container_security_context()
        pod = k8s.core.v1.PodTemplateSpecArgs(
            metadata=Meta(labels=labels),
            spec=k8s.core.v1.PodSpecArgs(
                containers=[container],
                init_containers=init_containers or None,
                volumes=seed_volumes or None,
                topology_spread_constraints=spread_constraints(w, selector),
                # Apps do not talk to the Kubernetes API.
                automount_service_account_token=False,
                host_network=w.on_host_network or None,
                # On the host network a pod would ask the VM's resolver; this keeps cluster names.
                dns_policy="ClusterFirstWithHostNet" if w.on_host_network else None,
                security_context=pod_security_context(),
            ),
        )
        service = self._services(w, key, namespace, selector)
        allow_ingress(w, lan_ports(self.cluster, w), key, selector, self._opts(w.namespace))
        if w.volumes:
            # Read-write-once volumes: one pod owns each claim, so a StatefulSet, protected. Its
            # governing Service is headless (per-pod DNS), apart from the one clients use.
            governing, governing_name = service, w.name
            if w.ports:
                governing_name = f"{w.name}-headless"
                governing = k8s.core.v1.Service(
                    f"{key}-headless",
                    k8s.core.v1.ServiceInitArgs(
                        metadata=Meta(name=governing_name, namespace=namespace, labels=labels),
                        spec=k8s.core.v1.ServiceSpecArgs(
                            type="ClusterIP", cluster_ip="None", selector=selector, ports=_service_ports(w.ports)
                        ),
                    ),
                    opts=self._opts(w.namespace),
                )
            statefulset = k8s.apps.v1.StatefulSet(
                key,
                k8s.apps.v1.StatefulSetInitArgs(
                    metadata=Meta(name=w.name, namespace=namespace, labels=owner_labels),
                    spec=k8s.apps.v1.StatefulSetSpecArgs(
                        replicas=w.replicas,
                        service_name=governing_name,
                        selector=Selector(match_labels=selector),
                        template=pod,
                        volume_claim_templates=claim_templates(w, self.platform.storage_class, labels),
                        # Claims outlive the StatefulSet and scale-downs: the data is the point.
                        persistent_volume_claim_retention_policy=k8s.apps.v1.StatefulSetPersistentVolumeClaimRetentionPolicyArgs(
                            when_deleted="Retain", when_scaled="Retain"
                        ),
                    ),
                ),
                opts=pulumi.ResourceOptions.merge(
                    self._opts(w.namespace, after=[governing, *after], protect=True),
                    # Immutable in the API: a new size grows the claims instead (components/claims.py).
                    pulumi.ResourceOptions(ignore_changes=["spec.volumeClaimTemplates"]),
                ),
            )
            self.statefulsets[w.name] = statefulset
            grown_claims(w, key, self._opts(w.namespace, after=[statefulset]))
        else:
            k8s.apps.v1.Deployment(
                key,
                k8s.apps.v1.DeploymentInitArgs(
                    metadata=Meta(name=w.name, namespace=namespace, labels=owner_labels),
                    spec=k8s.apps.v1.DeploymentSpecArgs(
                        replicas=w.replicas,
                        selector=Selector(match_labels=selector),
                        template=pod,
                    ),
                ),
                opts=self._opts(w.namespace, after=after),
            )
        k8s.policy.v1.PodDisruptionBudget(
            key,
            k8s.policy.v1.PodDisruptionBudgetInitArgs(
                metadata=Meta(name=w.name, namespace=namespace, labels=labels),
                spec=k8s.policy.v1.PodDisruptionBudgetSpecArgs(
                    # One pod at a time: an HA workload keeps a replica serving through a drain, and
                    # a single-replica app can still be moved (minAvailable 1 would block the drain).
                    max_unavailable=1,
                    selector=Selector(match_labels=selector),
                    # A pod that is not ready serves nothing: a drain may always evict it.
                    unhealthy_pod_eviction_policy="AlwaysAllow",
                ),
            ),
            opts=self._opts(w.namespace),
        )

    def _secret_env(self, w: Workload, key: str, labels: dict[str, str]) -> k8s.core.v1.Secret | None:
        """The workload's `secret_env`, from the stack's secret config into one Secret: the values
        stay Pulumi secrets in the state and never appear in the pod spec."""
        if not w.secret_env:
            return None
        return k8s.core.v1.Secret(
            f"{key}-env",
            k8s.core.v1.SecretInitArgs(
                metadata=Meta(name=secret_name(w), namespace=w.namespace, labels=labels),
                type="Opaque",
                string_data={name: secret_config(config_key) for name, config_key in sorted(w.secret_env.items())},
            ),
            opts=self._opts(w.namespace),
        )

    def _services(
        self, w: Workload, key: str, namespace: pulumi.Input[str], selector: dict[str, str]
    ) -> k8s.core.v1.Service:
        """The workload's Service: a LoadBalancer for its exposed ports, else in-cluster only.

        Ports not marked `expose` stay off the LAN: when a workload has both kinds, they go on a
        second, ClusterIP Service named `<name>-internal`. A workload without ports gets a
        headless Service, which a StatefulSet needs as its governing Service.
        """
        exposed = lan_ports(self.cluster, w)
        internal = [p for p in w.ports if p not in exposed]
        annotations = (
            {KUBE_VIP_LB_ANNOTATION: str(w.load_balancer_ip)} if exposed and w.load_balancer_ip is not None else None
        )
        if exposed:
            spec = k8s.core.v1.ServiceSpecArgs(
                type="LoadBalancer",
                selector=selector,
                ports=_service_ports(exposed),
                # Traffic goes only to a node with a pod, which sees the client's own address.
                external_traffic_policy="Local" if w.keep_client_address else None,
            )
        elif w.ports:
            spec = k8s.core.v1.ServiceSpecArgs(type="ClusterIP", selector=selector, ports=_service_ports(internal))
        else:
            spec = k8s.core.v1.ServiceSpecArgs(type="ClusterIP", cluster_ip="None", selector=selector)
        service = k8s.core.v1.Service(
            key,
            k8s.core.v1.ServiceInitArgs(
                metadata=Meta(name=w.name, namespace=namespace, annotations=annotations), spec=spec
            ),
            opts=self._opts(w.namespace),
        )
        if exposed and internal:
            k8s.core.v1.Service(
                f"{key}-internal",
                k8s.core.v1.ServiceInitArgs(
                    metadata=Meta(name=f"{w.name}-internal", namespace=namespace),
                    spec=k8s.core.v1.ServiceSpecArgs(
                        type="ClusterIP", selector=selector, ports=_service_ports(internal)
                    ),
                ),
                opts=self._opts(w.namespace),
            )
        return service
