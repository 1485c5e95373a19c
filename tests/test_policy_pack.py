"""The pack as the engine runs it: its own process, the stack config in PULUMI_CONFIG, gRPC.

`python policies/__main__.py` serves the analyzer on 127.0.0.1 and prints its port; the test
calls GetAnalyzerInfo, Analyze (one resource) and AnalyzeStack (every resource of a stack) with
the engine's own stubs, properties as a protobuf Struct, as `pulumi preview --policy-pack
policies` would.
"""

from __future__ import annotations

import dataclasses
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

from offline.engine import Shape
from offline.harness import ROOT, Resource, config_for
from policies import rules, tokens
from tests.policy_support import edit, full_stack, named, without

STARTUP_SECONDS = 30


def struct(inputs: dict[str, Any]) -> struct_pb2.Struct:
    properties = struct_pb2.Struct()
    properties.update(inputs)
    return properties


def wire(r: Resource) -> analyzer_pb2.AnalyzerResource:
    """A resource as `AnalyzeStack` gets it: its outputs (pulumi/pulumi step_generator.go)."""
    return analyzer_pb2.AnalyzerResource(
        type=r.type,
        properties=struct(r.outputs),
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


def analyze(analyzer: analyzer_pb2_grpc.AnalyzerStub, r: Resource) -> list[Any]:
    """`Analyze` as the engine calls it for one resource: its checked inputs."""
    options = analyzer_pb2.AnalyzerResourceOptions(protect=r.protect)
    request = analyzer_pb2.AnalyzeRequest(
        type=r.type, properties=struct(r.inputs), urn=r.urn, name=r.name, options=options
    )
    return list(analyzer.Analyze(request).diagnostics)


def test_analyzer_info_lists_the_policies(analyzer: analyzer_pb2_grpc.AnalyzerStub) -> None:
    info = analyzer.GetAnalyzerInfo(empty_pb2.Empty())
    assert info.name == rules.PACK_NAME
    levels = {p.name: p.enforcementLevel for p in info.policies}
    assert levels == {
        p.name: analyzer_pb2.ADVISORY if rules.enforcement_of(p).value == "advisory" else analyzer_pb2.MANDATORY
        for p in rules.POLICIES
    }
    assert (
        levels["maintenance-redundancy"] == analyzer_pb2.ADVISORY and levels["power-budget"] == analyzer_pb2.MANDATORY
    )
    kinds = {p.name: p.policy_type for p in info.policies}
    assert kinds["redundant-links"] == analyzer_pb2.POLICY_TYPE_RESOURCE
    assert kinds["survives-any-node"] == analyzer_pb2.POLICY_TYPE_STACK


def test_analyze_one_bond_with_a_single_nic(analyzer: analyzer_pb2_grpc.AnalyzerStub) -> None:
    assert analyze(analyzer, named(full_stack("home"), "pve1-bond0")) == []
    single = named(edit(full_stack("home"), "pve1-bond0", {"slaves": ["enp1s0"]}), "pve1-bond0")
    (diag,) = analyze(analyzer, single)
    assert diag.policyName == "redundant-links"
    assert diag.enforcementLevel == analyzer_pb2.MANDATORY
    assert "bond bond0 on pve1 has 1 member NIC(s) (enp1s0)" in diag.message


def test_analyze_the_cluster_component_reads_the_spec_from_pulumi_config(
    analyzer: analyzer_pb2_grpc.AnalyzerStub,
) -> None:
    cluster = next(r for r in full_stack("home") if r.type == tokens.CLUSTER_COMPONENT)
    # The home spec runs corosync on two links; a missing spec would be a violation here.
    assert analyze(analyzer, dataclasses.replace(cluster, inputs={})) == []


@pytest.mark.parametrize("shape", list(Shape))
def test_every_resource_of_the_home_stack_passes(analyzer: analyzer_pb2_grpc.AnalyzerStub, shape: Shape) -> None:
    # First preview: inputs hold unknowns (ids of resources not created yet); none is read as a default.
    found = [(r.name, d.policyName, d.message) for r in full_stack("home", shape) for d in analyze(analyzer, r)]
    assert found == []


def test_analyze_a_route_whose_port_numbers_arrive_as_floats(analyzer: analyzer_pb2_grpc.AnalyzerStub) -> None:
    # Over gRPC a port is a protobuf number (a float): the shipped route still passes, a wrong one not.
    assert analyze(analyzer, named(full_stack("home"), "apps-whoami-route")) == []
    broken = named(
        edit(full_stack("home"), "apps-whoami-route", {"spec.rules[0].backendRefs[0].port": 8080}), "apps-whoami-route"
    )
    (diag,) = analyze(analyzer, broken)
    assert diag.policyName == "https-routes"
    assert "apps/whoami sends to whoami:8080, which is not a port of whoami's Service whoami (80)" in diag.message


def test_analyze_one_broken_vm(analyzer: analyzer_pb2_grpc.AnalyzerStub) -> None:
    broken = named(edit(full_stack("home"), "k3s-server-2", {"disks[0].datastoreId": "local-lvm"}), "k3s-server-2")
    (diag,) = analyze(analyzer, broken)
    node = broken.inputs["nodeName"]
    assert diag.policyName == "ha-shared-storage"
    assert diag.enforcementLevel == analyzer_pb2.MANDATORY
    assert f"k3s-server-2 (vm:202) is HA, but its disk scsi0 is on local-lvm, which only {node} has" in diag.message


def test_analyze_stack_of_a_first_preview_says_what_it_cannot_judge_yet(
    analyzer: analyzer_pb2_grpc.AnalyzerStub,
) -> None:
    resources = [wire(r) for r in full_stack("home", Shape.FIRST)]
    response = analyzer.AnalyzeStack(analyzer_pb2.AnalyzeStackRequest(resources=resources))
    # The budgets, whether each volume's claim is copied, and the probes of the exposed ports:
    # all need the k3s objects' outputs.
    assert [d.policyName for d in response.diagnostics] == [
        "disruption-budgets",
        "every-app-routed",
        "backup-coverage",
        "monitoring-coverage",
    ]
    for diag in response.diagnostics:
        assert diag.enforcementLevel == analyzer_pb2.ADVISORY
        assert diag.message.startswith(f"can't run policy '{diag.policyName}' from policy pack 'homelab-policies@v")
        assert "the k3s cluster's objects have no outputs yet" in diag.message


def test_analyze_stack_of_a_built_stack(analyzer: analyzer_pb2_grpc.AnalyzerStub) -> None:
    stack = full_stack("home", Shape.UPDATE)
    response = analyzer.AnalyzeStack(analyzer_pb2.AnalyzeStackRequest(resources=[wire(r) for r in stack]))
    assert [(d.policyName, d.message) for d in response.diagnostics] == []
    broken = without(stack, "apps-whoami", typ=tokens.PDB)
    response = analyzer.AnalyzeStack(analyzer_pb2.AnalyzeStackRequest(resources=[wire(r) for r in broken]))
    (diag,) = response.diagnostics
    assert diag.policyName == "disruption-budgets"
    assert diag.enforcementLevel == analyzer_pb2.MANDATORY
    assert diag.urn == named(broken, "apps-whoami", tokens.DEPLOYMENT).urn
