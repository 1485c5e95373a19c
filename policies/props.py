"""Reading what the engine hands a policy: properties that may be absent or not known yet, and
the cluster spec from the stack config.

Resource policies get a resource's inputs, stack policies every resource's outputs (pulumi/pulumi
`pkg/resource/deploy/step_generator.go`). A value only `pulumi up` knows reads as UNKNOWN here,
never as a default; a policy that needs it raises `NotKnownYetError`, which the pack reports as an
advisory "can't run policy ... during preview" (pulumi-policy `policy.py`), never as a verdict.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any, Protocol

import pulumi.runtime
from pulumi_policy import PolicyResourceOptions
from pulumi_policy.proxy import UnknownValueError

from spec import CLUSTER_KEY, Cluster, SpecError, parse_cluster


class _Unknown:
    """A value the engine will only know after `pulumi up` (an output of another resource)."""

    def __repr__(self) -> str:
        return "<unknown>"


UNKNOWN: Any = _Unknown()


class NotKnownYetError(UnknownValueError):
    """A policy cannot judge yet: the facts it needs are only known after `pulumi up`."""

    def __init__(self, message: str) -> None:
        Exception.__init__(self, message)
        self.unknown_type_sentinel = ""
        self.props: list[str] = []
        self.message = message


class Declared(Protocol):
    """What the policies read of a resource: a PolicyResource or ResourceValidationArgs."""

    @property
    def resource_type(self) -> str: ...

    @property
    def props(self) -> Mapping[str, Any]: ...

    @property
    def urn(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def opts(self) -> PolicyResourceOptions: ...


def get(value: Any, *path: str | int) -> Any:
    """The value at `path`: None when absent, UNKNOWN when the engine does not know it yet."""
    try:
        for step in path:
            if isinstance(step, int):
                if isinstance(value, str | bytes) or not isinstance(value, Sequence) or step >= len(value):
                    return None
            elif not isinstance(value, Mapping) or step not in value:
                return None
            value = value[step]
    except UnknownValueError:
        return UNKNOWN
    return value


def k3s_objects_known(found: list[Declared], judged: str) -> list[Declared]:
    """FOUND, the k3s cluster's objects a stack policy reads; NotKnownYetError naming what is
    JUDGED later when their provider has answered with nothing yet (a first preview)."""
    if any(not r.props for r in found):
        raise NotKnownYetError(
            "the k3s cluster's objects have no outputs yet (their provider takes its kubeconfig from the cluster, "
            f"which `pulumi up` reads first): {judged}"
        )
    return found


def known(value: Any, what: str) -> Any:
    """`value`, or NotKnownYetError naming `what` when it is only known after `pulumi up`."""
    if value is UNKNOWN:
        raise NotKnownYetError(f"{what} is only known after `pulumi up`")
    return value


def items(value: Any) -> list[Any]:
    """The known elements of a list input (unknown ones are skipped)."""
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        return []
    out = []
    for i in range(len(value)):
        item = get(value, i)
        if item is not UNKNOWN:
            out.append(item)
    return out


def known_items(value: Any, what: str) -> list[Any]:
    """Every element of a list input, or NotKnownYetError when it or an element is unknown."""
    known(value, what)
    elements = items(value)
    if isinstance(value, Sequence) and not isinstance(value, str | bytes) and len(elements) < len(value):
        raise NotKnownYetError(f"{what} is only known after `pulumi up` (one of its elements)")
    return elements


def as_int(value: Any) -> int | None:
    """Numbers arrive as floats over the wire; None for absent, unknown or non-numbers."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)


def as_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def labels(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {}
    out = {}
    for key in value:
        v = get(value, key)
        if isinstance(v, str):
            out[str(key)] = v
    return out


def k8s_name(r: Declared) -> tuple[str, str | None]:
    """Name and namespace (Kubernetes' `default` when left out, None when not known yet)."""
    name = as_str(get(r.props, "metadata", "name")) or r.name
    namespace = get(r.props, "metadata", "namespace")
    if namespace is UNKNOWN:
        return name, None
    return name, as_str(namespace) or "default"


def where(namespace: str | None, name: str) -> str:
    return f"{namespace or '(namespace known after up)'}/{name}"


@lru_cache(maxsize=8)
def _parse(raw: str) -> Cluster | str:
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        return f"{CLUSTER_KEY} in this stack's config is not valid JSON ({exc}), so this policy cannot check anything"
    try:
        return parse_cluster(data)
    except SpecError as exc:
        return f"{CLUSTER_KEY} in this stack's config is invalid, so this policy cannot check anything:\n{exc}"


def spec_or_reason() -> Cluster | str:
    """The spec from the stack config the engine hands the pack, or why there is none (a violation
    to report; the program itself raises on the same config, see `components.stack.load_cluster`)."""
    raw = pulumi.runtime.get_config(CLUSTER_KEY)
    if raw is None:
        return (
            f"{CLUSTER_KEY} is missing from this stack's config: the policies take every figure "
            "(nodes, watts, budget, guest loads) from it, so nothing can be checked"
        )
    if not isinstance(raw, str):
        raw = json.dumps(raw)
    return _parse(raw)
