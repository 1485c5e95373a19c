"""Proxmox HA: guests marked `ha` restart on another node when theirs dies.

Proxmox VE 9 expresses placement wishes as HA rules: a node-affinity rule keeps a guest on its
preferred node while that node is up, and a negative resource-affinity rule keeps the members
of an anti-affinity group (the k3s servers) on different nodes, even after a failover.
Proxmox VE 8 has only HA groups (the rule API does not exist there); anti-affinity then rests
on the initial placement alone.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Set

import pulumi
import pulumi_proxmoxve as proxmoxve

from spec.guests import Guest, apart_rule_id, node_rule_id, prefer_group_id
from spec.models import Cluster

PREFERRED_PRIORITY = 2
OTHER_PRIORITY = 1


def node_priorities(cluster: Cluster, preferred: str) -> dict[str, int]:
    """The preferred node first, every other node as a fallback (a non-strict preference)."""
    return {n.name: PREFERRED_PRIORITY if n.name == preferred else OTHER_PRIORITY for n in cluster.nodes}


class HighAvailability(pulumi.ComponentResource):
    """HA resources for every `ha` guest, plus the rules (PVE 9) or groups (PVE 8) they follow."""

    resources: dict[str, proxmoxve.Haresource]

    def __init__(
        self,
        cluster: Cluster,
        machines: Mapping[str, pulumi.Resource],
        placement: Mapping[str, str],
        stopped: Set[str] = frozenset(),
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("homelab:ha:HighAvailability", f"{cluster.name}-ha", None, opts)
        ha_guests = [g for g in cluster.guests if g.ha]
        # A pinned guest prefers the node placement gave it, not the spec's: while its node is
        # drained that is another one. With failback on (the PVE 9 default), HA would otherwise
        # move it straight back to the drained node (pve-ha-manager src/PVE/HA/Manager.pm,
        # select_service_node: the highest-priority online node wins unless failback is off).
        self.preferred = {g.name: placement.get(g.name, g.node) for g in ha_guests if g.node is not None}
        pve8 = cluster.proxmox.version == 8
        groups = self._groups(cluster) if pve8 else {}
        self.resources = {
            g.name: proxmoxve.Haresource(
                f"{g.name}-ha",
                proxmoxve.HaresourceArgs(
                    resource_id=g.ha_id,
                    # A guest parked on a drained node must stay down, or HA would start it there.
                    state="stopped" if g.name in stopped else "started",
                    # One restart on the same node, then move: a dead node never answers a restart.
                    max_restart=1,
                    max_relocate=2,
                    group=group.group if (group := groups.get(self.preferred.get(g.name, ""))) is not None else None,
                    comment=f"{g.name}, managed by homelab",
                ),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[machines[g.name]]),
            )
            for g in ha_guests
        }
        self.rules: list[proxmoxve.Harule] = [] if pve8 else self._rules(cluster, ha_guests)
        self.register_outputs({"ha_guests": sorted(self.resources)})

    def _groups(self, cluster: Cluster) -> dict[str, proxmoxve.Hagroup]:
        preferred = sorted(set(self.preferred.values()))
        return {
            node: proxmoxve.Hagroup(
                prefer_group_id(node),
                proxmoxve.HagroupArgs(
                    group=prefer_group_id(node), nodes=node_priorities(cluster, node), restricted=False
                ),
                opts=pulumi.ResourceOptions(parent=self),
            )
            for node in preferred
        }

    def _rules(self, cluster: Cluster, guests: list[Guest]) -> list[proxmoxve.Harule]:
        rules = []
        for g in guests:
            node = self.preferred.get(g.name)
            if node is None:
                continue
            rules.append(
                proxmoxve.Harule(
                    node_rule_id(g.name, node),
                    proxmoxve.HaruleArgs(
                        rule=node_rule_id(g.name, node),
                        type="node-affinity",
                        resources=[g.ha_id],
                        # One node, non-strict: "prefer this node, else any". A rule with several
                        # priorities conflicts with a resource-affinity rule on the same guest in
                        # pve-ha-manager, which would then ignore one of them.
                        nodes={node: 1},
                        strict=False,
                    ),
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[self.resources[g.name]]),
                )
            )
        members: dict[str, list[Guest]] = defaultdict(list)
        for g in guests:
            if g.anti_affinity is not None:
                members[g.anti_affinity].append(g)
        for group, gs in sorted(members.items()):
            if len(gs) < 2:
                continue
            rules.append(
                proxmoxve.Harule(
                    apart_rule_id(group),
                    proxmoxve.HaruleArgs(
                        rule=apart_rule_id(group),
                        type="resource-affinity",
                        affinity="negative",
                        resources=[g.ha_id for g in gs],
                        comment=f"keep {group} on different nodes",
                    ),
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[self.resources[g.name] for g in gs]),
                )
            )
        return rules
