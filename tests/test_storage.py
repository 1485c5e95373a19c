"""Ceph storage (issue 4): order of the steps, what the scripts do, pools, and the client's secrecy.

The declared graph and the rendered scripts come from the real program under mocks; the
scripts' decisions (skip, create, refuse) come from running them against stub host commands.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
from typing import Any

import pulumi
import pulumi_proxmoxve as proxmoxve
import pytest
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime.stack import wait_for_rpcs

from components.stack import Access
from components.storage import OSD_MEMORY_TARGET, CephStorage, device_slug
from offline.harness import ProgramRun, Resource
from plan.capacity import OSD_MEMORY_MIB
from policies import tokens
from spec.models import Cluster
from tests.support import CEPH_FSID as FSID
from tests.support import CEPH_KEY as KEY
from tests.support import STACKS, patched, program, program_with, stack_cluster, stack_data

# --- the declared graph --------------------------------------------------------------------


def deps(run: ProgramRun, name: str) -> set[str]:
    """Names of the resources NAME waits for directly."""
    urns = run.by_urn()
    return {urns[u].name for u in run.named(name).dependencies}


def ceph_commands(run: ProgramRun, suffix: str) -> list[Resource]:
    return [
        r for r in run.of_type(tokens.REMOTE_COMMAND) if r.parent_name.endswith("-ceph") and r.name.endswith(suffix)
    ]


@pytest.mark.parametrize("stack", STACKS)
def test_steps_run_in_dependency_order(stack: str) -> None:
    run, cluster = program(stack), stack_cluster(stack)
    monitors = cluster.ceph.monitors
    installs = {f"{n.name}-ceph-install" for n in cluster.nodes}
    init = f"{monitors[0]}-ceph-init"
    mons = [f"{m}-ceph-mon" for m in monitors]
    mgrs = {f"{m}-ceph-mgr" for m in monitors}
    osds = {f"{n.name}-ceph-osd-{device_slug(o.device)}" for n in cluster.nodes for o in n.osds}
    memory = f"{stack}-ceph-osd-memory"

    assert {r.name for r in ceph_commands(run, "-ceph-install")} == installs
    for install in installs:
        # After corosync link 1, which itself waits for every node to reach the others on the
        # storage network; in parallel with the other nodes.
        assert f"{stack}-corosync-link1" in deps(run, install)
        reachable = {f"{n.name}-storage-reachable" for n in cluster.nodes}
        assert reachable <= deps(run, f"{stack}-corosync-link1")
        assert not deps(run, install) & installs
    assert deps(run, init) >= installs
    assert init in deps(run, mons[0])
    for before, after in itertools.pairwise(mons):
        assert before in deps(run, after), "monitors are created one at a time"
    for mgr in mgrs:
        assert deps(run, mgr) >= set(mons)
    assert deps(run, memory) >= set(mons) | mgrs
    declared_osds = {r.name for r in ceph_commands(run, "") if "-ceph-osd-" in r.name and r.name != memory}
    assert declared_osds == osds, "one OSD per device each node lists"
    for osd in osds:
        assert deps(run, osd) >= set(mons) | mgrs | {memory}
    for pool in (cluster.ceph.guest_pool.name, cluster.ceph.kubernetes_pool.name):
        assert deps(run, f"ceph-pool-{pool}") >= osds
    assert f"ceph-pool-{cluster.ceph.kubernetes_pool.name}" in deps(run, f"{stack}-ceph-client-kubernetes")


def test_several_devices_on_a_node_get_one_osd_each_in_turn() -> None:
    data = patched(
        stack_data("lab"),
        {"nodes[0].osds": [{"device": "/dev/sdb", "device_class": "ssd"}, {"device": "/dev/disk/by-id/ata-X_1"}]},
    )
    run = program_with("lab", data)
    first, second = run.named("lab1-ceph-osd-sdb"), run.named("lab1-ceph-osd-disk-by-id-ata-X_1")
    assert "DEVICE=/dev/disk/by-id/ata-X_1\nDEVICE_CLASS=nvme\n" in second.inputs["create"]
    assert first.urn in second.dependencies, "OSDs on one node are created one at a time"
    for pool in run.of_type(tokens.CEPH_POOL):
        assert second.urn in pool.dependencies


# --- the rendered scripts ------------------------------------------------------------------


def script(run: ProgramRun, name: str) -> str:
    text = run.named(name).inputs["create"]
    assert isinstance(text, str)
    return text


@pytest.mark.parametrize("stack", STACKS)
def test_scripts_carry_the_spec(stack: str) -> None:
    # The parameters each script gets from the spec; what the scripts then do is run against
    # stubs in test_ceph_scripts.py.
    run, cluster = program(stack), stack_cluster(stack)
    nets = cluster.networks.ceph
    init = script(run, f"{cluster.ceph.monitors[0]}-ceph-init")
    assert f"PUBLIC_NETWORK={nets.public}\n" in init and f"CLUSTER_NETWORK={nets.cluster}\n" in init

    for node in cluster.nodes:
        install = run.named(f"{node.name}-ceph-install")
        assert install.inputs["connection"]["host"] == str(node.address)
        assert "REPOSITORY=no-subscription\nVERSION=squid\n" in install.inputs["create"]
        for osd in node.osds:
            text = script(run, f"{node.name}-ceph-osd-{device_slug(osd.device)}")
            assert f"DEVICE={osd.device}\nDEVICE_CLASS={osd.device_class}\n" in text
    for name in cluster.ceph.monitors:
        mon = run.named(f"{name}-ceph-mon")
        assert mon.inputs["connection"]["host"] == str(cluster.node(name).address)
        assert f"MON_ADDRESS={cluster.public_address(cluster.node(name))}\nNODE={name}\n" in mon.inputs["create"]

    # The memory target is the figure placement reserves per OSD.
    assert OSD_MEMORY_TARGET == OSD_MEMORY_MIB * 1024 * 1024 == 2 * 1024**3
    assert f"OSD_MEMORY_TARGET={OSD_MEMORY_TARGET}\n" in script(run, f"{stack}-ceph-osd-memory")

    client = script(run, f"{stack}-ceph-client-kubernetes")
    pool = cluster.ceph.kubernetes_pool.name
    assert f"CLIENT={cluster.ceph.kubernetes_client}\nPOOL={pool}\n" in client


@pytest.mark.parametrize("stack", STACKS)
def test_ceph_commands_never_delete_anything(stack: str) -> None:
    for r in ceph_commands(program(stack), ""):
        assert "delete" not in r.inputs, f"{r.name}: destroying the stack must not tear Ceph down"


# --- pools and the client ------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_pools_are_protected_retained_and_sized(stack: str) -> None:
    run, cluster = program(stack), stack_cluster(stack)
    provider = run.named("proxmox")
    pools = {r.inputs["name"]: r for r in run.of_type(tokens.CEPH_POOL)}
    expected = {cluster.ceph.guest_pool.name: (cluster.ceph.guest_pool, True)}
    expected[cluster.ceph.kubernetes_pool.name] = (cluster.ceph.kubernetes_pool, False)
    assert set(pools) == set(expected)
    for name, (spec, add_storages) in expected.items():
        r = pools[name]
        assert r.protect and r.retain_on_delete, f"{name} must be protected and retained"
        assert r.provider.startswith(provider.urn + "::")
        assert r.inputs["size"] == spec.size and r.inputs["minSize"] == spec.min_size
        assert r.inputs["addStorages"] is add_storages
        assert r.inputs["application"] == "rbd" and r.inputs["pgAutoscaleMode"] == "on"
        assert r.inputs["nodeName"] == cluster.ceph.monitors[0]
        assert "forceDestroy" not in r.inputs
        # Sized to fit three OSDs (Proxmox's default 128 each would be refused), then left to the
        # autoscaler.
        assert r.inputs["pgNum"] == 32 and r.ignore_changes == ["pgNum"]


def test_pg_nums_fit_the_osds_and_grow_with_them() -> None:
    from spec.ceph import MON_MAX_PG_PER_OSD, Pool, pg_budget_problem, placement_groups

    pools = [Pool(name="a"), Pool(name="b")]
    assert placement_groups(pools, 3) == {"a": 32, "b": 32}
    assert placement_groups(pools, 12) == {"a": 128, "b": 128}
    for osds in (3, 4, 7, 12, 100):
        pgs = placement_groups(pools, osds)
        assert sum(pgs.values()) * 3 + 3 <= MON_MAX_PG_PER_OSD * osds and pg_budget_problem(pools, osds) is None
    # What real Ceph refused (toolbox: 771 > 750) is refused here first.
    asked = [Pool(name="a", pg_num=128), Pool(name="b", pg_num=128)]
    assert placement_groups(asked, 3) == {"a": 128, "b": 128}
    problem = pg_budget_problem(asked, 3)
    assert problem is not None and "need 771 placement-group copies" in problem and "at most 750" in problem
    assert pg_budget_problem(asked, 4) is None  # 1000 allowed


@pytest.mark.parametrize("stack", STACKS)
def test_client_key_is_secret_and_never_logged(stack: str) -> None:
    client = program(stack).named(f"{stack}-ceph-client-kubernetes")
    assert "stdout" in client.additional_secret_outputs
    assert client.inputs["logging"] == "stderr"


class CephMocks(pulumi_mocks.Mocks):
    """A finished `pulumi up`: the client script printed its key, the fsid script the fsid."""

    def new_resource(self, args: pulumi_mocks.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        state = dict(args.inputs)
        if args.name.endswith("-ceph-fsid"):
            state["stdout"] = FSID + "\n"
        elif "-ceph-client-" in args.name:
            state["stdout"] = KEY
        return f"{args.name}-id", state

    def call(self, args: pulumi_mocks.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None


def _build(cluster: Cluster) -> dict[str, Any]:
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    pulumi.runtime.set_mocks(CephMocks(), project="homelab", stack="test", preview=False)
    try:
        provider = proxmoxve.Provider("proxmox", proxmoxve.ProviderArgs(endpoint="https://10.0.10.11:8006/"))
        access = Access(proxmox=provider, ssh_user="root", ssh_private_key=pulumi.Output.secret("key"))
        storage = CephStorage(cluster, access)

        async def collect() -> dict[str, Any]:
            got = {
                "storage": storage,
                "key": await storage.client_key.future(),
                "key_secret": await storage.client_key.is_secret(),
                "cluster_id": await storage.cluster_id.future(),
            }
            await wait_for_rpcs()
            return got

        return loop.run_until_complete(collect())
    finally:
        loop.close()
        asyncio.set_event_loop(None)


def test_component_outputs() -> None:
    cluster = stack_cluster("home")
    got = contextvars.Context().run(_build, cluster)
    storage: CephStorage = got["storage"]
    assert got["key"] == KEY and got["key_secret"] is True
    assert got["cluster_id"] == FSID
    assert storage.guest_storage == "vm-disks" == cluster.ceph.guest_pool.name
    assert storage.kubernetes_pool == "k8s-volumes"
    assert storage.monitor_addresses == ["10.0.40.11:6789", "10.0.40.12:6789", "10.0.40.13:6789"]
    assert storage.client_name == "kubernetes"
    assert storage.ready == [storage.guest_pool_resource, storage.kubernetes_pool_resource]
