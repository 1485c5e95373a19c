"""What every part of the spec shares: the strict base model, common field types, the error."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

HOSTNAME = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
Name = Annotated[str, Field(pattern=HOSTNAME)]
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
