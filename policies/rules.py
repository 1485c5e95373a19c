"""The homelab policies: what a preview must satisfy before `pulumi up` may touch the cluster.

Each policy takes its facts from what the engine knows at preview time, in a stack's first
preview and in later ones alike:
- stack policies judge the spec's plan (`plan_checks`): nodes, watts, budget, guest loads and
  placement come from the stack config (`homelab:cluster`), never from provider outputs;
- resource policies judge each declared resource's inputs (`guest_checks`, `replica_checks`,
  `link_checks`), and `guests-as-planned` holds every VM and container to the judged plan;
- `disruption-budgets` needs Kubernetes objects side by side, so it reads the stack's outputs,
  and says plainly that it cannot judge yet while the k3s provider has answered with nothing.
A value the engine does not know yet is never read as a default (`props.NotKnownYetError`).

The same `POLICIES` run in the pack process under the engine (`policies/__main__.py`) and
in-process on the resources the offline harness captures (`offline/policy_run.py`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Collection, Sequence
from pathlib import Path

# The pack ships inside this repo and shares its pure spec and power/failover model (`spec`,
# `plan`), so the repo root, the parent of this folder, must be importable however the engine
# starts the pack (it runs `policies/__main__.py` with only this folder on sys.path).
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from pulumi_policy import (  # noqa: E402
    EnforcementLevel,
    Policy,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from policies.backup_checks import (  # noqa: E402
    BACKUP_TYPES,
    check_backup_coverage,
    check_backup_retention,
    check_backup_targets,
    check_volume_coverage,
)
from policies.firewall_checks import FIREWALL_TYPES, check_deploy_path  # noqa: E402
from policies.guest_checks import (  # noqa: E402
    GUESTS,
    check_guest_as_planned,
    check_ha_declared,
    check_ha_shared_storage,
)
from policies.link_checks import check_protect_stateful, check_redundant_links  # noqa: E402
from policies.monitoring_checks import check_monitoring_coverage  # noqa: E402
from policies.network_checks import NIC_TYPES, check_guest_nic_vlans  # noqa: E402
from policies.plan_checks import (  # noqa: E402
    Finding,
    check_maintenance_redundancy,
    check_power_budget,
    check_survives_any_node,
    check_ups_runtime,
)
from policies.pod_checks import POD_SECURITY_TYPES, check_pod_security, check_setup_pages  # noqa: E402
from policies.props import Declared, NotKnownYetError, spec_or_reason  # noqa: E402
from policies.quorum_checks import check_quorum_members  # noqa: E402
from policies.replica_checks import REPLICATED, check_disruption_budgets, check_replica_counts  # noqa: E402
from policies.route_checks import (  # noqa: E402
    HTTPS_ONLY_TYPES,
    ROUTE_TYPES,
    check_gateway_address,
    check_https_only,
    check_route,
    check_routes_declared,
)
from policies.tokens import CLUSTER_COMPONENT, HELM_RELEASE, K8S_SERVICE  # noqa: E402
from spec import Cluster  # noqa: E402

PACK_NAME = "homelab-policies"
PACK_ENFORCEMENT = EnforcementLevel.MANDATORY


StackCheck = Callable[[Cluster, Sequence[Declared]], list[Finding]]


def _on_stack(*checks: StackCheck) -> Callable[[StackValidationArgs, ReportViolation], None]:
    """A stack policy made of `checks`, each given the spec and every resource (their outputs)."""

    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        cluster = spec_or_reason()
        if not isinstance(cluster, Cluster):
            report_violation(cluster, None)
            return
        # Every check runs: one that cannot judge yet must not hide the others' verdicts.
        waiting: NotKnownYetError | None = None
        for check in checks:
            try:
                findings = check(cluster, args.resources)
            except NotKnownYetError as exc:
                waiting = waiting or exc
                continue
            for message, urn in findings:
                report_violation(message, urn)
        if waiting is not None:
            raise waiting

    return validate


def _on_plan(check: Callable[[Cluster], list[Finding]]) -> StackCheck:
    """A check of the spec's plan alone, as a stack check."""
    return lambda cluster, _resources: check(cluster)


def _on_resource(
    check: Callable[[ResourceValidationArgs, Cluster], list[str]], types: Collection[str]
) -> Callable[[ResourceValidationArgs, ReportViolation], None]:
    """A resource check of the resources of `types` (so a missing spec is reported on them, not
    once for every resource of the stack)."""

    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        if args.resource_type not in types:
            return
        cluster = spec_or_reason()
        if not isinstance(cluster, Cluster):
            report_violation(cluster, None)
            return
        for message in check(args, cluster):
            report_violation(message, None)

    return validate


def _redundant_links(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    # Only the cluster component needs the spec (corosync's links); a bond is judged on its own.
    cluster = spec_or_reason() if args.resource_type == CLUSTER_COMPONENT else None
    for message in check_redundant_links(args, cluster):
        report_violation(message, None)


def _protect_stateful(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    for message in check_protect_stateful(args):
        report_violation(message, None)


POLICIES: list[Policy] = [
    StackValidationPolicy(
        name="power-budget",
        description="The modelled electrical draw of the nodes (idle plus the expected load of their planned "
        "guests) stays within power.budget_watts.",
        validate=_on_stack(_on_plan(check_power_budget)),
    ),
    StackValidationPolicy(
        name="ups-runtime",
        description="With a UPS: its rated watts cover the modelled peak of what it powers, and its battery lasts "
        "through the ride-through time and the orderly shutdown, with a margin.",
        validate=_on_stack(_on_plan(check_ups_runtime)),
    ),
    ResourceValidationPolicy(
        name="guests-as-planned",
        description="Every VM and container is one of the spec's guests, declared on the node, with the vCPUs "
        "and memory, and running or parked, as the plan the other policies judged.",
        validate=_on_resource(check_guest_as_planned, GUESTS),
    ),
    ResourceValidationPolicy(
        name="replica-counts",
        description="Ceph pools keep 3 copies on different hosts, HA workloads run 2+ replicas on distinct "
        "hosts, and every PodDisruptionBudget lets a drain evict one pod.",
        validate=_on_resource(check_replica_counts, REPLICATED),
    ),
    StackValidationPolicy(
        name="disruption-budgets",
        description="Every HA workload's pods are selected by a PodDisruptionBudget (judged once the k3s "
        "cluster's objects are known).",
        validate=_on_stack(check_disruption_budgets),
    ),
    ResourceValidationPolicy(
        name="deploy-path-open",
        description="No firewall rule or alias of the stack can drop the Proxmox API or SSH from the LAN, where "
        "the owner and the deploy path come from.",
        validate=_on_resource(check_deploy_path, FIREWALL_TYPES),
    ),
    ResourceValidationPolicy(
        name="guest-nic-vlans",
        description="Every guest NIC names its VLAN: an untagged one on a VLAN-aware bridge gets every VLAN "
        "as a trunk, the Ceph public VLAN included.",
        validate=_on_resource(check_guest_nic_vlans, NIC_TYPES),
    ),
    ResourceValidationPolicy(
        name="pod-security",
        description="Pods use the host network only where the spec asks (host_network), in namespaces that "
        "enforce the privileged Pod Security level; other app namespaces enforce baseline.",
        validate=_on_resource(check_pod_security, POD_SECURITY_TYPES),
    ),
    ResourceValidationPolicy(
        name="setup-pages-private",
        description="No LoadBalancer puts an app on the LAN while the spec says its first-run setup is pending.",
        validate=_on_resource(check_setup_pages, (K8S_SERVICE,)),
    ),
    ResourceValidationPolicy(
        name="https-routes",
        description="Every HTTPRoute is its workload's planned route: hosts one label under the domain (what the "
        "gateway's certificate covers), on the gateway's HTTPS listener, to a port the workload's Service has; the "
        "HTTP listener only redirects to HTTPS.",
        validate=_on_resource(check_route, ROUTE_TYPES),
    ),
    ResourceValidationPolicy(
        name="https-only",
        description="With a gateway, no LoadBalancer puts an HTTP port on the LAN in plain HTTP, unless its "
        "workload's plain_http says why.",
        validate=_on_resource(check_https_only, HTTPS_ONLY_TYPES),
    ),
    StackValidationPolicy(
        name="every-app-routed",
        description="Every exposed web app the spec puts behind the gateway has its HTTPRoute (judged once the k3s "
        "cluster's objects are known).",
        validate=_on_stack(check_routes_declared),
    ),
    ResourceValidationPolicy(
        name="gateway-address",
        description="The gateway's LoadBalancer address is the spec's, on the LAN, outside the LoadBalancer pool and "
        "no workload's.",
        validate=_on_resource(check_gateway_address, (HELM_RELEASE,)),
    ),
    StackValidationPolicy(
        name="backup-coverage",
        description="Every VM and container is in a backup job, and every workload volume's claim is copied by a "
        "VolSync ReplicationSource, or the spec's backups.skip says why it needs none.",
        validate=_on_stack(check_backup_coverage, check_volume_coverage),
    ),
    StackValidationPolicy(
        name="backup-off-cluster",
        description="No backup target (a PBS storage, the S3 store) is a node, a guest, an address of the k3s "
        "cluster or on the Ceph networks: a copy there dies with the cluster.",
        validate=_on_stack(check_backup_targets),
    ),
    ResourceValidationPolicy(
        name="backup-retention",
        description="A guest backup job and a volume's ReplicationSource keep at least a week of daily copies, "
        "unless the spec says why not.",
        validate=_on_resource(check_backup_retention, BACKUP_TYPES),
    ),
    StackValidationPolicy(
        name="monitoring-coverage",
        description="With monitoring in the spec: every TCP port a LoadBalancer puts on the LAN is probed, and a "
        "Watchdog alert feeds the dead-man's switch.",
        validate=_on_stack(check_monitoring_coverage),
    ),
    ResourceValidationPolicy(
        name="ha-shared-storage",
        description="Every HA guest's disks are on the shared Ceph storage, so another node can start it.",
        validate=_on_resource(check_ha_shared_storage, GUESTS),
    ),
    ResourceValidationPolicy(
        name="redundant-links",
        description="Every bond has two NICs, every storage-mesh node two cables, and corosync runs on two links.",
        validate=_redundant_links,
    ),
    StackValidationPolicy(
        name="survives-any-node",
        description="Quorum members come in odd numbers of at least 3, every HA guest is declared HA, and "
        "whichever node fails, its HA guests fit on the others, the draw stays within budget, Ceph stays writable "
        "and corosync and etcd keep quorum.",
        validate=_on_stack(check_quorum_members, _on_plan(check_survives_any_node), check_ha_declared),
    ),
    StackValidationPolicy(
        name="maintenance-redundancy",
        description="While a node is drained for maintenance, what the loss of another node would do (advisory: "
        "the owner chose that window).",
        validate=_on_stack(_on_plan(check_maintenance_redundancy)),
        enforcement_level=EnforcementLevel.ADVISORY,
    ),
    ResourceValidationPolicy(
        name="protect-stateful",
        description="Ceph pools and resources that hold volumes are protected against deletion.",
        validate=_protect_stateful,
        enforcement_level=EnforcementLevel.ADVISORY,
    ),
]


def enforcement_of(policy: Policy) -> EnforcementLevel:
    return policy.enforcement_level or PACK_ENFORCEMENT
