"""A power cut: the steps as a pure function of the spec, the `ups-runtime` and `power-cut`
policies, and the rendered `homelab-power-cut` script run against stub commands (qm, pct, ssh,
ha-manager, ceph, upsc, upsmon) that keep the cluster's state and fail on any step out of order."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from components.nut import POWER_CUT, POWER_CUT_PATH, POWER_CUT_SERVICE, POWER_RETURN_SERVICE, UPSSCHED_CMD
from offline.harness import config_for
from offline.policy_run import run_policies
from offline.reports import Reports
from plan.ups import return_steps, shutdown_steps, ups_plan
from policies import tokens
from spec import parse_cluster
from tests.policy_support import full_stack
from tests.shell import ScriptRun, run_with_stubs, shellcheck, systemd_verify
from tests.support import nut_files, patched, program, program_with, script_param, stack_cluster, stack_data

HOME = stack_cluster("home")
SERVERS = ["vm:201", "vm:202", "vm:203"]
FIRST = ["vm:211", "vm:212", f"ct:{HOME.guest('backup').vm_id}"]
HA = [*SERVERS, "vm:211", "vm:212"]


# --- the plan -------------------------------------------------------------------------------


def test_the_steps_go_from_ha_to_guests_to_ceph_to_the_nodes_ups_node_last() -> None:
    steps = shutdown_steps(HOME)
    assert [s.action.split(":")[0] for s in steps] == [
        "disarm HA",
        "shut down the k3s agents and the other guests",
        "shut down the k3s servers",
        "ceph osd set noout",
        "power off the secondary nodes (NUT forced shutdown)",
        "power off the UPS node, then the UPS cuts its output",
    ]
    assert set(steps[1].targets) == {"k3s-agent-1", "k3s-agent-2", "backup"}
    assert set(steps[2].targets) == {"k3s-server-1", "k3s-server-2", "k3s-server-3"}
    assert steps[4].targets == ("pve2", "pve3") and steps[5].targets == ("pve1",)
    # Each guest gets its pods' grace and then its OS's time.
    assert steps[1].seconds == steps[2].seconds == 60 + 30


def test_without_k3s_every_guest_goes_at_once_and_no_step_is_empty() -> None:
    data = patched(stack_data("home"), {"backups.skip": {}}, delete=["k3s", "workloads", "gateway", "backups.s3"])
    steps = shutdown_steps(parse_cluster(data))
    assert [s.action for s in steps][1:3] == ["shut down the k3s agents and the other guests", "ceph osd set noout: "
                                             "no rebalancing while the OSDs are down"]  # fmt: skip
    assert len(steps[1].targets) == len(HOME.guests)
    # No HA guest: nothing to disarm, nor to arm on the way back.
    no_ha = parse_cluster(patched(data, {f"guests[{i}].ha": False for i in range(len(HOME.guests))}))
    assert not any(s.action.startswith("disarm HA") for s in shutdown_steps(no_ha))
    assert not any(s.action.startswith("arm HA") for s in return_steps(no_ha))


def test_runtime_is_the_usable_battery_over_the_modelled_draw() -> None:
    report = Reports.of(HOME)
    plan = ups_plan(HOME, report.draw)
    assert plan is not None
    # 84 Wh x 0.85 x 0.8 = 57.12 Wh, at the nodes' modelled draw and the 30 W of the rest.
    nodes = sum(d.watts for d in report.draw.nodes if d.node.startswith("pve"))
    assert plan.expected_watts == pytest.approx(nodes + 30)
    assert plan.runtime_minutes == pytest.approx(57.12 / (nodes + 30) * 60)
    assert plan.peak_watts == 3 * 28 + 30
    assert "UPS (ok): 390 W rated for a 114 W peak; about 57 min on battery" in "\n".join(report.power_text())


def test_kubelet_gets_the_pods_grace_the_plan_counts() -> None:
    data = patched(stack_data("home"), {"ups.pod_grace_seconds": 90})
    run = program_with("home", data)
    installs = [r for r in run.of_type(tokens.REMOTE_COMMAND) if r.name.endswith("-k3s")]
    assert len(installs) == len(HOME.guests) - 1  # every k3s VM, not the backup container
    for install in installs:
        config = yaml.safe_load(script_param(install.inputs["create"], "K3S_CONFIG"))
        assert config["kubelet-arg"] == ["shutdown-grace-period=90s", "shutdown-grace-period-critical-pods=30s"]
    assert shutdown_steps(parse_cluster(data))[1].seconds == 90 + 30


# --- the policies ---------------------------------------------------------------------------


def ups_findings(data: dict[str, object], stack: str = "home") -> list[tuple[str, str]]:
    found = run_policies(full_stack(stack), config_for(stack, cluster=data))
    return [(v.policy, v.message) for v in found if v.policy == "ups-runtime"]


def test_the_shipped_ups_passes_and_lab_is_told_what_a_cut_costs() -> None:
    assert ups_findings(stack_data("home")) == []
    assert ups_findings(stack_data("lab"), "lab") == []
    note = Reports.of(stack_cluster("lab")).power_text()[-1]
    assert note.strip().startswith("no UPS: a power cut stops all 3 nodes at once. Every guest loses what it")


def test_a_battery_too_small_for_the_shutdown_is_refused() -> None:
    [(policy, message)] = ups_findings(patched(stack_data("home"), {"ups.battery_wh": 7}))
    assert policy == "ups-runtime"
    assert message.startswith(
        "the battery lasts about 4.8 min at the modelled 60 W (7 Wh x 85% inverter x 80% aged battery), "
        "less than the 11.1 min needed: ride-through 120 s and shutdown 6.9 min, with a 25% margin"
    )


def test_a_ups_rated_below_the_peak_is_refused() -> None:
    [(policy, message)] = ups_findings(patched(stack_data("home"), {"ups.rated_watts": 100}))
    assert policy == "ups-runtime"
    assert message.startswith("ups.rated_watts 100 W is below the modelled peak of 114 W")


# --- the rendered files -----------------------------------------------------------------------


def test_the_installed_scripts_pass_shellcheck(tmp_path: Path) -> None:
    files = nut_files("pve1")
    found = shellcheck({path: files[path] for path in (POWER_CUT, UPSSCHED_CMD)}, tmp_path)
    assert found == {POWER_CUT: [], UPSSCHED_CMD: []}


@pytest.mark.parametrize(
    ("name", "unit"),
    [
        ("homelab-power-cut.path", POWER_CUT_PATH),
        ("homelab-power-cut.service", POWER_CUT_SERVICE),
        ("homelab-power-return.service", POWER_RETURN_SERVICE),
    ],
)
def test_the_units_are_what_systemd_loads(tmp_path: Path, name: str, unit: str) -> None:
    path = tmp_path / name
    path.write_text(unit)
    if name.endswith(".path"):
        # A path unit starts the service of its name: systemd checks that one too.
        (tmp_path / "homelab-power-cut.service").write_text(POWER_CUT_SERVICE)
    assert systemd_verify(path, tmp_path, [POWER_CUT, "/bin/rm"]) == "0:"


def test_every_node_gets_the_script_and_its_return_and_only_the_ups_node_a_server() -> None:
    primary, secondary = nut_files("pve1"), nut_files("pve3")
    assert {POWER_CUT, "/etc/systemd/system/homelab-power-return.service"} <= set(primary) & set(secondary)
    assert "/etc/nut/upsd.users" in primary and "/etc/nut/upsd.users" not in secondary
    assert "MONITOR ups@10.0.10.11:3493 1 upsmon-secondary" in secondary["/etc/nut/upsmon.conf"]
    # The password is the stack's secret, and the scripts that carry it are secrets in the state.
    password = config_for("home")["homelab:upsPassword"]
    assert f"password = {password}\n" in primary["/etc/nut/upsd.users"]
    assert "create" in program("home").named("pve3-nut").secret_paths


# --- the script on a node (stubs) -------------------------------------------------------------


@dataclass
class Cut:
    run: ScriptRun
    state: Path
    pve: Path

    def order(self) -> list[str]:
        """The cluster-changing calls, in order (`qm shutdown 201`, `ceph osd set noout`...)."""
        out = []
        for call in self.run.calls:
            if call[0] in ("qm", "pct") and call[1] in ("shutdown", "start"):
                out.append(f"{call[0]} {call[1]} {call[2]}")
            elif call[0] == "ceph" and call[1] == "osd" and call[2] in ("set", "unset"):
                out.append(" ".join(call[:4]))
            elif call[0] == "ha-manager" and call[1] == "crm-command":
                out.append(" ".join(call[:3]))
            elif call[0] == "upsmon":
                out.append(" ".join(call))
        return out


def stubs(
    ha_disarms: bool = True, power_back_after: str = "", osds_up: int = 3, unreachable: str = ""
) -> dict[str, str]:
    """The cluster as stubs: each refuses a step out of order (exit 1 and a `violation` line)."""
    servers, first, ha = " ".join(SERVERS), " ".join(FIRST), " ".join(HA)
    refuse = 'echo "violation: $*" >>"$STATE/violations"; exit 1'
    guest = (
        'kind=$(basename "$0"); [ "$kind" = pct ] && id="ct:$2" || id="vm:$2"\n'
        'case "$1" in\n'
        'status) if [ -e "$STATE/stopped-$id" ]; then echo "status: stopped"; else echo "status: running"; fi ;;\n'
        "shutdown)\n"
        f'  case " {ha} " in *" $id "*) [ -e "$STATE/disarmed" ] || {{ {refuse}; }} ;; esac\n'
        f'  case " {servers} " in *" $id "*) for g in {first}; do\n'
        f'    [ -e "$STATE/stopped-$g" ] || {{ {refuse}; }}; done ;; esac\n'
        '  touch "$STATE/stopped-$id" ;;\n'
        'start) rm -f "$STATE/stopped-$id" ;;\n'
        "esac"
    )
    return {
        "hostname": "echo pve1",
        # The other nodes' qm and pct are these same stubs: run what ssh was given.
        "ssh": f'[ "${{@: -2:1}}" = "root@{unreachable}" ] && exit 255; eval "${{@: -1}}"',
        "qm": guest,
        "pct": guest,
        "logger": "true",
        "sleep": "true",
        "pvecm": "echo 'Quorate:          Yes'",
        "ha-manager": (
            'case "$*" in\n'
            f'"crm-command disarm-ha ignore") {"touch $STATE/disarmed" if ha_disarms else "true"} ;;\n'
            '"crm-command arm-ha") rm -f "$STATE/disarmed"; touch "$STATE/armed" ;;\n'
            'status) [ -e "$STATE/disarmed" ] && echo "fencing disarmed, resource mode: ignore (CRM watchdog released)"'
            ' || echo "fencing armed (CRM watchdog active)" ;;\n'
            "esac"
        ),
        "ceph": (
            'case "$*" in\n'
            # No noout while a server the script found running (it asked) still runs.
            f'"osd set noout") for g in {servers}; do [ -e "$STATE/disarmed" ] && [ -e "$STATE/asked-$g" ] && '
            f'! [ -e "$STATE/stopped-$g" ] && {{ {refuse}; }}; done; touch "$STATE/noout" ;;\n'
            '"osd unset noout") rm -f "$STATE/noout" ;;\n'
            f'"osd stat") echo "3 osds: {osds_up} up (since 2m), 3 in (since 5d); epoch: e120" ;;\n'
            f"*) {refuse} ;;\n"
            "esac"
        ),
        # On battery, until the guest named by power_back_after is down (at once: none-needed).
        "upsc": (
            f'if [ "{power_back_after}" = none-needed ] || {{ [ -n "{power_back_after}" ] && '
            f'[ -e "$STATE/stopped-{power_back_after}" ]; }}; then echo "OL"; else echo "OB DISCHRG"; fi'
        ),
        "upsmon": f'[ "$*" = "-c fsd" ] && [ -e "$STATE/noout" ] || {{ {refuse}; }}; touch "$STATE/fsd"',
    }


def run_cut(tmp_path: Path, action: str, marker: bool = False, **kwargs: object) -> Cut:
    script = nut_files("pve1")[POWER_CUT]
    pve, state = tmp_path / "pve", tmp_path / "run"
    # Each guest's config on the node the program put it on, as pmxcfs shows it.
    for g in HOME.guests:
        node = program("home").named(g.name).inputs["nodeName"]
        folder = pve / "nodes" / node / ("lxc" if g.kind == "lxc" else "qemu-server")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{g.vm_id}.conf").write_text("")
    if marker:
        (pve / "homelab-power-cut").write_text("2026-12-02T03:00:00Z\n")
    script = re.sub(r"^PVE_DIR=.*$", f"PVE_DIR='{pve}'", script, count=1, flags=re.MULTILINE)
    script = re.sub(r"^STATE_DIR=.*$", f"STATE_DIR='{state}'", script, count=1, flags=re.MULTILINE)
    # The waits' deadlines (real seconds; sleep is a stub) at once.
    for wait in ("OSD_WAIT_SECONDS", "HA_DISARM_SECONDS"):
        script = re.sub(rf"^{wait}=.*$", f"{wait}=0", script, count=1, flags=re.MULTILINE)
    script = script.replace("\naction=${1:-}\n", f"\naction={action}\n", 1)
    run = run_with_stubs(script, tmp_path, stubs(**kwargs))  # type: ignore[arg-type]
    return Cut(run, tmp_path / "state", pve)


def violations(cut: Cut) -> str:
    path = cut.state / "violations"
    return path.read_text() if path.exists() else ""


def test_the_shutdown_runs_in_order(tmp_path: Path) -> None:
    cut = run_cut(tmp_path, "shutdown")
    assert cut.run.returncode == 0, cut.run.stdout + cut.run.stderr
    assert violations(cut) == ""
    order = cut.order()
    assert order[0] == "ha-manager crm-command disarm-ha"
    shut = [o.rsplit(" ", 1)[1] for o in order if " shutdown " in o]
    assert sorted(shut[:3]) == sorted(g.split(":")[1] for g in FIRST)
    assert sorted(shut[3:]) == ["201", "202", "203"]
    assert order[-2:] == ["ceph osd set noout", "upsmon -c fsd"]
    # Only noout: pause or nodown have kept clusters from coming back.
    assert [o for o in order if o.startswith("ceph")] == ["ceph osd set noout"]
    assert (cut.pve / "homelab-power-cut").exists()
    # Every guest got the grace and a hard stop after it.
    [call] = [c for c in cut.run.calls if c[:3] == ["qm", "shutdown", "201"]]
    assert call[3:] == ["--timeout", "90", "--forceStop", "1"]


def test_the_other_nodes_guests_are_shut_down_there(tmp_path: Path) -> None:
    cut = run_cut(tmp_path, "shutdown")
    targets = {c[-2] for c in cut.run.calls if c[0] == "ssh"}
    assert targets == {"root@10.0.10.12", "root@10.0.10.13"}
    # Each node's host key as Proxmox keeps it: in pmxcfs, under the node's name.
    [call, *_] = [c for c in cut.run.calls if c[0] == "ssh" and c[-2] == "root@10.0.10.13"]
    options = [call[i + 1] for i, arg in enumerate(call) if arg == "-o"]
    assert {"HostKeyAlias=pve3", f"UserKnownHostsFile={cut.pve}/nodes/pve3/ssh_known_hosts"} <= set(options)
    assert "GlobalKnownHostsFile=none" in options and "BatchMode=yes" in options


def test_a_node_that_cannot_be_asked_is_said_so(tmp_path: Path) -> None:
    cut = run_cut(tmp_path, "shutdown", unreachable="10.0.10.13")
    assert cut.run.returncode == 0, cut.run.stderr
    on_pve3 = [g for g in HOME.guests if program("home").named(g.name).inputs["nodeName"] == "pve3"]
    for g in on_pve3:
        assert f"could not ask pve3 about {g.ha_id}: its node's shutdown stops it" in cut.run.stdout


def test_power_back_midway_cancels_and_undoes(tmp_path: Path) -> None:
    cut = run_cut(tmp_path, "shutdown", power_back_after=FIRST[-1])
    assert cut.run.returncode == 0, cut.run.stderr
    order = cut.order()
    assert not [o for o in order if o.startswith("qm shutdown 20")], order  # no server went down
    assert "upsmon -c fsd" not in order and "ceph osd set noout" not in order
    # Every guest it stopped starts again, HA's too, before HA is armed: the LRMs would not
    # start them again on their own.
    starts = [o for o in order if " start " in o]
    assert sorted(s.split()[-1] for s in starts) == sorted(g.split(":")[1] for g in FIRST)
    assert order[-len(starts) - 2 :] == ["ceph osd unset noout", *starts, "ha-manager crm-command arm-ha"]
    assert not (cut.pve / "homelab-power-cut").exists()
    assert "power is back: the shutdown is cancelled" in cut.run.stdout


def test_power_back_before_any_guest_stopped_only_arms_ha_again(tmp_path: Path) -> None:
    cut = run_cut(tmp_path, "shutdown", power_back_after="none-needed")
    assert cut.run.returncode == 0, cut.run.stderr
    assert cut.order() == ["ha-manager crm-command disarm-ha", "ceph osd unset noout", "ha-manager crm-command arm-ha"]


def test_ha_guests_are_left_to_their_nodes_when_ha_does_not_disarm(tmp_path: Path) -> None:
    cut = run_cut(tmp_path, "shutdown", ha_disarms=False)
    assert cut.run.returncode == 0, cut.run.stderr
    assert violations(cut) == ""
    shut = [o for o in cut.order() if " shutdown " in o]
    assert shut == [f"pct shutdown {FIRST[-1].split(':')[1]}"]
    assert "HA is not disarmed: vm:201 is left to its node's shutdown" in cut.run.stdout
    assert cut.order()[-1] == "upsmon -c fsd"


def test_back_from_a_cut_noout_is_cleared_and_ha_armed(tmp_path: Path) -> None:
    cut = run_cut(tmp_path, "return", marker=True)
    assert cut.run.returncode == 0, cut.run.stderr
    assert cut.order() == ["ceph osd unset noout", "ha-manager crm-command arm-ha"]
    assert not (cut.pve / "homelab-power-cut").exists()


def test_with_an_osd_still_down_noout_stays(tmp_path: Path) -> None:
    cut = run_cut(tmp_path, "return", marker=True, osds_up=2)
    assert cut.run.returncode == 0, cut.run.stderr
    assert cut.order() == ["ha-manager crm-command arm-ha"]
    assert "an OSD is still down: noout stays set" in cut.run.stdout


def test_an_ordinary_boot_changes_nothing(tmp_path: Path) -> None:
    cut = run_cut(tmp_path, "return")
    assert cut.run.returncode == 0 and cut.order() == []
