"""Keep the offline preview linear in the size of the cluster (installed by `offline.harness`).

For every dependency a resource declares, the Pulumi Python SDK (3.272) checks that the new edge
would not close a cycle by walking everything the dependency transitively depends on, through
nested generators: the cost of one check grows with both the size and the depth of the graph.
A cluster's graph is deep by nature (nodes join one at a time, Ceph before guests before k3s
before apps), so previews grew quadratically with the number of nodes (benchmarks/).

The walk looks for the resource being registered. A resource that nothing depends on yet
cannot be reached by any walk, so the answer is known at once. Otherwise the same walk runs as
a plain loop over a stack (the same answer, without a generator frame per level of depth), so
cycles are refused exactly as before.

It replaces private functions of the SDK, so it only runs offline (the preview, the tests, the
benchmarks), never in the program the engine runs, and only on the exact module it was written
against: a Pulumi upgrade that changes `resource_cycle_breaker.py` stops it with an error that
says to check it again, instead of patching something else.
"""

from __future__ import annotations

import hashlib
import inspect
from typing import Any

from pulumi.runtime import resource_cycle_breaker as breaker

_HAS_DEPENDENTS = "_homelab_has_dependents"
# sha256 of `pulumi/runtime/resource_cycle_breaker.py` in pulumi 3.272.0, the version pinned in
# requirements.txt and the one this shortcut was checked against.
WRITTEN_FOR = "58bcb372e5e36ee03b06ca0eaf28dcea9696777d5c047b9ebf9bcfe98595c516"


class SdkChangedError(RuntimeError):
    """The SDK module this shortcut replaces parts of is not the one it was written for."""


def source_digest() -> str:
    return hashlib.sha256(inspect.getsource(breaker).encode()).hexdigest()


def install() -> None:
    if getattr(breaker, "_homelab_patched", False):
        return
    if source_digest() != WRITTEN_FOR:
        raise SdkChangedError(
            "pulumi/runtime/resource_cycle_breaker.py is not the one offline/sdk_speedup.py was written for "
            "(the pinned Pulumi SDK changed): check `_add_dep`, `_deps` and `_reachable` against the new "
            "version, then update WRITTEN_FOR"
        )
    original_add_dep = breaker._add_dep
    deps = breaker._deps

    def add_dep(from_resource: Any, to_resource: Any) -> None:
        setattr(to_resource, _HAS_DEPENDENTS, True)
        original_add_dep(from_resource, to_resource)

    def reachable(from_resource: Any, to_resource: Any) -> bool:
        if from_resource is to_resource:
            return True
        if not getattr(to_resource, _HAS_DEPENDENTS, False):
            return False
        visited = {id(from_resource)}
        stack = [from_resource]
        while stack:
            for dep in deps(stack.pop()):
                if dep is to_resource:
                    return True
                if id(dep) not in visited:
                    visited.add(id(dep))
                    stack.append(dep)
        return False

    breaker._add_dep = add_dep
    breaker._reachable = reachable
    breaker._homelab_patched = True  # type: ignore[attr-defined]
