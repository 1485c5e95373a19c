"""The benchmark's generated stacks are valid specs of the size they claim."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.stacks import GUESTS_PER_NODE, generated_cluster
from offline.harness import ROOT
from tests.support import validate


def run_once(*args: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.run_once", *args], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stderr == ""  # no warnings at exit either (an unclosed event loop prints one)
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("nodes", [3, 10, 100])
def test_generated_stack_is_valid(nodes: int) -> None:
    cluster = validate(generated_cluster(nodes))
    assert len(cluster.nodes) == nodes
    assert len(cluster.guests) == nodes * GUESTS_PER_NODE
    assert len(cluster.workloads) == nodes


def test_readme_table_shows_every_case_and_target() -> None:
    from benchmarks.preview_speed import TARGETS, readme_table

    doc = {
        "machine": {"date": "2026-11-29", "platform": "Linux", "cpus": 2, "python": "3.11.7"},
        "results": [
            {"case": "floor", "nodes": 0, "median_s": 0.6, "peak_mib": 62.0},
            {
                "case": "sdk-minimum",
                "nodes": 0,
                "resources": 124,
                "median_s": 1.9,
                "ratio_to_floor": 3.17,
                "ms_per_resource": 15.3,
                "peak_mib": 100.0,
            },
            {
                "case": "home",
                "nodes": 3,
                "resources": 124,
                "median_s": 2.6,
                "ratio_to_floor": 4.3,
                "ms_per_resource": 21.0,
                "peak_mib": 104.0,
            },
        ],
        "targets": dict.fromkeys(TARGETS, True) | {"home_within_1_5x_floor": False},
        "home_over_sdk_minimum": 1.37,
    }
    table = readme_table(doc)
    assert "| home | 3 | 124 | 2.60 s | 4.30 | 21.0 | 104 MiB |" in table
    assert "- home preview within 1.5x the floor: **not met**" in table
    assert "- peak memory of the 100-node preview under 1 GiB: met" in table
    assert "| sdk-minimum | - | 124 | 1.90 s | 3.17 | 15.3 | 100 MiB |" in table
    assert "- home preview / SDK minimum: 1.37x" in table


def test_preview_reports_the_sdk_modules_it_ran_and_the_minimum_replays_them(tmp_path: Path) -> None:
    home = run_once("--stack", "home", "--stack-dir", str(ROOT), "--out", str(tmp_path))
    modules = home["sdk_modules"]
    assert isinstance(modules, list)
    # Typed modules the program uses are there; ones the SDK only registered lazily are not.
    assert {"pulumi_kubernetes.core.v1", "pulumi_proxmoxve.vm", "pulumi_command.remote"} <= set(modules)
    assert "pulumi_kubernetes.batch" not in modules
    assert home["resources"] == len(json.loads((tmp_path / "home.json").read_text())["resources"])
    assert 0 < int(str(home["components"])) < int(str(home["resources"]))

    listing = tmp_path / "modules.json"
    listing.write_text(json.dumps(modules))
    minimum = run_once("--sdk-minimum", "5", "--components", "2", "--modules", str(listing))
    assert minimum["resources"] == 5
    replayed = minimum["sdk_modules"]
    assert isinstance(replayed, list)
    assert set(modules) <= set(replayed)
