"""Generated stacks of any size, shaped like the home stack: for measuring how the preview grows."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from offline.harness import ROOT

GUESTS_PER_NODE = 2


def generated_cluster(nodes: int) -> dict[str, Any]:
    """N nodes with a storage bond, 2 HA VMs per node (3 k3s servers, the rest agents), one app per node."""
    home = yaml.safe_load((ROOT / "Pulumi.home.yaml").read_text())["config"]["homelab:cluster"]
    hardware = copy.deepcopy(home["nodes"][0]["hardware"])
    hardware["nics"] = [{"name": f"enp{i}s0", "speed_gbps": 2.5} for i in range(1, 5)]
    node_list = [
        {
            "name": f"node{i:03d}",
            "address": f"10.0.{1 + i // 200}.{10 + i % 200}",
            "storage_address": f"10.1.{1 + i // 200}.{10 + i % 200}",
            "public_address": f"10.2.{1 + i // 200}.{10 + i % 200}",
            "ssh_host_key": home["nodes"][0]["ssh_host_key"],
            "hardware": hardware,
            "bond": {"mode": "802.3ad", "members": ["enp1s0", "enp2s0"]},
            "storage_bond": {"mode": "802.3ad", "members": ["enp3s0", "enp4s0"]},
            "osds": [{"device": "/dev/nvme0n1"}],
        }
        for i in range(nodes)
    ]
    guests = []
    for i in range(nodes * GUESTS_PER_NODE):
        server = i < 3
        guests.append(
            {
                "name": f"k3s-{'server' if server else 'agent'}-{i:04d}",
                "vm_id": 1000 + i,
                "address": f"10.0.{100 + i // 200}.{10 + i % 200}",
                "ceph_address": f"10.2.{100 + i // 200}.{10 + i % 200}",
                "cores": 2,
                "memory_mib": 4096,
                "disks": [{"size_gib": 32}],
                "image": "debian-13",
                "ha": True,
                "load": 0.15,
                "anti_affinity": "k3s-servers" if server else None,
            }
        )
    servers = [g["name"] for g in guests[:3]]
    workloads = [
        {
            "name": f"app-{i:04d}",
            "namespace": f"team-{i % 10}",
            "image": "traefik/whoami:v1.11.0@sha256:200689790a0a0ea48ca45992e0450bc26ccab5307375b41c84dfc4f2475937ab",
            "replicas": 2,
            "ports": [{"name": "http", "port": 80}],
        }
        for i in range(nodes)
    ]
    return {
        "name": f"gen{nodes}",
        "domain": "bench.home.arpa",
        "power": {"budget_watts": 30 * nodes, "price_per_kwh": 0.3},
        "networks": {
            "lan": {"cidr": "10.0.0.0/16", "gateway": "10.0.0.1", "dns": ["10.0.0.1"]},
            "ceph": {"public": "10.2.0.0/16", "cluster": "10.1.0.0/16", "public_vlan": 40},
            "storage": {"mode": "bond", "mtu": 9000},
        },
        "access": home["access"],
        "images": home["images"],
        "nodes": node_list,
        "ceph": {"monitors": [n["name"] for n in node_list[: 3 if nodes < 10 else 5]]},
        "guests": guests,
        "k3s": {
            "version": home["k3s"]["version"],
            "servers": servers,
            "agents": [g["name"] for g in guests[3:]],
            "api_vip": "10.0.250.1",
            "load_balancer_pool": {"start": "10.0.251.1", "end": "10.0.251.250"},
        },
        "workloads": workloads,
    }


def write_stack(directory: Path, nodes: int) -> str:
    """Write Pulumi.gen<N>.yaml into `directory`; return the stack name."""
    stack = f"gen{nodes}"
    doc = {
        "config": {"homelab:proxmoxEndpoint": "https://10.0.1.10:8006/", "homelab:cluster": generated_cluster(nodes)}
    }
    (directory / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return stack
