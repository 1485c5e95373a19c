"""Ceph on the storage network: packages, monitors, managers and OSDs, then the RBD pools.

Proxmox offers no API resource for Ceph's daemons, so they are `pveceph` scripts run over SSH,
each checking the current state first: a second run, or one after an interrupted run, changes
nothing. None has a delete command: `pulumi destroy` forgets Ceph rather than wiping disks.
The pools are provider resources, protected and retained for the same reason.

Order: packages on every node (in parallel), the cluster config once, monitors one at a time
(each joins the quorum the previous ones formed), managers, the OSD memory target, OSDs, pools,
and last the restricted client that Kubernetes (ceph-csi) mounts volumes with.
"""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_command as command
import pulumi_proxmoxve as proxmoxve

from components import remote
from components.stack import Access
from plan.capacity import OSD_MEMORY_MIB
from policies import tokens
from spec.ceph import Pool
from spec.models import Cluster

CEPH_RELEASE = "squid"
CEPH_REPOSITORY = "no-subscription"
# The v1 messenger port: the kernel RBD client and ceph-csi's monitor list both accept it.
MON_PORT = 6789
OSD_MEMORY_TARGET = OSD_MEMORY_MIB * 1024 * 1024


def device_slug(device: str) -> str:
    """`/dev/disk/by-id/nvme-X` -> `disk-by-id-nvme-X`: a device path as part of a resource name."""
    return device.removeprefix("/dev/").replace("/", "-")


class CephStorage(pulumi.ComponentResource):
    """Ceph across the nodes, with an RBD pool for guest disks and one for Kubernetes volumes."""

    guest_storage: str
    kubernetes_pool: str
    monitor_addresses: list[str]
    cluster_id: pulumi.Output[str]
    client_name: str
    client_key: pulumi.Output[str]
    ready: list[pulumi.Resource]

    def __init__(
        self,
        cluster: Cluster,
        access: Access,
        depends_on: Sequence[pulumi.Resource] = (),
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        after = list(depends_on)
        super().__init__(
            tokens.CEPH_COMPONENT,
            f"{cluster.name}-ceph",
            None,
            pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=after)),
        )
        ceph = cluster.ceph
        first = cluster.node(ceph.monitors[0])

        def on(host: str) -> command.remote.ConnectionArgs:
            return access.connection(str(cluster.node(host).address))

        def child(*deps: pulumi.Resource) -> pulumi.ResourceOptions:
            return pulumi.ResourceOptions(parent=self, depends_on=list(deps))

        # A component's depends_on does not hold back its children, so the first step carries it.
        self.installs: list[pulumi.Resource] = [
            remote.run(
                f"{node.name}-ceph-install",
                on(node.name),
                remote.script("ceph-install", version=CEPH_RELEASE, repository=CEPH_REPOSITORY),
                opts=child(*after),
            )
            for node in cluster.nodes
        ]
        self.init = remote.run(
            f"{first.name}-ceph-init",
            on(first.name),
            remote.script(
                "ceph-init",
                public_network=str(cluster.networks.ceph.public),
                cluster_network=str(cluster.networks.ceph.cluster),
            ),
            opts=child(*self.installs),
        )
        # One monitor at a time: each joins the quorum of those before it.
        self.monitors: list[pulumi.Resource] = []
        # The monitor hosts as declared, registered as an output for the policy pack to count.
        self.monitor_hosts: list[str] = []
        for name in ceph.monitors:
            self.monitor_hosts.append(name)
            self.monitors.append(
                remote.run(
                    f"{name}-ceph-mon",
                    on(name),
                    remote.script("ceph-mon", node=name, mon_address=str(cluster.public_address(cluster.node(name)))),
                    opts=child(self.init, *self.monitors[-1:]),
                )
            )
        self.managers: list[pulumi.Resource] = [
            remote.run(f"{name}-ceph-mgr", on(name), remote.script("ceph-mgr", node=name), opts=child(*self.monitors))
            for name in ceph.monitors
        ]
        # Set before the first OSD starts, so no OSD ever grows past what placement reserved.
        self.osd_memory = remote.run(
            f"{cluster.name}-ceph-osd-memory",
            on(first.name),
            remote.script("ceph-osd-memory", osd_memory_target=OSD_MEMORY_TARGET),
            opts=child(*self.monitors, *self.managers),
        )
        self.osds: list[pulumi.Resource] = []
        for node in cluster.nodes:
            previous: list[pulumi.Resource] = []  # one OSD at a time per node: ceph-volume locks LVM
            for osd in node.osds:
                created = remote.run(
                    f"{node.name}-ceph-osd-{device_slug(osd.device)}",
                    on(node.name),
                    remote.script("ceph-osd", device=osd.device, device_class=osd.device_class),
                    opts=child(*self.monitors, *self.managers, self.osd_memory, *previous),
                )
                self.osds.append(created)
                previous = [created]

        pg_nums = cluster.placement_groups()

        def pool(spec: Pool, add_storages: bool) -> proxmoxve.ceph.Pool:
            return proxmoxve.ceph.Pool(
                f"ceph-pool-{spec.name}",
                proxmoxve.ceph.PoolArgs(
                    node_name=first.name,
                    name=spec.name,
                    size=spec.size,
                    min_size=spec.min_size,
                    application="rbd",
                    # Set at creation to fit the OSDs (spec.ceph.placement_groups); the autoscaler
                    # owns it afterwards, so a later difference is not undone (ignore_changes).
                    pg_num=pg_nums[spec.name],
                    pg_autoscale_mode="on",
                    add_storages=add_storages,
                ),
                # Pools hold every guest disk and volume: never deleted by Pulumi, kept in Ceph if
                # dropped from the stack.
                opts=pulumi.ResourceOptions(
                    parent=self,
                    provider=access.proxmox,
                    depends_on=self.osds,
                    protect=True,
                    retain_on_delete=True,
                    ignore_changes=["pgNum"],
                ),
            )

        # add_storages registers the Proxmox RBD storage, named after the pool, for guest disks.
        self.guest_pool_resource = pool(ceph.guest_pool, add_storages=True)
        self.kubernetes_pool_resource = pool(ceph.kubernetes_pool, add_storages=False)
        self.ready = [self.guest_pool_resource, self.kubernetes_pool_resource]

        fsid = remote.run(
            f"{cluster.name}-ceph-fsid", on(first.name), remote.script("ceph-fsid"), opts=child(*self.monitors)
        )
        client = remote.run(
            f"{cluster.name}-ceph-client-{ceph.kubernetes_client}",
            on(first.name),
            remote.script("ceph-client", client=ceph.kubernetes_client, pool=ceph.kubernetes_pool.name),
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[self.kubernetes_pool_resource], additional_secret_outputs=["stdout"]
            ),
            # The key is the script's stdout: keep it out of the engine's log too.
            logging=command.remote.Logging.STDERR,
        )

        self.guest_storage = ceph.guest_pool.name
        self.kubernetes_pool = ceph.kubernetes_pool.name
        self.monitor_addresses = [f"{cluster.public_address(cluster.node(m))}:{MON_PORT}" for m in ceph.monitors]
        self.cluster_id = fsid.stdout.apply(str.strip)
        # ceph-csi's userID: the client name without the `client.` prefix.
        self.client_name = ceph.kubernetes_client
        self.client_key = pulumi.Output.secret(client.stdout.apply(str.strip))
        self.register_outputs(
            {
                "monitors": self.monitor_hosts,
                "guest_storage": self.guest_storage,
                "kubernetes_pool": self.kubernetes_pool,
                "monitor_addresses": self.monitor_addresses,
                "cluster_id": self.cluster_id,
                "client_name": self.client_name,
                "client_key": self.client_key,
            }
        )
