"""What the Pulumi engine answers the program during a preview, in the two shapes a stack meets.

Checked in pulumi/pulumi and pulumi/pulumi-terraform-bridge (see `../shared/reference/toolbox.md`):

- `pkg/resource/deploy/step.go` (CreateStep.Apply) keeps the id the provider answers a preview's
  Create with: a bridged provider (Proxmox, Kubernetes) answers with none, so the resource's `.id`
  is unknown to the program (`sdk/python/lib/pulumi/runtime/resource.py`: `is_known =
  bool(resp.id)`). pulumi-command makes up an id even in a preview; nothing reads a Command's id,
  and the mocks give every resource an empty one.
- A configured provider answers a preview's Create with its planned state: the inputs, with every
  computed attribute unknown (`pkg/tfbridge/provider.go` Create: `diff.ProposedState` when
  `req.GetPreview()`; `pkg/pf/tfbridge/provider_create.go`: `planResp.PlannedState`). The Python
  SDK does not fill outputs from inputs in a preview (`runtime/rpc.py`, `resolve_outputs`), so
  whatever the provider leaves out stays unknown.
- A provider whose own configuration holds an unknown (the Kubernetes provider, whose kubeconfig
  is a Command's stdout) is never configured, and answers Create with an empty property map
  (`pkg/resource/plugin/provider_plugin.go`: `if !pcfg.known { ... return CreateResponse{}, nil }`).

`Shape.FIRST` is a stack's first preview (nothing exists: every id empty, every computed output
unknown, the k3s provider unconfigured); the same holds for everything downstream of a changed
Command, such as the kubeconfig on a k3s version bump. `Shape.UPDATE` is a preview of a stack that
`pulumi up` already built and nothing changed since: every resource answers with its state from
that `up` (inputs plus what the provider computed), so every provider is configured.
"""

from __future__ import annotations

import hashlib
from enum import StrEnum
from typing import Any

from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime.rpc import UNKNOWN

from policies.tokens import REMOTE_COMMAND, VM

PROVIDER_PREFIX = "pulumi:providers:"


class Shape(StrEnum):
    FIRST = "first-preview"
    UPDATE = "update-preview"


def provider_urn(reference: str | None) -> str:
    """`urn::id` (how a resource names its provider) -> the provider's URN."""
    return reference.rsplit("::", 1)[0] if reference else ""


def _digest(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def _computed(args: pulumi_mocks.MockResourceArgs, built: bool) -> dict[str, Any]:
    """The provider-computed outputs the program reads: what the `up` that built the resource
    left (`built`), or unknown in a first preview. Top-level ones a provider leaves out are
    unknown to the SDK anyway; nested ones must be marked."""
    if args.typ == REMOTE_COMMAND and built:
        # A stand-in for what the script printed (a token, a key, a kubeconfig): known, never real.
        return {"stdout": f"offline-{args.name}-{_digest(args.name)[:16]}", "stderr": ""}
    if args.typ == VM and isinstance(nics := args.inputs.get("networkDevices"), list):
        # Proxmox gives each NIC a MAC of its own when none is set (BC:24:11 is its prefix).
        vm_id = int(args.inputs.get("vmId") or 0)
        made = [
            f"BC:24:11:{vm_id // 256 % 256:02X}:{vm_id % 256:02X}:{i:02X}" if built else UNKNOWN
            for i in range(len(nics))
        ]
        return {
            "networkDevices": [
                {**nic, "macAddress": nic.get("macAddress") or mac} for nic, mac in zip(nics, made, strict=True)
            ]
        }
    return {}


class EngineMocks(pulumi_mocks.Mocks):
    """Answers `new_resource` as the engine does in a preview of `shape` (see the module docstring).

    `unconfigured` holds the URNs of providers registered with an unknown in their configuration;
    the capturing monitor fills it, since only it sees a provider's URN as it registers.
    """

    def __init__(self, shape: Shape = Shape.FIRST) -> None:
        self.shape = shape
        self.unconfigured: set[str] = set()

    def new_resource(self, args: pulumi_mocks.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        if args.resource_id:
            # An import (`import_`, passed as the request's importId): the engine reads the
            # existing resource and keeps the id it was given (pkg/resource/deploy/step.go,
            # ImportStep). Its state is taken to match the inputs, as the program arranges.
            return args.resource_id, {**args.inputs, **_computed(args, built=True)}
        if self.shape is Shape.FIRST:
            if provider_urn(args.provider) in self.unconfigured:
                return "", {}
            return "", {**args.inputs, **_computed(args, built=False)}
        return f"{args.name}-id", {**args.inputs, **_computed(args, built=True)}

    def call(self, args: pulumi_mocks.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None
