"""Power tuning of every node: CPU governor, PCIe ASPM and powertop's tunables, kept across reboots.

The draw of the cluster itself is modelled in plan/power.py and judged by the policy pack; this
layer makes the hardware idle as low as the model assumes.
"""

from __future__ import annotations

import pulumi

from components import remote
from components.stack import Access
from spec.nodes import Node

UNIT = "/etc/systemd/system/homelab-power.service"
# What the CPU frequency driver offers; absent where the CPU has no frequency scaling.
GOVERNORS_FILE = "/sys/devices/system/cpu/cpu0/cpufreq/scaling_available_governors"


def tuning_script(node: Node, unit: str = UNIT, governors_file: str = GOVERNORS_FILE) -> str:
    t = node.power_tuning
    return remote.script(
        "power-tuning",
        governor=t.governor,
        aspm=t.pcie_aspm or "",
        powertop="yes" if t.powertop_auto_tune else "no",
        usb_autosuspend="yes" if t.usb_autosuspend else "no",
        unit=unit,
        governors_file=governors_file,
    )


class NodePowerTuning(pulumi.ComponentResource):
    """A oneshot systemd unit on the node that applies the spec's power settings at every boot."""

    def __init__(self, node: Node, access: Access, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("homelab:power:NodePowerTuning", f"{node.name}-power", None, opts)
        script = tuning_script(node)
        self.command = remote.run(
            f"{node.name}-power-tuning",
            access.connection(str(node.address)),
            script,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"governor": node.power_tuning.governor})
