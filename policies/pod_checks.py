"""`pod-security`: pods on the host network only where the spec asks for it, in namespaces whose
Pod Security level admits them.

A pod on the host network shares its VM's network: it can see and answer all of the LAN's
traffic at that address. Pod Security admits it only in a namespace that enforces `privileged`
(Kubernetes' "Pod Security Standards": baseline forbids hostNetwork), so the API refuses such a
pod anywhere else, at `pulumi up`, after everything before it changed. Judged here at preview:
- a Deployment or StatefulSet whose pods use the host network must be a spec workload with
  `host_network: true`;
- an app namespace holding such a workload must enforce `privileged`, and one holding none must
  not (privileged admits any pod with host access).
"""

from __future__ import annotations

from policies.props import Declared, get, k8s_name, known, labels, where
from policies.tokens import DEPLOYMENT, K8S_NAMESPACE, K8S_SERVICE, STATEFUL_SET
from spec import Cluster

ENFORCE = "pod-security.kubernetes.io/enforce"
POD_SECURITY_TYPES = (K8S_NAMESPACE, DEPLOYMENT, STATEFUL_SET)


def check_pod_security(r: Declared, cluster: Cluster) -> list[str]:
    if r.resource_type == K8S_NAMESPACE:
        return _namespace(r, cluster)
    if r.resource_type in (DEPLOYMENT, STATEFUL_SET):
        return _pods(r, cluster)
    return []


def _namespace(r: Declared, cluster: Cluster) -> list[str]:
    name = known(get(r.props, "metadata", "name"), f"namespace {r.name}'s name")
    apps = [w for w in cluster.workloads if w.namespace == name]
    if not apps:
        return []  # not an app namespace of the spec (the platform's own, for instance)
    level = labels(known(get(r.props, "metadata", "labels"), f"namespace {name}'s labels")).get(ENFORCE)
    on_host = [w.name for w in apps if w.on_host_network]
    if on_host and level != "privileged":
        return [
            f"namespace {name} enforces Pod Security {level or '(none)'}, which refuses the pods of "
            f"{', '.join(on_host)} on the host network; it must enforce privileged"
        ]
    if not on_host and level == "privileged":
        return [
            f"namespace {name} enforces Pod Security privileged, which admits any pod with host access, and no "
            "workload there runs on the host network; enforce baseline"
        ]
    return []


def _pods(r: Declared, cluster: Cluster) -> list[str]:
    on_host = known(get(r.props, "spec", "template", "spec", "hostNetwork"), f"{r.name}'s hostNetwork") is True
    if not on_host:
        return []
    name, namespace = k8s_name(r)
    if any(w.name == name and w.namespace == namespace and w.on_host_network for w in cluster.workloads):
        return []
    return [
        f"{where(namespace, name)}: its pods use the host network, which the spec does not ask for; set "
        "host_network: true on the workload if it needs the LAN itself"
    ]


def check_setup_pages(r: Declared, cluster: Cluster) -> list[str]:
    """`setup-pages-private`: no LoadBalancer puts an app's first-run page on the LAN while the
    spec says its setup is pending (whoever reaches the page first owns the app)."""
    if r.resource_type != K8S_SERVICE:
        return []
    if known(get(r.props, "spec", "type"), f"{r.name}'s type") != "LoadBalancer":
        return []
    _, namespace = k8s_name(r)
    selector = labels(known(get(r.props, "spec", "selector"), f"{r.name}'s selector"))
    pending = [
        w.name
        for w in cluster.workloads
        if w.setup_pending and w.namespace == namespace and selector.get("app.kubernetes.io/name") == w.name
    ]
    return [
        f"{where(namespace, k8s_name(r)[0])} puts {name}'s ports on the LAN while its setup is pending: whoever "
        "reaches its first-run page first owns it; finish the setup through kubectl port-forward, then set "
        "setup_pending: false"
        for name in pending
    ]
