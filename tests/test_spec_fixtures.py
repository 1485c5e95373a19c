"""Every refusal the spec and placement can give has an invalid fixture that produces it.

The messages are read from the source (each f-string passed to ValueError or PlacementError,
appended to a check's findings, or returned as a reason), turned into patterns, and matched
against what the fixtures produce. A new check without a fixture fails here.
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

SOURCES = [*sorted((ROOT / "spec").glob("*.py")), ROOT / "plan" / "placement.py", ROOT / "plan" / "capacity.py"]
# Refusals of the stack file rather than the spec: test_preview and test_secrets cover them.
ELSEWHERE = {"secrets.py"}


def _pattern(node: ast.expr) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return re.escape(node.value)
    if isinstance(node, ast.JoinedStr):
        return "".join(
            re.escape(v.value) if isinstance(v, ast.Constant) and isinstance(v.value, str) else ".*?"
            for v in node.values
        )
    return None


def _messages(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        text: ast.expr | None = None
        if isinstance(node, ast.Call) and node.args:
            name = getattr(node.func, "id", getattr(node.func, "attr", None))
            if name in ("ValueError", "PlacementError", "append"):
                text = node.args[0]
        elif isinstance(node, ast.ListComp):
            text = node.elt
        elif isinstance(node, ast.Return) and isinstance(node.value, ast.JoinedStr):
            text = node.value
        pattern = _pattern(text) if text is not None else None
        if pattern is not None and len(pattern) > 12:  # a real sentence, not a list item or a key
            found.append((getattr(node, "lineno", 0), pattern))
    return found


@cache
def produced() -> str:
    out = []
    for fixture in sorted((FIXTURES / "invalid").glob("*.yaml")):
        case = yaml.safe_load(fixture.read_text())
        try:
            validate(patched(stack_data(case["base"]), case.get("set"), case.get("delete")))
        except (SpecError, PlacementError) as exc:
            out.append(str(exc))
    return "\n".join(out)


CHECKS = [(p.name, line, pattern) for p in SOURCES if p.name not in ELSEWHERE for line, pattern in _messages(p)]


def test_the_sources_hold_the_checks() -> None:
    # Guards the reader above: if it found far fewer messages, the test below would be vacuous.
    assert len(CHECKS) > 80


@pytest.mark.parametrize(("source", "line", "pattern"), CHECKS, ids=[f"{s}:{n}" for s, n, _ in CHECKS])
def test_each_check_has_a_fixture(source: str, line: int, pattern: str) -> None:
    assert re.search(pattern, produced()), f"no invalid fixture produces {source}:{line}"
