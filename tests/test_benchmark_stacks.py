"""The benchmark's generated stacks are valid specs of the size they claim."""

from __future__ import annotations

import pytest

from benchmarks.stacks import GUESTS_PER_NODE, generated_cluster
from tests.support import validate


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
    }
    table = readme_table(doc)
    assert "| home | 3 | 124 | 2.60 s | 4.30 | 21.0 | 104 MiB |" in table
    assert "- home preview within 1.5x the floor: **not met**" in table
    assert "- peak memory of the 100-node preview under 1 GiB: met" in table
