"""The program's Ceph pools and scripts against a real Ceph cluster (tests/ceph_cluster.py).

One throwaway cluster for the module: 1 monitor, 1 manager and 3 BlueStore OSDs on 127.0.0.1,
from Debian's packages (`make tools`). The pools are created as the program's `Pool` resources
declare them, and the scripts run exactly as the program renders them (home stack), with `ceph`
pointed at the test cluster by CEPH_CONF. The tests run in file order and build on each other:
pools, then the Kubernetes client, then OSD failures.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from offline.harness import Resource
from plan.monitoring import alert_rules
from policies import tokens
from tests.ceph_cluster import CephCluster, ceph_cluster, free_port, missing_commands
from tests.support import program, stack_cluster

MISSING = missing_commands()
pytestmark = pytest.mark.skipif(
    bool(MISSING) and not os.environ.get("CI"),
    reason=f"no Ceph daemons to run a test cluster (make tools installs them); missing: {', '.join(MISSING)}",
)
# Proxmox's pg_num for a pool created without one (pveceph pool create, the API).
PROXMOX_DEFAULT_PG_NUM = 128
# The monitor's refusal. Pacific (Debian 12) words it "pg_num 128 size 3 would mean 771 total pgs, which
# exceeds max 750 (mon_max_pg_per_osd 250 * num_in_osds 3)"; Reef and later (Proxmox VE 9's Squid,
# Ubuntu 24.04) "... for this pool would result in 257 cumulative PGs per OSD (771 total PG replicas
# on 3 'in' root OSDs by crush rule) which exceeds the mon_max_pg_per_osd value of 250".
REFUSALS = (
    re.compile(
        r"pg_num 128 size 3 would mean (?P<total>\d+) total pgs, which exceeds max 750 \(mon_max_pg_per_osd 250 "
    ),
    re.compile(
        r"pg_num 128 size 3 for this pool would result in \d+ cumulative PGs per OSD \((?P<total>\d+) total PG "
        r"replicas on 3 'in' root OSDs by crush rule\) which exceeds the mon_max_pg_per_osd value of 250"
    ),
)


@pytest.fixture(scope="module")
def cluster() -> Iterator[CephCluster]:
    assert not MISSING, f"make tools installs the Ceph packages; CI must not skip this: missing {MISSING}"
    with ceph_cluster() as running:
        running.wait_health_ok(timeout=90)
        yield running


def script(name: str) -> str:
    text = program("home").named(name).inputs["create"]
    assert isinstance(text, str)
    return text


def run_script(cluster: CephCluster, text: str, path: Path) -> subprocess.CompletedProcess[str]:
    path.write_text(text)
    return cluster.run("bash", str(path), timeout=90, check=False)


def assignment(text: str, variable: str) -> str:
    """The value the rendered script gives VARIABLE (`POOL=k8s-volumes`)."""
    match = re.search(rf"^{variable}=(\S+)$", text, re.MULTILINE)
    assert match, f"no {variable}= in the script"
    return match[1]


# --- pools ------------------------------------------------------------------------------------


def declared_pools() -> list[Resource]:
    pools = program("home").of_type(tokens.CEPH_POOL)
    assert len(pools) == 2
    return pools


def create_pool(cluster: CephCluster, inputs: dict[str, Any], pg_num: int) -> subprocess.CompletedProcess[str]:
    """What Proxmox does for a `Pool`: create it with its pg_num, then set the rest. The create's result."""
    name = inputs["name"]
    created = cluster.ceph("osd", "pool", "create", name, str(pg_num), check=False)
    if created.returncode == 0:
        cluster.ceph("osd", "pool", "set", name, "size", str(int(inputs["size"])))
        cluster.ceph("osd", "pool", "set", name, "min_size", str(int(inputs["minSize"])))
        cluster.ceph("osd", "pool", "application", "enable", name, inputs["application"])
        cluster.ceph("osd", "pool", "set", name, "pg_autoscale_mode", inputs["pgAutoscaleMode"])
    return created


@pytest.fixture(scope="module")
def pools(cluster: CephCluster) -> dict[str, dict[str, Any]]:
    """The program's pools, created as declared, once active+clean: `ceph osd pool ls detail` by name."""
    for pool in declared_pools():
        created = create_pool(cluster, pool.inputs, int(pool.inputs["pgNum"]))
        assert created.returncode == 0, f"{pool.name} refused: {created.stderr}"
    cluster.wait_pgs_clean(timeout=90)
    return {p["pool_name"]: p for p in cluster.ceph_json("osd", "pool", "ls", "detail")}


def test_proxmox_default_pg_num_is_refused_for_the_second_pool(cluster: CephCluster) -> None:
    """Why the pools declare their pg_num: at Proxmox's 128 the second pool does not fit 3 OSDs."""
    first, second = (dict(p.inputs, name=f"default-{p.inputs['name']}") for p in declared_pools())
    assert create_pool(cluster, first, PROXMOX_DEFAULT_PG_NUM).returncode == 0
    try:
        refused = create_pool(cluster, second, PROXMOX_DEFAULT_PG_NUM)
    finally:
        cluster.ceph("osd", "pool", "delete", first["name"], first["name"], "--yes-i-really-really-mean-it")
    print(refused.stderr.strip())
    assert refused.returncode != 0
    assert "Error ERANGE:" in refused.stderr
    match = next((m for m in (r.search(refused.stderr) for r in REFUSALS) if m), None)
    assert match, f"not the monitor's pg limit: {refused.stderr}"
    # Both pools at 128 PGs x 3 replicas, plus the manager's own pool: more than 250 x 3 OSDs.
    assert int(match["total"]) > 750


def test_the_declared_pools_are_accepted_and_reach_active_clean(
    cluster: CephCluster, pools: dict[str, dict[str, Any]]
) -> None:
    for pool in declared_pools():
        declared, real = pool.inputs, pools[pool.inputs["name"]]
        assert real["size"] == declared["size"]
        assert real["min_size"] == declared["minSize"]
        assert real["pg_num"] == declared["pgNum"]
        assert real["pg_autoscale_mode"] == declared["pgAutoscaleMode"]
        assert list(real["application_metadata"]) == [declared["application"]]
    states = cluster.pg_states()
    print(f"pools {sorted(pools)}, PGs {states}")
    assert set(states) == {"active+clean"}


# --- Ceph's own exporter ------------------------------------------------------------------------


def test_cephs_exporter_serves_what_the_alerts_read(
    cluster: CephCluster, pools: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    """The program's ceph-prometheus script turns on the mgr module; one scrape of it carries the
    metrics the Ceph alerts read (plan/monitoring.py), from the real mgr."""
    port = free_port()
    cluster.ceph("config", "set", "mgr", "mgr/prometheus/server_addr", "127.0.0.1")
    cluster.ceph("config", "set", "mgr", "mgr/prometheus/server_port", str(port))
    try:
        done = run_script(cluster, script("home-ceph-prometheus"), tmp_path / "ceph-prometheus.sh")
        assert done.returncode == 0, done.stdout + done.stderr
        body = ""
        for _ in range(60):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
                    body = response.read().decode()
                if "ceph_health_status" in body:
                    break
            except OSError:
                pass
            time.sleep(1)
        served = {line.split("{")[0].split(" ")[0] for line in body.splitlines() if line and not line.startswith("#")}
        typed = set(re.findall(r"^# TYPE (\S+) ", body, re.MULTILINE))
        alerts = str(alert_rules(stack_cluster("home"), 30))
        read = set(re.findall(r"\b(ceph_\w+)\b", alerts)) - {"ceph_daemon"}  # a label, not a metric
        assert read == {"ceph_health_status", "ceph_osd_up", "ceph_health_detail"}
        assert read <= served | typed, sorted(served)
        assert 'ceph_osd_up{ceph_daemon="osd.0"} 1.0' in body
    finally:
        cluster.ceph("mgr", "module", "disable", "prometheus", check=False)


# --- the Kubernetes client ---------------------------------------------------------------------


@dataclass
class Client:
    name: str
    pool: str
    runs: tuple[subprocess.CompletedProcess[str], subprocess.CompletedProcess[str]]
    keyring: Path

    @property
    def key(self) -> str:
        return self.runs[0].stdout


@pytest.fixture(scope="module")
def client(cluster: CephCluster, pools: dict[str, dict[str, Any]], tmp_path_factory: pytest.TempPathFactory) -> Client:
    """ceph-client.sh as the program renders it, run twice; its key in the client's keyring."""
    text = script("home-ceph-client-kubernetes")
    name, pool = assignment(text, "CLIENT"), assignment(text, "POOL")
    assert pool in pools
    folder = tmp_path_factory.mktemp("ceph-client")
    runs = (run_script(cluster, text, folder / "first.sh"), run_script(cluster, text, folder / "second.sh"))
    keyring = cluster.keyring(name)
    keyring.write_text(f"[client.{name}]\n\tkey = {runs[0].stdout}\n")
    return Client(name, pool, runs, keyring)


def test_client_script_creates_the_client_once_and_prints_its_key(cluster: CephCluster, client: Client) -> None:
    first, second = client.runs
    for run in client.runs:
        print(f"ceph-client.sh: exit {run.returncode}, stderr: {run.stderr.strip()}")
        assert run.returncode == 0, run.stderr
    assert first.stdout == second.stdout, "a re-run prints the same key"
    assert first.stdout == cluster.ceph("auth", "print-key", f"client.{client.name}").stdout
    assert f"client.{client.name} created" in first.stderr
    assert f"client.{client.name} already exists with its caps" in second.stderr


def rbd(cluster: CephCluster, client: Client, *args: str) -> subprocess.CompletedProcess[str]:
    return cluster.run("rbd", "--id", client.name, *args, timeout=60, check=False)


def test_client_can_create_resize_and_snapshot_an_image_in_its_pool(cluster: CephCluster, client: Client) -> None:
    image = f"{client.pool}/pvc-test"
    for args in (
        ("create", "--size", "64M", image),
        ("resize", "--size", "128M", image),
        ("snap", "create", f"{image}@before"),
    ):
        result = rbd(cluster, client, *args)
        assert result.returncode == 0, f"rbd {' '.join(args)}: {result.stderr}"
    info = rbd(cluster, client, "info", "--format", "json", image)
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["size"] == 128 * 1024**2
    assert "before" in rbd(cluster, client, "snap", "ls", image).stdout


def test_client_can_take_and_restore_a_volume_snapshot_as_ceph_csi_does(cluster: CephCluster, client: Client) -> None:
    # What a VolumeSnapshot (VolSync's copyMethod: Snapshot) and a restore from it do in ceph-csi:
    # a snapshot of the volume's image, a clone of it as a new image (clone v2, no protect), the
    # clone flattened off its parent, then the snapshot removed. Each step needs only the
    # client's `profile rbd` caps on its pool.
    source, clone = f"{client.pool}/pvc-snap-source", f"{client.pool}/csi-snap-clone"
    for args in (
        ("create", "--size", "64M", "--image-feature", "layering,deep-flatten", source),
        ("snap", "create", f"{source}@csi-snap"),
        ("clone", "--rbd-default-clone-format", "2", f"{source}@csi-snap", clone),
        ("flatten", clone),
        ("snap", "rm", f"{source}@csi-snap"),
    ):
        result = rbd(cluster, client, *args)
        assert result.returncode == 0, f"rbd {' '.join(args)}: {result.stderr}"
    info = rbd(cluster, client, "info", "--format", "json", clone)
    assert info.returncode == 0, info.stderr
    assert "parent" not in json.loads(info.stdout)


def test_client_is_refused_in_the_guest_pool(cluster: CephCluster, client: Client, tmp_path: Path) -> None:
    (guest_pool,) = (p.inputs["name"] for p in declared_pools() if p.inputs["name"] != client.pool)
    created = rbd(cluster, client, "create", "--size", "64M", f"{guest_pool}/not-mine")
    print(f"rbd create in {guest_pool}: {created.stderr.strip()}")
    assert created.returncode != 0
    assert "(1) Operation not permitted" in created.stderr
    data = tmp_path / "data"
    data.write_bytes(b"x" * 4096)
    put = cluster.run("rados", "--id", client.name, "-p", guest_pool, "put", "not-mine", str(data), check=False)
    assert put.returncode != 0
    assert "(1) Operation not permitted" in put.stderr


# --- OSD failures at size 3 / min_size 2 ----------------------------------------------------------


def put(cluster: CephCluster, pool: str, name: str, data: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    return cluster.run("rados", "-p", pool, "put", name, str(data), timeout=timeout)


def stop_osd(cluster: CephCluster, osd: int, still_up: set[int]) -> None:
    cluster.stop_osd(osd)
    # The monitor would notice in about 20 s (heartbeat grace); tell it now.
    cluster.ceph("osd", "down", str(osd))
    cluster.wait_osds_up(still_up, timeout=60)


def test_writes_go_on_with_one_osd_down(cluster: CephCluster, client: Client, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.write_bytes(os.urandom(1 << 20))
    stop_osd(cluster, 2, still_up={0, 1})
    # The manager reports PG states a few seconds late: write once they show the missing replica.
    cluster.wait_for("PGs undersized", lambda: all("undersized" in s for s in cluster.pg_states()) or None, 60)
    put(cluster, client.pool, "one-down", data, timeout=60)
    got = tmp_path / "got"
    cluster.run("rados", "-p", client.pool, "get", "one-down", str(got))
    assert got.read_bytes() == data.read_bytes()
    states = cluster.pg_states()
    print(f"osd.2 down: the write went through; PGs {states}")
    assert all(state.startswith("active+undersized") for state in states)


def test_a_write_blocks_with_two_osds_down(cluster: CephCluster, client: Client, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.write_bytes(b"x" * 4096)
    stop_osd(cluster, 1, still_up={0})
    with pytest.raises(subprocess.TimeoutExpired):
        put(cluster, client.pool, "two-down", data, timeout=10)
    states = cluster.pg_states()
    print(f"osd.1 and osd.2 down: the write did not finish in 10 s; PGs {states}")
    assert not any(state.startswith("active") for state in states)


def test_cluster_heals_once_the_osds_are_back(cluster: CephCluster, client: Client, tmp_path: Path) -> None:
    for osd in (1, 2):
        cluster.start_osd(osd)
    cluster.wait_osds_up({0, 1, 2}, timeout=60)
    cluster.wait_health_ok(timeout=120)
    states = cluster.pg_states()
    print(f"OSDs back: HEALTH_OK, PGs {states}")
    assert set(states) == {"active+clean"}
    got = tmp_path / "got"
    cluster.run("rados", "-p", client.pool, "get", "one-down", str(got))  # the degraded write is kept


# --- the other scripts, re-run -------------------------------------------------------------------


def test_osd_memory_script_sets_the_target_once(cluster: CephCluster, tmp_path: Path) -> None:
    text = script("home-ceph-osd-memory")
    target = assignment(text, "OSD_MEMORY_TARGET")
    first, second = (run_script(cluster, text, tmp_path / f"{i}.sh") for i in (1, 2))
    print(f"ceph-osd-memory.sh: {first.stdout.strip()} / {second.stdout.strip()}")
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert f"osd_memory_target set to {target}" in first.stdout
    assert second.stdout.strip() == f"osd_memory_target already {target}"
    assert cluster.ceph("config", "get", "osd", "osd_memory_target").stdout.strip() == target


def test_fsid_script_prints_the_cluster_fsid(cluster: CephCluster, tmp_path: Path) -> None:
    text = script("home-ceph-fsid")
    for i in (1, 2):
        run = run_script(cluster, text, tmp_path / f"{i}.sh")
        print(f"ceph-fsid.sh: {run.stdout.strip()}")
        assert run.returncode == 0, run.stderr
        assert run.stdout == f"{cluster.fsid}\n"


def test_ceph_conf_reads_the_fsid_as_the_osd_script_does(cluster: CephCluster) -> None:
    # ceph-osd.sh: fsid=$(ceph-conf -c "${CEPH_CONF:-/etc/pve/ceph.conf}" --lookup fsid)
    assert 'ceph-conf -c "${CEPH_CONF:-/etc/pve/ceph.conf}" --lookup fsid' in script("pve1-ceph-osd-nvme0n1")
    looked_up = cluster.run("ceph-conf", "-c", str(cluster.conf), "--lookup", "fsid")
    assert looked_up.stdout == f"{cluster.fsid}\n"
