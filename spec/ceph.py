"""Ceph: the monitors and the two RBD pools (guest disks, Kubernetes volumes)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from spec.base import Model, Name, refuse

# Ceph's defaults (src/common/options/global.yaml.in): a monitor refuses a pool that would put
# more than mon_max_pg_per_osd placement-group copies on the OSDs on average, and the autoscaler
# aims at mon_target_pg_per_osd.
MON_MAX_PG_PER_OSD = 250
MON_TARGET_PG_PER_OSD = 100
# The manager's own pool (.mgr): one PG, at the default size Proxmox sets (osd_pool_default_size).
MGR_POOL_PG_COPIES = 1 * 3
# Proxmox's API and the provider take at most 7 replicas (pve-manager PVE/API2/Ceph/Pool.pm; bpg
# fwprovider/nodes/ceph/pool/resource.go: Between(1, 7)).
MAX_REPLICAS = 7


class Pool(Model):
    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,62}$")]
    size: Annotated[int, Field(ge=1, le=MAX_REPLICAS)] = 3
    min_size: Annotated[int, Field(ge=1, le=MAX_REPLICAS)] = 2
    # Placement groups at creation; left out, the program picks them from the OSD count
    # (`placement_groups`). The autoscaler owns the figure afterwards.
    pg_num: Annotated[int, Field(ge=1, le=32768)] | None = None

    @model_validator(mode="after")
    def _min_size(self) -> Pool:
        problems: list[str] = []
        if self.min_size > self.size:
            problems.append(f"min_size {self.min_size} is above size {self.size}")
        if self.pg_num is not None and self.pg_num & (self.pg_num - 1):
            problems.append(f"pg_num {self.pg_num} is not a power of two")
        refuse(problems)
        return self


def placement_groups(pools: list[Pool], osds: int) -> dict[str, int]:
    """Each pool's pg_num: the one it asks for, else the largest power of two that keeps the
    pools at or below the autoscaler's target of PG copies per OSD when they share it evenly
    (at least 1). Proxmox would otherwise give each pool 128 (Pool.pm: `pg_num //= 128`), which
    three OSDs cannot hold for two pools at size 3."""
    share = MON_TARGET_PG_PER_OSD * osds / max(len(pools), 1)
    chosen: dict[str, int] = {}
    for pool in pools:
        if pool.pg_num is not None:
            chosen[pool.name] = pool.pg_num
            continue
        pg_num = 1
        while pg_num * 2 * pool.size <= share:
            pg_num *= 2
        chosen[pool.name] = pg_num
    return chosen


def pg_budget_problem(pools: list[Pool], osds: int) -> str | None:
    """Ceph's own refusal, said before anything is deployed: the PG copies the pools (and the
    manager's pool) need against what the OSDs may hold."""
    if osds == 0:
        return None  # a pool wider than the OSD hosts is refused on its own
    pgs = placement_groups(pools, osds)
    need = sum(pgs[p.name] * p.size for p in pools) + MGR_POOL_PG_COPIES
    limit = MON_MAX_PG_PER_OSD * osds
    if need <= limit:
        return None
    parts = ", ".join(f"{p.name} {pgs[p.name]} x {p.size}" for p in pools)
    return (
        f"ceph: the pools need {need} placement-group copies ({parts}, and 3 for .mgr) but {osds} OSDs "
        f"hold at most {limit} (mon_max_pg_per_osd {MON_MAX_PG_PER_OSD}); lower a pool's pg_num or add OSDs"
    )


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
