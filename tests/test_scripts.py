"""Every remote script passes shellcheck as it runs on the host: rendered, with its parameters.

Covers every `command:remote:Command` the shipped stacks declare, whichever layer adds it, and
every script file (some, like the qdevice one, only render for other cluster shapes).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from components import remote
from offline.harness import UNKNOWN
from policies import tokens
from tests.shell import shellcheck
from tests.support import STACKS, program

COMMAND_TYPES = (tokens.REMOTE_COMMAND,)
SCRIPT_FIELDS = ("create", "update", "delete")


def rendered() -> Iterator[tuple[str, str]]:
    """(stack/resource/field, script) for every remote command script of the shipped stacks."""
    for stack in STACKS:
        for r in program(stack).resources:
            if r.type not in COMMAND_TYPES:
                continue
            for field in SCRIPT_FIELDS:
                text = r.inputs.get(field)
                if isinstance(text, str):
                    yield f"{stack}/{r.name}/{field}", text


SCRIPTS = dict(rendered())


@pytest.fixture(scope="module")
def findings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    known = {label: text for label, text in SCRIPTS.items() if text != UNKNOWN}
    return shellcheck(known, tmp_path_factory.mktemp("rendered"))


def test_every_stack_renders_scripts() -> None:
    for stack in STACKS:
        assert any(label.startswith(f"{stack}/") for label in SCRIPTS), f"no remote script in {stack}"


@pytest.mark.parametrize("label", sorted(SCRIPTS))
def test_rendered_script_passes_shellcheck(label: str, findings: dict[str, list[str]]) -> None:
    if SCRIPTS[label] == UNKNOWN:
        pytest.skip("rendered from values known only after apply; its script file is still checked below")
    assert not findings[label], f"{label}:\n" + "\n".join(findings[label])


@pytest.mark.parametrize("name", sorted(p.stem for p in remote.SCRIPTS.glob("*.sh")))
def test_script_file_passes_shellcheck(name: str, tmp_path: Path) -> None:
    # A render sets the upper-case parameters; unset, shellcheck takes them for environment variables.
    found = shellcheck({name: remote.HEADER + remote._body(name)}, tmp_path)
    assert not found[name], f"{name}.sh:\n" + "\n".join(found[name])


def test_checker_catches_a_bad_script(tmp_path: Path) -> None:
    bad = remote.HEADER + 'DIR=/var/tmp\nrm -rf $DIR/*\nif [ $x == 1 ]; then echo "x"; fi\n'
    good = remote.HEADER + 'DIR=/var/tmp\nrm -rf "${DIR:?}"/*\n'
    found = shellcheck({"bad": bad, "good": good}, tmp_path)
    assert found["good"] == []
    codes = " ".join(found["bad"])
    assert "SC2086" in codes  # unquoted expansion
    assert "SC2115" in codes  # rm -rf "$DIR/"* could become rm -rf /*
