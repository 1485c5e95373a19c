"""Ceph: the monitors and the two RBD pools (guest disks, Kubernetes volumes)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from spec.base import Model, Name, refuse


class Pool(Model):
    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,62}$")]
    size: Annotated[int, Field(ge=1, le=10)] = 3
    min_size: Annotated[int, Field(ge=1, le=10)] = 2

    @model_validator(mode="after")
    def _min_size(self) -> Pool:
        problems: list[str] = []
        if self.min_size > self.size:
            problems.append(f"min_size {self.min_size} is above size {self.size}")
        refuse(problems)
        return self


class Ceph(Model):
    monitors: list[Name]
    guest_pool: Pool = Field(default_factory=lambda: Pool(name="vm-disks"))
    kubernetes_pool: Pool = Field(default_factory=lambda: Pool(name="k8s-volumes"))
    kubernetes_client: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]*$")] = "kubernetes"

    @model_validator(mode="after")
    def _monitors(self) -> Ceph:
        problems: list[str] = []
        if len(set(self.monitors)) != len(self.monitors):
            problems.append(f"monitors {self.monitors} names a host twice")
        if self.guest_pool.name == self.kubernetes_pool.name:
            problems.append(f"guest_pool and kubernetes_pool are both named {self.guest_pool.name}")
        refuse(problems)
        return self
