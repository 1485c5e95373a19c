"""Reading the spec out of stack config or a stack file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from spec.models import Cluster, SpecError, format_errors

# The one structured config value that describes the whole cluster.
CLUSTER_KEY = "homelab:cluster"


def parse_cluster(data: Any) -> Cluster:
    """Validate raw config data into a Cluster, or raise SpecError naming every bad field."""
    if not isinstance(data, dict):
        raise SpecError(f"{CLUSTER_KEY}: expected a mapping, got {type(data).__name__}")
    try:
        return Cluster.model_validate(data)
    except ValidationError as exc:
        raise SpecError(format_errors(exc)) from None


def read_stack_config(path: Path) -> dict[str, Any]:
    """The `config:` map of a Pulumi stack file (keys like `homelab:cluster`)."""
    doc = yaml.safe_load(path.read_text()) or {}
    if not isinstance(doc, dict):
        raise SpecError(f"{path}: expected a mapping at the top")
    config = doc.get("config") or {}
    if not isinstance(config, dict):
        raise SpecError(f"{path}: `config` must be a mapping")
    return config
