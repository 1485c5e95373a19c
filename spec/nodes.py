"""The Proxmox nodes: hardware and watts, NICs and bonds, mesh cables, OSDs, power tuning."""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from spec.base import Model, Name, Watts, dupes, refuse
from spec.settings import SSH_HOST_KEY


class Nic(Model):
    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9]{1,14}$")]
    speed_gbps: Annotated[float, Field(gt=0)] = 2.5


class PowerMeter(Model):
    """A plug with a Prometheus endpoint (Tasmota's or Shelly's exporter, an ESPHome device...)."""

    # host:port of its metrics page, on the LAN.
    target: Annotated[str, Field(pattern=r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?:\d{1,5}$")]
    metrics_path: Annotated[str, Field(pattern=r"^/[A-Za-z0-9/_.-]*$")] = "/metrics"
    # The metric that holds the watts it measures now (the plug's docs name it).
    metric: Annotated[str, Field(pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")]


class Hardware(Model):
    model: str = ""
    cores: Annotated[int, Field(ge=1)]
    memory_gib: Annotated[int, Field(ge=1)]
    idle_watts: Watts
    max_watts: Watts
    nics: list[Nic] = Field(min_length=1)
    # A smart plug that measures the node at the wall, read as Prometheus metrics: its reading is
    # the node's measured draw (in place of RAPL and platform_watts).
    power_meter: PowerMeter | None = None
    # What the node draws besides its CPU package (board, RAM, disks, NICs, fan, the power
    # supply's loss): added to the package's RAPL reading to make its measured draw. None: 60 %
    # of idle_watts, a mini PC's usual share until calibrated (README, "Calibrating the model").
    platform_watts: Watts | None = None

    @property
    def baseline_watts(self) -> float:
        return self.platform_watts if self.platform_watts is not None else round(0.6 * self.idle_watts, 2)

    @model_validator(mode="after")
    def _watts(self) -> Hardware:
        problems: list[str] = []
        if self.max_watts < self.idle_watts:
            problems.append(f"max_watts {self.max_watts} is below idle_watts {self.idle_watts}")
        names = [n.name for n in self.nics]
        twice = dupes(names)
        if twice:
            problems.append(f"nics: {', '.join(twice)} listed twice")
        refuse(problems)
        return self


class Bond(Model):
    """A Linux bond. active-backup works on any switch; 802.3ad (LACP) needs switch support."""

    mode: Literal["active-backup", "802.3ad"] = "active-backup"
    members: list[str]
    primary: str | None = None

    @field_validator("members")
    @classmethod
    def _two_members(cls, members: list[str]) -> list[str]:
        problems: list[str] = []
        if len(members) < 2:
            problems.append(f"a bond needs at least two members to survive a cable or port failure, got {members}")
        if len(set(members)) != len(members):
            problems.append(f"members {members} names a NIC twice")
        refuse(problems)
        return members


class MeshLink(Model):
    """A direct cable from this node to a peer, for the storage mesh.

    `pci_path` marks a USB4/Thunderbolt port: its network interface only exists while a peer is
    plugged in and up, under a kernel name that depends on the order ports came up. The program
    names it `nic` by the port's PCI path (udev's ID_PATH, as `udevadm info /sys/class/net/<if>`
    shows it), loads the drivers, sets its MTU and brings it up again whenever it comes back.
    """

    peer: Name
    nic: str
    pci_path: Annotated[str, Field(pattern=r"^pci-[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$")] | None = None


class Osd(Model):
    device: Annotated[str, Field(pattern=r"^/dev/[A-Za-z0-9/_.-]+$")]
    device_class: Literal["nvme", "ssd", "hdd"] = "nvme"


class PowerTuning(Model):
    governor: Literal["powersave", "schedutil", "ondemand", "conservative", "performance"] = "powersave"
    pcie_aspm: Literal["default", "powersave", "powersupersave"] | None = "powersave"
    powertop_auto_tune: bool = True
    # USB autosuspend breaks some NICs and keyboards; off unless asked.
    usb_autosuspend: bool = False


class Node(Model):
    name: Name
    address: IPv4Address
    # Checked on every SSH connection to the node: the program's commands, the provider's uploads
    # and the joins. Read it at the node's console (`cat /etc/ssh/ssh_host_ed25519_key.pub`), not
    # over the network, whose answer is what the key is there to check.
    ssh_host_key: Annotated[str, Field(pattern=SSH_HOST_KEY)]
    storage_address: IPv4Address  # on the Ceph cluster network (mesh or storage bond)
    public_address: IPv4Address | None = None  # on the Ceph public VLAN, when it is its own network
    hardware: Hardware
    bond: Bond
    storage_bond: Bond | None = None
    mesh_links: list[MeshLink] = Field(default_factory=list)
    osds: list[Osd] = Field(default_factory=list)
    power_tuning: PowerTuning = Field(default_factory=PowerTuning)
    # Day-2: a node in maintenance gets no guests; HA guests move off and its k3s node is cordoned.
    maintenance: bool = False

    @model_validator(mode="after")
    def _nics_exist(self) -> Node:
        problems: list[str] = []
        nics = {n.name for n in self.hardware.nics}
        used: list[tuple[str, str]] = [("bond.members", m) for m in self.bond.members]
        if self.bond.primary is not None and self.bond.primary not in self.bond.members:
            problems.append(f"bond.primary {self.bond.primary} is not one of bond.members {self.bond.members}")
        if self.storage_bond is not None:
            used += [("storage_bond.members", m) for m in self.storage_bond.members]
        used += [(f"mesh_links[{i}].nic", link.nic) for i, link in enumerate(self.mesh_links)]
        seen: dict[str, str] = {}
        for where, nic in used:
            if nic not in nics:
                problems.append(f"{where}: NIC {nic} is not in hardware.nics {sorted(nics)}")
            if nic in seen:
                problems.append(f"{where}: NIC {nic} is already used by {seen[nic]}")
            seen[nic] = where
        paths = dupes([link.pci_path for link in self.mesh_links if link.pci_path])
        if paths:
            problems.append(f"mesh_links: pci_path {', '.join(paths)} names one port for two links")
        devices = [o.device for o in self.osds]
        twice = dupes(devices)
        if twice:
            problems.append(f"osds: device {', '.join(twice)} is listed twice")
        refuse(problems)
        return self
