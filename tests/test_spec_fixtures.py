"""Every refusal the spec and placement can give has an invalid fixture that produces it.

Each message is read from the source (an f-string or string passed to ValueError or
PlacementError, appended to a check's problems, added in a comprehension, or returned) and turned
into a pattern that must match a whole line some fixture produces. A field that names the item
is resolved from the function's own assignment (`where = f"guests[{g.name}]"` makes
`guests\\[.*\\]`), so the same sentence about a node and about a guest are two checks, each
needing its own fixture. A new check without a fixture fails here.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest
import yaml

from offline.harness import ROOT
from plan.placement import PlacementError
from spec import SpecError
from tests.support import FIXTURES, patched, stack_data, validate

# spec/load.py and spec/secrets.py refuse the stack file itself (test_preview, test_secrets).
SOURCES = [
    *sorted(p for p in (ROOT / "spec").glob("*.py") if p.name not in {"load.py", "secrets.py"}),
    ROOT / "plan" / "placement.py",
    ROOT / "plan" / "capacity.py",
]
# A message has at least this much fixed text.
SUBSTANCE = 12
# Reasons no spec can produce, with where they are covered instead.
NOT_FROM_A_SPEC = {
    # Failover only: placement refuses a spec with every node in maintenance before asking why.
    re.escape("every other node is down or in maintenance"): "tests/test_failover.py",
}


def _pattern(node: ast.expr, names: dict[str, str]) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return re.escape(node.value)
    if isinstance(node, ast.JoinedStr):
        parts = []
        for v in node.values:
            if isinstance(v, ast.Constant) and isinstance(v.value, str):
                parts.append(re.escape(v.value))
            elif isinstance(v, ast.FormattedValue) and isinstance(v.value, ast.Name) and v.value.id in names:
                parts.append(names[v.value.id])
            else:
                parts.append(".*")
        return "".join(parts)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _pattern(node.left, names), _pattern(node.right, names)
        return None if left is None or right is None else left + right
    return None


def _substance(pattern: str) -> int:
    return max((len(run) for run in re.split(r"\.\*", pattern)), default=0)


def _texts(node: ast.AST) -> list[ast.expr]:
    """The message expressions a node holds, if it is one of the forms a check reports by."""
    if isinstance(node, ast.Call) and node.args:
        name = getattr(node.func, "id", getattr(node.func, "attr", None))
        # `problems.append(...)`: a check's list, not e.g. `found.setdefault(...).append(location)`.
        appended = name == "append" and isinstance(getattr(node.func, "value", None), ast.Name)
        if name in ("ValueError", "PlacementError") or appended:
            return [node.args[0]]
    if isinstance(node, ast.ListComp):
        return [node.elt]
    if isinstance(node, ast.Return) and node.value is not None:
        return list(node.value.elts) if isinstance(node.value, ast.List) else [node.value]
    return []


def _messages(path: Path) -> list[str]:
    found = []
    for fn in ast.walk(ast.parse(path.read_text())):
        if not isinstance(fn, ast.FunctionDef):
            continue
        names: dict[str, str] = {}
        for node in ast.walk(fn):  # a function's f-string locations (`where = ...`) name its items
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                located = _pattern(node.value, {}) if isinstance(node.value, ast.JoinedStr) else None
                if located is not None:
                    names[node.targets[0].id] = located
        for node in ast.walk(fn):
            for text in _texts(node):
                pattern = _pattern(text, names)
                if pattern is not None and _substance(pattern) >= SUBSTANCE:
                    found.append(pattern)
    return sorted(set(found))


@cache
def produced() -> list[str]:
    """Every line of every invalid fixture's refusal."""
    lines = []
    for fixture in sorted((FIXTURES / "invalid").glob("*.yaml")):
        case = yaml.safe_load(fixture.read_text())
        try:
            validate(patched(stack_data(case["base"]), case.get("set"), case.get("delete")))
        except (SpecError, PlacementError) as exc:
            lines += str(exc).splitlines()
    return lines


CHECKS = [(p.name, pattern) for p in SOURCES for pattern in _messages(p) if pattern not in NOT_FROM_A_SPEC]


def test_the_sources_hold_the_checks() -> None:
    # Guards the reader: if it found far fewer messages, the test below would be vacuous.
    assert len(CHECKS) > 80


@pytest.mark.parametrize(("source", "pattern"), CHECKS, ids=[f"{s}:{p[:40]}" for s, p in CHECKS])
def test_each_check_has_a_fixture(source: str, pattern: str) -> None:
    # The message is the whole line, or its end where the location comes before it (`where: ...`).
    anchored = re.compile(rf"^(.*: )?{pattern}$")
    assert any(anchored.match(line) for line in produced()), f"no invalid fixture produces {source}: {pattern}"
