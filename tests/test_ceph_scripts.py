"""What the Ceph scripts do on a host: skip, create or refuse, run against stub host commands.

The scripts are rendered by the real program under mocks (the home stack), then run with the
host's commands (ceph, ceph-volume, pveceph, lsblk, ...) replaced by stubs that record each call.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from offline.harness import ProgramRun
from tests.shell import ScriptRun, run_with_stubs
from tests.support import CEPH_FSID as FSID
from tests.support import CEPH_KEY as KEY
from tests.support import program


def script(run: ProgramRun, name: str) -> str:
    text = run.named(name).inputs["create"]
    assert isinstance(text, str)
    return text


# --- what the scripts do on a host (stub commands) -----------------------------------------

FAIL = "exit 1"


def osd_report(fsid: str, osd_id: int = 3) -> str:
    """`ceph-volume lvm list DEV --format json` for a device holding one OSD."""
    lv = {"name": "osd-block-x", "type": "block", "tags": {"ceph.cluster_fsid": fsid, "ceph.osd_id": str(osd_id)}}
    return json.dumps({str(osd_id): [lv]}, indent=4, sort_keys=True)


def run_osd(tmp_path: Path, **stubs: str) -> ScriptRun:
    text = script(program("home"), "pve1-ceph-osd-nvme0n1")
    base = {
        # A node with an OSD and no monitor: no /etc/ceph/ceph.conf, so `ceph` reaches nothing;
        # the cluster's config is in /etc/pve.
        "ceph": 'echo "did not load config file, using default settings." >&2; exit 1',
        "ceph-conf": f'[ "$*" = "-c /etc/pve/ceph.conf --lookup fsid" ] && echo {FSID}',
        "ceph-volume": "case \"$1 $2\" in 'lvm list') echo '{}' ;; esac",
        "lsblk": 'case "$*" in *--nodeps*) exit 0 ;; *) echo nvme0n1 ;; esac',
        "wipefs": "true",
        "pvs": FAIL,
        "lvs": FAIL,
        "systemctl": "exit 0",
        "pveceph": "true",
    }
    return run_with_stubs(text, tmp_path, {**base, **{k.replace("_", "-"): v for k, v in stubs.items()}})


def assert_refused(run: ScriptRun, reason: str) -> None:
    assert run.returncode == 1, run.stderr
    assert reason in run.stderr
    assert "pveceph" not in run.commands()
    assert not any(c[:3] == ["ceph-volume", "lvm", "zap"] for c in run.calls)
    assert not any(c[0] == "wipefs" and ("--all" in c or "-a" in c) for c in run.calls)


def test_osd_is_created_on_a_blank_device(tmp_path: Path) -> None:
    run = run_osd(tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.called("pveceph", "osd", "create", "/dev/nvme0n1", "--crush-device-class", "nvme")


def test_osd_rerun_changes_nothing(tmp_path: Path) -> None:
    run = run_osd(tmp_path, ceph_volume=f"cat <<'EOF'\n{osd_report(FSID)}\nEOF")
    assert run.returncode == 0, run.stderr
    assert "already holds osd.3" in run.stdout
    assert "pveceph" not in run.commands()


def test_osd_prepared_but_stopped_is_activated_not_recreated(tmp_path: Path) -> None:
    report = osd_report(FSID)
    run = run_osd(
        tmp_path,
        ceph_volume=f"case \"$1 $2\" in 'lvm list') cat <<'EOF'\n{report}\nEOF\n;; esac",
        systemctl="exit 3",
    )
    assert run.returncode == 0, run.stderr
    assert run.called("ceph-volume", "lvm", "activate", "--all")
    assert "pveceph" not in run.commands()


@pytest.mark.parametrize(
    ("stubs", "reason"),
    [
        ({"wipefs": "echo ext4"}, "signatures: ext4"),
        (
            {
                "wipefs": "printf 'gpt\\nPMBR\\n'",
                "lsblk": 'case "$*" in *--nodeps*) exit 0 ;; *) printf "nvme0n1\\nnvme0n1p1\\n" ;; esac',
            },
            "partitions or volumes: nvme0n1p1",
        ),
        ({"wipefs": "echo LVM2_member", "pvs": "echo '  pve'", "lvs": "echo"}, "signatures: LVM2_member"),
        (
            {"ceph_volume": f"cat <<'EOF'\n{osd_report('11111111-2222-3333-4444-555555555555')}\nEOF"},
            "another Ceph cluster",
        ),
        ({"lsblk": "exit 32"}, "is not a block device"),
    ],
    ids=["file-system", "partitions", "other-lvm", "other-cluster-osd", "missing-device"],
)
def test_osd_refuses_a_device_with_data(tmp_path: Path, stubs: dict[str, str], reason: str) -> None:
    assert_refused(run_osd(tmp_path, **stubs), reason)


def test_osd_clears_the_empty_volume_group_an_interrupted_create_left(tmp_path: Path) -> None:
    run = run_osd(
        tmp_path,
        wipefs="echo LVM2_member",
        pvs="echo '  ceph-0f1e2d3c'",
        lvs="echo ''",
        lsblk='case "$*" in *--nodeps*) exit 0 ;; *) printf "nvme0n1\\nceph--0f1e2d3c-osd--block--x\\n" ;; esac',
        ceph_volume="case \"$1 $2\" in 'lvm list') echo '{}' ;; esac",
    )
    assert run.returncode == 0, run.stderr
    zap = run.calls.index(["ceph-volume", "lvm", "zap", "--destroy", "/dev/nvme0n1"])
    create = run.calls.index(["pveceph", "osd", "create", "/dev/nvme0n1", "--crush-device-class", "nvme"])
    assert zap < create


def test_client_is_created_with_rbd_caps_on_its_pool_only(tmp_path: Path) -> None:
    text = script(program("home"), "home-ceph-client-kubernetes")
    ceph = (
        f'case "$*" in *"auth get client."*) exit 2 ;; *print-key*) printf %s "{KEY}" ;; *) echo "[client.x]" ;; esac'
    )
    run = run_with_stubs(text, tmp_path, {"ceph": ceph})
    assert run.returncode == 0, run.stderr
    assert run.stdout == KEY, "stdout carries the key and nothing else"
    caps = ["mon", "profile rbd", "osd", "profile rbd pool=k8s-volumes", "mgr", "profile rbd pool=k8s-volumes"]
    assert run.called("ceph", "auth", "get-or-create", "client.kubernetes", *caps)


@pytest.mark.parametrize(("pool", "rewrites"), [("k8s-volumes", False), ("old-pool", True)])
def test_client_rerun_keeps_the_key_and_fixes_caps_only_when_they_differ(
    tmp_path: Path, pool: str, rewrites: bool
) -> None:
    text = script(program("home"), "home-ceph-client-kubernetes")
    keyring = (
        f'[client.kubernetes]\n\tkey = {KEY}\n\tcaps mgr = "profile rbd pool={pool}"\n'
        f'\tcaps mon = "profile rbd"\n\tcaps osd = "profile rbd pool={pool}"'
    )
    ceph = (
        f'case "$*" in *"auth get client."*) cat <<\'EOF\'\n{keyring}\nEOF\n;; *print-key*) printf %s "{KEY}" ;; esac'
    )
    run = run_with_stubs(text, tmp_path, {"ceph": ceph})
    assert run.returncode == 0, run.stderr
    assert run.stdout == KEY
    assert not any("get-or-create" in c for c in run.calls)
    assert any(c[1:3] == ["auth", "caps"] for c in run.calls) is rewrites


@pytest.mark.parametrize(
    ("dump", "creates"), [("0: [v2:10.0.40.11:3300/0,v1:10.0.40.11:6789/0] mon.pve1", False), ("", True)]
)
def test_monitor_is_created_once(tmp_path: Path, dump: str, creates: bool) -> None:
    text = script(program("home"), "pve1-ceph-mon")
    run = run_with_stubs(text, tmp_path, {"ceph": f"echo '{dump}'", "systemctl": "exit 0", "pveceph": "true"})
    assert run.returncode == 0, run.stderr
    assert run.called("pveceph", "mon", "create", "--mon-address", "10.0.40.11") is creates


@pytest.mark.parametrize(
    ("dump", "creates"),
    [('{"active_name":"pve2","standbys":[{"name":"pve1"}]}', False), ('{"active_name":"pve2"}', True)],
)
def test_manager_is_created_once(tmp_path: Path, dump: str, creates: bool) -> None:
    text = script(program("home"), "pve1-ceph-mgr")
    run = run_with_stubs(text, tmp_path, {"ceph": f"echo '{dump}'", "systemctl": "exit 0", "pveceph": "true"})
    assert run.returncode == 0, run.stderr
    assert run.called("pveceph", "mgr", "create") is creates


@pytest.mark.parametrize(("current", "sets"), [(str(2 * 1024**3), False), ("4294967296", True)])
def test_osd_memory_target_is_set_once(tmp_path: Path, current: str, sets: bool) -> None:
    text = script(program("home"), "home-ceph-osd-memory")
    run = run_with_stubs(text, tmp_path, {"ceph": f'case "$*" in *"config get"*) echo {current} ;; esac'})
    assert run.returncode == 0, run.stderr
    assert run.called("ceph", "config", "set", "osd", "osd_memory_target", str(2 * 1024**3)) is sets


def install_stubs(release: str | None) -> dict[str, str]:
    """A node with ceph RELEASE's server packages, or none until the pveceph stub installs squid."""
    mark = f'echo {release} > "$STATE/release"' if release else ":"
    return {
        "dpkg-query": f'{mark}; [ -f "$STATE/release" ] && echo "install ok installed" || echo "not-installed"',
        "ceph-mon": '[ -f "$STATE/release" ] || exit 127; echo "ceph version 19.2.3 (0) $(cat "$STATE/release") (x)"',
        # Reads an answer from the script's `yes`, then exits, as apt-get does.
        "pveceph": 'head -c 2 > /dev/null; echo squid > "$STATE/release"',
    }


@pytest.mark.parametrize(
    ("release", "returncode", "installs"), [(None, 0, True), ("squid", 0, False), ("reef", 1, False)]
)
def test_install_runs_once_and_never_switches_release(
    tmp_path: Path, release: str | None, returncode: int, installs: bool
) -> None:
    text = script(program("home"), "pve1-ceph-install")
    run = run_with_stubs(text, tmp_path, install_stubs(release))
    assert run.returncode == returncode, run.stderr
    assert run.called("pveceph", "install", "--repository", "no-subscription", "--version", "squid") is installs
    if release == "reef":
        assert "runs ceph reef, the spec wants squid" in run.stderr


def test_init_passes_both_networks(tmp_path: Path) -> None:
    if Path("/etc/pve/ceph.conf").exists():
        pytest.skip("this machine has a Ceph config; the first-run path needs one without")
    text = script(program("lab"), "lab1-ceph-init")
    run = run_with_stubs(text, tmp_path, {"pveceph": "true", "ceph-conf": FAIL})
    assert run.returncode == 0, run.stderr
    assert run.called("pveceph", "init", "--network", "192.168.110.0/24", "--cluster-network", "192.168.111.0/24")


def test_install_waits_for_another_apt_run_to_let_go_of_the_dpkg_lock(tmp_path: Path) -> None:
    # The apt-get that pveceph runs reads the extra configuration APT_CONFIG names.
    stubs = install_stubs(None)
    stubs["pveceph"] = 'cp "$APT_CONFIG" "$STATE/apt.conf"; ' + stubs["pveceph"]
    run = run_with_stubs(script(program("home"), "pve1-ceph-install"), tmp_path, stubs)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "state" / "apt.conf").read_text() == 'DPkg::Lock::Timeout "600";\n'
