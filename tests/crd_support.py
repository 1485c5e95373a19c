"""Custom resources checked against their upstream CRD schemas (tests/crds), as the API server
would take them: unknown fields refused (the server would prune them silently)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

CRDS = Path(__file__).parent / "crds"


def closed(schema: Any) -> Any:
    """SCHEMA with every object that lists its properties closed to others, as the API server's
    pruning makes them (a misspelt field would be dropped without a word)."""
    if isinstance(schema, dict):
        out = {k: closed(v) for k, v in schema.items()}
        if (
            "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [closed(v) for v in schema]
    return schema


@cache
def validator(api_version: str, kind: str) -> jsonschema.Draft7Validator:
    group, version = api_version.split("/")
    schema = closed(json.loads((CRDS / f"{group}_{version}_{kind}.json").read_text()))
    # metadata is the API's own ObjectMeta, not in the CRD.
    schema["properties"]["metadata"] = {"type": "object"}
    return jsonschema.Draft7Validator(schema)


def problems(obj: dict[str, Any]) -> list[str]:
    return [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator(obj["apiVersion"], obj["kind"]).iter_errors(obj)
    ]
