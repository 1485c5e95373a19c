"""Run the policy pack in-process on the resources the offline harness captured.

The same `policies.rules.POLICIES` the engine runs through `pulumi preview --policy-pack
policies`, called the way the engine and the pack's analyzer call them: resource policies once
per resource with its inputs (`Analyze`), stack policies once on all of them with their outputs
(`AnalyzeStack`, pulumi/pulumi `pkg/resource/deploy/step_generator.go`), with the stack config
set so the policies read the spec. Properties go through the same unknown-value proxy, and a
policy that touches an unknown value is reported as the pack's analyzer reports it: an advisory
"can't run policy ... during preview" (pulumi-policy `policy.py`). One difference remains: the
engine hands resource policies the inputs after the provider's Check, which may add the
provider's defaults; here they are the program's own inputs, and the policies read a field left
out as the provider's documented default (`guest_checks`, `replica_checks`).
"""

from __future__ import annotations

import contextvars
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import pulumi.runtime
from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError, unknown_checking_proxy

from offline.harness import Resource
from policies.rules import POLICIES, enforcement_of


@dataclass(frozen=True)
class Violation:
    policy: str
    enforcement: str  # "mandatory" or "advisory"
    message: str
    resource: str  # URN, or "" for the stack as a whole
    # True: not a verdict but the pack saying it cannot judge yet (a value only `pulumi up` knows).
    not_known_yet: bool = False

    @property
    def mandatory(self) -> bool:
        return self.enforcement == EnforcementLevel.MANDATORY.value

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def policy_resources(resources: Sequence[Resource]) -> list[PolicyResource]:
    """Captured registrations as the analyzer hands them to stack policies: their outputs, with
    parents and dependencies linked."""
    out: dict[str, PolicyResource] = {}
    for r in resources:
        opts = PolicyResourceOptions(
            protect=r.protect,
            ignore_changes=[],
            delete_before_replace=None,
            aliases=[],
            custom_timeouts=PolicyCustomTimeouts(0, 0, 0),
            additional_secret_outputs=[],
            parent=r.parent or None,
        )
        out[r.urn] = PolicyResource(
            r.type, unknown_checking_proxy(dict(r.outputs)), r.urn, r.name, opts, None, None, [], {}
        )
    for r in resources:
        resource = out[r.urn]
        resource.parent = out.get(r.parent)
        resource.dependencies = [out[d] for d in r.dependencies if d in out]
    return list(out.values())


def run_policies(
    resources: Sequence[Resource], config: Mapping[str, str], policies: Sequence[Policy] = POLICIES
) -> list[Violation]:
    """Every violation of `policies` on the captured stack, under the stack's `config`."""
    return contextvars.Context().run(_run, resources, dict(config), policies)


def _run(resources: Sequence[Resource], config: dict[str, str], policies: Sequence[Policy]) -> list[Violation]:
    pulumi.runtime.set_all_config(config)
    stack = policy_resources(resources)
    violations: list[Violation] = []
    for policy in policies:
        level = enforcement_of(policy)
        if level == EnforcementLevel.DISABLED:
            continue
        if isinstance(policy, StackValidationPolicy):
            _validate(
                policy, violations, StackValidationArgs(stack, None), _collector(violations, policy.name, level, None)
            )
        elif isinstance(policy, ResourceValidationPolicy):
            for r, declared in zip(resources, stack, strict=True):
                args = ResourceValidationArgs(
                    r.type, unknown_checking_proxy(dict(r.inputs)), r.urn, r.name, declared.opts, None
                )
                _validate(policy, violations, args, _collector(violations, policy.name, level, r.urn))
    return violations


def _validate(policy: Policy, violations: list[Violation], args: object, report: ReportViolation) -> None:
    try:
        policy.validate(args, report)  # type: ignore[attr-defined]
    except UnknownValueError as exc:
        # What the analyzer does when a policy touches a value only `pulumi up` knows: an advisory
        # note, whatever the policy's level, once per call (per resource for a resource policy).
        message = f"can't run policy '{policy.name}' during preview: {exc.message}"
        violations.append(Violation(policy.name, EnforcementLevel.ADVISORY.value, message, "", not_known_yet=True))


def _collector(violations: list[Violation], policy: str, level: EnforcementLevel, urn: str | None) -> ReportViolation:
    """The report callback: a resource policy's violations are always on its resource."""

    def report(message: str, reported_urn: str | None = None) -> None:
        violations.append(Violation(policy, level.value, message, urn or reported_urn or ""))

    return report
