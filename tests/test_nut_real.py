"""NUT's own daemons run the configuration the program renders for the home stack's UPS.

A real `upsd` on 127.0.0.1 serves a UPS that Debian's `dummy-ups` driver simulates from a file;
a primary `upsmon` (with `upssched` and the rendered `upssched-cmd`) and a secondary `upsmon`
log in with the rendered users. Then the power goes: on battery past the ride-through timer the
request for the orderly shutdown appears, back on line before it nothing happens, and NUT's
forced shutdown takes the secondary down before the primary.

Only what ties the files to a real node changes for the test: the UPS is `dummy-ups`, upsd
listens on a free port of 127.0.0.1, paths go to the test's folder, the polls and the timer are
shorter, and each upsmon has its own /run/nut (a mount namespace: upsmon's PID file is fixed).
Every daemon is started here and stopped by its PID.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from components.nut import DELAY_DRIVERS, PRIMARY_USER, REQUEST, SECONDARY_USER
from tests.ceph_cluster import free_port
from tests.support import nut_files

NUT = Path("/lib/nut")
RIDE_THROUGH = 3  # seconds, in place of the stack's 120


def replace(text: str, pattern: str, new: str) -> str:
    out, count = re.subn(pattern, new, text, flags=re.MULTILINE)
    assert count >= 1, pattern
    return out


@dataclass
class Nut:
    root: Path
    port: int
    primary: subprocess.Popen[bytes]
    events: Path
    request: Path
    ups_file: Path

    def set_status(self, status: str) -> None:
        # dummy-ups re-reads its file when it changes.
        self.ups_file.write_text(f"ups.status: {status}\nbattery.charge: 90\n")

    def event_lines(self) -> list[str]:
        return self.events.read_text().split() if self.events.exists() else []


def wait_until(check: object, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if callable(check) and check():
            return
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def start(
    argv: list[str], env: dict[str, str], log: Path, pids: list[subprocess.Popen[bytes]]
) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(argv, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    pids.append(process)
    return process


def upsmon() -> list[str]:
    # Its own /run/nut: upsmon's PID file is there whatever NUT_ALTPIDPATH says.
    return ["unshare", "-m", "sh", "-c", f"mount -t tmpfs tmpfs /run/nut && exec {NUT}/upsmon -F -p"]


@pytest.fixture
def nut(tmp_path: Path) -> Iterator[Nut]:
    for tool in ("upsd", "upsmon", "upssched", "upsc", "unshare"):
        if shutil.which(tool) is None and not (NUT / tool).exists():
            pytest.fail(f"{tool} is missing: `make tools` installs NUT (nut-server, nut-client) from Debian")
    primary_files, secondary_files = nut_files("pve1"), nut_files("pve2")
    port = free_port()
    primary, secondary = tmp_path / "primary", tmp_path / "secondary"
    for d in (primary, secondary):
        (d / "state").mkdir(parents=True)
        d.chmod(0o700)
        (d / "state").chmod(0o700)
    events, request = tmp_path / "events", tmp_path / "request"

    ups_conf = primary_files["/etc/nut/ups.conf"]
    ups_conf = replace(ups_conf, r"^  driver = .*$", "  driver = dummy-ups")
    ups_conf = replace(ups_conf, r"^  port = .*$", "  port = ups.dev")
    ups_conf = replace(ups_conf, r"^  (offdelay|ondelay) = .*\n", "")  # dummy-ups has no delays
    (primary / "ups.conf").write_text(ups_conf)
    upsd_conf = primary_files["/etc/nut/upsd.conf"]
    assert upsd_conf.startswith("LISTEN 127.0.0.1 3493\nLISTEN 10.0.10.11 3493\n")
    (primary / "upsd.conf").write_text(f"LISTEN 127.0.0.1 {port}\n")
    (primary / "upsd.users").write_text(primary_files["/etc/nut/upsd.users"])

    def upsmon_conf(text: str, role: str) -> str:
        text = replace(text, r"^MONITOR (\S+)@\S+ ", rf"MONITOR \1@127.0.0.1:{port} ")
        stub = tmp_path / f"shutdown-{role}"
        stub.write_text(f'#!/bin/sh\necho {role} >> "{events}"\n')
        stub.chmod(0o755)
        text = replace(text, r"^SHUTDOWNCMD .*$", f'SHUTDOWNCMD "{stub}"')
        text = replace(text, r"^POWERDOWNFLAG .*$", f"POWERDOWNFLAG {tmp_path}/killpower-{role}")
        text = replace(text, r"^POLLFREQ(ALERT)? \d+$", r"POLLFREQ\1 1")
        return replace(text, r"^RUN_AS_USER .*$", "RUN_AS_USER root")

    (primary / "upsmon.conf").write_text(upsmon_conf(primary_files["/etc/nut/upsmon.conf"], "primary"))
    (secondary / "upsmon.conf").write_text(upsmon_conf(secondary_files["/etc/nut/upsmon.conf"], "secondary"))
    cmd = tmp_path / "upssched-cmd"
    cmd.write_text(
        replace(primary_files["/usr/local/lib/homelab/upssched-cmd"], f"^REQUEST={REQUEST}$", f"REQUEST={request}")
    )
    cmd.chmod(0o755)
    sched = primary_files["/etc/nut/upssched.conf"]
    sched = replace(sched, r"^CMDSCRIPT .*$", f"CMDSCRIPT {cmd}")
    sched = replace(sched, r"^PIPEFN .*$", f"PIPEFN {tmp_path}/upssched.pipe")
    sched = replace(sched, r"^LOCKFN .*$", f"LOCKFN {tmp_path}/upssched.lock")
    sched = replace(sched, r"(START-TIMER \S+) \d+$", rf"\1 {RIDE_THROUGH}")
    (primary / "upssched.conf").write_text(sched)
    ups_file = primary / "ups.dev"
    ups_file.write_text("ups.status: OL\nbattery.charge: 100\n")

    def env(d: Path) -> dict[str, str]:
        state = str(d / "state")
        return {**os.environ, "NUT_CONFPATH": str(d), "NUT_STATEPATH": state, "NUT_ALTPIDPATH": state}

    pids: list[subprocess.Popen[bytes]] = []
    try:
        start([str(NUT / "dummy-ups"), "-a", "ups", "-u", "root", "-F"], env(primary), tmp_path / "driver.log", pids)
        wait_until(lambda: any((primary / "state").iterdir()), 10, "the driver's socket")
        start([str(NUT / "upsd"), "-u", "root", "-F"], env(primary), tmp_path / "upsd.log", pids)
        upsc = ["upsc", f"ups@127.0.0.1:{port}", "ups.status"]
        wait_until(lambda: subprocess.run(upsc, capture_output=True, check=False).returncode == 0, 10, "upsd")
        first = start(upsmon(), env(primary), tmp_path / "upsmon-primary.log", pids)
        start(upsmon(), env(secondary), tmp_path / "upsmon-secondary.log", pids)
        # Both upsmons logged in with the rendered users and passwords.
        log = tmp_path / "upsd.log"
        logins = [
            f"User {PRIMARY_USER}@127.0.0.1 logged into UPS [ups]",
            f"User {SECONDARY_USER}@127.0.0.1 logged into",
        ]
        wait_until(lambda: all(line in log.read_text() for line in logins), 15, "both upsmons to log in")
        yield Nut(tmp_path, port, first, events, request, ups_file)
    finally:
        for process in reversed(pids):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in pids:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_on_battery_past_the_ride_through_the_orderly_shutdown_is_asked_for(nut: Nut) -> None:
    nut.set_status("OB")
    wait_until(nut.request.exists, 20, "the shutdown request")
    # Asked for only: NUT itself shuts nothing down before the script's forced shutdown.
    assert nut.event_lines() == []


def test_power_back_within_the_ride_through_cancels(nut: Nut) -> None:
    nut.set_status("OB")
    log = nut.root / "upsmon-primary.log"
    # upsmon saw the cut (and upssched started the timer), then the power is back at once.
    wait_until(lambda: "on battery" in log.read_text(), 10, "upsmon to see the UPS on battery")
    nut.set_status("OL")
    wait_until(lambda: "on line power" in log.read_text(), 10, "upsmon to see the power back")
    time.sleep(RIDE_THROUGH + 2)
    assert not nut.request.exists() and nut.event_lines() == []


def test_the_forced_shutdown_takes_the_secondaries_down_first(nut: Nut) -> None:
    # What `upsmon -c fsd` (the script's last step) sends the primary upsmon.
    subprocess.run([f"{NUT}/upsmon", "-c", "fsd", "-P", str(nut.primary.pid)], check=True, capture_output=True)
    wait_until(lambda: len(nut.event_lines()) == 2, 30, "both nodes' shutdown")
    assert nut.event_lines() == ["secondary", "primary"]
    # The primary leaves the flag that makes nutshutdown tell the UPS to cut its output.
    assert (nut.root / "killpower-primary").exists()


@pytest.mark.parametrize("driver", sorted(DELAY_DRIVERS))
def test_the_delays_are_settings_the_driver_has(driver: str) -> None:
    # ups.conf gets offdelay/ondelay only for these drivers: each, asked for its variables.
    out = subprocess.run([str(NUT / driver), "-L"], capture_output=True, text=True, check=False)
    names = set(re.findall(r"^VALUE (\S+) ", out.stdout, flags=re.MULTILINE))
    assert {"offdelay", "ondelay"} <= names, out.stdout + out.stderr
