"""Shared test helpers: stack specs as data, patched variants, and cached program runs."""

from __future__ import annotations

import base64
import copy
import json
import re
import shlex
from functools import cache
from pathlib import Path
from typing import Any, cast

from offline.engine import Shape
from offline.harness import ROOT, ProgramRun, config_for, run_program
from plan.placement import plan_guests
from spec import CLUSTER_KEY, Cluster, parse_cluster, read_stack_config

STACKS = ("home", "lab")
# What a Ceph cluster answers in tests that stand in for one: its fsid and a client key.
CEPH_FSID = "5b1e2c3d-0000-4000-8000-0123456789ab"
CEPH_KEY = "AQBexampleexampleexampleexampleexampleAA=="
FIXTURES = Path(__file__).parent / "fixtures"


def stack_data(stack: str) -> dict[str, Any]:
    """The raw `homelab:cluster` value of a shipped stack file (a fresh copy)."""
    # A JSON round trip, not deepcopy: the stack files share hardware through YAML anchors, and
    # deepcopy would keep that sharing, so editing one node's hardware would edit them all.
    return cast(dict[str, Any], json.loads(json.dumps(read_stack_config(ROOT / f"Pulumi.{stack}.yaml")[CLUSTER_KEY])))


def stack_cluster(stack: str) -> Cluster:
    return parse_cluster(stack_data(stack))


_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _walk(doc: Any, path: str) -> tuple[Any, str | int]:
    steps: list[str | int] = [int(i) if i else k for k, i in _STEP.findall(path)]
    for step in steps[:-1]:
        doc = doc[step]
    return doc, steps[-1]


def patched(
    base: dict[str, Any], set_: dict[str, Any] | None = None, delete: list[str] | None = None
) -> dict[str, Any]:
    """A copy of a spec with `a.b[0].c` paths set or deleted."""
    doc = copy.deepcopy(base)
    for path in delete or []:
        parent, key = _walk(doc, path)
        del parent[key]
    for path, value in (set_ or {}).items():
        parent, key = _walk(doc, path)
        parent[key] = value
    return doc


def validate(data: dict[str, Any]) -> Cluster:
    """Everything `make preview` checks before declaring a resource: the spec, then placement."""
    cluster = parse_cluster(data)
    plan_guests(cluster)
    return cluster


def script_param(script: str, name: str) -> str:
    """The value of parameter NAME (`NAME=<shell-quoted>` in the header `remote.script` writes).
    A value may hold lines that look like assignments (a config file): the value ends at the
    first line break after which the quoting is whole."""
    start = re.search(rf"^{name}=", script, re.MULTILINE)
    assert start, name
    for end in re.finditer(r"\n(?=[A-Z][A-Z0-9_]*=|[^A-Z])", script[start.end() :]):
        try:
            words = shlex.split(script[start.end() : start.end() + end.start()])
        except ValueError:
            continue  # inside a quoted value
        if len(words) == 1:
            return words[0]
    raise AssertionError(name)


@cache
def program(stack: str, shape: Shape = Shape.FIRST) -> ProgramRun:
    """The shipped stack's program in a preview of `shape`, run once under mocks per test session."""
    return run_program(stack, config_for(stack), shape=shape)


def program_with(stack: str, data: dict[str, Any], shape: Shape = Shape.FIRST) -> ProgramRun:
    return run_program(stack, config_for(stack, cluster=data), shape=shape)


def set_up_data(stack: str) -> dict[str, Any]:
    """The stack's spec once every app's first-run setup is done (`setup_pending` off): what the
    apps look like on the LAN afterwards."""
    data = stack_data(stack)
    for workload in data.get("workloads", []):
        workload["setup_pending"] = False
    return data


@cache
def program_set_up(stack: str, shape: Shape = Shape.FIRST) -> ProgramRun:
    return program_with(stack, set_up_data(stack), shape)


def cluster_set_up(stack: str) -> Cluster:
    return parse_cluster(set_up_data(stack))


def nut_files(node: str, stack: str = "home") -> dict[str, str]:
    """The files the program puts on NODE for the UPS (components/nut.py): path -> content."""
    script = program(stack).named(f"{node}-nut").inputs["create"]
    assert isinstance(script, str)
    lines = script_param(script, "FILES").splitlines()
    return {path: base64.b64decode(data).decode() for path, _mode, _group, data in (line.split() for line in lines)}
