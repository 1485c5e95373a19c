"""Run the real `__main__.py` in-process under Pulumi's mocks and capture every resource.

This is what the engine would see in a `pulumi preview`: each registration with its type, name,
parent, inputs, dependencies and options, and the outputs the provider answered with, in one of
the two shapes of `offline.engine` (a first preview, or a preview of a stack already built).
Resource policies get the inputs, stack policies the outputs, as under the engine.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import runpy
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from google.protobuf import json_format
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime.settings import SETTINGS
from pulumi.runtime.stack import wait_for_rpcs

from offline import sdk_speedup
from offline.engine import PROVIDER_PREFIX, EngineMocks, Shape
from spec import CLUSTER_KEY, SpecError, parse_cluster, read_stack_config
from spec.load import StackFileError, secret_keys
from spec.secrets import ACCESS_SECRETS, full_key, is_ciphertext, plain_text_message, plain_text_secrets

sdk_speedup.install()

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "homelab"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
SIG_KEY = "4dabf18193072939515e22adb298388d"
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
# Stand-ins for the secrets an owner sets with `pulumi config set --secret`: the offline preview
# cannot decrypt a stack file's `secure:` values, and needs none. Never real values.
OFFLINE_SECRETS = {
    "homelab:proxmoxApiToken": "offline@pve!preview=00000000-0000-0000-0000-000000000000",
    "homelab:sshPrivateKey": "-----BEGIN OPENSSH PRIVATE KEY-----\noffline-preview\n-----END OPENSSH PRIVATE KEY-----",
}


@dataclass
class Resource:
    """One registration as the engine would see it."""

    urn: str
    type: str
    name: str
    parent: str
    custom: bool
    inputs: dict[str, Any]
    secret_paths: list[str] = field(default_factory=list)
    dependencies: list[str] = field(default_factory=list)
    protect: bool = False
    provider: str = ""
    retain_on_delete: bool = False
    additional_secret_outputs: list[str] = field(default_factory=list)
    ignore_changes: list[str] = field(default_factory=list)
    delete_before_replace: bool = False
    deleted_with: str = ""  # the URN whose delete takes this resource with it
    import_id: str = ""  # `import_`: the existing resource the engine adopts
    # What the provider answered (a component: what it registered with `register_outputs`).
    outputs: dict[str, Any] = field(default_factory=dict)
    id: str = ""

    @property
    def parent_name(self) -> str:
        return self.parent.rsplit("::", 1)[-1] if self.parent else ""


@dataclass
class ProgramRun:
    stack: str
    resources: list[Resource]
    shape: Shape = Shape.FIRST

    def of_type(self, typ: str) -> list[Resource]:
        return [r for r in self.resources if r.type == typ]

    def named(self, name: str) -> Resource:
        matches = [r for r in self.resources if r.name == name]
        if len(matches) != 1:
            raise KeyError(f"{len(matches)} resources named {name}")
        return matches[0]

    def by_urn(self) -> dict[str, Resource]:
        return {r.urn: r for r in self.resources}


def _plain(value: Any, path: str, secrets: list[str]) -> Any:
    """Protobuf-JSON property value -> plain Python, noting where secrets were."""
    if isinstance(value, dict):
        if value.get(SIG_KEY) == SECRET_SIG:
            secrets.append(path)
            return _plain(value.get("value"), path, secrets)
        return {k: _plain(v, f"{path}.{k}" if path else k, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v, f"{path}[{i}]", secrets) for i, v in enumerate(value)]
    if isinstance(value, float) and value.is_integer():
        return int(value)  # the wire carries every number as a float
    return value


class CapturingMonitor(pulumi_mocks.MockMonitor):
    """The mock monitor, also recording what the engine would receive (parent, deps, options)."""

    def __init__(self, mocks: EngineMocks) -> None:
        super().__init__(mocks)
        self.engine = mocks
        self.captured: list[Resource] = []
        self.by_urn: dict[str, Resource] = {}

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        if request.type == "pulumi:pulumi:Stack":
            return super().RegisterResource(request)  # type: ignore[no-untyped-call]
        secrets: list[str] = []
        inputs = _plain(json_format.MessageToDict(request.object), "", secrets)
        if request.type.startswith(PROVIDER_PREFIX) and _holds_unknown(inputs):
            # The engine leaves such a provider unconfigured: its resources get nothing back.
            self.engine.unconfigured.add(self.make_urn(request.parent, request.type, request.name))
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
        resource = Resource(
            urn=response.urn,
            type=request.type,
            name=request.name,
            # Top-level resources hang off the root stack; the tree shows them at its root.
            parent="" if "::pulumi:pulumi:Stack::" in request.parent else request.parent,
            custom=bool(request.custom),
            inputs=inputs,
            secret_paths=secrets,
            dependencies=list(request.dependencies),
            protect=bool(request.protect),
            provider=request.provider,
            retain_on_delete=bool(request.retainOnDelete),
            additional_secret_outputs=list(request.additionalSecretOutputs),
            ignore_changes=list(request.ignoreChanges),
            delete_before_replace=bool(request.deleteBeforeReplace),
            deleted_with=request.deletedWith,
            import_id=request.importId,
            outputs=_plain(json_format.MessageToDict(response.object), "", []) if request.custom else {},
            id=response.id,
        )
        self.captured.append(resource)
        self.by_urn[resource.urn] = resource
        return response

    def RegisterResourceOutputs(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        if request.urn in self.by_urn:
            self.by_urn[request.urn].outputs = _plain(json_format.MessageToDict(request.outputs), "", [])
        return super().RegisterResourceOutputs(request)  # type: ignore[no-untyped-call]


def _holds_unknown(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_holds_unknown(v) for v in value.values())
    if isinstance(value, list):
        return any(_holds_unknown(v) for v in value)
    return bool(value == UNKNOWN)


def stack_file(stack: str, root: Path = ROOT) -> Path:
    return root / f"Pulumi.{stack}.yaml"


def stand_in(key: str) -> str:
    return OFFLINE_SECRETS.get(key, f"offline-stand-in-for-{key}")


def secrets_of(config: Mapping[str, Any]) -> list[str]:
    """The secret keys of a stack's config: those of its spec, or only the program's access to
    the cluster while the spec is missing or invalid (the program then stops on it anyway)."""
    raw = config.get(CLUSTER_KEY)
    try:
        return secret_keys(parse_cluster(json.loads(raw) if isinstance(raw, str) else raw))
    except (SpecError, ValueError):
        return [full_key(key) for key in ACCESS_SECRETS]


def config_for(stack: str, root: Path = ROOT, cluster: dict[str, Any] | None = None) -> dict[str, str]:
    """The stack's config as the engine passes it: every value a string, objects as JSON, each
    secret a stand-in. A secret kept in the stack file in plain text is a SpecError."""
    path = stack_file(stack, root)
    raw = read_stack_config(path)
    if cluster is not None:
        raw[CLUSTER_KEY] = cluster
    keys = secrets_of(raw)
    plain = plain_text_secrets(raw, keys)
    if plain:
        raise StackFileError(plain_text_message(plain, path.name))
    config = {
        k: stand_in(k) if is_ciphertext(v) else v if isinstance(v, str) else json.dumps(v) for k, v in raw.items()
    }
    for key in keys:
        config.setdefault(key, stand_in(key))
    return config


def run_program(
    stack: str,
    config: dict[str, str],
    root: Path = ROOT,
    shape: Shape = Shape.FIRST,
    secret: list[str] | None = None,
    preview: bool = True,
) -> ProgramRun:
    """Run `__main__.py` once as the engine would in a preview of `shape`, in a fresh context so
    runs never share state. `secret`: the config keys the engine marks secret (default: the spec's).
    `preview=False` runs it as `pulumi up` does after its preview (`pulumi.runtime.is_dry_run()`
    false), for what the program does only then, such as importing what exists."""
    keys = secrets_of(config) if secret is None else secret
    return contextvars.Context().run(_run, stack, config, keys, root, EngineMocks(shape), preview)


def _run(
    stack: str, config: dict[str, str], secret: list[str], root: Path, mocks: EngineMocks, preview: bool = True
) -> ProgramRun:
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    monitor = CapturingMonitor(mocks)
    pulumi.runtime.set_all_config(config, secret_keys=secret)
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=preview, monitor=monitor)
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    try:
        runpy.run_path(str(root / "__main__.py"), run_name="__main__")
        loop.run_until_complete(wait_for_rpcs())
    finally:
        # A program that raised leaves tasks behind, some in Pulumi's process-wide set of
        # outputs: cancel every task of this loop and empty that set, or the next run would wait
        # on tasks of a closed loop.
        leftover = asyncio.all_tasks(loop)
        for task in leftover:
            task.cancel()
        if leftover:
            loop.run_until_complete(asyncio.gather(*leftover, return_exceptions=True))
        with SETTINGS.lock:
            SETTINGS.outputs.clear()
        loop.close()
        asyncio.set_event_loop(None)
    return ProgramRun(stack=stack, resources=monitor.captured, shape=mocks.shape)
