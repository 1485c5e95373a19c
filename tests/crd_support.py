"""Custom resources checked against their upstream CRD schemas (tests/crds), as the API server
would take them: unknown fields refused (the server would prune them silently)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

CRDS = Path(__file__).parent / "crds"
MANIFESTS = Path(__file__).parent.parent / "manifests"


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
def installed_crds() -> list[dict[str, Any]]:
    """The CRDs the program installs from files of the repository (manifests/)."""
    docs = [d for f in sorted(MANIFESTS.glob("*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d]
    return [d for d in docs if d.get("kind") == "CustomResourceDefinition"]


def installed_schema(group: str, version: str, kind: str) -> Any:
    """The openAPIV3Schema of KIND from the CRD the program itself installs."""
    for crd in installed_crds():
        if crd["spec"]["group"] == group and crd["spec"]["names"]["kind"] == kind:
            return next(v for v in crd["spec"]["versions"] if v["name"] == version)["schema"]["openAPIV3Schema"]
    raise AssertionError(f"no CRD for {group}/{version} {kind} in tests/crds or manifests/")


@cache
def validator(api_version: str, kind: str) -> jsonschema.Draft7Validator:
    group, version = api_version.split("/")
    vendored = CRDS / f"{group}_{version}_{kind}.json"
    found = json.loads(vendored.read_text()) if vendored.exists() else installed_schema(group, version, kind)
    schema = closed(found)
    # metadata is the API's own ObjectMeta, not in the CRD.
    schema["properties"]["metadata"] = {"type": "object"}
    return jsonschema.Draft7Validator(schema)


def problems(obj: dict[str, Any]) -> list[str]:
    return [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator(obj["apiVersion"], obj["kind"]).iter_errors(obj)
    ]
