"""Each guest sends from its own MAC and addresses only, judged as pve-firewall judges a guest's
outgoing packet (src/PVE/Firewall.pm ruleset_create_vm_chain: with ipfilter on, a source outside
the NIC's `ipfilter-netN` set is dropped, and with no set at all every IPv4 source is)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import pytest

from offline.harness import ProgramRun
from policies import tokens
from tests.support import STACKS, program, stack_cluster


def may_send(run: ProgramRun, guest: str, net: str, source: str) -> bool:
    """Whether the guest's firewall lets a packet from SOURCE out of NET."""
    options = run.named(f"{guest}-firewall").inputs
    if not options.get("enabled"):
        return True
    if not options.get("ipfilter"):
        return True
    sets = {r.inputs["name"]: r for r in run.of_type(tokens.FIREWALL_IPSET) if r.name.startswith(f"{guest}-")}
    ipset = sets.get(f"ipfilter-{net}")
    if ipset is None:
        return False
    return any(IPv4Address(source) in IPv4Network(c["name"]) for c in ipset.inputs.get("cidrs", []))


@pytest.mark.parametrize("stack", STACKS)
def test_every_guest_sends_from_its_own_addresses_only(stack: str) -> None:
    run, cluster = program(stack), stack_cluster(stack)
    nodes = [str(n.address) for n in cluster.nodes]
    for guest in cluster.guests:
        options = run.named(f"{guest.name}-firewall").inputs
        assert options["enabled"] is True and options["macfilter"] is True, guest.name
        assert options["radv"] is False and options["inputPolicy"] == "ACCEPT", guest.name
        if guest.address is None:
            # On DHCP: nothing to filter on, and it needs the answers.
            assert options["ipfilter"] is False and options["dhcp"] is True, guest.name
            continue
        assert may_send(run, guest.name, "net0", str(guest.address)), guest.name
        others = [str(g.address) for g in cluster.guests if g.address is not None and g is not guest]
        for spoofed in [*nodes, str(cluster.networks.lan.gateway), *others]:
            assert not may_send(run, guest.name, "net0", spoofed), (guest.name, spoofed)
        if guest.ceph_address is not None:
            assert may_send(run, guest.name, "net1", str(guest.ceph_address)), guest.name
            # Not its LAN address on the Ceph VLAN, nor a node's Ceph address.
            assert not may_send(run, guest.name, "net1", str(guest.address)), guest.name


@pytest.mark.parametrize("stack", STACKS)
def test_k3s_vms_send_from_the_addresses_kube_vip_moves_onto_them(stack: str) -> None:
    run, cluster = program(stack), stack_cluster(stack)
    k3s = cluster.k3s
    assert k3s is not None
    pool = k3s.load_balancer_pool
    fixed = [str(w.load_balancer_ip) for w in cluster.workloads if w.load_balancer_ip is not None]
    # The gateway's address too: kube-vip announces it from whichever VM it picks.
    fixed += [str(cluster.gateway.address)] if cluster.gateway is not None else []
    for vm in [*k3s.servers, *k3s.agents]:
        for address in [str(pool.start), str(pool.end), *fixed]:
            assert may_send(run, vm, "net0", address), (vm, address)
        # The pool's edges: the address past either end stays someone else's.
        assert not may_send(run, vm, "net0", str(pool.start - 1)), vm
        assert not may_send(run, vm, "net0", str(pool.end + 1)), vm
        # The API VIP moves between the servers only.
        assert may_send(run, vm, "net0", str(k3s.api_vip)) == (vm in k3s.servers), vm


def stored(entry: str) -> str:
    """An IP set entry as Proxmox keeps it (pve-firewall src/PVE/Firewall.pm parse_ip_or_cidr)."""
    return entry.removesuffix("/32")


def test_the_sets_read_back_as_sent_so_an_up_changes_nothing() -> None:
    # The provider compares what it reads back with the inputs; an entry Proxmox rewrites would
    # replace the set at every `up`, and a replaced set leaves the guest without its addresses.
    run = program("home")
    entries = [c["name"] for r in run.of_type(tokens.FIREWALL_IPSET) for c in r.inputs["cidrs"]]
    assert entries and all(stored(e) == e for e in entries)
    for ipset in run.of_type(tokens.FIREWALL_IPSET):
        # A changed set: the old one goes before the new one of the same name is made.
        assert ipset.delete_before_replace, ipset.name


def test_filters_go_and_come_back_with_their_guest() -> None:
    # Destroying a VM removes its firewall file: a rebuilt guest gets its filters anew.
    run, cluster = program("home"), stack_cluster("home")
    for guest in cluster.guests:
        machine = run.named(guest.name)
        mine = [
            r
            for r in [*run.of_type(tokens.FIREWALL_IPSET), *run.of_type(tokens.FIREWALL_OPTIONS)]
            if r.name.startswith(f"{guest.name}-")
        ]
        assert mine and all(r.deleted_with == machine.urn for r in mine), guest.name


def test_filters_apply_to_every_guest_nic_and_come_after_the_sets() -> None:
    run, cluster = program("home"), stack_cluster("home")
    for guest in cluster.guests:
        machine = run.named(guest.name)
        nics = machine.inputs.get("networkDevices") or machine.inputs.get("networkInterfaces")
        assert nics and all(n["firewall"] is True for n in nics), guest.name
        options = run.named(f"{guest.name}-firewall")
        # ipfilter on before its set exists would cut the guest off.
        sets = [r.urn for r in run.of_type(tokens.FIREWALL_IPSET) if r.name.startswith(f"{guest.name}-")]
        assert set(sets) <= set(options.dependencies), guest.name
        assert machine.urn in options.dependencies, guest.name
