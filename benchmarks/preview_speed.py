"""`make bench`: how long the offline preview takes, and how it grows with the cluster.

In one run on one machine: the floor (a process importing the Pulumi SDK and the three provider
SDKs and running an empty program under mocks), the home stack's preview (program + policies +
reports), the SDK minimum for the home stack (the floor, the typed provider modules the home
preview loaded, and as many bare registrations: what any program of that size pays the SDKs),
then generated stacks of 3, 10, 30 and 100 nodes. Each is a fresh process, run several times;
the median wall time counts. Results go to benchmarks/results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.stacks import write_stack
from offline.harness import ROOT

SIZES = (3, 10, 30, 100)
TARGETS = {
    "home_within_1_5x_floor": "home preview within 1.5x the floor",
    "per_resource_100_vs_10_within_1_5x": "time per resource at 100 nodes within 1.5x that at 10",
    "peak_memory_100_nodes_under_1_gib": "peak memory of the 100-node preview under 1 GiB",
}
RESULTS = Path(__file__).parent / "results.json"


def measure(args: list[str], repeats: int) -> dict[str, Any]:
    times, last = [], {}
    for _ in range(repeats):
        start = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks.run_once", *args], cwd=ROOT, check=True, capture_output=True, text=True
        )
        times.append(time.perf_counter() - start)
        last = json.loads(out.stdout.strip().splitlines()[-1])
    return {"median_s": round(statistics.median(times), 3), "runs_s": [round(t, 3) for t in times], **last}


def sdk_minimum(
    work: Path, home: dict[str, Any], modules: list[str], floor: dict[str, Any], repeats: int
) -> dict[str, Any]:
    """The least the home preview could cost on these SDKs: see run_once.sdk_minimum."""
    listing = work / "sdk-modules.json"
    listing.write_text(json.dumps(modules))
    resources = home["resources"]
    result = measure(
        ["--sdk-minimum", str(resources), "--components", str(home["components"]), "--modules", str(listing)],
        repeats,
    )
    result["ratio_to_floor"] = round(result["median_s"] / floor["median_s"], 2)
    result["ms_per_resource"] = round(1000 * result["median_s"] / resources, 3)
    result["sdk_modules"] = len(result["sdk_modules"])
    print(
        f"sdk-minimum: {resources:5d} bare registrations, {len(modules)} SDK modules, {result['median_s']:6.2f} s "
        f"({result['ratio_to_floor']:.2f}x floor)",
        flush=True,
    )
    return {"case": "sdk-minimum", "nodes": 0, **result}


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "date": time.strftime("%Y-%m-%d"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        floor = measure(["--floor"], args.repeats)
        rows.append({"case": "floor", "nodes": 0, **floor})
        print(f"floor: {floor['median_s']:.2f} s, {floor['peak_mib']} MiB", flush=True)
        cases: list[tuple[str, int, Path]] = [("home", 3, ROOT)]
        cases += [(write_stack(work, n), n, work) for n in SIZES]
        for stack, nodes, directory in cases:
            result = measure(
                ["--stack", stack, "--stack-dir", str(directory), "--out", str(work / "out")], args.repeats
            )
            modules = result.pop("sdk_modules", [])
            result["ratio_to_floor"] = round(result["median_s"] / floor["median_s"], 2)
            above_floor = max(result["median_s"] - floor["median_s"], 0.0)
            result["ms_per_resource"] = round(1000 * result["median_s"] / result["resources"], 3)
            result["ms_per_resource_above_floor"] = round(1000 * above_floor / result["resources"], 3)
            rows.append({"case": stack, "nodes": nodes, **result})
            print(
                f"{stack:>7}: {result['resources']:5d} resources, {result['median_s']:6.2f} s "
                f"({result['ratio_to_floor']:.2f}x floor), {result['ms_per_resource']:.2f} ms/resource, "
                f"{result['peak_mib']} MiB peak",
                flush=True,
            )
            if stack == "home":
                rows.append(sdk_minimum(work, result, modules, floor, args.repeats))
    by_case = {r["case"]: r for r in rows}
    targets = {
        "home_within_1_5x_floor": by_case["home"]["ratio_to_floor"] <= 1.5,
        "per_resource_100_vs_10_within_1_5x": by_case["gen100"]["ms_per_resource"]
        <= 1.5 * by_case["gen10"]["ms_per_resource"],
        "peak_memory_100_nodes_under_1_gib": by_case["gen100"]["peak_mib"] < 1024,
    }
    for name, ok in targets.items():
        print(f"target {name}: {'met' if ok else 'NOT met'}")
    home_over_minimum = round(by_case["home"]["median_s"] / by_case["sdk-minimum"]["median_s"], 2)
    print(f"home / SDK minimum: {home_over_minimum:.2f}x")
    doc = {"machine": machine(), "results": rows, "targets": targets, "home_over_sdk_minimum": home_over_minimum}
    RESULTS.write_text(json.dumps(doc, indent=2) + "\n")
    update_readme(doc)
    print(f"results: {RESULTS}; README.md updated")
    return 0


def readme_table(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    lines = [
        f"Latest figures ({m['date']}, {m['platform']}, {m['cpus']} cores, Python {m['python']}):",
        "",
        "| case | nodes | resources | median | x floor | ms / resource | peak memory |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in doc["results"]:
        if r["case"] == "floor":
            lines.append(f"| floor | - | - | {r['median_s']:.2f} s | 1.00 | - | {r['peak_mib']:.0f} MiB |")
        elif r["case"] == "sdk-minimum":
            lines.append(
                f"| sdk-minimum | - | {r['resources']} | {r['median_s']:.2f} s | {r['ratio_to_floor']:.2f} "
                f"| {r['ms_per_resource']:.1f} | {r['peak_mib']:.0f} MiB |"
            )
        else:
            lines.append(
                f"| {r['case']} | {r['nodes']} | {r['resources']} | {r['median_s']:.2f} s | {r['ratio_to_floor']:.2f} "
                f"| {r['ms_per_resource']:.1f} | {r['peak_mib']:.0f} MiB |"
            )
    lines.append("")
    lines += [f"- {TARGETS.get(name, name)}: {'met' if ok else '**not met**'}" for name, ok in doc["targets"].items()]
    if "home_over_sdk_minimum" in doc:
        lines.append(f"- home preview / SDK minimum: {doc['home_over_sdk_minimum']:.2f}x")
    return "\n".join(lines)


def update_readme(doc: dict[str, Any]) -> None:
    """Put the table between the README's bench markers, so it always shows the latest run."""
    readme = ROOT / "README.md"
    text = readme.read_text()
    start, end = "<!-- bench:start -->", "<!-- bench:end -->"
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    readme.write_text(f"{head}{start}\n{readme_table(doc)}\n{end}{tail}")


if __name__ == "__main__":
    sys.exit(main())
