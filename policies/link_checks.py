"""Resource checks on links and on what holds data: `redundant-links` and `protect-stateful`."""

from __future__ import annotations

from policies.props import Declared, as_str, get, items, k8s_name, known_items, where
from policies.tokens import BOND, CEPH_POOL, CLUSTER_COMPONENT, FABRIC_NODE, PVC, STATEFUL_SET
from spec import CLUSTER_KEY, Cluster


def check_redundant_links(r: Declared, cluster: Cluster | str | None) -> list[str]:
    """Bonds with two members, mesh nodes with two cables, corosync on two links."""
    if r.resource_type == BOND:
        return _bond_members(r)
    if r.resource_type == FABRIC_NODE:
        return _mesh_cables(r)
    if r.resource_type == CLUSTER_COMPONENT:
        if not isinstance(cluster, Cluster):
            return [cluster or f"{CLUSTER_KEY} is missing from this stack's config"]
        links = cluster.networks.corosync_links
        if len(set(links)) < 2:
            return [
                f"corosync runs on {len(links)} link ({', '.join(links)}): if that network fails the nodes lose "
                "quorum and HA fences them; set networks.corosync_links to [lan, storage]"
            ]
    return []


def _bond_members(r: Declared) -> list[str]:
    members = [s for s in known_items(get(r.props, "slaves"), f"{r.name}'s slaves") if isinstance(s, str)]
    if len(members) >= 2:
        return []
    node = as_str(get(r.props, "nodeName")) or "its node"
    bond = as_str(get(r.props, "name")) or r.name
    return [
        f"bond {bond} on {node} has {len(members)} member NIC(s) ({', '.join(members) or 'none'}): one "
        f"cable, switch port or NIC failure cuts {node} off; give it two NICs (nodes[].bond.members)"
    ]


def _mesh_cables(r: Declared) -> list[str]:
    links = known_items(get(r.props, "interfaceNames"), f"{r.name}'s interfaceNames")
    nics = [s for s in links if isinstance(s, str)]
    if len(nics) >= 2:
        return []
    node = as_str(get(r.props, "nodeId")) or r.name
    return [
        f"storage mesh: {node} has {len(nics)} direct cable(s) in the fabric ({', '.join(nics) or 'none'}): "
        "one cut cable isolates it from Ceph; cable it to every other node (nodes[].mesh_links)"
    ]


def check_protect_stateful(r: Declared) -> list[str]:
    if r.opts.protect:
        return []
    if r.resource_type == CEPH_POOL:
        pool = as_str(get(r.props, "name")) or r.name
        return [
            f"Ceph pool {pool} is not protected: a `pulumi destroy` or a rename deletes the pool and every "
            "disk in it; set protect=True in its resource options"
        ]
    if r.resource_type == PVC:
        name, namespace = k8s_name(r)
        return [
            f"PersistentVolumeClaim {where(namespace, name)} is not protected: deleting or replacing it deletes its "
            "volume's data; set protect=True in its resource options"
        ]
    if r.resource_type == STATEFUL_SET and items(get(r.props, "spec", "volumeClaimTemplates")):
        name, namespace = k8s_name(r)
        return [
            f"StatefulSet {where(namespace, name)} has volumeClaimTemplates but is not protected: replacing it "
            "(e.g. a changed selector) recreates its pods and can orphan or delete their volumes; set protect=True"
        ]
    return []
