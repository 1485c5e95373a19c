"""The API token: the privileges the program needs, path by path, and the check that stops a run
before the provider's first call when the token lacks one."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from pathlib import Path

import pytest

from components.api_access import required_privileges, role_privileges
from offline.engine import PROVIDER_PREFIX
from offline.harness import ROOT
from tests.shell import ScriptRun, run_with_stubs
from tests.support import STACKS, program, stack_cluster

TOKEN = "offline@pve!preview"  # the offline stand-in's token id


def test_each_path_gets_what_its_calls_check() -> None:
    home = required_privileges(stack_cluster("home"))
    assert {"Sys.Audit", "Sys.Console", "Sys.Modify"} <= home["/"]  # HA rules, Ceph pools, downloads
    assert "VM.Clone" in home["/vms/9000"] and "VM.Clone" not in home["/vms/201"]  # the template only
    assert {"VM.Config.Cloudinit", "VM.Config.CDROM", "VM.GuestAgent.Audit"} <= home["/vms/201"]
    assert "Datastore.AllocateTemplate" in home["/storage/local"]  # the cloud image lands there
    assert "Datastore.Allocate" in home["/storage/vm-disks"]
    assert home["/sdn/zones/localnetwork/vmbr0/40"] == {"SDN.Use"}  # the Ceph public VLAN NICs
    assert {"/sdn", "/sdn/fabrics/ceph"} <= set(home)  # home's storage network is a fabric
    lab = required_privileges(stack_cluster("lab"))
    assert not any(p.startswith("/sdn/fabrics") for p in lab) and "/sdn" not in lab  # bonds, no fabric
    assert set(lab) >= {f"/nodes/{n}" for n in ("lab1", "lab2", "lab3")}


def test_the_readme_grants_exactly_the_role_the_program_needs() -> None:
    readme = (ROOT / "README.md").read_text()
    match = re.search(r'pveum role add HomelabPulumi --privs "([^"]+)"', readme)
    assert match, "the README's role command"
    needed = sorted(set().union(*(role_privileges(stack_cluster(s)) for s in STACKS)))
    assert sorted(match[1].split(",")) == needed
    assert "--privsep 1" in readme and "--tokens 'homelab@pve!pulumi' --roles HomelabPulumi" in readme


@pytest.mark.parametrize("stack", STACKS)
def test_the_provider_waits_for_the_check_on_the_first_node(stack: str) -> None:
    run = program(stack)
    first = stack_cluster(stack).nodes[0]
    check = run.named(f"{first.name}-api-token-check")
    assert check.inputs["connection"]["host"] == str(first.address)
    [provider] = [r for r in run.resources if r.type == f"{PROVIDER_PREFIX}proxmoxve"]
    assert check.urn in provider.dependencies


def granting(table: Mapping[str, AbstractSet[str]]) -> str:
    """A `pvesh` stub answering /access/permissions as Proxmox does: {path: {privilege: propagate}}."""
    answers = {path: {priv: 1 for priv in privs} for path, privs in table.items()}
    return (
        f"answers='{json.dumps(answers)}'\n"
        'path="${@: -3:1}"\n'
        "perl -MJSON::PP -e 'my $a = decode_json($ARGV[0]); print encode_json({$ARGV[1] => $a->{$ARGV[1]} // {}})' "
        '"$answers" "$path"'
    )


def run_check(tmp_path: Path, pvesh: str) -> ScriptRun:
    script = program("home").named("pve1-api-token-check").inputs["create"]
    assert isinstance(script, str)
    return run_with_stubs(script, tmp_path, {"pvesh": pvesh, "hostname": "echo pve1"})


def test_a_token_with_the_role_passes(tmp_path: Path) -> None:
    run = run_check(tmp_path, granting(required_privileges(stack_cluster("home"))))
    assert run.returncode == 0, run.stderr
    assert f"API token {TOKEN} holds every privilege" in run.stdout
    asked = {c[c.index("--path") + 1] for c in run.calls if c[0] == "pvesh"}
    assert asked == set(required_privileges(stack_cluster("home")))
    assert all(c[1:5] == ["get", "/access/permissions", "--userid", TOKEN] for c in run.calls if c[0] == "pvesh")


def test_every_missing_privilege_is_listed_by_path(tmp_path: Path) -> None:
    table = {p: set(v) for p, v in required_privileges(stack_cluster("home")).items()}
    table["/"].discard("Sys.Console")  # HA writes would get a 403
    table["/vms/9000"].discard("VM.Clone")
    table["/vms/201"].discard("VM.Config.CDROM")
    run = run_check(tmp_path, granting(table))
    assert run.returncode == 1
    assert f"API token {TOKEN} lacks privileges the program needs:" in run.stderr
    lines = [line.strip() for line in run.stderr.splitlines() if line.startswith("  ")]
    assert lines == ["/: Sys.Console", "/vms/201: VM.Config.CDROM", "/vms/9000: VM.Clone"]


def test_a_token_made_elsewhere_is_named(tmp_path: Path) -> None:
    run = run_check(tmp_path, "echo \"no such token 'preview' for user 'offline@pve'\" >&2; exit 2")
    assert run.returncode == 1
    assert f"cannot read the privileges of API token {TOKEN} on pve1: no such token" in run.stderr
    assert "Create it on this node (the first in the spec)" in run.stderr


def test_a_token_without_any_privilege_is_said_to_be_missing(tmp_path: Path) -> None:
    # What Proxmox answers for a token that does not exist on the node: no privileges, no error.
    run = run_check(tmp_path, granting({}))
    assert run.returncode == 1
    assert f"API token {TOKEN} has no privileges at all on pve1: it does not exist on this node" in run.stderr


def test_a_warning_from_pvesh_does_not_spoil_its_answer(tmp_path: Path) -> None:
    table = required_privileges(stack_cluster("home"))
    run = run_check(tmp_path, "echo 'warning: something minor' >&2\n" + granting(table))
    assert run.returncode == 0, run.stderr
