"""The Kubernetes layer as the engine would see it: every object valid for the pinned k3s version,
on the k3s provider, and each workload built to survive the loss of a Proxmox host."""

from __future__ import annotations

import copy
from typing import Any

import kubernetes_validate
import pytest

from components.k3s import PROXMOX_NODE_LABEL
from components.platform import (
    CSI_CHART,
    CSI_DRIVER,
    CSI_REPOSITORY,
    STORAGE_CLASS,
)
from offline.harness import UNKNOWN, ProgramRun, Resource
from plan.routes import lan_ports
from policies import tokens
from policies.tokens import HA_LABEL, KUBE_VIP_LB_ANNOTATION
from spec.kubernetes import K3s, Workload
from spec.models import Cluster
from tests.support import (
    STACKS,
    cluster_set_up,
    patched,
    program,
    program_set_up,
    program_with,
    stack_cluster,
    stack_data,
)

K8S_PROVIDER = "pulumi:providers:kubernetes"
# Values only known after `pulumi up` (the Ceph fsid and client key) are the engine's unknown
# sentinel in a preview. The schema types them as strings, but the sentinel is no value a real
# object would carry: stand-ins of the right shape go in their place before validation.
PLAUSIBLE: dict[str, Any] = {
    "clusterID": "5f3c2a9e-8d1b-4c6e-9a7f-2b4d6e8f0a1c",
    # The CSI Secret's whole stringData is unknown: it holds the client key.
    "stringData": {"userID": "kubernetes", "userKey": "AQBvZ2xlAAAAABAAxJ0c2VjcmV0LWtleS1vZmZsaW5lLXByZXZpZXc="},
}
FALLBACK = "unknown-at-preview"


# Custom resources: kubernetes-validate knows Kubernetes' own kinds only; these are checked
# against their upstream CRDs (tests/test_volume_backups.py).
# Checked against their CRDs instead (tests/test_volume_backups.py, tests/test_gateway.py).
CUSTOM_KINDS = (
    tokens.REPLICATION_SOURCE,
    tokens.VOLUME_SNAPSHOT_CLASS,
    tokens.GATEWAY,
    tokens.HTTP_ROUTE,
    tokens.CLUSTER_ISSUER,
    tokens.CERTIFICATE,
    tokens.DNS_ENDPOINT,
)


def k8s_objects(run: ProgramRun) -> list[Resource]:
    """Every Kubernetes object the program declares of Kubernetes' own kinds (Helm releases are
    charts and a ConfigFile a file of objects, not objects)."""
    return [
        r
        for r in run.resources
        if r.type.startswith("kubernetes:") and r.type not in (tokens.HELM_RELEASE, tokens.CONFIG_FILE, *CUSTOM_KINDS)
    ]


def plausible(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: plausible(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [plausible(v, key) for v in value]
    if value == UNKNOWN:
        return PLAUSIBLE.get(key, FALLBACK)
    return value


def manifest(resource: Resource) -> dict[str, Any]:
    """The object as the provider sends it: `kubernetes:apps/v1:Deployment` -> apps/v1, Deployment
    (the core group has no name: `kubernetes:core/v1:Service` -> v1)."""
    _, group_version, kind = resource.type.split(":")
    api_version = group_version.removeprefix("core/")
    kind = kind.removesuffix("Patch")  # a server-side apply patch is a partial object of its kind
    doc = plausible(copy.deepcopy(resource.inputs))
    assert doc.get("apiVersion", api_version) == api_version
    assert doc.get("kind", kind) == kind
    return {**doc, "apiVersion": api_version, "kind": kind}


def kube_version(spec: K3s) -> str:
    """`v1.33.5+k3s1` -> `1.33`."""
    return ".".join(spec.version.removeprefix("v").split(".")[:2])


def spec_of(cluster: Cluster) -> K3s:
    assert cluster.k3s is not None
    return cluster.k3s


def owner(run: ProgramRun, w: Workload) -> Resource:
    """The workload's Deployment or StatefulSet."""
    return next(
        r
        for r in run.of_type(tokens.STATEFUL_SET if w.volumes else tokens.DEPLOYMENT)
        if r.inputs["metadata"]["name"] == w.name and r.inputs["metadata"]["namespace"] == w.namespace
    )


def of_kind(run: ProgramRun, typ: str, w: Workload) -> list[Resource]:
    return [
        r
        for r in run.of_type(typ)
        if r.inputs["metadata"].get("namespace") == w.namespace
        and r.inputs["metadata"]["name"] in (w.name, f"{w.name}-internal")
    ]


@pytest.mark.parametrize("stack", STACKS)
def test_every_manifest_passes_kubernetes_validate_strict(stack: str) -> None:
    run, spec = program(stack), spec_of(stack_cluster(stack))
    objects = k8s_objects(run)
    assert len(objects) >= 10
    for resource in objects:
        try:
            kubernetes_validate.validate(manifest(resource), kube_version(spec), strict=True)
        except kubernetes_validate.ValidationError as err:
            pytest.fail(f"{resource.type} {resource.name}: {err.message} at {list(err.path)}")


def test_validation_catches_a_bad_manifest() -> None:
    run = program("home")
    deployment = manifest(next(r for r in run.of_type(tokens.DEPLOYMENT)))
    deployment["spec"]["replicas"] = "three"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, "1.33", strict=True)
    deployment["spec"]["replicas"] = 3
    deployment["spec"]["replica"] = 3  # strict: an unknown field is an error
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, "1.33", strict=True)


@pytest.mark.parametrize("stack", STACKS)
def test_every_kubernetes_resource_uses_the_k3s_provider(stack: str) -> None:
    run = program(stack)
    providers = run.of_type(K8S_PROVIDER)
    assert len(providers) == 1
    ref = f"{providers[0].urn}::"
    for resource in run.resources:
        if resource.type.startswith("kubernetes:"):
            assert resource.provider.startswith(ref), f"{resource.type} {resource.name} uses {resource.provider!r}"


@pytest.mark.parametrize("stack", STACKS)
def test_every_workload_has_a_disruption_budget_and_spreads_over_proxmox_hosts(stack: str) -> None:
    run, cluster = program(stack), stack_cluster(stack)
    for w in cluster.workloads:
        obj = owner(run, w)
        selector = obj.inputs["spec"]["selector"]["matchLabels"]
        pdbs = of_kind(run, tokens.PDB, w)
        assert len(pdbs) == 1, w.name
        pdb = pdbs[0].inputs["spec"]
        # maxUnavailable 1: HA apps keep a replica up; a single-replica app can still be drained.
        assert pdb["maxUnavailable"] == 1 and "minAvailable" not in pdb
        assert pdb["selector"]["matchLabels"] == selector
        constraints = {c["topologyKey"]: c for c in obj.inputs["spec"]["template"]["spec"]["topologySpreadConstraints"]}
        assert set(constraints) == {PROXMOX_NODE_LABEL, "kubernetes.io/hostname"}
        hosts = constraints[PROXMOX_NODE_LABEL]
        assert hosts["whenUnsatisfiable"] == ("DoNotSchedule" if w.ha else "ScheduleAnyway")
        assert hosts["maxSkew"] == 1
        # A dead host's tainted nodes must not count as empty domains that block rescheduling.
        assert hosts["nodeTaintsPolicy"] == "Honor"
        assert constraints["kubernetes.io/hostname"]["whenUnsatisfiable"] == "ScheduleAnyway"
        for c in constraints.values():
            assert c["labelSelector"]["matchLabels"] == selector


@pytest.mark.parametrize("stack", STACKS)
def test_workloads_carry_replicas_resources_and_the_ha_label(stack: str) -> None:
    run, cluster = program(stack), stack_cluster(stack)
    for w in cluster.workloads:
        obj = owner(run, w)
        assert obj.inputs["metadata"]["labels"][HA_LABEL] == ("true" if w.ha else "false")
        assert obj.inputs["spec"]["replicas"] == w.replicas
        if w.ha:
            assert w.replicas >= 2
        [container] = obj.inputs["spec"]["template"]["spec"]["containers"]
        assert container["image"] == w.image
        resources = container["resources"]
        assert resources["requests"] == {"cpu": f"{w.cpu_millicores}m", "memory": f"{w.memory_mib}Mi"}
        assert resources["limits"] == {"memory": f"{w.memory_mib}Mi"}
        assert {e["name"]: e["value"] for e in container.get("env", [])} == w.env
        assert [(p["name"], p["containerPort"], p["protocol"]) for p in container.get("ports", [])] == [
            (p.name, p.port, p.protocol) for p in w.ports
        ]


def test_a_pod_is_ready_once_it_answers_on_its_port() -> None:
    run, cluster = program("home"), stack_cluster("home")
    probes = {
        w.name: owner(run, w).inputs["spec"]["template"]["spec"]["containers"][0].get("readinessProbe")
        for w in cluster.workloads
    }
    # AdGuard: its admin port answers from the first-run wizard on, DNS only after it.
    assert probes["adguard-home"] == {"tcpSocket": {"port": "http"}, "periodSeconds": 10, "failureThreshold": 3}
    assert probes["whoami"] == {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 10, "failureThreshold": 3}
    # The rest: their first TCP port.
    assert probes["jellyfin"] is not None and probes["jellyfin"]["tcpSocket"] == {"port": "http"}
    udp_only = Workload(
        name="dns", image="example/dns:1@sha256:" + "0" * 64, ports=[{"name": "dns", "port": 53, "protocol": "UDP"}]
    )
    assert udp_only.readiness_port is None
    # The first TCP port by position, whatever it is called (every shipped one is called http).
    admin_second = Workload.model_validate(
        {
            "name": "mail",
            "image": "example/mail:1@sha256:" + "0" * 64,
            "ports": [
                {"name": "dns", "port": 53, "protocol": "UDP"},
                {"name": "smtp", "port": 25},
                {"name": "http", "port": 8080},
            ],
        }
    )
    assert admin_second.readiness_port == "smtp"


@pytest.mark.parametrize("stack", STACKS)
def test_workloads_with_volumes_are_protected_statefulsets_on_the_default_class(stack: str) -> None:
    run, cluster = program(stack), stack_cluster(stack)
    for w in cluster.workloads:
        obj = owner(run, w)
        if not w.volumes:
            assert obj.type == tokens.DEPLOYMENT
            continue
        assert obj.type == tokens.STATEFUL_SET
        assert obj.protect
        spec = obj.inputs["spec"]
        claims = {c["metadata"]["name"]: c["spec"] for c in spec["volumeClaimTemplates"]}
        assert set(claims) == {v.name for v in w.volumes}
        for v in w.volumes:
            assert claims[v.name]["storageClassName"] == STORAGE_CLASS
            assert claims[v.name]["accessModes"] == ["ReadWriteOnce"]
            assert claims[v.name]["resources"]["requests"]["storage"] == f"{v.size_gib}Gi"
        mounts = spec["template"]["spec"]["containers"][0]["volumeMounts"]
        assert {(m["name"], m["mountPath"]) for m in mounts} == {(v.name, v.mount_path) for v in w.volumes}
        assert spec["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}


@pytest.mark.parametrize("stack", STACKS)
def test_exposed_ports_get_a_load_balancer_address_the_others_stay_in_cluster(stack: str) -> None:
    run, cluster = program_set_up(stack), cluster_set_up(stack)
    for w in cluster.workloads:
        services = {r.inputs["metadata"]["name"]: r.inputs for r in of_kind(run, tokens.K8S_SERVICE, w)}
        main = services[w.name]
        # An exposed web port goes through the gateway (plan/routes.py), the others keep the address.
        exposed = lan_ports(cluster, w)
        internal = [p for p in w.ports if p not in exposed]
        if exposed:
            assert main["spec"]["type"] == "LoadBalancer"
            assert [p["name"] for p in main["spec"]["ports"]] == [p.name for p in exposed]
            annotations = main["metadata"].get("annotations", {})
            if w.load_balancer_ip is not None:
                assert annotations[KUBE_VIP_LB_ANNOTATION] == str(w.load_balancer_ip)
            else:
                assert KUBE_VIP_LB_ANNOTATION not in annotations
        else:
            assert main["spec"]["type"] == "ClusterIP"
        if exposed and internal:
            assert [p["name"] for p in services[f"{w.name}-internal"]["spec"]["ports"]] == [p.name for p in internal]
            assert services[f"{w.name}-internal"]["spec"]["type"] == "ClusterIP"
        else:
            assert f"{w.name}-internal" not in services


@pytest.mark.parametrize("stack", STACKS)
def test_each_namespace_is_declared_once(stack: str) -> None:
    run, cluster = program(stack), stack_cluster(stack)
    names = [r.inputs["metadata"]["name"] for r in run.of_type(tokens.K8S_NAMESPACE)]
    assert len(names) == len(set(names))
    assert {w.namespace for w in cluster.workloads} <= set(names)


@pytest.mark.parametrize("stack", STACKS)
def test_ceph_csi_uses_the_restricted_client_and_the_kubernetes_pool(stack: str) -> None:
    run, cluster = program(stack), stack_cluster(stack)
    spec = spec_of(cluster)
    [release] = [r for r in run.of_type(tokens.HELM_RELEASE) if r.inputs["chart"] == CSI_CHART]
    assert release.inputs["chart"] == CSI_CHART
    assert release.inputs["version"] == spec.ceph_csi_chart_version
    assert release.inputs["repositoryOpts"]["repo"] == CSI_REPOSITORY
    [csi_config] = release.inputs["values"]["csiConfig"]
    assert csi_config["monitors"] == [f"{cluster.public_address(cluster.node(m))}:6789" for m in cluster.ceph.monitors]
    assert release.inputs["values"]["secret"] == {"create": False}
    [secret] = [r for r in run.of_type(tokens.K8S_SECRET) if r.parent_name == f"{cluster.name}-platform"]
    # userID and userKey come from the Ceph layer's outputs: unknown in a preview, and secret.
    assert "stringData" in secret.secret_paths
    [storage_class] = run.of_type(tokens.STORAGE_CLASS)
    sc = storage_class.inputs
    assert sc["metadata"]["name"] == STORAGE_CLASS
    assert sc["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"
    assert sc["provisioner"] == CSI_DRIVER
    assert sc["reclaimPolicy"] == "Retain"
    assert sc["allowVolumeExpansion"] is True
    assert sc["parameters"]["pool"] == cluster.ceph.kubernetes_pool.name
    assert sc["parameters"]["imageFeatures"] == "layering"
    for step in ("provisioner", "controller-expand", "node-stage"):
        assert sc["parameters"][f"csi.storage.k8s.io/{step}-secret-name"] == secret.inputs["metadata"]["name"]


@pytest.mark.parametrize("stack", STACKS)
def test_load_balancer_addresses_come_from_the_spec_pool(stack: str) -> None:
    run, spec = program(stack), spec_of(stack_cluster(stack))
    [config] = [r for r in run.of_type(tokens.K8S_CONFIG_MAP) if r.inputs["metadata"]["name"] == "kubevip"]
    assert config.inputs["metadata"]["namespace"] == "kube-system"
    pool = spec.load_balancer_pool
    assert config.inputs["data"] == {"range-global": f"{pool.start}-{pool.end}"}
    [provider] = [r for r in run.of_type(tokens.DEPLOYMENT) if r.name == "kube-vip-cloud-provider"]
    assert provider.inputs["metadata"]["namespace"] == "kube-system"


def test_statefulsets_are_governed_by_a_headless_service() -> None:
    run = program("home")
    services = {
        (r.inputs["metadata"]["namespace"], r.inputs["metadata"]["name"]): r.inputs
        for r in run.of_type(tokens.K8S_SERVICE)
    }
    for sts in run.of_type(tokens.STATEFUL_SET):
        namespace = sts.inputs["metadata"]["namespace"]
        governing = services[(namespace, sts.inputs["spec"]["serviceName"])]
        assert governing["spec"]["clusterIP"] == "None"
        assert governing["spec"]["type"] == "ClusterIP"


def test_a_larger_volume_grows_the_claims_not_the_protected_statefulset() -> None:
    data = stack_data("home")
    jellyfin = next(i for i, w in enumerate(data["workloads"]) if w["name"] == "jellyfin")
    run = program_with("home", patched(data, {f"workloads[{jellyfin}].volumes[0].size_gib": 40}))
    [sts] = [r for r in run.of_type(tokens.STATEFUL_SET) if r.name == "media-jellyfin"]
    # The template cannot change in the API; it stays as created, and Pulumi does not try to.
    assert "spec.volumeClaimTemplates" in sts.ignore_changes and sts.protect
    [claim] = [
        r for r in run.resources if r.type == "kubernetes:core/v1:PersistentVolumeClaimPatch" and "jellyfin" in r.name
    ]
    # The name the StatefulSet controller gives replica 0's claim: <template>-<statefulset>-<ordinal>.
    assert claim.inputs["metadata"]["name"] == "config-jellyfin-0"
    assert claim.inputs["metadata"]["namespace"] == "media"
    assert claim.inputs["metadata"]["annotations"] == {"pulumi.com/patchForce": "true"}
    assert claim.inputs["spec"]["resources"]["requests"] == {"storage": "40Gi"}
    assert sts.urn in claim.dependencies  # the claim exists once the StatefulSet is ready


def test_every_replicas_claim_of_every_volume_is_sized() -> None:
    run, cluster = program("home"), stack_cluster("home")
    patches = {r.inputs["metadata"]["name"] for r in run.resources if r.type.endswith("PersistentVolumeClaimPatch")}
    expected = {f"{v.name}-{w.name}-{i}" for w in cluster.workloads for v in w.volumes for i in range(w.replicas)}
    assert patches == expected and expected


def test_a_host_network_workload_shares_its_vm_network_in_a_namespace_that_admits_it() -> None:
    run = program_set_up("home")
    [sts] = [r for r in run.of_type(tokens.STATEFUL_SET) if r.name == "home-home-assistant"]
    pod = sts.inputs["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True and pod["dnsPolicy"] == "ClusterFirstWithHostNet"
    namespaces = {r.name: r.inputs["metadata"]["labels"] for r in run.of_type(tokens.K8S_NAMESPACE)}
    assert namespaces["home"] == {
        "pod-security.kubernetes.io/enforce": "privileged",
        "pod-security.kubernetes.io/warn": "baseline",
        "pod-security.kubernetes.io/audit": "baseline",
    }
    # The others enforce baseline, and warn and audit at restricted (tests/test_k8s_hardening.py).
    assert namespaces["media"]["pod-security.kubernetes.io/enforce"] == "baseline"
    [jellyfin] = [r for r in run.of_type(tokens.STATEFUL_SET) if r.name == "media-jellyfin"]
    assert "hostNetwork" not in jellyfin.inputs["spec"]["template"]["spec"]


def test_a_workload_that_keeps_client_addresses_gets_a_local_load_balancer() -> None:
    run = program("home")
    services = {r.name: r.inputs["spec"] for r in run.of_type(tokens.K8S_SERVICE)}
    assert services["dns-adguard-home"]["type"] == "LoadBalancer"
    assert services["dns-adguard-home"]["externalTrafficPolicy"] == "Local"
    assert "externalTrafficPolicy" not in services["media-jellyfin"]


def test_apps_awaiting_setup_stay_off_the_lan_until_the_spec_says_it_is_done() -> None:
    run = program("home")
    services = {r.name: r.inputs["spec"] for r in run.of_type(tokens.K8S_SERVICE)}
    for key in ("home-home-assistant", "media-jellyfin", "monitoring-uptime-kuma"):
        assert services[key]["type"] == "ClusterIP", key
    assert services["dns-adguard-home"]["type"] == "LoadBalancer"  # seeded: no open first-run page
    [assistant] = [r for r in run.of_type(tokens.STATEFUL_SET) if r.name == "home-home-assistant"]
    pod = assistant.inputs["spec"]["template"]["spec"]
    assert "hostNetwork" not in pod  # on its VM's network only once set up
    # NET_RAW needs the privileged namespace of the host network: not while setup is pending.
    assert "NET_RAW" not in pod["containers"][0]["securityContext"]["capabilities"].get("add", [])
    namespaces = {r.name: r.inputs["metadata"]["labels"] for r in run.of_type(tokens.K8S_NAMESPACE)}
    assert namespaces["home"]["pod-security.kubernetes.io/enforce"] == "baseline"
    after = program_set_up("home")
    services = {r.name: r.inputs["spec"] for r in after.of_type(tokens.K8S_SERVICE)}
    # Once set up, Jellyfin is on the LAN through the gateway, at its name over HTTPS.
    assert services["media-jellyfin"]["type"] == "ClusterIP"
    routes = {r.name: r.inputs["spec"].get("hostnames") for r in after.of_type(tokens.HTTP_ROUTE)}
    assert routes["media-jellyfin-route"] == ["jellyfin.home.arpa"]
