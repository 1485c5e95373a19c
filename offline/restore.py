"""`make restore STACK=home VOLUME=jellyfin/config [AS_OF=2026-12-01T03:00:00Z]`: the
ReplicationDestination that puts a volume's copy back into its claim, as YAML for `kubectl apply -f -`.

Read from the stack file alone, like the preview: no cluster, no secret. The restore's Secret and
CA are the ones the backup uses, already in the app's namespace. README, "Restore a volume".
"""

from __future__ import annotations

import argparse
import sys

import yaml

from components.volume_backups import restore_manifest
from offline.preview import load_spec


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stack", default="home")
    parser.add_argument("--volume", required=True, help="<workload>/<volume>, as in the stack file")
    parser.add_argument("--as-of", default=None, help="the last copy made at or before this time (RFC 3339)")
    args = parser.parse_args(argv)
    cluster, _ = load_spec(args.stack)
    try:
        manifest = restore_manifest(cluster, args.volume, args.as_of or None)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(yaml.safe_dump(manifest, sort_keys=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
