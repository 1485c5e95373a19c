"""Idempotent shell scripts run over SSH with pulumi-command.

Each script lives in `components/scripts/NAME.sh` as plain, shellcheck-clean bash that reads its
parameters from shell variables. `script()` prepends those variables, quoted, so what runs on the
host is exactly what `make test` checks. (Remote `environment` would need AcceptEnv on sshd.)
"""

from __future__ import annotations

import shlex
from functools import cache
from pathlib import Path

import pulumi
import pulumi_command as command

SCRIPTS = Path(__file__).parent / "scripts"
HEADER = "#!/usr/bin/env bash\nset -euo pipefail\n"


@cache
def _body(name: str) -> str:
    return (SCRIPTS / f"{name}.sh").read_text()


def script(name: str, **params: str | int) -> str:
    """The script NAME with its parameters set as shell variables."""
    lines = [f"{key.upper()}={shlex.quote(str(value))}" for key, value in sorted(params.items())]
    return HEADER + "\n".join(lines) + ("\n" if lines else "") + _body(name)


def run(
    resource_name: str,
    connection: command.remote.ConnectionArgs,
    create: str | pulumi.Output[str],
    opts: pulumi.ResourceOptions,
    delete: str | None = None,
    triggers: list[object] | None = None,
    logging: command.remote.Logging | None = None,
) -> command.remote.Command:
    """A remote command; `triggers` re-runs it when what it configures changes.

    `logging` limits what reaches the engine's log: a command that prints a secret logs stderr only.
    """
    return command.remote.Command(
        resource_name,
        command.remote.CommandArgs(
            connection=connection,
            create=create,
            delete=delete,
            triggers=triggers,
            add_previous_output_in_env=False,
            logging=logging,
        ),
        opts=opts,
    )
