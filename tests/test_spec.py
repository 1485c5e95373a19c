"""The stack spec: every shipped stack is valid; every invalid fixture fails with its message."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from plan.placement import PlacementError
from spec import SpecError, parse_cluster
from tests.support import FIXTURES, STACKS, patched, stack_data, validate

INVALID = sorted((FIXTURES / "invalid").glob("*.yaml"))


@pytest.mark.parametrize("stack", STACKS)
def test_shipped_stacks_are_valid(stack: str) -> None:
    cluster = validate(stack_data(stack))
    assert cluster.name == stack


@pytest.mark.parametrize("fixture", INVALID, ids=lambda p: p.stem)
def test_invalid_fixture_is_rejected_with_its_message(fixture: Path) -> None:
    case = yaml.safe_load(fixture.read_text())
    data = patched(stack_data(case["base"]), case.get("set"), case.get("delete"))
    with pytest.raises((SpecError, PlacementError)) as err:
        validate(data)
    assert case["expect"] in str(err.value), f"got:\n{err.value}"


def test_errors_list_every_problem_with_its_path() -> None:
    data = patched(stack_data("home"), {"networks.lan.vlan": 0, "nodes[0].hardware.cores": 0, "colour": "blue"})
    with pytest.raises(SpecError) as err:
        parse_cluster(data)
    message = str(err.value)
    assert "networks.lan.vlan: Input should be greater than or equal to 1" in message
    assert "nodes[pve1].hardware.cores: Input should be greater than or equal to 1" in message
    assert "colour: unknown key" in message


def test_independent_cross_field_errors_are_reported_together() -> None:
    # Three problems in three subjects (an address, a guest, k3s): one run names all three.
    data = patched(
        stack_data("home"),
        {
            "nodes[1].address": "10.0.10.31",  # k3s-server-1's address
            "guests[5].node": "pve9",
            "k3s.api_vip": "10.0.99.1",
        },
    )
    with pytest.raises(SpecError) as err:
        parse_cluster(data)
    assert str(err.value).splitlines() == [
        "guests[k3s-server-1].address: address 10.0.10.31 is already used by nodes[pve2].address",
        "guests[backup].node: unknown node pve9",
        "k3s.api_vip 10.0.99.1 is outside the LAN 10.0.10.0/24",
    ]


def test_one_item_with_several_problems_lists_each_under_its_name() -> None:
    data = patched(stack_data("home"), {"workloads[4].replicas": 1, "workloads[4].env": {"API_TOKEN": "x"}})
    with pytest.raises(SpecError) as err:
        parse_cluster(data)
    lines = str(err.value).splitlines()
    assert lines[0] == "workloads[whoami]: replicas 1: an HA workload needs at least 2; set ha: false to accept one"
    assert lines[1].startswith("workloads[whoami]: env.API_TOKEN looks like a secret")


def test_an_item_without_a_name_is_named_by_its_index() -> None:
    data = patched(stack_data("home"), {"nodes[0].hardware.nics[1].speed_gbps": 0})
    with pytest.raises(SpecError, match=r"^nodes\[pve1\]\.hardware\.nics\[enp2s0\]\.speed_gbps: Input should be"):
        parse_cluster(data)
    data = patched(stack_data("home"), {"nodes[0].osds[0].device": "sda"})
    with pytest.raises(SpecError, match=r"^nodes\[pve1\]\.osds\[0\]\.device: String should match"):
        parse_cluster(data)


def test_spec_is_not_a_mapping() -> None:
    with pytest.raises(SpecError, match="expected a mapping"):
        parse_cluster(["not", "a", "cluster"])


def test_spec_package_does_not_import_pulumi() -> None:
    import subprocess
    import sys

    code = "import sys, spec, plan.placement, plan.power; print('pulumi' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
