"""The homelab policy pack: `pulumi preview --policy-pack policies`.

The engine starts this file with the stack's config in PULUMI_CONFIG; the policies read the
cluster spec (`homelab:cluster`) from it. `PolicyPack` serves the analyzer over gRPC on
127.0.0.1, prints its port and runs until the engine stops it.
"""

import sys
from pathlib import Path

# The pack ships inside this repo and shares its pure spec and power/failover model (`spec`,
# `plan`): put the repo root, the parent of this folder, on sys.path before importing them.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from pulumi_policy import PolicyPack  # noqa: E402

from policies.rules import PACK_ENFORCEMENT, PACK_NAME, POLICIES  # noqa: E402

PolicyPack(name=PACK_NAME, enforcement_level=PACK_ENFORCEMENT, policies=POLICIES)
