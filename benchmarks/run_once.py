"""One measured process: the floor (SDKs + an empty program under mocks) or one offline preview.

Prints one JSON line: resources, the process's own peak memory.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import resource
import sys
from pathlib import Path


def floor() -> int:
    """What every preview pays before the first resource: interpreter, SDK imports, the mock engine."""
    import asyncio

    import pulumi
    import pulumi_command  # noqa: F401 - the import is what is measured
    import pulumi_kubernetes  # noqa: F401
    import pulumi_proxmoxve  # noqa: F401
    from pulumi.runtime.stack import wait_for_rpcs

    from offline.harness import OfflineMocks

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    pulumi.runtime.set_mocks(OfflineMocks(), project="homelab", stack="floor", preview=True)
    loop.run_until_complete(wait_for_rpcs())
    return 0


def preview(stack: str, stack_dir: Path, out: Path) -> int:
    from offline.preview import main

    with contextlib.redirect_stdout(io.StringIO()):
        code = main(["--stack", stack, "--stack-dir", str(stack_dir), "--out", str(out)])
    if code != 0:
        raise SystemExit(f"preview of {stack} failed with {code}")
    return len(json.loads((out / f"{stack}.json").read_text())["resources"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--floor", action="store_true")
    parser.add_argument("--stack")
    parser.add_argument("--stack-dir", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    resources = floor() if args.floor else preview(args.stack, args.stack_dir, args.out)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"resources": resources, "peak_mib": round(peak_kib / 1024, 1)}))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
