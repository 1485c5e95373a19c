"""The pack as the engine runs it: its own process, the stack config in PULUMI_CONFIG, gRPC.

`python policies/__main__.py` serves the analyzer on 127.0.0.1 and prints its port; the test
calls GetAnalyzerInfo, Analyze (one resource) and AnalyzeStack (every resource of a stack) with
the engine's own stubs, properties as a protobuf Struct, as `pulumi preview --policy-pack
policies` would.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

from offline.harness import ROOT, Resource, config_for
from policies import rules
from tests.policy_support import edit, full_stack, named

STARTUP_SECONDS = 30


def struct(inputs: dict[str, Any]) -> struct_pb2.Struct:
    properties = struct_pb2.Struct()
    properties.update(inputs)
    return properties


def wire(r: Resource) -> analyzer_pb2.AnalyzerResource:
    return analyzer_pb2.AnalyzerResource(
        type=r.type,
        properties=struct(r.inputs),
        urn=r.urn,
        name=r.name,
        options=analyzer_pb2.AnalyzerResourceOptions(protect=r.protect, parent=r.parent),
        parent=r.parent,
        dependencies=r.dependencies,
    )


@pytest.fixture(scope="module")
def analyzer() -> Iterator[analyzer_pb2_grpc.AnalyzerStub]:
    """The pack process for the home stack (killed at the end), and a stub connected to it."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PULUMI_CONFIG")}
    env |= {
        "PULUMI_CONFIG": json.dumps(config_for("home")),
        "PULUMI_PROJECT": "homelab",
        "PULUMI_STACK": "home",
        "PULUMI_DRY_RUN": "true",
        # The engine starts the pack unbuffered too: the port line must arrive before the pack blocks.
        "PYTHONUNBUFFERED": "1",
    }
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "policies" / "__main__.py")],
        cwd=ROOT / "policies",  # as the engine does: only the pack folder is on sys.path
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], STARTUP_SECONDS)
        line = process.stdout.readline() if ready else ""
        if not line.strip().isdigit():
            process.kill()
            _, err = process.communicate(timeout=10)
            pytest.fail(f"the pack printed no port: {line!r}\n{err}")
        channel = grpc.insecure_channel(f"127.0.0.1:{int(line)}")
        grpc.channel_ready_future(channel).result(timeout=STARTUP_SECONDS)
        yield analyzer_pb2_grpc.AnalyzerStub(channel)
        channel.close()
    finally:
        process.kill()
        process.wait(timeout=10)


def test_the_pack_needs_only_its_own_requirements() -> None:
    """Started from its own folder, the rules find `spec` and `plan` and import no provider SDK
    (policies/requirements.txt has none) and no component."""
    code = (
        "import sys, rules; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'pulumi_proxmoxve', 'pulumi_kubernetes', 'pulumi_command', 'components'}))"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT / "policies", env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_analyzer_info_lists_the_policies(analyzer: analyzer_pb2_grpc.AnalyzerStub) -> None:
    info = analyzer.GetAnalyzerInfo(empty_pb2.Empty())
    assert info.name == rules.PACK_NAME
    levels = {p.name: p.enforcementLevel for p in info.policies}
    assert levels == {
        "power-budget": analyzer_pb2.MANDATORY,
        "replica-counts": analyzer_pb2.MANDATORY,
        "ha-shared-storage": analyzer_pb2.MANDATORY,
        "redundant-links": analyzer_pb2.MANDATORY,
        "survives-any-node": analyzer_pb2.MANDATORY,
        "maintenance-redundancy": analyzer_pb2.ADVISORY,
        "protect-stateful": analyzer_pb2.ADVISORY,
    }
    kinds = {p.name: p.policy_type for p in info.policies}
    assert kinds["redundant-links"] == analyzer_pb2.POLICY_TYPE_RESOURCE
    assert kinds["survives-any-node"] == analyzer_pb2.POLICY_TYPE_STACK


def test_analyze_one_bond_with_a_single_nic(analyzer: analyzer_pb2_grpc.AnalyzerStub) -> None:
    bond = named(full_stack("home"), "pve1-bond0")
    ok = analyzer.Analyze(
        analyzer_pb2.AnalyzeRequest(type=bond.type, properties=struct(bond.inputs), urn=bond.urn, name=bond.name)
    )
    assert list(ok.diagnostics) == []
    single = named(edit(full_stack("home"), "pve1-bond0", {"slaves": ["enp1s0"]}), "pve1-bond0")
    response = analyzer.Analyze(
        analyzer_pb2.AnalyzeRequest(
            type=single.type, properties=struct(single.inputs), urn=single.urn, name=single.name
        )
    )
    (diag,) = response.diagnostics
    assert diag.policyName == "redundant-links"
    assert diag.enforcementLevel == analyzer_pb2.MANDATORY
    assert "bond bond0 on pve1 has 1 member NIC(s) (enp1s0)" in diag.message


def test_analyze_the_cluster_component_reads_the_spec_from_pulumi_config(
    analyzer: analyzer_pb2_grpc.AnalyzerStub,
) -> None:
    cluster = next(r for r in full_stack("home") if r.type == rules.CLUSTER_COMPONENT)
    response = analyzer.Analyze(
        analyzer_pb2.AnalyzeRequest(type=cluster.type, properties=struct({}), urn=cluster.urn, name=cluster.name)
    )
    # The home spec runs corosync on two links; a missing spec would be a violation here.
    assert list(response.diagnostics) == []


def test_analyze_stack_of_the_home_stack_passes(analyzer: analyzer_pb2_grpc.AnalyzerStub) -> None:
    response = analyzer.AnalyzeStack(analyzer_pb2.AnalyzeStackRequest(resources=[wire(r) for r in full_stack("home")]))
    assert [(d.policyName, d.message) for d in response.diagnostics] == []


def test_analyze_stack_of_a_broken_variant(analyzer: analyzer_pb2_grpc.AnalyzerStub) -> None:
    broken = edit(full_stack("home"), "k3s-server-2", {"disks[0].datastoreId": "local-lvm"})
    response = analyzer.AnalyzeStack(analyzer_pb2.AnalyzeStackRequest(resources=[wire(r) for r in broken]))
    (diag,) = response.diagnostics
    vm = named(broken, "k3s-server-2")
    node = vm.inputs["nodeName"]
    assert diag.policyName == "ha-shared-storage"
    assert diag.enforcementLevel == analyzer_pb2.MANDATORY
    assert diag.urn == vm.urn
    assert f"k3s-server-2 (vm:202) is HA, but its disk scsi0 is on local-lvm, which only {node} has" in diag.message
