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
