"""Resource checks on each declared VM and container, from its inputs (known in every preview).

`guests-as-planned` holds a guest to the plan the stack policies judged (its node, vCPUs, memory,
and whether it runs); `ha-shared-storage` keeps an HA guest's disks on storage every node has.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from policies.plan_checks import Finding, plan_of
from policies.props import Declared, NotKnownYetError, as_int, as_str, get, known, known_items
from policies.tokens import CONTAINER, HA_RESOURCE, VM
from spec import Cluster, Guest

# What the provider creates when an input is left out (pulumi-proxmoxve 8.6.0 docs).
VM_DEFAULT_STORAGE = "local-lvm"
CT_DEFAULT_STORAGE = "local"
DEFAULT_CORES = 1
DEFAULT_MEMORY_MIB = 512
GUESTS = (VM, CONTAINER)


@dataclass(frozen=True)
class GuestDecl:
    """A VM or container as declared."""

    kind: str  # "vm" or "lxc"
    name: str
    vm_id: int | None

    def spec_in(self, cluster: Cluster) -> Guest | None:
        """Its spec guest: by VM ID, else by name."""
        by_id = next((g for g in cluster.guests if self.vm_id is not None and g.vm_id == self.vm_id), None)
        return by_id or next((g for g in cluster.guests if g.name == self.name), None)


def _storage_of(volume: str) -> str:
    """`vm-disks:vm-201-disk-0` -> `vm-disks`; a plain storage ID or host path stays as it is."""
    return volume if volume.startswith("/") else volume.split(":", 1)[0]


def _number(r: Declared, default: int, *path: str) -> int | None:
    value = known(get(r.props, *path), f"{r.name}'s {'.'.join(path)}")
    return default if value is None else as_int(value)


def _storage(value: object, default: str, what: str) -> str:
    """A datastore input: the provider's default when left out, NotKnownYetError when unknown."""
    return as_str(known(value, f"{what}'s datastoreId")) or default


def volumes_of(r: Declared) -> list[tuple[str, str]]:
    """(which disk, storage ID or host path) of every volume a VM or container declares."""
    p, volumes = r.props, []
    if r.resource_type == VM:
        for i, disk in enumerate(known_items(get(p, "disks"), f"{r.name}'s disks")):
            where = as_str(get(disk, "interface")) or f"disks[{i}]"
            volumes.append((f"disk {where}", _storage(get(disk, "datastoreId"), VM_DEFAULT_STORAGE, r.name)))
        for key, label in (("efiDisk", "EFI disk"), ("tpmState", "TPM state")):
            if isinstance(get(p, key), Mapping):
                volumes.append((label, _storage(get(p, key, "datastoreId"), VM_DEFAULT_STORAGE, r.name)))
        return volumes
    volumes.append(("root disk", _storage(get(p, "disk", "datastoreId"), CT_DEFAULT_STORAGE, r.name)))
    for i, mount in enumerate(known_items(get(p, "mountPoints"), f"{r.name}'s mountPoints")):
        volume = str(known(get(mount, "volume"), f"{r.name}'s mountPoints[{i}].volume"))
        # A bind mount of a host path marked shared is there on every node (the owner says so).
        if not (volume.startswith("/") and get(mount, "shared") is True):
            path = as_str(get(mount, "path")) or f"mountPoints[{i}]"
            volumes.append((f"mount point {path}", _storage_of(volume)))
    return volumes


def guest_of(r: Declared) -> GuestDecl | None:
    """The VM or container `r` declares; None for anything else and for a template (it never runs)."""
    if r.resource_type not in (VM, CONTAINER) or get(r.props, "template") is True:
        return None
    p = r.props
    if r.resource_type == VM:
        return GuestDecl("vm", as_str(get(p, "name")) or r.name, as_int(get(p, "vmId")))
    name = as_str(get(p, "initialization", "hostname")) or r.name
    return GuestDecl("lxc", name, as_int(get(p, "vmId")))


def check_guest_as_planned(r: Declared, cluster: Cluster) -> list[str]:
    guest = guest_of(r)
    if guest is None:
        return []
    spec = guest.spec_in(cluster)
    if spec is None:
        return [
            f"{guest.name} (VM ID {guest.vm_id}) is not one of the spec's guests: its draw and what its node's "
            "loss does are not modelled; declare it under guests"
        ]
    plan = plan_of(cluster)
    if isinstance(plan, str):
        return [plan]
    node = known(get(r.props, "nodeName"), f"{spec.name}'s nodeName")
    if r.resource_type == VM:
        cores, sockets = _number(r, DEFAULT_CORES, "cpu", "cores"), _number(r, 1, "cpu", "sockets")
        vcpus = None if cores is None or sockets is None else cores * sockets
    else:
        vcpus = _number(r, DEFAULT_CORES, "cpu", "cores")
    memory = _number(r, DEFAULT_MEMORY_MIB, "memory", "dedicated")
    started = known(get(r.props, "started"), f"{spec.name}'s started") is not False
    planned = {
        "node": (node, plan.placement[spec.name]),
        "vCPUs": (vcpus, spec.cores),
        "memory MiB": (memory, spec.memory_mib),
        "running": (started, spec.name not in plan.parked),
    }
    off = [f"{what} {got} where the plan has {want}" for what, (got, want) in planned.items() if got != want]
    if not off:
        return []
    return [
        f"{spec.name} is declared with {'; '.join(off)}: the power budget and node-loss checks judged the plan, "
        "so what is built must match it"
    ]


def check_ha_shared_storage(r: Declared, cluster: Cluster) -> list[str]:
    guest = guest_of(r)
    spec = guest.spec_in(cluster) if guest is not None else None
    if guest is None or spec is None or not spec.ha:
        return []
    node = get(r.props, "nodeName")
    node = node if isinstance(node, str) else "its node"
    shared = cluster.shared_storages
    return [
        f"{spec.name} ({'vm' if guest.kind == 'vm' else 'ct'}:{guest.vm_id}) is HA, but its {where} is on {storage}, "
        f"which only {node} has: when {node} fails, HA cannot start it anywhere else. Put it on the shared Ceph "
        f"storage {cluster.ceph.guest_pool.name}."
        for where, storage in volumes_of(r)
        if storage not in shared
    ]


def check_ha_declared(cluster: Cluster, resources: Iterable[Declared]) -> list[Finding]:
    """The HA the node-loss check assumes is the HA declared: an HA resource for every HA guest of
    the spec (started, or stopped while the plan parks it), and none for any other guest. Read
    from the stack's outputs: the Proxmox provider is configured in every preview, so they are its
    planned state (the inputs) even before the first `up`."""
    plan = plan_of(cluster)
    if isinstance(plan, str):
        return [(plan, None)]
    declared: dict[str, tuple[str, str]] = {}  # HA id -> (state, URN)
    for r in resources:
        if r.resource_type != HA_RESOURCE:
            continue
        if not r.props:
            raise NotKnownYetError(f"HA resource {r.name} has no outputs yet: its provider answered with nothing")
        ha_id = str(known(get(r.props, "resourceId"), f"{r.name}'s resourceId"))
        state = as_str(known(get(r.props, "state"), f"{r.name}'s state")) or "started"  # Proxmox's default
        declared[ha_id] = (state, r.urn)
    findings: list[Finding] = []
    for g in cluster.guests:
        state, urn = declared.pop(g.ha_id, ("", None))
        want = "stopped" if g.name in plan.parked else "started"
        if g.ha and not state:
            findings.append(
                (
                    f"{g.name} is HA in the spec but no HA resource {g.ha_id} is declared: when its node fails "
                    "nothing restarts it elsewhere, which the node-loss check counted on",
                    None,
                )
            )
        elif g.ha and state != want:
            findings.append((f"HA resource {g.ha_id} ({g.name}) is declared {state}, where the plan has {want}", urn))
        elif not g.ha and state:
            findings.append(
                (
                    f"HA resource {g.ha_id} is declared for {g.name}, which the spec does not make HA: the node-loss "
                    "check did not count it, so set ha: true on the guest or drop the resource",
                    urn,
                )
            )
    findings += [
        (f"HA resource {ha_id} names no guest of the spec: it restarts nothing the plan knows", urn)
        for ha_id, (_, urn) in declared.items()
    ]
    return findings
