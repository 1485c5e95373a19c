"""Keep `pulumi preview` linear in the size of the cluster.

For every dependency a resource declares, the Pulumi Python SDK (3.272) checks that the new edge
would not close a cycle by walking everything the dependency transitively depends on, through
nested generators: the cost of one check grows with both the size and the depth of the graph.
A cluster's graph is deep by nature (nodes join one at a time, Ceph before guests before k3s
before apps), so previews grew quadratically with the number of nodes (benchmarks/).

The walk looks for the resource being registered. A resource that nothing depends on yet
cannot be reached by any walk, so the answer is known at once; the SDK's own walk still runs
whenever a resource already has dependents, so cycles are refused exactly as before.
"""

from __future__ import annotations

from typing import Any

from pulumi.runtime import resource_cycle_breaker as breaker

_HAS_DEPENDENTS = "_homelab_has_dependents"


def install() -> None:
    if getattr(breaker, "_homelab_patched", False):
        return
    original_add_dep = breaker._add_dep
    original_reachable = breaker._reachable

    def add_dep(from_resource: Any, to_resource: Any) -> None:
        setattr(to_resource, _HAS_DEPENDENTS, True)
        original_add_dep(from_resource, to_resource)

    def reachable(from_resource: Any, to_resource: Any) -> bool:
        if from_resource is not to_resource and not getattr(to_resource, _HAS_DEPENDENTS, False):
            return False
        return bool(original_reachable(from_resource, to_resource))

    breaker._add_dep = add_dep
    breaker._reachable = reachable
    breaker._homelab_patched = True  # type: ignore[attr-defined]
