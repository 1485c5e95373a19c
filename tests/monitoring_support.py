"""What the metrics stack's tests share: the real tools, and the files they read."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from offline.reports import Reports
from plan.monitoring import SERVICE_ACCOUNT_TOKEN, rule_groups
from policies import tokens
from tests.support import program, stack_cluster

HOME = stack_cluster("home")
DRAW = Reports.of(HOME).draw


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is missing: `make tools` installs it from Debian")
    return path


def run(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), cwd=cwd, capture_output=True, text=True, check=False, timeout=120)


def write(path: Path, doc: dict[str, Any]) -> Path:
    text = yaml.safe_dump(doc, sort_keys=False)
    # promtool opens the token file a scrape names: the one a pod has, stood in for here.
    if SERVICE_ACCOUNT_TOKEN in text:
        token = path.parent / "token"
        token.write_text("stand-in")
        text = text.replace(SERVICE_ACCOUNT_TOKEN, str(token))
    path.write_text(text)
    return path


def promtool_test(tmp_path: Path, tests: list[dict[str, Any]]) -> subprocess.CompletedProcess[str]:
    """`promtool test rules` of the home stack's rule groups with TESTS."""
    rules = write(tmp_path / "rules.yml", rule_groups(HOME, DRAW, 30))
    doc = {"rule_files": [str(rules)], "evaluation_interval": "1m", "tests": tests}
    return run(tool("promtool"), "test", "rules", str(write(tmp_path / "tests.yml", doc)), cwd=tmp_path)


def release_values(name: str) -> dict[str, Any]:
    [release] = [r for r in program("home").of_type(tokens.HELM_RELEASE) if r.name == name]
    values: dict[str, Any] = release.inputs["values"]
    return values
