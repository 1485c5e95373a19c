"""One measured process: the floor, the SDK minimum, or one offline preview.

Prints one JSON line: resources, the process's own peak memory (and, for a preview, the provider
SDK modules it loaded, which the SDK-minimum case then imports).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import io
import json
import resource
import sys
from pathlib import Path
from typing import Any

from offline.process import exit_now

SDK_PACKAGES = ("pulumi_command", "pulumi_kubernetes", "pulumi_proxmoxve")


def loaded_sdk_modules() -> list[str]:
    """The provider SDK modules this process has run. The SDKs register their modules lazily
    (pulumi._utils._LazyModule until first use); those never used do not count."""
    return sorted(
        name
        for name, module in sys.modules.items()
        if name.split(".", 1)[0] in SDK_PACKAGES and type(module).__name__ != "_LazyModule"
    )


def _mock_engine() -> asyncio.AbstractEventLoop:
    import pulumi

    from offline.engine import EngineMocks

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    pulumi.runtime.set_mocks(EngineMocks(), project="homelab", stack="bench", preview=True)
    return loop


def floor() -> dict[str, Any]:
    """What every preview pays before the first resource: interpreter, SDK imports, the mock engine."""
    import pulumi_command  # noqa: F401 - the import is what is measured
    import pulumi_kubernetes  # noqa: F401
    import pulumi_proxmoxve  # noqa: F401
    from pulumi.runtime.stack import wait_for_rpcs

    loop = _mock_engine()
    loop.run_until_complete(wait_for_rpcs())
    loop.close()
    return {"resources": 0}


def sdk_minimum(resources: int, components: int, modules: list[str]) -> dict[str, Any]:
    """The least any program of this size can cost on these SDKs: the floor, the typed provider
    modules the preview loaded, and as many registrations (that many empty components, the rest
    the simplest custom resource), with no program logic, no policies and no reports."""
    import pulumi
    from pulumi.runtime.stack import wait_for_rpcs
    from pulumi_command.remote import Command, CommandArgs, ConnectionArgs

    for name in modules:
        module = importlib.import_module(name)
        if type(module).__name__ == "_LazyModule":
            getattr(module, "_run_now", None)  # a lazily registered module runs on first attribute use
    loop = _mock_engine()
    connection = ConnectionArgs(host="192.0.2.1", user="root", private_key=pulumi.Output.secret("k"))
    for i in range(components):
        pulumi.ComponentResource("bench:index:Bare", f"bare-component-{i}")
    for i in range(resources - components):
        Command(f"bare-{i}", CommandArgs(connection=connection, create="true"))
    loop.run_until_complete(wait_for_rpcs())
    loop.close()
    return {"resources": resources, "sdk_modules": loaded_sdk_modules()}


def preview(stack: str, stack_dir: Path, out: Path) -> dict[str, Any]:
    from offline.preview import main

    with contextlib.redirect_stdout(io.StringIO()):
        code = main(["--stack", stack, "--stack-dir", str(stack_dir), "--out", str(out)])
    if code != 0:
        raise SystemExit(f"preview of {stack} failed with {code}")
    registered = json.loads((out / f"{stack}.json").read_text())["resources"]
    components = sum(r["type"].startswith("homelab:") for r in registered)
    return {"resources": len(registered), "components": components, "sdk_modules": loaded_sdk_modules()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--floor", action="store_true")
    parser.add_argument("--sdk-minimum", type=int, metavar="RESOURCES")
    parser.add_argument("--components", type=int, default=0, help="how many of --sdk-minimum are components")
    parser.add_argument("--modules", type=Path, help="a JSON list of modules for --sdk-minimum")
    parser.add_argument("--stack")
    parser.add_argument("--stack-dir", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.floor:
        result = floor()
    elif args.sdk_minimum is not None:
        modules = json.loads(args.modules.read_text()) if args.modules else []
        result = sdk_minimum(args.sdk_minimum, args.components, modules)
    else:
        result = preview(args.stack, args.stack_dir, args.out)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({**result, "peak_mib": round(peak_kib / 1024, 1)}))


if __name__ == "__main__":
    main()
    # Every case ends as `make preview` does, without the interpreter's teardown.
    exit_now(0)
