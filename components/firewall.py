"""The Proxmox firewall of the hosts: what reaches a node, as resources.

Proxmox itself lets the `management` IP set (the node's own network, `local_network`) reach the
API (8006), SSH (22), consoles and migrations, and corosync pass between the cluster's addresses
(pve-firewall src/PVE/Firewall.pm, the host chain: after the host's and the cluster's own rules,
before the input policy). What else the cluster needs is allowed here, from its own networks only:
Ceph (monitors and OSDs, the `Ceph` macro) and ping (the storage-network check pings every peer).
Everything else inbound is dropped. The cluster's rules come before Proxmox's management ones, so
`deploy-path-open` (policies/firewall_checks.py) refuses one that would drop the API or SSH.

Guests' traffic is bridged and does not pass the hosts' input chain; their NICs are tagged
(components/guests.py). `GuestFilters` keeps each guest to its own addresses: a guest that
spoofs a node, the gateway or another guest sends nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from ipaddress import IPv4Address, IPv4Network, summarize_address_range

import pulumi
import pulumi_proxmoxve as proxmoxve
from pulumi_proxmoxve.cluster.firewall.security import GroupLegacy, GroupLegacyArgs, GroupLegacyRuleArgs

from components.nut import NUT_PORT
from components.stack import waits_for
from plan.monitoring import CEPH_MGR_PORT, NODE_EXPORTER_PORT, PVE_EXPORTER_PORT
from policies.firewall_checks import DEPLOY_PORTS
from spec.guests import Guest
from spec.models import Cluster

MANAGEMENT_GROUP = "homelab-mgmt"
CEPH_GROUP = "homelab-ceph"
PING_GROUP = "homelab-ping"
NUT_GROUP = "homelab-nut"
METRICS_GROUP = "homelab-metrics"


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
        if cluster.ups is not None:
            # The secondary upsmons reach the UPS node's upsd: from the nodes only, not the LAN.
            groups.append(
                group(
                    NUT_GROUP,
                    "NUT (upsd) from the cluster's nodes: the UPS's state and the forced shutdown",
                    [
                        accept(str(n.address), f"NUT from {n.name}", proto="tcp", dport=str(NUT_PORT))
                        for n in cluster.nodes
                        if n.name != cluster.ups.node
                    ],
                )
            )
        if cluster.monitoring is not None and cluster.k3s is not None:
            # The scraper runs on the k3s VMs: the node exporter and Ceph's exporter from those only.
            scrapers = [cluster.guest(g) for g in (*cluster.k3s.servers, *cluster.k3s.agents)]
            groups.append(
                group(
                    METRICS_GROUP,
                    "metrics (node, Ceph and Proxmox exporters) from the k3s VMs, where the scraper runs",
                    [
                        accept(
                            str(g.address),
                            f"metrics from {g.name}",
                            proto="tcp",
                            dport=f"{NODE_EXPORTER_PORT},{CEPH_MGR_PORT},{PVE_EXPORTER_PORT}",
                        )
                        for g in scrapers
                    ],
                )
            )
        names = [
            MANAGEMENT_GROUP,
            CEPH_GROUP,
            PING_GROUP,
            *([NUT_GROUP] if cluster.ups is not None else []),
            *([METRICS_GROUP] if cluster.monitoring is not None and cluster.k3s is not None else []),
        ]
        self.rules = proxmoxve.firewall.RulesLegacy(
            f"{cluster.name}-firewall-rules",
            proxmoxve.firewall.RulesLegacyArgs(
                rules=[proxmoxve.firewall.RulesLegacyRuleArgs(security_group=name, comment="homelab") for name in names]
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
        self.register_outputs({"groups": names})


def ipset_entry(network: IPv4Network) -> str:
    """An IP set entry as Proxmox stores it: a single address without `/32` (pve-firewall
    src/PVE/Firewall.pm parse_ip_or_cidr), so what the provider reads back equals what was sent
    and the set is not replaced at every `up`."""
    return str(network.network_address) if network.prefixlen == 32 else str(network)


def sender_addresses(cluster: Cluster, guest: Guest) -> dict[str, list[IPv4Network]]:
    """The addresses GUEST may send from, per NIC (`net0` LAN, `net1` Ceph), as CIDRs.

    A k3s VM also answers for the addresses kube-vip may move onto it: the API VIP (servers) and
    every LoadBalancer address, the gateway's among them (any node), both as a sender of replies
    and in its gratuitous ARP.
    """
    if guest.address is None:
        return {}
    lan = [IPv4Address(guest.address)]
    ranges: list[IPv4Network] = []
    k3s = cluster.k3s
    if k3s is not None and guest.name in (*k3s.servers, *k3s.agents):
        if guest.name in k3s.servers:
            lan.append(k3s.api_vip)
        lan += [w.load_balancer_ip for w in cluster.workloads if w.load_balancer_ip is not None]
        if cluster.gateway is not None:
            lan.append(cluster.gateway.address)
        ranges = list(summarize_address_range(k3s.load_balancer_pool.start, k3s.load_balancer_pool.end))
    nets = {"net0": sorted({IPv4Network(a) for a in lan} | set(ranges))}
    if guest.ceph_address is not None:
        nets["net1"] = [IPv4Network(guest.ceph_address)]
    return nets


class GuestFilters(pulumi.ComponentResource):
    """Each guest's firewall on, for what it sends: from its NICs' MAC addresses only (macfilter)
    and from its own addresses only (ipfilter, `ipfilter-netN` IP sets), no router
    advertisements, and DHCP client traffic only for a guest on DHCP. Inbound stays open here
    (a guest's own input policy would default to DROP): the hosts' firewall and the k3s
    NetworkPolicies judge that.

    A guest's firewall file is cluster-wide (/etc/pve/firewall/<vmid>.fw, pve-firewall
    src/PVE/Firewall.pm load_vmfw_conf, whichever node the API call names): a VM that HA moves
    keeps its filters, and the node named here is only where the call is made. An IP set must
    exist before ipfilter is on: with the option and no set, the guest may send from no IPv4
    address at all. For the same reason, a changed set (a new LoadBalancer address) leaves the
    guest's new connections dropped for the few seconds between the old set's removal and the
    new one's, and turning the filters off takes two steps: `enabled: False` applied first, then
    the component removed (deleting the options resource leaves Proxmox's options as they are).
    The filters go with their guest: a rebuilt VM loses its firewall file (qemu-server destroys
    /etc/pve/firewall/<vmid>.fw with the VM), so they are recreated with it (`deleted_with`).
    """

    def __init__(
        self,
        cluster: Cluster,
        machines: Mapping[str, pulumi.Resource],
        placement: Mapping[str, str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("homelab:guests:GuestFilters", f"{cluster.name}-guest-filters", None, opts)
        self.options: dict[str, proxmoxve.firewall.OptionsLegacy] = {}
        for guest in cluster.guests:
            machine = machines[guest.name]
            node = placement[guest.name]
            vm_id = guest.vm_id if guest.kind == "vm" else None
            container_id = guest.vm_id if guest.kind == "lxc" else None
            nets = sender_addresses(cluster, guest)
            sets = [
                proxmoxve.firewall.IpsetLegacy(
                    f"{guest.name}-ipfilter-{net}",
                    proxmoxve.firewall.IpsetLegacyArgs(
                        name=f"ipfilter-{net}",
                        comment=f"what {guest.name} may send from on {net}",
                        cidrs=[proxmoxve.firewall.IpsetLegacyCidrArgs(name=ipset_entry(c)) for c in cidrs],
                        node_name=node,
                        vm_id=vm_id,
                        container_id=container_id,
                    ),
                    # A changed set is replaced (its entries cannot be updated): the old one goes
                    # first, or its delete would remove the new set of the same name.
                    opts=pulumi.ResourceOptions(
                        parent=self, depends_on=[machine], delete_before_replace=True, deleted_with=machine
                    ),
                )
                for net, cidrs in nets.items()
            ]
            static = guest.address is not None
            self.options[guest.name] = proxmoxve.firewall.OptionsLegacy(
                f"{guest.name}-firewall",
                proxmoxve.firewall.OptionsLegacyArgs(
                    enabled=True,
                    macfilter=True,
                    # A guest on DHCP has no address to filter on, and needs the DHCP answers.
                    ipfilter=static,
                    dhcp=not static,
                    radv=False,
                    ndp=False,  # the LAN is IPv4 here; ipfilter lets only link-local IPv6 out
                    input_policy="ACCEPT",
                    output_policy="ACCEPT",
                    node_name=node,
                    vm_id=vm_id,
                    container_id=container_id,
                ),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[machine, *sets], deleted_with=machine),
            )
        self.register_outputs({"guests": sorted(self.options)})
