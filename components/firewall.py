"""The Proxmox firewall of the hosts: what reaches a node, as resources.

Proxmox itself lets the `management` IP set (the node's own network, `local_network`) reach the
API (8006), SSH (22), consoles and migrations, and corosync pass between the cluster's addresses
(pve-firewall src/PVE/Firewall.pm, the host chain: after the host's and the cluster's own rules,
before the input policy). What else the cluster needs is allowed here, from its own networks only:
Ceph (monitors and OSDs, the `Ceph` macro) and ping (the storage-network check pings every peer).
Everything else inbound is dropped. The cluster's rules come before Proxmox's management ones, so
`deploy-path-open` (policies/firewall_checks.py) refuses one that would drop the API or SSH.

Guests' traffic is bridged and does not pass the hosts' input chain; their NICs are tagged
(components/guests.py), and a per-guest firewall is left off.
"""

from __future__ import annotations

import pulumi
import pulumi_proxmoxve as proxmoxve
from pulumi_proxmoxve.cluster.firewall.security import GroupLegacy, GroupLegacyArgs, GroupLegacyRuleArgs

from components.stack import waits_for
from policies.firewall_checks import DEPLOY_PORTS
from spec.models import Cluster

MANAGEMENT_GROUP = "homelab-mgmt"
CEPH_GROUP = "homelab-ceph"
PING_GROUP = "homelab-ping"


class ProxmoxFirewall(pulumi.ComponentResource):
    """Security groups for the cluster's own traffic, the cluster-wide rules that use them, and
    then the firewall on with inbound traffic dropped by default."""

    def __init__(self, cluster: Cluster, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("homelab:network:ProxmoxFirewall", f"{cluster.name}-firewall", None, opts)
        child = pulumi.ResourceOptions(parent=self, depends_on=waits_for(opts))
        nets = cluster.networks
        lan, public, storage = str(nets.lan.cidr), str(nets.ceph.public), str(nets.ceph.cluster)
        ceph_sources = sorted({public, storage})

        def group(name: str, comment: str, rules: list[GroupLegacyRuleArgs]) -> GroupLegacy:
            return GroupLegacy(name, GroupLegacyArgs(name=name, comment=comment, rules=rules), opts=child)

        def accept(
            source: str, comment: str, proto: str | None = None, dport: str | None = None, macro: str | None = None
        ) -> GroupLegacyRuleArgs:
            return GroupLegacyRuleArgs(
                type="in", action="ACCEPT", source=source, comment=comment, proto=proto, dport=dport, macro=macro
            )

        groups = [
            # Proxmox allows these from `management` already; said here too, from the LAN only.
            group(
                MANAGEMENT_GROUP,
                "Proxmox API and SSH from the LAN (the owner and the deploy path)",
                [accept(lan, f"port {port} from the LAN", proto="tcp", dport=str(port)) for port in DEPLOY_PORTS],
            ),
            group(
                CEPH_GROUP,
                "Ceph monitors and OSDs, from the Ceph networks",
                [accept(src, f"Ceph from {src}", macro="Ceph") for src in ceph_sources],
            ),
            group(
                PING_GROUP,
                "ping from the LAN and the Ceph networks (the storage-network check)",
                [accept(src, f"ping from {src}", macro="Ping") for src in sorted({lan, *ceph_sources})],
            ),
        ]
        self.rules = proxmoxve.firewall.RulesLegacy(
            f"{cluster.name}-firewall-rules",
            proxmoxve.firewall.RulesLegacyArgs(
                rules=[
                    proxmoxve.firewall.RulesLegacyRuleArgs(security_group=g, comment="homelab")
                    for g in (MANAGEMENT_GROUP, CEPH_GROUP, PING_GROUP)
                ]
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*waits_for(opts), *groups]),
        )
        # On only once the rules are in: turning it on first would cut Ceph off in between.
        self.enabled = proxmoxve.cluster.FirewallLegacy(
            f"{cluster.name}-firewall",
            proxmoxve.cluster.FirewallLegacyArgs(
                enabled=True, input_policy="DROP", output_policy="ACCEPT", ebtables=True
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.rules]),
        )
        self.register_outputs({"groups": [MANAGEMENT_GROUP, CEPH_GROUP, PING_GROUP]})
