"""`make bench`: how long the offline preview takes, and how it grows with the cluster.

In one run on one machine: the floor (a process importing the Pulumi SDK and the three provider
SDKs and running an empty program under mocks), the home stack's preview (program + policies +
reports), the SDK minimum for the home stack (the floor, the typed provider modules the home
preview loaded, and as many bare registrations: what any program of that size pays the SDKs),
then generated stacks of 3, 10, 30 and 100 nodes. Each is a fresh process, run several times;
the median wall time counts. The floor, home and SDK-minimum runs take turns, so a slow spell
of the machine does not skew their ratios. Results go to benchmarks/results.json and README.md.
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


def run_once(args: list[str]) -> tuple[float, dict[str, Any]]:
    """One fresh process: its wall time and the JSON line it printed."""
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.run_once", *args], cwd=ROOT, check=True, capture_output=True, text=True
    )
    elapsed = time.perf_counter() - start
    return elapsed, json.loads(out.stdout.strip().splitlines()[-1])


def summary(times: list[float], last: dict[str, Any]) -> dict[str, Any]:
    return {"median_s": round(statistics.median(times), 3), "runs_s": [round(t, 3) for t in times], **last}


def measure_interleaved(cases: dict[str, list[str]], repeats: int) -> dict[str, dict[str, Any]]:
    """Run the cases in rounds (a, b, c, a, b, c, ...) so a slow spell of a shared machine falls
    on all of them alike and their ratios stay fair."""
    times: dict[str, list[float]] = {name: [] for name in cases}
    last: dict[str, dict[str, Any]] = {}
    for _ in range(repeats):
        for name, args in cases.items():
            elapsed, last[name] = run_once(args)
            times[name].append(elapsed)
    return {name: summary(times[name], last[name]) for name in cases}


def measure(args: list[str], repeats: int) -> dict[str, Any]:
    return measure_interleaved({"case": args}, repeats)["case"]


def per_resource(result: dict[str, Any], floor: dict[str, Any]) -> dict[str, Any]:
    above_floor = max(result["median_s"] - floor["median_s"], 0.0)
    return {
        **result,
        "ratio_to_floor": round(result["median_s"] / floor["median_s"], 2),
        "ms_per_resource": round(1000 * result["median_s"] / result["resources"], 3),
        "ms_per_resource_above_floor": round(1000 * above_floor / result["resources"], 3),
    }


def show(case: str, result: dict[str, Any]) -> None:
    print(
        f"{case:>11}: {result['resources']:5d} resources, {result['median_s']:6.2f} s "
        f"({result['ratio_to_floor']:.2f}x floor), {result['ms_per_resource']:.2f} ms/resource, "
        f"{result['peak_mib']} MiB peak",
        flush=True,
    )


def home_and_floor(work: Path, repeats: int) -> list[dict[str, Any]]:
    """The floor, the home preview and the home stack's SDK minimum, measured in rounds."""
    home_args = ["--stack", "home", "--stack-dir", str(ROOT), "--out", str(work / "out")]
    _, warm = run_once(home_args)  # also tells which SDK modules and how many registrations
    listing = work / "sdk-modules.json"
    listing.write_text(json.dumps(warm["sdk_modules"]))
    minimum_args = ["--sdk-minimum", str(warm["resources"]), "--components", str(warm["components"])]
    measured = measure_interleaved(
        {"floor": ["--floor"], "home": home_args, "sdk-minimum": [*minimum_args, "--modules", str(listing)]},
        repeats,
    )
    floor = measured["floor"]
    print(f"{'floor':>11}: {floor['median_s']:.2f} s, {floor['peak_mib']} MiB", flush=True)
    rows = [{"case": "floor", "nodes": 0, **floor}]
    for case, nodes in (("home", 3), ("sdk-minimum", 0)):
        result = per_resource(measured[case], floor)
        result["sdk_modules"] = len(result["sdk_modules"])
        show(case, result)
        rows.append({"case": case, "nodes": nodes, **result})
    return rows


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
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        rows = home_and_floor(work, args.repeats)
        floor = rows[0]
        for nodes in SIZES:
            stack = write_stack(work, nodes)
            result = measure(["--stack", stack, "--stack-dir", str(work), "--out", str(work / "out")], args.repeats)
            result = per_resource(result, floor)
            del result["sdk_modules"], result["components"]
            show(stack, result)
            rows.append({"case": stack, "nodes": nodes, **result})
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
