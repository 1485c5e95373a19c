"""The Proxmox cluster itself: membership and corosync links.

The cluster forms over the LAN (link 0) first, because the API that configures the other nodes
only reaches them once they are members. Link 1 on the storage network is added once that
network is up, so corosync keeps quorum if either network dies. A two-node cluster gets a
quorum device for its third vote.
"""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_command as command

from components import remote
from components.stack import Access
from policies import tokens
from spec.models import Cluster


class ProxmoxCluster(pulumi.ComponentResource):
    """Cluster creation and joins (link 0), then the second corosync link and any qdevice."""

    def __init__(self, cluster: Cluster, access: Access, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(tokens.CLUSTER_COMPONENT, cluster.name, None, opts)
        first, *others = cluster.nodes
        self.created = remote.run(
            f"{first.name}-cluster-create",
            access.connection(str(first.address)),
            remote.script("cluster-create", cluster=cluster.name, link0=str(first.address)),
            opts=pulumi.ResourceOptions(parent=self),
        )
        previous: pulumi.Resource = self.created
        for node in others:
            # `pvecm add --use_ssh` logs in to the first node as root by key: the joining node's
            # key is authorized there first (pve-cluster src/PVE/CLI/pvecm.pm, ssh-copy-id).
            key = remote.run(
                f"{node.name}-root-key",
                access.connection(str(node.address)),
                remote.script("cluster-root-key"),
                opts=pulumi.ResourceOptions(parent=self),
            )
            authorized = command.remote.Command(
                f"{node.name}-root-key-authorized",
                command.remote.CommandArgs(
                    connection=access.connection(str(first.address)),
                    create=remote.script("cluster-authorize", node=node.name),
                    stdin=key.stdout,
                    add_previous_output_in_env=False,
                ),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.created, key]),
            )
            # Joins run one at a time: pvecm add takes a cluster-wide lock.
            previous = remote.run(
                f"{node.name}-cluster-join",
                access.connection(str(node.address)),
                remote.script(
                    "cluster-join",
                    first_node=str(first.address),
                    first_node_key=first.ssh_host_key,
                    link0=str(node.address),
                    storage_link=str(node.storage_address) if "storage" in cluster.networks.corosync_links else "",
                ),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[previous, authorized]),
            )
        # Joins form a chain, so its last link stands for all of them: depending on it alone
        # keeps the dependency graph linear in the number of nodes.
        self.ready: pulumi.Resource = previous
        self.quorum_device: pulumi.Resource | None = None
        if cluster.quorum_device is not None:
            packages = [
                remote.run(
                    f"{node.name}-qdevice-package",
                    access.connection(str(node.address)),
                    remote.script("qdevice-package"),
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[previous]),
                )
                for node in cluster.nodes
            ]
            self.quorum_device = remote.run(
                f"{cluster.name}-qdevice",
                access.connection(str(first.address)),
                remote.script("qdevice", qnetd_address=str(cluster.quorum_device.address)),
                opts=pulumi.ResourceOptions(parent=self, depends_on=packages),
            )
            self.ready = self.quorum_device
        self.register_outputs({"nodes": [n.name for n in cluster.nodes]})


class CorosyncStorageLink(pulumi.ComponentResource):
    """Corosync link 1 over the storage network, once that network is up on every node.

    Declared only when the spec lists `storage` in `networks.corosync_links`; `ready` is what
    the next layer waits for either way (the link, or the storage network itself).
    """

    ready: list[pulumi.Resource]

    def __init__(
        self,
        cluster: Cluster,
        access: Access,
        members: ProxmoxCluster,
        storage_network: Sequence[pulumi.Resource],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("homelab:cluster:CorosyncStorageLink", f"{cluster.name}-link1", None, opts)
        first = cluster.nodes[0]
        self.ring1 = " ".join(f"{n.name}={n.storage_address}" for n in cluster.nodes)
        self.ready = [members.ready, *storage_network]
        if "storage" in cluster.networks.corosync_links:
            command = remote.run(
                f"{cluster.name}-corosync-link1",
                access.connection(str(first.address)),
                remote.script("corosync-link1", ring1=self.ring1),
                opts=pulumi.ResourceOptions(parent=self, depends_on=self.ready),
            )
            self.ready = [command]
        self.register_outputs({"ring1": self.ring1})
