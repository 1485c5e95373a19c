"""The stack spec: the whole cluster as one typed value (`homelab:cluster` in a stack file).

Pure data and cross-field checks, no Pulumi import, so it can be tested and reused by the
policy pack and the reports. The parts live beside it (`settings`, `nodes`, `guests`, `ceph`,
`kubernetes`); the checks across them in `spec.checks`. Every error names where it is and what
is wrong.
"""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import Annotated

from pydantic import Field, model_validator

from spec.backups import Backups
from spec.base import Model, Name, refuse
from spec.ceph import Ceph, Pool, placement_groups
from spec.checks import problems
from spec.gateway import Gateway
from spec.guests import Disk, Guest
from spec.kubernetes import K3s, Workload
from spec.monitoring import Monitoring
from spec.nodes import Node
from spec.settings import Access, Image, Networks, Power, Proxmox, QuorumDevice
from spec.ups import Ups


class Cluster(Model):
    name: Name
    domain: Annotated[str, Field(pattern=r"^([a-z0-9-]+\.)+[a-z]{2,}$|^[a-z0-9-]+\.(lan|home\.arpa|internal)$")]
    power: Power
    networks: Networks
    proxmox: Proxmox = Field(default_factory=Proxmox)
    quorum_device: QuorumDevice | None = None
    access: Access
    # A key names the template VM (`tmpl-<key>`), which Proxmox holds to a DNS name.
    images: dict[Name, Image] = Field(default_factory=dict)
    nodes: list[Node] = Field(min_length=1)
    ceph: Ceph
    guests: list[Guest] = Field(default_factory=list)
    k3s: K3s | None = None
    workloads: list[Workload] = Field(default_factory=list)
    backups: Backups | None = None
    ups: Ups | None = None
    monitoring: Monitoring | None = None
    gateway: Gateway | None = None

    @model_validator(mode="after")
    def _cross(self) -> Cluster:
        refuse(problems(self))
        return self

    # Small lookups the components and reports share.
    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def guest(self, name: str) -> Guest:
        return next(g for g in self.guests if g.name == name)

    @property
    def shared_storages(self) -> set[str]:
        return {self.ceph.guest_pool.name}

    def disk_storage(self, disk: Disk) -> str:
        return disk.storage or self.ceph.guest_pool.name

    def public_address(self, node: Node) -> IPv4Address:
        """Where a node's monitor listens: its public VLAN address, else its storage address."""
        return node.public_address or node.storage_address

    @property
    def osd_hosts(self) -> list[str]:
        return [n.name for n in self.nodes if n.osds]

    @property
    def pools(self) -> list[Pool]:
        return [self.ceph.guest_pool, self.ceph.kubernetes_pool]

    @property
    def osd_count(self) -> int:
        return sum(len(n.osds) for n in self.nodes)

    def placement_groups(self) -> dict[str, int]:
        """Each Ceph pool's pg_num at creation (see spec.ceph.placement_groups)."""
        return placement_groups(self.pools, self.osd_count)
