"""Whole stacks for the policy tests, and edits that break them one rule at a time."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from offline.engine import Shape
from offline.harness import PROJECT, Resource, config_for
from tests.support import patched, program


def full_stack(stack: str, shape: Shape = Shape.FIRST) -> list[Resource]:
    """Every resource the shipped stack's program declares in a preview of `shape` (a fresh list to edit)."""
    return list(program(stack, shape).resources)


def urn(stack: str, typ: str, name: str) -> str:
    return f"urn:pulumi:{stack}::{PROJECT}::{typ}::{name}"


def resource(
    stack: str, typ: str, name: str, inputs: dict[str, Any], protect: bool = False, outputs: bool = True
) -> Resource:
    """A resource the program does not declare, added to a stack to test a rule on it (its outputs
    the inputs, as a configured provider plans them, unless `outputs` is False)."""
    return Resource(
        urn=urn(stack, typ, name),
        type=typ,
        name=name,
        parent="",
        custom=True,
        inputs=inputs,
        protect=protect,
        outputs=dict(inputs) if outputs else {},
    )


def _pick(resources: Iterable[Resource], name: str, typ: str | None) -> list[Resource]:
    return [r for r in resources if r.name == name and (typ is None or r.type == typ)]


def named(resources: Iterable[Resource], name: str, typ: str | None = None) -> Resource:
    matches = _pick(resources, name, typ)
    assert len(matches) == 1, f"{len(matches)} resources named {name}"
    return matches[0]


def edit(
    resources: Iterable[Resource],
    name: str,
    set_: dict[str, Any] | None = None,
    typ: str | None = None,
    protect: bool | None = None,
    delete: list[str] | None = None,
) -> list[Resource]:
    """A copy of `resources` with `a.b[0].c` input paths of the one resource `name` (of `typ`) changed,
    and its outputs alike where the provider answered with any (as a configured one does)."""
    resources = list(resources)
    target = named(resources, name, typ)
    changed = dataclasses.replace(
        target,
        inputs=patched(target.inputs, set_, delete),
        outputs=patched(target.outputs, set_, delete) if target.outputs else {},
        protect=target.protect if protect is None else protect,
    )
    return [changed if r is target else r for r in resources]


def without(resources: Iterable[Resource], name: str, typ: str | None = None) -> list[Resource]:
    resources = list(resources)
    target = named(resources, name, typ)
    return [r for r in resources if r is not target]


def of_type(resources: Iterable[Resource], typ: str) -> list[Resource]:
    return [r for r in resources if r.type == typ]


def config_with(stack: str, data: dict[str, Any]) -> dict[str, str]:
    """The stack's config with another spec (as the engine passes it: a JSON string)."""
    return config_for(stack, cluster=data)
