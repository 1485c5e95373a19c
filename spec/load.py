"""Reading the spec out of stack config or a stack file."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from spec.backups import PBS_SECRETS, RESTIC_PASSWORD, S3_SECRETS
from spec.base import SpecError
from spec.models import Cluster
from spec.monitoring import WATCHDOG_URL
from spec.secrets import ACCESS_SECRETS, full_key
from spec.ups import UPS_PASSWORD

# The one structured config value that describes the whole cluster.
CLUSTER_KEY = "homelab:cluster"


class StackFileError(SpecError):
    """The stack file itself is unusable: not YAML, not a mapping, or a secret in plain text."""


def parse_cluster(data: Any) -> Cluster:
    """Validate raw config data into a Cluster, or raise SpecError naming every bad field."""
    if not isinstance(data, dict):
        raise SpecError(f"{CLUSTER_KEY}: expected a mapping, got {type(data).__name__}")
    try:
        return Cluster.model_validate(data)
    except ValidationError as exc:
        raise SpecError(format_errors(exc, data)) from None


def format_errors(exc: ValidationError, data: Any) -> str:
    """One line per problem, `where: what`, the way an owner reads it: list items named by their
    name where they have one (`nodes[pve1].hardware.cores`), by their index otherwise."""
    lines = []
    for err in exc.errors():
        where = _where(err["loc"], data)
        msg = re.sub(r"^Value error, ", "", err["msg"])
        if err["type"] == "extra_forbidden":
            msg = "unknown key (not part of the spec; check its spelling)"
        lines += [f"{where}: {line}" if where else line for line in msg.splitlines()]
    return "\n".join(lines)


def _where(loc: tuple[int | str, ...], data: Any) -> str:
    out, node = "", data
    for step in loc:
        if isinstance(step, int):
            item = node[step] if isinstance(node, list) and 0 <= step < len(node) else None
            name = item.get("name") if isinstance(item, dict) else None
            out += f"[{name}]" if isinstance(name, str) and name else f"[{step}]"
            node = item
        else:
            out += f".{step}" if out else step
            node = node.get(step) if isinstance(node, dict) else None
    return out


def secret_keys(cluster: Cluster) -> list[str]:
    """Every config key (`homelab:...`) the program reads as a secret: its access to the cluster
    and the apps' `secret_env` and seed files."""
    apps = {key for w in cluster.workloads for key in w.secret_env.values()}
    apps |= {key for w in cluster.workloads for seed in w.seed_files for key in seed.secrets.values()}
    backups: tuple[str, ...] = ()
    if cluster.backups is not None:
        backups = (*PBS_SECRETS, *(S3_SECRETS if cluster.backups.s3 is not None else ()))
        if cluster.backups.s3 is not None and any(w.volumes for w in cluster.workloads):
            backups = (*backups, RESTIC_PASSWORD)
    ups = (UPS_PASSWORD,) if cluster.ups is not None else ()
    monitoring = (*cluster.monitoring.receiver.secrets(), WATCHDOG_URL) if cluster.monitoring is not None else ()
    names = cluster.gateway.secrets() if cluster.gateway is not None else ()
    return [full_key(key) for key in (*ACCESS_SECRETS, *backups, *ups, *monitoring, *names, *sorted(apps))]


def read_stack_config(path: Path) -> dict[str, Any]:
    """The `config:` map of a Pulumi stack file (keys like `homelab:cluster`)."""
    try:
        # LibYAML's loader when PyYAML has it (a tenth of the pure-Python one's time), same results.
        doc = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path.name}:{mark.line + 1}:{mark.column + 1}" if mark is not None else path.name
        problem = getattr(exc, "problem", None) or str(exc)
        context = getattr(exc, "context", None)
        raise StackFileError(f"{where}: not valid YAML: {problem}{f' ({context})' if context else ''}") from None
    if not isinstance(doc, dict):
        raise StackFileError(f"{path.name}: expected a mapping at the top")
    config = doc.get("config") or {}
    if not isinstance(config, dict):
        raise StackFileError(f"{path.name}: `config` must be a mapping")
    return config
