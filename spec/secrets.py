"""Which values of a stack's config are secrets, and how a stack file must hold them.

`pulumi config set --secret homelab:KEY VALUE` encrypts the value with the stack's secrets
provider and writes the ciphertext into `Pulumi.<stack>.yaml` as `homelab:KEY: {secure: ...}`
(a passphrase-protected stack also gets an `encryptionsalt:` line at the top). That file is meant
to be committed: it holds no secret in the clear. A plain string under a secret key would be
committed as it is, so the offline preview and the program both refuse one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Annotated, Any

from pydantic import Field

NAMESPACE = "homelab"
PROXMOX_API_TOKEN = "proxmoxApiToken"
SSH_PRIVATE_KEY = "sshPrivateKey"
# What the program needs to reach the cluster.
ACCESS_SECRETS = (PROXMOX_API_TOKEN, SSH_PRIVATE_KEY)
# The program's own settings (Pulumi.yaml's `config:` and the spec): no app's secret.
PROGRAM_KEYS = (*ACCESS_SECRETS, "cluster", "proxmoxEndpoint", "proxmoxInsecure")

# A key of this stack's config, as `pulumi config set` takes it after `homelab:`.
ConfigKey = Annotated[str, Field(pattern=r"^[a-z][A-Za-z0-9]{0,62}$")]
# An environment variable's name, as Kubernetes takes it (C identifier).
EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]

# Names whose value is a secret by every convention: such a value belongs in `secret_env`. A
# `..._FILE` variable names a file that holds the secret (the images' convention), not the secret.
SECRET_NAME = re.compile(
    r"(^|_)(PASSWORD|PASSWD|PASSPHRASE|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY)(_(?!FILE$)|$)", re.IGNORECASE
)


def full_key(key: str) -> str:
    return f"{NAMESPACE}:{key}"


def is_ciphertext(value: Any) -> bool:
    """How a stack file holds a secret: `{secure: <ciphertext>}`."""
    return isinstance(value, Mapping) and set(value) == {"secure"} and isinstance(value["secure"], str)


def plain_text_secrets(config: Mapping[str, Any], keys: Iterable[str]) -> list[str]:
    """The secret `keys` (full, `homelab:...`) that a stack file's `config:` holds in the clear."""
    return [key for key in keys if key in config and not is_ciphertext(config[key])]


def plain_text_message(keys: Iterable[str], where: str) -> str:
    lines = [
        f"{key} is plain text in {where}: anyone who can read the repository can read it. Remove it from the "
        f"file and run `pulumi config set --secret {key} ...`, which stores it encrypted (`secure:`)."
        for key in keys
    ]
    return "\n".join(lines)
