"""NUT's configuration and the power-cut units, rendered from the spec (pure text, no Pulumi).

The UPS node runs the driver, `upsd` and the primary `upsmon`; every other node a secondary
`upsmon` that logs in to that `upsd` over the LAN (firewall: components/firewall.py NUT_GROUP).
The primary's `upsmon` hands ONBATT and ONLINE to `upssched`, which keeps the ride-through timer:
if the power is still off when it runs out, `upssched-cmd` (as NUT's unprivileged user) leaves a
request file that a systemd path unit turns into the root service running `homelab-power-cut
shutdown`. Power back before the timer ends cancels it.

The forced shutdown at the end is NUT's own: `upsmon -c fsd` on the primary raises FSD, every
secondary runs its SHUTDOWNCMD and logs out, then the primary shuts down, and at the very end of
its shutdown Debian's `nutshutdown` (/lib/systemd/system-shutdown) tells the UPS to cut its
output after `offdelay` and restore it `ondelay` after the power is back, so the nodes boot
even if the power came back meanwhile. If the UPS ignores that, POWEROFF_WAIT reboots the UPS
node (nutshutdown ships with nut-server: the secondaries just stay off until the power cycles).
Syntax: NUT 2.8 (Debian trixie's nut 2.8.1), checked by the real NUT daemons in the tests.
"""

from __future__ import annotations

from dataclasses import dataclass

from components import remote
from plan.ups import (
    HA_DISARM_SECONDS,
    NUT_HOSTSYNC_SECONDS,
    UPS_OFFDELAY_SECONDS,
    first_and_last_guests,
    guest_grace,
)
from spec.models import Cluster
from spec.ups import Ups

NUT_PORT = 3493
PRIMARY_USER = "upsmon-primary"
SECONDARY_USER = "upsmon-secondary"
POWER_CUT = "/usr/local/sbin/homelab-power-cut"
UPSSCHED_CMD = "/usr/local/lib/homelab/upssched-cmd"
STATE_DIR = "/run/homelab-power"
REQUEST = f"{STATE_DIR}/shutdown"
TIMER = "power-cut"
# The UPS cuts its output this long after the shutdown command (plan/ups.py), and restores it
# this long after the power is back (usbhid-ups wants ondelay above offdelay).
OFFDELAY = UPS_OFFDELAY_SECONDS
ONDELAY = OFFDELAY + 10
# The drivers that take those delays (each asks for them in `<driver> -L`; checked in the tests):
# others cut their output with their own fixed timing.
DELAY_DRIVERS = frozenset({"usbhid-ups", "nutdrv_qx", "blazer_usb", "blazer_ser"})
# A node still running this long after telling the UPS to cut power reboots (nutshutdown).
POWEROFF_WAIT = 120
OSD_WAIT_SECONDS = 900
QUORUM_WAIT_SECONDS = 1800


@dataclass(frozen=True)
class File:
    path: str
    content: str
    mode: str = "0644"
    group: str = "root"  # NUT's files with a password: root:nut 0640


def nut_conf(primary: bool) -> str:
    mode = "netserver" if primary else "netclient"
    return f"MODE={mode}\nPOWEROFF_WAIT={POWEROFF_WAIT}\n"


def ups_conf(ups: Ups) -> str:
    delays = f"  offdelay = {OFFDELAY}\n  ondelay = {ONDELAY}\n" if ups.driver in DELAY_DRIVERS else ""
    return (
        f'maxretry = 3\n\n[{ups.name}]\n  driver = {ups.driver}\n  port = {ups.port}\n  desc = "homelab UPS"\n' + delays
    )


def upsd_conf(address: str) -> str:
    # This node's own address and loopback: the secondaries and the local upsmon, nothing else.
    return f"LISTEN 127.0.0.1 {NUT_PORT}\nLISTEN {address} {NUT_PORT}\n"


def upsd_users(password: str) -> str:
    return (
        f"[{PRIMARY_USER}]\n  password = {password}\n  upsmon primary\n\n"
        f"[{SECONDARY_USER}]\n  password = {password}\n  upsmon secondary\n"
    )


def upsmon_conf(ups: Ups, password: str, primary_address: str | None) -> str:
    """The primary's (`primary_address` None: it watches its own upsd) or a secondary's."""
    if primary_address is None:
        monitor = f"MONITOR {ups.name}@localhost 1 {PRIMARY_USER} {password} primary"
        notify = ["NOTIFYCMD /usr/sbin/upssched", *(f"NOTIFYFLAG {e} SYSLOG+EXEC" for e in ("ONBATT", "ONLINE"))]
    else:
        monitor = f"MONITOR {ups.name}@{primary_address}:{NUT_PORT} 1 {SECONDARY_USER} {password} secondary"
        notify = [f"NOTIFYFLAG {e} SYSLOG" for e in ("ONBATT", "ONLINE")]
    lines = [
        monitor,
        "MINSUPPLIES 1",
        'SHUTDOWNCMD "/sbin/shutdown -h +0"',
        *notify,
        "POLLFREQ 5",
        "POLLFREQALERT 5",
        f"HOSTSYNC {NUT_HOSTSYNC_SECONDS}",
        "DEADTIME 15",
        "POWERDOWNFLAG /etc/killpower",
        "FINALDELAY 5",
        "RUN_AS_USER nut",
    ]
    return "\n".join(lines) + "\n"


def upssched_conf(ups: Ups) -> str:
    return (
        f"CMDSCRIPT {UPSSCHED_CMD}\n"
        "PIPEFN /run/nut/upssched.pipe\n"
        "LOCKFN /run/nut/upssched.lock\n"
        # A timer, not a battery level: cheap UPSes misreport their charge.
        f"AT ONBATT * START-TIMER {TIMER} {ups.ride_through_seconds}\n"
        f"AT ONLINE * CANCEL-TIMER {TIMER}\n"
    )


def upssched_cmd() -> str:
    return remote.script("upssched-cmd", timer=TIMER, request=REQUEST)


def power_cut_script(cluster: Cluster) -> str:
    assert cluster.ups is not None
    first, last = first_and_last_guests(cluster)

    def ids(names: list[str]) -> str:
        return " ".join(cluster.guest(n).ha_id for n in names)

    return remote.script(
        "power-cut",
        ups=f"{cluster.ups.name}@localhost",
        nodes=" ".join(f"{n.name}={n.address}" for n in cluster.nodes),
        first=ids(first),
        last=ids(last),
        ha_guests=ids([g.name for g in cluster.guests if g.ha]),
        grace=guest_grace(cluster.ups),
        ha_disarm_seconds=HA_DISARM_SECONDS,
        pve_dir="/etc/pve",
        state_dir=STATE_DIR,
        osd_wait_seconds=OSD_WAIT_SECONDS,
        quorum_wait_seconds=QUORUM_WAIT_SECONDS,
    )


POWER_CUT_PATH = f"""[Unit]
Description=homelab: the orderly shutdown, when NUT's ride-through timer asks for it

[Path]
PathExists={REQUEST}

[Install]
WantedBy=multi-user.target
"""

POWER_CUT_SERVICE = f"""[Unit]
Description=homelab: orderly shutdown of the cluster on a power cut

[Service]
Type=oneshot
ExecStartPre=/bin/rm -f {REQUEST}
ExecStart={POWER_CUT} shutdown
"""

# Not oneshot: a boot must not wait for quorum or the OSDs.
POWER_RETURN_SERVICE = f"""[Unit]
Description=homelab: after a power cut, clear Ceph's noout and arm HA once the cluster is back
Wants=network-online.target
After=network-online.target pve-cluster.service pve-ha-crm.service

[Service]
Type=exec
ExecStart={POWER_CUT} return

[Install]
WantedBy=multi-user.target
"""

# The request folder: NUT's user leaves the request there, root's path unit watches it.
TMPFILES = f"d {STATE_DIR} 0770 root nut -\n"


def node_files(cluster: Cluster, node: str, password: str) -> list[File]:
    """What NODE gets: every node the power-cut script and its return at boot; the UPS node the
    driver, upsd, the primary upsmon and upssched; the others a secondary upsmon."""
    ups = cluster.ups
    assert ups is not None
    primary = node == ups.node
    files = [
        File("/etc/nut/nut.conf", nut_conf(primary), "0640", "nut"),
        File(POWER_CUT, power_cut_script(cluster), "0755"),
        File("/etc/systemd/system/homelab-power-return.service", POWER_RETURN_SERVICE),
    ]
    if primary:
        address = str(cluster.node(ups.node).address)
        files += [
            File("/etc/nut/ups.conf", ups_conf(ups), "0640", "nut"),
            File("/etc/nut/upsd.conf", upsd_conf(address), "0640", "nut"),
            File("/etc/nut/upsd.users", upsd_users(password), "0640", "nut"),
            File("/etc/nut/upsmon.conf", upsmon_conf(ups, password, None), "0640", "nut"),
            File("/etc/nut/upssched.conf", upssched_conf(ups), "0640", "nut"),
            File(UPSSCHED_CMD, upssched_cmd(), "0755"),
            File("/etc/tmpfiles.d/homelab-power.conf", TMPFILES),
            File("/etc/systemd/system/homelab-power-cut.path", POWER_CUT_PATH),
            File("/etc/systemd/system/homelab-power-cut.service", POWER_CUT_SERVICE),
        ]
    else:
        primary_address = str(cluster.node(ups.node).address)
        files.append(File("/etc/nut/upsmon.conf", upsmon_conf(ups, password, primary_address), "0640", "nut"))
    return files
