"""`deploy-path-open`: no firewall rule of the stack can lock the owner and the deploy path out.

Proxmox accepts the API (8006) and SSH (22) from its `management` IP set, which always holds
`local_network`, but only after the hosts' and the cluster's own rules, security groups included
(pve-firewall src/PVE/Firewall.pm, the host input chain). So an inbound DROP or REJECT there that
can match TCP 8006 or 22 from the LAN would cut every node off from the owner and from CI (whose
Tailscale route reaches the nodes from a LAN address), and `local_network` set to a network that
misses the LAN takes the LAN out of the management set.
"""

from __future__ import annotations

from ipaddress import IPv4Network, ip_network
from typing import Any

from policies.props import Declared, as_str, get, known, known_items
from policies.tokens import FIREWALL_ALIAS, FIREWALL_GROUP, FIREWALL_RULES
from spec import Cluster

FIREWALL_TYPES = (FIREWALL_RULES, FIREWALL_GROUP, FIREWALL_ALIAS)
# Ports the owner and the deploy path (a LAN address: CI's Tailscale subnet route) must keep;
# components/firewall.py opens them from the LAN.
DEPLOY_PORTS = (8006, 22)
# Proxmox's macros that carry one of those ports (pve-firewall src/PVE/Firewall.pm, $pve_fw_macros).
DEPLOY_MACROS = {"SSH": 22}


def _ports(dport: str | None) -> set[int] | None:
    """The destination ports a rule's `dport` names; None for every port (or a name we cannot read)."""
    if dport is None:
        return None
    found: set[int] = set()
    for part in dport.split(","):
        low, _, high = part.strip().partition(":")
        if not low.isdigit() or (high and not high.isdigit()):
            return None
        found |= set(range(int(low), int(high or low) + 1))
    return found


def _reaches_lan(source: str | None, lan: IPv4Network) -> bool:
    if source is None:
        return True
    try:
        return any(ip_network(part.strip(), strict=False).overlaps(lan) for part in source.split(","))
    except ValueError:
        return True  # an alias or IP set: it may hold the LAN


def _locks_out(rule: Any, lan: IPv4Network) -> int | None:
    """The deploy port a rule would drop from the LAN, if any."""
    if get(rule, "enabled") is False or as_str(get(rule, "type")) != "in":
        return None
    if (as_str(get(rule, "action")) or "").upper() not in ("DROP", "REJECT"):
        return None
    macro = as_str(get(rule, "macro"))
    if macro is not None:
        port = DEPLOY_MACROS.get(macro)
        return port if port is not None and _reaches_lan(as_str(get(rule, "source")), lan) else None
    proto = as_str(get(rule, "proto"))
    if proto not in (None, "tcp", "6") or not _reaches_lan(as_str(get(rule, "source")), lan):
        return None
    ports = _ports(as_str(get(rule, "dport")))
    return next((p for p in DEPLOY_PORTS if ports is None or p in ports), None)


def check_deploy_path(r: Declared, cluster: Cluster) -> list[str]:
    lan = cluster.networks.lan.cidr
    if r.resource_type == FIREWALL_ALIAS:
        if as_str(get(r.props, "name")) != "local_network":
            return []
        cidr = as_str(known(get(r.props, "cidr"), f"{r.name}'s cidr")) or ""
        network = ip_network(cidr, strict=False)
        if not (isinstance(network, IPv4Network) and network.supernet_of(lan)):
            return [
                f"{r.name}: local_network {cidr} leaves out the LAN {lan}, which then drops out of Proxmox's "
                "management set: the owner and the deploy path would lose the API and SSH"
            ]
        return []
    if r.resource_type == FIREWALL_RULES and (get(r.props, "vmId") or get(r.props, "containerId")):
        return []  # a guest's own rules: its traffic is bridged, not the hosts'
    out = []
    for i, rule in enumerate(known_items(get(r.props, "rules"), f"{r.name}'s rules")):
        port = _locks_out(rule, lan)
        if port is not None:
            out.append(
                f"{r.name}: rule {i} drops TCP {port} from the LAN {lan} before Proxmox's own management rules: "
                "the owner and the deploy path would be locked out of every node; narrow its source or port"
            )
    return out
