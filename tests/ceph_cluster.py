"""A throwaway real Ceph cluster for tests: 1 monitor, 1 manager and 3 BlueStore OSDs on 127.0.0.1.

Debian's own daemons (`make tools` installs ceph-mon, ceph-mgr, ceph-osd and ceph-common), run as
child processes in the foreground, everything under one temporary folder: config, keyrings, monitor
store, OSDs (BlueStore on a sparse file each, as a real OSD uses a disk), logs and sockets. Nothing
is read from or written to /etc/ceph or /var/lib/ceph, and every daemon binds to 127.0.0.1 only.
On exit each daemon is stopped by its PID and the folder is removed.

    with ceph_cluster() as cluster:
        cluster.ceph("osd", "pool", "create", "rbd", "32")
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

# The commands the cluster needs, and the Debian package of each (the Makefile's DEBIAN_TOOLS).
COMMANDS = {
    "ceph-mon": "ceph-mon",
    "ceph-mgr": "ceph-mgr",
    "ceph-osd": "ceph-osd",
    "monmaptool": "ceph-base",  # a dependency of ceph-mon
    "ceph": "ceph-common",
    "ceph-authtool": "ceph-common",
    "ceph-conf": "ceph-common",
    "rados": "ceph-common",
    "rbd": "ceph-common",
}
HOST = "127.0.0.1"
OSDS = 3
# Seconds to wait for the cluster to come up, and for one daemon to stop before it is killed.
START_TIMEOUT = 120.0
STOP_TIMEOUT = 20.0
# A daemon gets SIGTERM should the test process die without stopping it (killed, say): util-linux's
# setpriv sets the parent-death signal and execs the daemon, which keeps it.
STOP_WITH_PARENT = ["setpriv", "--pdeathsig", "TERM"] if shutil.which("setpriv") else []

T = TypeVar("T")


class CephClusterError(RuntimeError):
    """The test cluster could not be set up or did not reach the state waited for."""


def missing_commands() -> list[str]:
    """The commands (with their package) this machine lacks to run a cluster."""
    return [f"{command} ({package})" for command, package in COMMANDS.items() if shutil.which(command) is None]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def config(root: Path, fsid: str, port: int) -> str:
    return f"""[global]
fsid = {fsid}
# One monitor on loopback, messenger v2 only; every daemon binds to loopback (OSD and manager
# ports are picked from 6800-7300 there).
mon host = v2:{HOST}:{port}
mon initial members = a
public addr = {HOST}
cluster addr = {HOST}
ms bind msgr1 = false
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
# Without this the cluster warns "mons are allowing insecure global_id reclaim" (a warning about
# old clients, nothing to do with the data); every client here is current.
auth allow insecure global id reclaim = false
osd pool default size = 3
osd pool default min size = 2
# One host holds all 3 OSDs: place replicas on different OSDs, not different hosts.
osd crush chooseleaf type = 0
# mon max pg per osd stays at its default (250), the limit a real cluster has.
# A stopped OSD stays "in" (no data moves; with 3 OSDs and size 3 there is nowhere to move it).
mon osd down out interval = 3600
# The tests remove the pool they create only to show a refusal.
mon allow pool delete = true
# The host's disk is not what the tests look at: no "mon data avail low" warning on a fuller disk.
mon data avail warn = 2
mon data avail crit = 1
run dir = {root}/run
pid file = {root}/run/$name.pid
log file = {root}/log/$name.log
mon cluster log file = {root}/log/cluster.log
crash dir = {root}/crash
mon data = {root}/$name
mgr data = {root}/$name
osd data = {root}/$name

[osd]
osd objectstore = bluestore
# BlueStore on a file in the OSD's folder, created by --mkfs (sparse: little real disk used).
bluestore block create = true
bluestore block size = 2147483648
# Small memory: the smallest target the OSD accepts, no per-OSD 4 GiB default.
osd memory target = 939524096

[mgr]
# Only the modules a manager always runs; none listens on a port or sends anything out.
mgr initial modules =

[client]
keyring = {root}/$cluster.$name.keyring
"""


@dataclass
class CephCluster:
    root: Path
    fsid: str
    port: int
    daemons: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def conf(self) -> Path:
        return self.root / "ceph.conf"

    def keyring(self, client: str) -> Path:
        """Where `client.NAME`'s keyring is (the conf's [client] keyring path)."""
        return self.root / f"ceph.client.{client}.keyring"

    def env(self) -> dict[str, str]:
        """The environment for a client command: the test cluster's conf, nothing else."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("CEPH_")}
        env["CEPH_CONF"] = str(self.conf)
        return env

    def run(
        self, *argv: str, timeout: float = 60, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            list(argv), env=self.env(), capture_output=True, text=True, timeout=timeout, check=False, input=input
        )
        if check and result.returncode != 0:
            raise CephClusterError(f"{' '.join(argv)} failed ({result.returncode}): {result.stdout}{result.stderr}")
        return result

    def ceph(self, *args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run("ceph", "--connect-timeout", "30", *args, timeout=timeout, check=check)

    def ceph_json(self, *args: str, timeout: float = 60) -> Any:
        return json.loads(self.ceph(*args, "--format", "json", timeout=timeout).stdout)

    # --- daemons ------------------------------------------------------------------------------

    def _start(self, name: str, argv: list[str]) -> None:
        log = (self.root / "log" / f"{name}.out").open("ab")
        with log:
            self.daemons[name] = subprocess.Popen(
                [*STOP_WITH_PARENT, *argv, "-f", "-c", str(self.conf)],
                env=self.env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def stop(self, name: str) -> None:
        """Stop one daemon by its PID: SIGTERM, then SIGKILL if it has not exited in time."""
        proc = self.daemons.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT)

    def start_osd(self, osd: int) -> None:
        self._start(f"osd.{osd}", ["ceph-osd", "-i", str(osd)])

    def stop_osd(self, osd: int) -> None:
        self.stop(f"osd.{osd}")

    def pids(self) -> dict[str, int]:
        return {name: proc.pid for name, proc in self.daemons.items()}

    def log_tail(self, lines: int = 15) -> str:
        """The end of every daemon's log, for a failure message."""
        parts = []
        for path in sorted((self.root / "log").glob("*")):
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {path.name}\n" + "\n".join(tail))
        return "\n".join(parts)

    # --- waiting --------------------------------------------------------------------------------

    def wait_for(self, what: str, probe: Callable[[], T | None], timeout: float, interval: float = 1.0) -> T:
        """Poll PROBE until it returns something other than None (or False), for at most TIMEOUT s."""
        deadline = time.monotonic() + timeout
        while True:
            for name, proc in self.daemons.items():
                if proc.poll() is not None:
                    raise CephClusterError(f"{name} exited ({proc.returncode}) waiting for {what}\n{self.log_tail()}")
            last: object
            try:
                found = probe()
            except (CephClusterError, subprocess.TimeoutExpired, json.JSONDecodeError) as error:
                last = error
            else:
                if found is not None and found is not False:
                    return found
                last = found
            if time.monotonic() > deadline:
                raise CephClusterError(f"no {what} after {timeout:.0f} s (last: {last})\n{self.log_tail()}")
            time.sleep(interval)

    def status(self) -> dict[str, Any]:
        status = self.ceph_json("status", timeout=40)
        assert isinstance(status, dict)
        return status

    def osds_up(self) -> set[int]:
        dump = self.ceph_json("osd", "dump")
        return {osd["osd"] for osd in dump["osds"] if osd["up"]}

    def wait_osds_up(self, expected: set[int], timeout: float = 60) -> None:
        self.wait_for(f"OSDs up = {sorted(expected)}", lambda: self.osds_up() == expected or None, timeout)

    def pg_states(self) -> dict[str, int]:
        """How many PGs are in each state, as the manager last reported (it lags a few seconds)."""
        pgmap = self.status()["pgmap"]
        return {s["state_name"]: int(s["count"]) for s in pgmap.get("pgs_by_state", [])}

    def all_pgs_clean(self) -> bool:
        return set(self.pg_states()) <= {"active+clean"}

    def wait_pgs_clean(self, timeout: float = 90) -> None:
        self.wait_for("all PGs active+clean", lambda: self.all_pgs_clean() or None, timeout)

    def health(self) -> dict[str, Any]:
        health = self.ceph_json("health", "detail", timeout=40)
        assert isinstance(health, dict)
        return health

    def wait_health_ok(self, timeout: float = 90) -> None:
        """HEALTH_OK with every PG active+clean: health alone lags behind PGs that are peering."""

        def probe() -> bool | None:
            health = self.health()
            if health["status"] != "HEALTH_OK":
                raise CephClusterError(json.dumps(health.get("checks", {})))
            if not self.all_pgs_clean():
                raise CephClusterError(f"HEALTH_OK, PGs {self.pg_states()}")
            return True

        self.wait_for("HEALTH_OK and all PGs active+clean", probe, timeout)

    # --- bootstrap ------------------------------------------------------------------------------

    def bootstrap(self, osds: int) -> None:
        root = self.root
        for folder in ("run", "log", "crash"):
            (root / folder).mkdir()
        self.conf.write_text(config(root, self.fsid, self.port))
        mon_keyring, admin_keyring = root / "mon.keyring", self.keyring("admin")
        self.run(
            "ceph-authtool", "--create-keyring", str(mon_keyring), "--gen-key", "-n", "mon.", "--cap", "mon", "allow *"
        )
        # fmt: off
        self.run(
            "ceph-authtool", "--create-keyring", str(admin_keyring), "--gen-key", "-n", "client.admin",
            "--cap", "mon", "allow *", "--cap", "osd", "allow *", "--cap", "mgr", "allow *", "--cap", "mds", "allow *",
        )
        # fmt: on
        self.run("ceph-authtool", str(mon_keyring), "--import-keyring", str(admin_keyring))
        monmap = root / "monmap"
        self.run("monmaptool", "--create", "--addv", "a", f"[v2:{HOST}:{self.port}]", "--fsid", self.fsid, str(monmap))
        (root / "mon.a").mkdir()
        self.run(
            "ceph-mon",
            "-c",
            str(self.conf),
            "--mkfs",
            "-i",
            "a",
            "--monmap",
            str(monmap),
            "--keyring",
            str(mon_keyring),
        )
        self._start("mon.a", ["ceph-mon", "-i", "a"])
        self.wait_for("monitor quorum", lambda: self.ceph_json("quorum_status", timeout=40), START_TIMEOUT)

        (root / "mgr.x").mkdir()
        caps = ["mon", "allow profile mgr", "osd", "allow *", "mds", "allow *"]
        self.ceph("auth", "get-or-create", "mgr.x", *caps, "-o", str(root / "mgr.x" / "keyring"))
        self._start("mgr.x", ["ceph-mgr", "-i", "x"])

        # The OSDs' file systems are made side by side (each takes a few seconds).
        mkfs: list[subprocess.Popen[str]] = []
        for _ in range(osds):
            osd_uuid = str(uuid.uuid4())
            osd = int(self.ceph("osd", "new", osd_uuid).stdout.strip())
            data = root / f"osd.{osd}"
            data.mkdir()
            caps = ["mon", "allow profile osd", "mgr", "allow profile osd", "osd", "allow *"]
            self.ceph("auth", "get-or-create", f"osd.{osd}", *caps, "-o", str(data / "keyring"))
            argv = ["ceph-osd", "-c", str(self.conf), "-i", str(osd), "--mkfs", "--osd-uuid", osd_uuid]
            mkfs.append(
                subprocess.Popen(argv, env=self.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            )
        for osd, proc in enumerate(mkfs):
            out, _ = proc.communicate(timeout=START_TIMEOUT)
            if proc.returncode != 0:
                raise CephClusterError(f"ceph-osd --mkfs for osd.{osd} failed ({proc.returncode}): {out}")
            self.start_osd(osd)
        self.wait_osds_up(set(range(osds)), timeout=START_TIMEOUT)
        self.wait_for("an active manager", lambda: self.status()["mgrmap"]["available"] or None, START_TIMEOUT)

    def shutdown(self) -> None:
        """Stop every daemon (OSDs, then the manager, then the monitor), each by its PID."""
        for name in sorted(self.daemons, key=lambda n: ("osd", "mgr", "mon").index(n.split(".")[0])):
            self.stop(name)


def leftover_processes(root: Path) -> list[str]:
    """Processes whose command line names ROOT (the cluster's daemons all do, by their -c option)."""
    out = subprocess.run(["pgrep", "-a", "-f", str(root)], capture_output=True, text=True, timeout=10, check=False)
    return out.stdout.splitlines()


@contextlib.contextmanager
def ceph_cluster(osds: int = OSDS) -> Iterator[CephCluster]:
    """A running cluster until the block ends; then no daemon and no file of it is left."""
    # A short path of its own, not pytest's tmp_path: a daemon's admin socket path must stay
    # under the 107 characters a Unix socket allows.
    root = Path(tempfile.mkdtemp(prefix="ceph-test-"))
    cluster = CephCluster(root=root, fsid=str(uuid.uuid4()), port=free_port())
    try:
        cluster.bootstrap(osds)
        yield cluster
    finally:
        cluster.shutdown()
        left = leftover_processes(root)
        shutil.rmtree(root, ignore_errors=True)
        if left:
            raise CephClusterError(f"processes of the test cluster still running: {left}")
