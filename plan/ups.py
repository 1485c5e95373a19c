"""A power cut, as a plan: what the UPS must carry, how long its battery lasts at the modelled
draw, and the order the cluster goes down in and comes back.

Pure functions of the spec, shared by the components (the order the shutdown script follows),
the policy pack (`ups-runtime`) and the preview's runtime estimate.
"""

from __future__ import annotations

from dataclasses import dataclass

from plan.power import ClusterDraw
from spec.models import Cluster
from spec.ups import Ups

# Of the battery's rated Wh, what reaches the outlets: a line-interactive UPS's inverter turns
# about 85 % of it into AC at low load, and an aged lead-acid battery (3 years) holds about 80 %
# of its rating. Runtime is modelled on what is left, not on the label.
INVERTER_EFFICIENCY = 0.85
BATTERY_HEALTH = 0.8
# The battery must last this much longer than the ride-through plus the modelled shutdown.
RUNTIME_MARGIN = 1.25

# How long each step of the shutdown takes at most (the script's own timeouts).
HA_DISARM_SECONDS = 60  # until every online LRM has released its watchdog
GUEST_OS_SECONDS = 30  # a guest's OS shutdown after its pods (or its services) stopped
NOOUT_SECONDS = 10
NUT_HOSTSYNC_SECONDS = 15  # upsmon's HOSTSYNC: the primary waits for the secondaries to log out
NODE_POWEROFF_SECONDS = 90  # pve-guests, Ceph's daemons and the rest of systemd's shutdown
# The UPS cuts its output this long after the UPS node's shutdown told it to: the secondaries,
# which the UPS node waits for only until they log out, finish their own shutdown meanwhile.
UPS_OFFDELAY_SECONDS = 60


@dataclass(frozen=True)
class Step:
    action: str
    targets: tuple[str, ...]
    seconds: int  # at most


def guest_grace(ups: Ups) -> int:
    """How long a guest gets to shut down before Proxmox stops it: its pods' grace, then its OS."""
    return ups.pod_grace_seconds + GUEST_OS_SECONDS


def first_and_last_guests(cluster: Cluster) -> tuple[list[str], list[str]]:
    """The guests that stop first (k3s agents, and guests outside k3s), and the k3s servers last:
    the control plane outlives the workloads it would otherwise reschedule."""
    servers = set(cluster.k3s.servers) if cluster.k3s is not None else set()
    first = [g.name for g in cluster.guests if g.name not in servers]
    last = [g.name for g in cluster.guests if g.name in servers]
    return first, last


def shutdown_steps(cluster: Cluster) -> list[Step]:
    """The orderly shutdown once the ride-through timer ran out, step by step."""
    assert cluster.ups is not None
    ups = cluster.ups
    first, last = first_and_last_guests(cluster)
    secondaries = tuple(n.name for n in cluster.nodes if n.name != ups.node)
    ha = tuple(g.name for g in cluster.guests if g.ha)
    steps = [
        Step("disarm HA: no recovery, no fencing while nodes go down", ha, HA_DISARM_SECONDS),
        Step("shut down the k3s agents and the other guests", tuple(first), guest_grace(ups)),
        Step("shut down the k3s servers", tuple(last), guest_grace(ups)),
        Step("ceph osd set noout: no rebalancing while the OSDs are down", ("ceph",), NOOUT_SECONDS),
        Step("power off the secondary nodes (NUT forced shutdown)", secondaries, NUT_HOSTSYNC_SECONDS),
        Step(
            "power off the UPS node, then the UPS cuts its output",
            (ups.node,),
            NODE_POWEROFF_SECONDS + UPS_OFFDELAY_SECONDS,
        ),
    ]
    return [s for s in steps if s.targets]


def return_steps(cluster: Cluster) -> list[Step]:
    """What happens when power is back: the UPS restores its output and the nodes boot."""
    steps = [
        Step(
            "the nodes power on by themselves (BIOS: restore on AC power loss)", tuple(n.name for n in cluster.nodes), 0
        ),
        Step("wait for quorum and for every OSD to be up, then ceph osd unset noout", ("ceph",), 0),
        Step("arm HA: it starts its guests where they are", tuple(g.name for g in cluster.guests if g.ha), 0),
    ]
    return [s for s in steps if s.targets]


def shutdown_seconds(cluster: Cluster) -> int:
    return sum(s.seconds for s in shutdown_steps(cluster))


@dataclass(frozen=True)
class UpsPlan:
    ups: Ups
    peak_watts: float  # every node at its max, and the rest on the UPS
    expected_watts: float  # the modelled draw, and the rest on the UPS
    runtime_minutes: float  # at the expected draw
    needed_minutes: float  # ride-through + shutdown, with the margin
    shutdown_minutes: float

    @property
    def rating_covers_peak(self) -> bool:
        return self.ups.rated_watts >= self.peak_watts

    @property
    def runtime_covers_shutdown(self) -> bool:
        return self.runtime_minutes >= self.needed_minutes


def ups_plan(cluster: Cluster, draw: ClusterDraw) -> UpsPlan | None:
    """The UPS against the modelled draw (`draw` of the cluster with every node up). The backup
    host's draw in `draw` is not the UPS's: what else it powers is `ups.other_watts`."""
    ups = cluster.ups
    if ups is None:
        return None
    on_nodes = {n.name for n in cluster.nodes}
    expected = sum(d.watts for d in draw.nodes if d.node in on_nodes) + ups.other_watts
    peak = sum(n.hardware.max_watts for n in cluster.nodes) + ups.other_watts
    usable_wh = ups.battery_wh * INVERTER_EFFICIENCY * BATTERY_HEALTH
    runtime = usable_wh / expected * 60 if expected > 0 else float("inf")
    shutdown = shutdown_seconds(cluster) / 60
    needed = (ups.ride_through_seconds / 60 + shutdown) * RUNTIME_MARGIN
    return UpsPlan(ups, peak, expected, runtime, needed, shutdown)


def ups_problems(plan: UpsPlan) -> list[str]:
    """Why the UPS cannot carry the cluster through a power cut, if it cannot."""
    ups, out = plan.ups, []
    if not plan.rating_covers_peak:
        out.append(
            f"ups.rated_watts {ups.rated_watts:g} W is below the modelled peak of {plan.peak_watts:.0f} W "
            f"(every node at max_watts, and other_watts {ups.other_watts:g} W): at full load the UPS "
            "overloads and drops its outlets; get a bigger UPS or put less on it"
        )
    if not plan.runtime_covers_shutdown:
        out.append(
            f"the battery lasts about {plan.runtime_minutes:.1f} min at the modelled {plan.expected_watts:.0f} W "
            f"({ups.battery_wh:g} Wh x {INVERTER_EFFICIENCY:.0%} inverter x {BATTERY_HEALTH:.0%} aged battery), "
            f"less than the {plan.needed_minutes:.1f} min needed: ride-through {ups.ride_through_seconds} s and "
            f"shutdown {plan.shutdown_minutes:.1f} min, with a {RUNTIME_MARGIN - 1:.0%} margin; shorten "
            "ups.ride_through_seconds or get a bigger battery"
        )
    return out


def no_ups_note(cluster: Cluster) -> str:
    """What a power cut costs a cluster without a UPS (the preview's note)."""
    osds = (
        f", and Ceph's {cluster.osd_count} OSDs stop mid-write and must re-peer before any guest can start"
        if cluster.osd_count
        else ""
    )
    return (
        f"no UPS: a power cut stops all {len(cluster.nodes)} nodes at once. Every guest loses what it had not "
        f"written to disk{osds}; HA restarts nothing until the nodes are back. Declare a `ups` to ride short "
        "cuts and shut down in order on longer ones."
    )
