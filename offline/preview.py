"""`make preview`: the plan of a stack, offline, as the engine would see it.

Runs the real program under mocks with the stack file's config, prints the resources as a tree
(component > resource, with type) and a summary, and writes `.preview/<stack>.json`.
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

from offline.harness import ROOT, ProgramRun, Resource, config_for, run_program, stack_file
from plan.placement import PlacementError, place
from plan.power import cluster_draw
from spec import CLUSTER_KEY, Cluster, SpecError, parse_cluster

EXIT_BAD_SPEC = 2


def short_type(typ: str) -> str:
    """`proxmoxve:network/linux/bond:Bond` -> `proxmoxve:network/linux:Bond`, easier to scan."""
    parts = typ.split(":")
    if len(parts) != 3:
        return typ
    module = parts[1].split("/")
    if module and module[-1].lower() == parts[2].lower():
        module = module[:-1]
    return ":".join([parts[0], "/".join(module), parts[2]]) if module else f"{parts[0]}:{parts[2]}"


def tree_lines(resources: list[Resource]) -> list[str]:
    children: dict[str, list[Resource]] = defaultdict(list)
    for r in resources:
        children[r.parent].append(r)
    lines: list[str] = []

    def walk(parent: str, prefix: str) -> None:
        kids = sorted(children.get(parent, []), key=lambda r: (r.custom, r.type, r.name))
        for i, r in enumerate(kids):
            last = i == len(kids) - 1
            lines.append(f"{prefix}{'└─ ' if last else '├─ '}{r.name}  [{short_type(r.type)}]")
            walk(r.urn, prefix + ("   " if last else "│  "))

    walk("", "")
    return lines


def node_of(resource: Resource, by_address: dict[str, str]) -> str | None:
    """The Proxmox node a resource lives on, from its inputs."""
    node = resource.inputs.get("nodeName")
    if isinstance(node, str):
        return node
    host = (resource.inputs.get("connection") or {}).get("host") if isinstance(resource.inputs, dict) else None
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


def power_report(cluster: Cluster) -> dict[str, Any]:
    draw = cluster_draw(cluster, place(cluster))
    return {
        "budget_watts": draw.budget_watts,
        "idle_watts": round(draw.idle_watts, 2),
        "expected_watts": round(draw.watts, 2),
        "within_budget": draw.within_budget,
        "kwh_per_month": round(draw.kwh_per_month, 2),
        "cost_per_month": round(draw.cost_per_month, 2),
        "currency": cluster.power.currency,
        "nodes": [
            {
                "node": n.node,
                "idle_watts": n.idle_watts,
                "utilisation": round(n.utilisation, 3),
                "watts": round(n.watts, 2),
            }
            for n in draw.nodes
        ],
    }


def report(run: ProgramRun, cluster: Cluster, violations: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "stack": run.stack,
        "resources": [{"type": r.type, "name": r.name, "parent": r.parent_name} for r in run.resources],
        "violations": violations,
        "power": power_report(cluster),
    }


def load_spec(stack: str, root: Path = ROOT) -> tuple[Cluster, dict[str, str]]:
    config = config_for(stack, root)
    if CLUSTER_KEY not in config:
        raise SpecError(f"{CLUSTER_KEY} is not set in {stack_file(stack, root).name}")
    cluster = parse_cluster(json.loads(config[CLUSTER_KEY]))
    place(cluster)  # an impossible placement is a spec error too, caught before any resource
    return cluster, config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stack", default="home")
    parser.add_argument("--out", type=Path, default=ROOT / ".preview")
    args = parser.parse_args(argv)
    if not stack_file(args.stack).exists():
        print(f"error: no stack file {stack_file(args.stack).name}", file=sys.stderr)
        return EXIT_BAD_SPEC
    try:
        cluster, config = load_spec(args.stack)
        run = run_program(args.stack, config)
    except (SpecError, PlacementError, pulumi.RunError) as exc:
        print(f"error: invalid {CLUSTER_KEY} in {stack_file(args.stack).name}:\n{exc}", file=sys.stderr)
        return EXIT_BAD_SPEC

    violations: list[dict[str, Any]] = []
    doc = report(run, cluster, violations)
    print(f"Plan for stack {args.stack} (offline preview: nothing is contacted or changed)\n")
    print("\n".join(tree_lines(run.resources)))
    print()
    print("\n".join(summary_lines(run, cluster)))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.stack}.json").write_text(json.dumps(doc, indent=2) + "\n")
    print(f"\nreport: {args.out / (args.stack + '.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
