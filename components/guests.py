"""Guests: VM templates from cloud images, cloud-init snippets, the VMs and the LXCs.

Each cloud image is downloaded once and turned into a template whose disk sits on the shared
Ceph storage, so any node can clone it. VMs are full clones, retried when the template is
momentarily locked by another clone. Power-friendly defaults: CPU type `host` (no emulated features),
ballooning where the spec gives a floor, no tablet device (its USB polling keeps an idle
guest's vCPU waking), a serial console instead of emulated graphics.
"""

from __future__ import annotations

from collections.abc import Mapping, Set

import pulumi
import pulumi_proxmoxve as proxmoxve

from components import remote
from components.cloudinit import nocloud_serial, snippet_name, user_data
from components.network import LAN_BRIDGE, LAN_VLAN
from components.stack import Access, waits_for
from spec.guests import Guest
from spec.models import Cluster
from spec.settings import Image


def _ip(cluster: Cluster, guest: Guest) -> tuple[str, str | None]:
    """Static address from the spec, else DHCP."""
    if guest.address is None:
        return "dhcp", None
    lan = cluster.networks.lan
    return f"{guest.address}/{lan.cidr.prefixlen}", str(lan.gateway)


class GuestTemplates(pulumi.ComponentResource):
    """One template VM per cloud image, its disk on the shared Ceph storage."""

    templates: dict[str, proxmoxve.VmLegacy]
    vm_ids: dict[str, int]

    def __init__(
        self,
        cluster: Cluster,
        storage: str,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("homelab:guests:GuestTemplates", f"{cluster.name}-templates", None, opts)
        used = sorted({g.image for g in cluster.guests if g.kind == "vm" and g.image is not None})
        node = cluster.nodes[0].name
        self.node = node
        self.templates = {}
        self.vm_ids = {key: cluster.images[key].template_vm_id for key in used}
        for key in used:
            image: Image = cluster.images[key]
            download = proxmoxve.download.File(
                f"{key}-image",
                proxmoxve.download.FileArgs(
                    node_name=node,
                    datastore_id=cluster.proxmox.images_storage,
                    content_type="iso",
                    url=image.url,
                    file_name=image.file_name,
                    checksum=image.checksum,
                    checksum_algorithm=image.checksum_algorithm,
                    overwrite=False,
                ),
                # The file name stays when the URL changes: the old file goes first, or the new
                # download finds it there and fails.
                opts=pulumi.ResourceOptions(parent=self, depends_on=waits_for(opts), delete_before_replace=True),
            )
            self.templates[key] = proxmoxve.VmLegacy(
                f"{key}-template",
                proxmoxve.VmLegacyArgs(
                    node_name=node,
                    vm_id=self.vm_ids[key],
                    name=f"tmpl-{key}",
                    template=True,
                    started=False,
                    on_boot=False,
                    description=f"cloud image {image.file_name}, managed by homelab",
                    tags=["homelab", "template"],
                    cpu=proxmoxve.VmLegacyCpuArgs(type="host", cores=1),
                    memory=proxmoxve.VmLegacyMemoryArgs(dedicated=1024),
                    agent=proxmoxve.VmLegacyAgentArgs(enabled=True, trim=True),
                    scsi_hardware="virtio-scsi-single",
                    disks=[
                        proxmoxve.VmLegacyDiskArgs(
                            interface="scsi0",
                            datastore_id=storage,
                            file_id=download.id,
                            iothread=True,
                            discard="on",
                            ssd=True,
                            size=4,
                        )
                    ],
                    serial_devices=[proxmoxve.VmLegacySerialDeviceArgs(device="socket")],
                    vga=proxmoxve.VmLegacyVgaArgs(type="serial0"),
                    operating_system=proxmoxve.VmLegacyOperatingSystemArgs(type="l26"),
                ),
                # A fixed VM id: a new template can only be created once the old one is gone.
                # The clones are full copies and do not need it.
                opts=pulumi.ResourceOptions(parent=self, depends_on=waits_for(opts), delete_before_replace=True),
            )
        self.register_outputs({"templates": sorted(self.templates)})


class Guests(pulumi.ComponentResource):
    """Every VM and LXC of the spec on the node placement chose for it."""

    machines: dict[str, pulumi.CustomResource]
    placement: dict[str, str]

    def __init__(
        self,
        cluster: Cluster,
        access: Access,
        placement: Mapping[str, str],
        stopped: Set[str],
        storage: str,
        templates: GuestTemplates,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("homelab:guests:Guests", f"{cluster.name}-guests", None, opts)
        self.cluster = cluster
        self.storage = storage
        self.placement = dict(placement)
        # Parked on a drained node (see plan.placement.parked): declared, but not running.
        self.stopped = set(stopped)
        self.wait = waits_for(opts)
        self.access = access
        self.snippets: dict[str, dict[str, proxmoxve.FileLegacy]] = {}
        self.lxc_templates: dict[tuple[str, str], pulumi.Resource] = {}
        first = cluster.nodes[0]
        # A fresh Proxmox does not allow snippets on `local`; the user-data files need it.
        self.snippets_allowed = remote.run(
            f"{cluster.proxmox.snippets_storage}-allow-snippets",
            access.connection(str(first.address)),
            remote.script("storage-snippets", storage=cluster.proxmox.snippets_storage),
            opts=pulumi.ResourceOptions(parent=self, depends_on=self.wait),
        )
        self.machines = {}
        self.group_members: dict[str, list[str]] = {}
        for guest in cluster.guests:
            if guest.kind == "vm":
                self.machines[guest.name] = self._vm(guest, templates)
            else:
                self.machines[guest.name] = self._container(guest)
        self.register_outputs({"placement": self.placement})

    def _disk_storage(self, guest: Guest, index: int) -> str:
        return self.cluster.disk_storage(guest.disks[index])

    def _snippet(self, guest: Guest) -> proxmoxve.FileLegacy:
        """The guest's user-data snippet on its node; each distinct snippet is copied to every node."""
        content = user_data(self.cluster, guest.packages)
        name = snippet_name(content)
        if name not in self.snippets:
            self.snippets[name] = {
                node.name: proxmoxve.FileLegacy(
                    f"{name.removesuffix('.yaml')}-{node.name}",
                    proxmoxve.FileLegacyArgs(
                        node_name=node.name,
                        datastore_id=self.cluster.proxmox.snippets_storage,
                        content_type="snippets",
                        source_raw=proxmoxve.FileLegacySourceRawArgs(data=content, file_name=name),
                    ),
                    # Kept on the node when the spec moves on to new user-data: VMs created
                    # from it still name it, and Proxmox rebuilds their cloud-init drive from it
                    # at every start.
                    opts=pulumi.ResourceOptions(
                        parent=self, depends_on=[*self.wait, self.snippets_allowed], retain_on_delete=True
                    ),
                )
                for node in self.cluster.nodes
            }
        return self.snippets[name][self.placement[guest.name]]

    def _ceph_nic(self, guest: Guest) -> list[proxmoxve.VmLegacyNetworkDeviceArgs]:
        """A second NIC, tagged into the Ceph public VLAN, for a guest that is a Ceph client."""
        vlan = self.cluster.networks.ceph.public_vlan
        if guest.ceph_address is None or vlan is None:
            return []
        return [proxmoxve.VmLegacyNetworkDeviceArgs(bridge=LAN_BRIDGE, model="virtio", vlan_id=vlan, firewall=True)]

    def _ceph_ip(self, guest: Guest) -> list[proxmoxve.VmLegacyInitializationIpConfigArgs]:
        if guest.ceph_address is None:
            return []
        prefix = self.cluster.networks.ceph.public.prefixlen
        return [
            proxmoxve.VmLegacyInitializationIpConfigArgs(
                ipv4=proxmoxve.VmLegacyInitializationIpConfigIpv4Args(address=f"{guest.ceph_address}/{prefix}")
            )
        ]

    def _previous_of_group(self, guest: Guest) -> list[pulumi.Resource]:
        """The last guest of the same anti-affinity group: its members are created and changed one
        after another, so a change that reboots them (cores, memory) restarts one VM at a time.
        The provider moves on once a VM runs again, not once k3s on it is back: rebooting k3s
        servers this way leaves etcd a short window on two members between one VM and the next."""
        group = guest.anti_affinity
        if group is None:
            return []
        previous: list[pulumi.Resource] = [self.machines[name] for name in self.group_members.get(group, [])[-1:]]
        self.group_members.setdefault(group, []).append(guest.name)
        return previous

    def _vm(self, guest: Guest, templates: GuestTemplates) -> proxmoxve.VmLegacy:
        assert guest.image is not None  # the spec requires an image for a VM
        template = templates.templates[guest.image]
        snippet = self._snippet(guest)
        address, gateway = _ip(self.cluster, guest)
        lan = self.cluster.networks.lan
        extra_disks = [
            proxmoxve.VmLegacyDiskArgs(
                interface=f"scsi{i}",
                datastore_id=self._disk_storage(guest, i),
                size=disk.size_gib,
                iothread=True,
                discard="on",
                ssd=True,
            )
            for i, disk in enumerate(guest.disks)
            if i > 0
        ]
        return proxmoxve.VmLegacy(
            guest.name,
            proxmoxve.VmLegacyArgs(
                node_name=self.placement[guest.name],
                vm_id=guest.vm_id,
                name=guest.name,
                description=f"{guest.name}.{self.cluster.domain}, managed by homelab",
                tags=sorted({"homelab", *guest.tags, *(["ha"] if guest.ha else [])}),
                clone=proxmoxve.VmLegacyCloneArgs(
                    vm_id=templates.vm_ids[guest.image],
                    node_name=templates.node,
                    datastore_id=self._disk_storage(guest, 0),
                    full=True,
                    # Simultaneous clones of one template can find it locked; the provider retries
                    # rather than this program chaining every clone (a chain makes `pulumi preview`
                    # itself quadratic in the number of VMs).
                    retries=5,
                ),
                # Moving a guest (a new placement, a node drained) live-migrates it, never recreates it.
                migrate=True,
                on_boot=guest.name not in self.stopped,
                started=guest.name not in self.stopped,
                stop_on_destroy=True,
                protection=guest.protect,
                cpu=proxmoxve.VmLegacyCpuArgs(type="host", cores=guest.cores),
                memory=proxmoxve.VmLegacyMemoryArgs(
                    # floating 0 turns the balloon device off; a floor lets an idle VM give memory back.
                    dedicated=guest.memory_mib,
                    floating=guest.balloon_min_mib,
                ),
                agent=proxmoxve.VmLegacyAgentArgs(enabled=True, trim=True),
                tablet_device=False,
                scsi_hardware="virtio-scsi-single",
                disks=[
                    proxmoxve.VmLegacyDiskArgs(
                        interface="scsi0",
                        datastore_id=self._disk_storage(guest, 0),
                        size=guest.disks[0].size_gib,
                        iothread=True,
                        discard="on",
                        ssd=True,
                    ),
                    *extra_disks,
                ],
                network_devices=[
                    # firewall: through the guest's own filters (components/firewall.py GuestFilters).
                    proxmoxve.VmLegacyNetworkDeviceArgs(
                        bridge=LAN_BRIDGE, model="virtio", vlan_id=LAN_VLAN, firewall=True
                    ),
                    *self._ceph_nic(guest),
                ],
                serial_devices=[proxmoxve.VmLegacySerialDeviceArgs(device="socket")],
                # The hostname, for cloud-init (see components/cloudinit.py).
                smbios=proxmoxve.VmLegacySmbiosArgs(serial=nocloud_serial(self.cluster, guest.name)),
                vga=proxmoxve.VmLegacyVgaArgs(type="serial0"),
                operating_system=proxmoxve.VmLegacyOperatingSystemArgs(type="l26"),
                initialization=proxmoxve.VmLegacyInitializationArgs(
                    datastore_id=self._disk_storage(guest, 0),
                    user_data_file_id=snippet.id,
                    ip_configs=[
                        proxmoxve.VmLegacyInitializationIpConfigArgs(
                            ipv4=proxmoxve.VmLegacyInitializationIpConfigIpv4Args(address=address, gateway=gateway)
                        ),
                        *self._ceph_ip(guest),
                    ],
                    dns=proxmoxve.VmLegacyInitializationDnsArgs(
                        domain=self.cluster.domain, servers=[str(a) for a in lan.dns] or None
                    ),
                ),
            ),
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[*self.wait, template, *self._previous_of_group(guest)],
                protect=guest.protect,
                # The provider replaces a VM for a new clone source or new user-data. Both only
                # shape the first boot (cloud-init runs once per instance), so an existing VM
                # keeps its disk and its etcd member; rebuild one on purpose with `--replace`.
                ignore_changes=["clone", "initialization.userDataFileId"],
                # A fixed VM id: a replacement can only be created once the old VM is gone.
                delete_before_replace=True,
            ),
        )

    def _lxc_template(self, guest: Guest) -> pulumi.Resource:
        """The guest's template on its node, downloaded once per node that needs it."""
        assert guest.template is not None  # the spec requires a template for an LXC
        node = self.placement[guest.name]
        storage, file_name = guest.template.split(":vztmpl/", 1)
        key = (guest.template, node)
        if key not in self.lxc_templates:
            self.lxc_templates[key] = remote.run(
                f"{node}-lxc-template-{file_name.split('_', 1)[0]}",
                self.access.connection(str(self.cluster.node(node).address)),
                remote.script("lxc-template", storage=storage, template=file_name),
                opts=pulumi.ResourceOptions(parent=self, depends_on=self.wait),
            )
        return self.lxc_templates[key]

    def _container(self, guest: Guest) -> proxmoxve.ContainerLegacy:
        assert guest.template is not None  # the spec requires a template for an LXC
        template = self._lxc_template(guest)
        address, gateway = _ip(self.cluster, guest)
        lan = self.cluster.networks.lan
        return proxmoxve.ContainerLegacy(
            guest.name,
            proxmoxve.ContainerLegacyArgs(
                node_name=self.placement[guest.name],
                vm_id=guest.vm_id,
                description=f"{guest.name}.{self.cluster.domain}, managed by homelab",
                tags=sorted({"homelab", *guest.tags, *(["ha"] if guest.ha else [])}),
                # Unprivileged: root in the container is not root on the host.
                unprivileged=True,
                features=proxmoxve.ContainerLegacyFeaturesArgs(nesting=True),
                start_on_boot=guest.name not in self.stopped,
                started=guest.name not in self.stopped,
                protection=guest.protect,
                cpu=proxmoxve.ContainerLegacyCpuArgs(cores=guest.cores),
                memory=proxmoxve.ContainerLegacyMemoryArgs(dedicated=guest.memory_mib, swap=0),
                disk=proxmoxve.ContainerLegacyDiskArgs(
                    datastore_id=self._disk_storage(guest, 0), size=guest.disks[0].size_gib
                ),
                mount_points=[
                    proxmoxve.ContainerLegacyMountPointArgs(
                        volume=self._disk_storage(guest, i), size=f"{disk.size_gib}G", path=f"/mnt/data{i}"
                    )
                    for i, disk in enumerate(guest.disks)
                    if i > 0
                ],
                network_interfaces=[
                    proxmoxve.ContainerLegacyNetworkInterfaceArgs(
                        name="eth0", bridge=LAN_BRIDGE, vlan_id=LAN_VLAN, firewall=True
                    )
                ],
                operating_system=proxmoxve.ContainerLegacyOperatingSystemArgs(
                    template_file_id=guest.template, type="debian"
                ),
                initialization=proxmoxve.ContainerLegacyInitializationArgs(
                    hostname=guest.name,
                    ip_configs=[
                        proxmoxve.ContainerLegacyInitializationIpConfigArgs(
                            ipv4=proxmoxve.ContainerLegacyInitializationIpConfigIpv4Args(
                                address=address, gateway=gateway
                            )
                        )
                    ],
                    dns=proxmoxve.ContainerLegacyInitializationDnsArgs(
                        domain=self.cluster.domain, servers=[str(a) for a in lan.dns] or None
                    ),
                    user_account=proxmoxve.ContainerLegacyInitializationUserAccountArgs(
                        keys=list(self.cluster.access.ssh_public_keys)
                    ),
                ),
            ),
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[*self.wait, template, *self._previous_of_group(guest)],
                protect=guest.protect,
                # A fixed container id: a replacement can only be created once the old one is gone.
                delete_before_replace=True,
            ),
        )
