"""What every part of the spec shares: the strict base model, common field types, the error."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

HOSTNAME = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
Name = Annotated[str, Field(pattern=HOSTNAME)]
# Free text that reaches a shell script, a file path or an API call gets a pattern: the syntax
# of what it names, so a newline, an option or a `..` never gets through. (Patterns run on
# pydantic's Rust regex engine, where `$` is the end of the text, never before a final newline.)
#
# A Linux user name, as useradd takes it (shadow-utils' default, at most 32 characters).
LinuxUser = Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_-]{0,31}$")]
# A Proxmox storage ID (pve-common src/PVE/JSONSchema.pm, parse_id behind `pve-storage-id`:
# `m/^[a-z][a-z0-9\-\_\.]*[a-z0-9]$/i`, so at least two characters).
StorageId = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_.-]*[A-Za-z0-9]$")]
# An absolute path whose parts are never `.` or `..` (nor empty): what it names stays under
# where it says it is.
_PATH_PART = r"(\.?[A-Za-z0-9_-]|\.\.[A-Za-z0-9._-])[A-Za-z0-9._-]*"
ABSOLUTE_PATH = rf"^(/{_PATH_PART})+$"
VlanId = Annotated[int, Field(ge=1, le=4094)]
Watts = Annotated[float, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]
# VM IDs of the templates made from cloud images; guests may not use them.
TEMPLATE_VM_IDS = range(9000, 9100)


class Model(BaseModel):
    """Strict base: unknown keys are errors, values never change after validation."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SpecError(ValueError):
    """The stack spec is invalid; the message lists each problem where it is (`guests[name].field`)."""


def dupes(values: Iterable[str]) -> list[str]:
    """The values that occur more than once, sorted."""
    return sorted(v for v, c in Counter(values).items() if c > 1)


def refuse(problems: list[str]) -> None:
    """Raise every problem a model found at once: one line each, which `format_errors` puts
    under the item's location."""
    if problems:
        raise ValueError("\n".join(problems))
