"""Every remote script passes shellcheck as it runs on the host: rendered, with its parameters.

Covers every `command:remote:Command` the shipped stacks declare, whichever layer adds it, and
every script file (some, like the qdevice one, only render for other cluster shapes).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from components import remote
from offline.harness import UNKNOWN
from policies import tokens
from tests.shell import shellcheck
from tests.support import STACKS, program

SCRIPT_FIELDS = ("create", "update", "delete")


@pytest.fixture(scope="module", params=STACKS)
def rendered(request: pytest.FixtureRequest) -> dict[str, str]:
    """Resource/field -> script, for every remote command script the stack's program declares.
    Rendered when a test asks for it, so a program error fails these tests, not the collection."""
    stack: str = request.param
    return {
        f"{stack}/{r.name}/{field}": text
        for r in program(stack).resources
        if r.type == tokens.REMOTE_COMMAND
        for field in SCRIPT_FIELDS
        if isinstance(text := r.inputs.get(field), str)
    }


def test_every_stack_renders_scripts(rendered: dict[str, str]) -> None:
    assert rendered
    # A script holding a value known only after `up` (the join token is on stdin, never in one).
    assert UNKNOWN not in rendered.values()


def test_every_rendered_script_passes_shellcheck(rendered: dict[str, str], tmp_path: Path) -> None:
    findings = shellcheck(rendered, tmp_path)
    failing = {label: found for label, found in findings.items() if found}
    assert not failing, "\n\n".join(f"{label}:\n" + "\n".join(found) for label, found in failing.items())


@pytest.mark.parametrize("name", sorted(p.stem for p in remote.SCRIPTS.glob("*.sh")))
def test_script_file_passes_shellcheck(name: str, tmp_path: Path) -> None:
    # A render sets the upper-case parameters; unset, shellcheck takes them for environment variables.
    found = shellcheck({name: remote.HEADER + remote._body(name)}, tmp_path)
    assert not found[name], f"{name}.sh:\n" + "\n".join(found[name])


def test_checker_catches_a_bug_put_into_a_rendered_script(tmp_path: Path) -> None:
    # The same check on what the program renders, with one unquoted expansion slipped in.
    text = program("home").named("pve1-ceph-osd-nvme0n1").inputs["create"]
    assert isinstance(text, str) and "wipefs" in text
    broken = text.replace('lvm list "$dev"', "lvm list $dev", 1)
    assert broken != text
    found = shellcheck({"rendered": text, "broken": broken}, tmp_path)
    assert found["rendered"] == []
    assert any("SC2086" in line for line in found["broken"])  # unquoted expansion
