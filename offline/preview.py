"""`make preview`: the plan of a stack, offline, as the engine would see it.

Runs the real program under mocks with the stack file's config, prints the resources as a tree
(component > resource, with type), a summary, the power, failover, data-path and backup (RPO)
reports, and writes `.preview/<stack>.json` and the pull request's Markdown, `.preview/<stack>.md`.
Runs the policy pack (`policies/`) in-process on the captured resources and lists its
violations; any mandatory one exits 3, as `pulumi preview --policy-pack policies` would fail.
A bad spec prints the error alone and exits 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pulumi

from offline.engine import Shape
from offline.harness import ROOT, ProgramRun, Resource, config_for, run_program, secrets_of, stack_file
from offline.policy_run import Violation, run_policies
from offline.process import exit_now
from offline.reports import Reports
from plan.placement import PlacementError, plan_guests
from policies import tokens
from spec import CLUSTER_KEY, Cluster, SpecError, parse_cluster, read_stack_config
from spec.load import StackFileError

EXIT_BAD_SPEC = 2
# Cluster-wide resources that the API addresses through one node; "on <node>" would mislead.
SHARED_ON_FIRST_NODE = {tokens.CEPH_POOL}
EXIT_POLICY = 3  # a mandatory policy is violated: `pulumi preview --policy-pack policies` would fail too


def short_type(typ: str) -> str:
    """`proxmoxve:network/linux/bond:Bond` -> `proxmoxve:network/linux:Bond`, easier to scan."""
    parts = typ.split(":")
    if len(parts) != 3:
        return typ
    module = parts[1].split("/")
    if module and module[-1].lower() == parts[2].lower():
        module = module[:-1]
    return ":".join([parts[0], "/".join(module), parts[2]]) if module else f"{parts[0]}:{parts[2]}"


def dependency_depth(resources: list[Resource]) -> dict[str, int]:
    """How many steps of `depends_on` lie before each resource: the order the engine can create them."""
    by_urn = {r.urn: r for r in resources}
    depth: dict[str, int] = {}

    def visit(urn: str) -> int:
        if urn not in depth:
            depth[urn] = 0  # a guard against cycles; the engine would reject one anyway
            r = by_urn.get(urn)
            # A resource also waits for its provider (a reference `urn::id`), e.g. the k8s one.
            needs = [*r.dependencies, r.provider.rsplit("::", 1)[0]] if r is not None else []
            deps = [visit(d) + 1 for d in needs if d in by_urn]
            parent = by_urn[urn].parent if urn in by_urn else ""
            depth[urn] = max([*deps, visit(parent) if parent in by_urn else 0])
        return depth[urn]

    for r in resources:
        visit(r.urn)
    return depth


def tree_lines(resources: list[Resource]) -> list[str]:
    children: dict[str, list[Resource]] = defaultdict(list)
    for r in resources:
        children[r.parent].append(r)
    depth = dependency_depth(resources)

    def first_step(r: Resource) -> int:
        """A component sits where its earliest resource does."""
        kids = children.get(r.urn, [])
        return min((first_step(k) for k in kids), default=depth[r.urn]) if not r.custom else depth[r.urn]

    lines: list[str] = []

    def walk(parent: str, prefix: str) -> None:
        # In creation order (dependency depth), components before the resources they hold.
        kids = sorted(children.get(parent, []), key=lambda r: (r.custom, first_step(r), r.name))
        for i, r in enumerate(kids):
            last = i == len(kids) - 1
            node = r.inputs.get("nodeName")
            where = f"  on {node}" if isinstance(node, str) and r.type not in SHARED_ON_FIRST_NODE else ""
            lines.append(f"{prefix}{'└─ ' if last else '├─ '}{r.name}  [{short_type(r.type)}]{where}")
            walk(r.urn, prefix + ("   " if last else "│  "))

    walk("", "")
    return lines


def node_of(resource: Resource, by_address: dict[str, str]) -> str | None:
    """The Proxmox node a resource lives on, from its inputs."""
    node = resource.inputs.get("nodeName")
    if isinstance(node, str):
        return node
    connection = resource.inputs.get("connection")
    # A connection holding a value known only after up (a VM's host key) is unknown as a whole.
    host = connection.get("host") if isinstance(connection, dict) else None
    return by_address.get(host) if isinstance(host, str) else None


def summary_lines(run: ProgramRun, cluster: Cluster) -> list[str]:
    by_type = Counter(r.type for r in run.resources if r.custom)
    by_address = {str(n.address): n.name for n in cluster.nodes}
    by_node = Counter(n for r in run.resources if r.custom and (n := node_of(r, by_address)))
    lines = [f"{sum(by_type.values())} resources, {len(run.resources) - sum(by_type.values())} components"]
    lines += [f"  {count:4d}  {typ}" for typ, count in sorted(by_type.items())]
    lines.append("per node:")
    lines += [f"  {node}: {by_node.get(node, 0)} resources" for node in (n.name for n in cluster.nodes)]
    return lines


def violation_lines(violations: list[Violation], run: ProgramRun) -> list[str]:
    names = {r.urn: r.name for r in run.resources}
    verdicts = [v for v in violations if not v.not_known_yet]
    waiting = [v for v in violations if v.not_known_yet]
    mandatory = sum(v.mandatory for v in verdicts)
    summary = f"policies: {mandatory} mandatory, {len(verdicts) - mandatory} advisory violation(s)"
    if waiting:
        summary += f"; {len(waiting)} polic{'y' if len(waiting) == 1 else 'ies'} cannot judge yet"
    lines = [summary]
    for v in verdicts:
        where = f" [{names.get(v.resource, v.resource)}]" if v.resource else ""
        lines.append(f"  {v.enforcement}: {v.policy}{where}: {v.message}")
    lines += [f"  not judged yet: {v.policy}: {v.message}" for v in waiting]
    return lines


def report(run: ProgramRun, reports: Reports, violations: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "stack": run.stack,
        "resources": [{"type": r.type, "name": r.name, "parent": r.parent_name} for r in run.resources],
        "violations": violations,
        "power": reports.power_json(),
        "failover": reports.failover_json(),
        "datapath": reports.datapath_json(),
        "backups": reports.backups_json(),
        "names": reports.names_json(),
    }


def load_spec(stack: str, root: Path = ROOT) -> tuple[Cluster, dict[str, str]]:
    config = config_for(stack, root)
    if CLUSTER_KEY not in config:
        raise SpecError(f"{CLUSTER_KEY} is not set in {stack_file(stack, root).name}")
    cluster = parse_cluster(json.loads(config[CLUSTER_KEY]))
    plan_guests(cluster)  # an impossible placement is a spec error too, caught before any resource
    return cluster, config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stack", default="home")
    parser.add_argument("--out", type=Path, default=ROOT / ".preview")
    parser.add_argument("--stack-dir", type=Path, default=ROOT, help="where Pulumi.<stack>.yaml is (default: here)")
    parser.add_argument(
        "--shape",
        type=Shape,
        choices=list(Shape),
        default=Shape.FIRST,
        help="answer as the engine does in the stack's first preview (default) or in a preview of the built stack",
    )
    args = parser.parse_args(argv)
    path = stack_file(args.stack, args.stack_dir)
    if not path.exists():
        print(f"error: no stack file {path}", file=sys.stderr)
        return EXIT_BAD_SPEC
    try:
        cluster, config = load_spec(args.stack, args.stack_dir)
        run = run_program(args.stack, config, shape=args.shape)
    except StackFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_SPEC
    except (SpecError, PlacementError) as exc:
        print(f"error: invalid {CLUSTER_KEY} in {path.name}:\n{exc}", file=sys.stderr)
        return EXIT_BAD_SPEC
    except pulumi.RunError as exc:
        # The spec passed its checks, so this is the program refusing what it was asked to build.
        print(f"error: the program stopped on stack {args.stack}:\n{exc}", file=sys.stderr)
        return EXIT_BAD_SPEC

    violations = run_policies(run.resources, config)
    found = [v.as_dict() for v in violations]
    reports = Reports.of(cluster)
    print(f"Plan for stack {args.stack} (offline {args.shape}: nothing is contacted or changed)\n")
    print("\n".join(tree_lines(run.resources)))
    for block in (
        summary_lines(run, cluster),
        reports.power_text(),
        reports.failover_text(),
        reports.datapath_text(),
        reports.backups_text(),
        reports.names_text(),
    ):
        print()
        print("\n".join(block))
    print()
    print("\n".join(violation_lines(violations, run)))
    unset = [key for key in secrets_of(config) if key not in read_stack_config(path)]
    if unset:
        print(
            f"\nsecrets not set in {path.name} (stand-ins here; `pulumi up` needs each, set with "
            f"`pulumi config set --secret`): {', '.join(unset)}"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = args.out / f"{args.stack}.json", args.out / f"{args.stack}.md"
    json_path.write_text(json.dumps(report(run, reports, found), indent=2) + "\n")
    md_path.write_text(reports.markdown(args.stack, sum(r.custom for r in run.resources), found))
    print(f"\nreports: {json_path}, {md_path}")
    return EXIT_POLICY if any(v.mandatory for v in violations) else 0


if __name__ == "__main__":
    exit_now(main())
