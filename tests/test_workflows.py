"""The GitHub workflows: schema-valid, no security findings, every action pinned by commit."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from offline.harness import ROOT

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
BIN = Path(sys.executable).parent


def test_there_are_workflows() -> None:
    assert {w.name for w in WORKFLOWS} >= {"pull-request.yml", "deploy.yml"}


def test_workflows_match_the_github_schema() -> None:
    result = subprocess.run(
        [BIN / "check-jsonschema", "--builtin-schema", "vendor.github-workflows", *map(str, WORKFLOWS)],
        check=False,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_zizmor_finds_nothing() -> None:
    result = subprocess.run(
        [BIN / "zizmor", "--offline", "--no-progress", str(ROOT / ".github" / "workflows")],
        check=False,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_every_action_is_pinned_by_commit(workflow: Path) -> None:
    uses = re.findall(r"uses:\s*([^\s#]+)", workflow.read_text())
    assert uses
    for ref in uses:
        assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", ref), f"{workflow.name}: {ref} is not pinned by SHA"


def test_home_waits_for_the_lab_and_an_approval() -> None:
    deploy = yaml.safe_load((ROOT / ".github" / "workflows" / "deploy.yml").read_text())
    home = deploy["jobs"]["home"]
    assert home["needs"] == "lab" and home["environment"] == "home"
    assert deploy["concurrency"]["cancel-in-progress"] is False


def test_pull_requests_run_make_test_and_skip_cloud_preview_on_forks() -> None:
    pr = yaml.safe_load((ROOT / ".github" / "workflows" / "pull-request.yml").read_text())
    steps = [s.get("run", "") for s in pr["jobs"]["offline"]["steps"]]
    assert "make test" in steps
    assert "head.repo.full_name == github.repository" in pr["jobs"]["pulumi-preview"]["if"]
