"""Moving the installer's vmbr0 onto the LAN bond, commit-confirm style, then adopting both.

The scripts run against stubs of the node's tools (`pvesh`, `ifup`, `systemd-run`, ...): what is
checked is the order that keeps the node reachable (rollback armed before the apply, the provider
adopting only what was confirmed) and that the provider's inputs are what the script stages, so
its import finds nothing to change.
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import pytest

from components.network import ROLLBACK_SECONDS
from offline.engine import Shape
from offline.harness import config_for, run_program
from policies import tokens
from tests.shell import ScriptRun, run_with_stubs, systemd_verify
from tests.support import program, stack_cluster

STAGED = (
    "auto lo\niface lo inet loopback\n\niface enp1s0 inet manual\n\nauto bond0\niface bond0 inet manual\n"
    "\tbond-slaves enp1s0 enp2s0\n#LAN uplink\n\nauto vmbr0\niface vmbr0 inet static\n\tbridge-ports bond0\n"
)
INSTALLER = "auto vmbr0\niface vmbr0 inet static\n\tbridge-ports enp1s0\n"


def pvesh_stub(bond_exists: bool) -> str:
    """`pvesh` on a node: bond0 exists or not; each write stages STAGED in interfaces.new."""
    return (
        f'case "$1" in\n  get) {"exit 0" if bond_exists else "exit 2"} ;;\n'
        f'  set|create) [ "$2" = /nodes/pve1/network ] || printf %s "{STAGED}" > "$INTERFACES.new" ;;\nesac'
    )


def run_uplink(
    tmp_path: Path, current: str, bond_exists: bool = False, ifup: str = "exit 0", pvesh: str | None = None
) -> ScriptRun:
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "interfaces").write_text(current)
    script = program("home").named("pve1-lan-uplink").inputs["create"]
    assert isinstance(script, str)
    (tmp_path / "units").mkdir()
    env = (
        f"INTERFACES={etc / 'interfaces'}\nSTATE_DIR={tmp_path / 'state-dir'}\nSYSTEMD_UNITS={tmp_path / 'units'}\n"
        "export INTERFACES\n"
    )
    stubs = {
        "pvesh": pvesh or pvesh_stub(bond_exists),
        "ifup": ifup,
        "systemd-run": "exit 0",
        "systemctl": "exit 0",
        "sysctl": "exit 0",
        "sleep": "exit 0",
    }
    return run_with_stubs(env + script, tmp_path / "run", stubs)


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    (tmp_path / "run").mkdir()
    return tmp_path


def test_a_fresh_node_frees_the_installer_port_then_bonds_then_applies_with_a_rollback_armed(run_dir: Path) -> None:
    run = run_uplink(run_dir, INSTALLER)
    assert run.returncode == 0, run.stderr
    writes = [c[:3] for c in run.calls if c[0] == "pvesh" and c[1] != "get"]
    assert writes == [
        ["pvesh", "set", "/nodes/pve1/network/vmbr0"],  # --delete bridge_ports: the NIC is free
        ["pvesh", "create", "/nodes/pve1/network"],  # bond0
        ["pvesh", "set", "/nodes/pve1/network/vmbr0"],  # vmbr0 onto bond0
    ]
    freed = next(c for c in run.calls if c[:3] == ["pvesh", "set", "/nodes/pve1/network/vmbr0"])
    assert freed[freed.index("--delete") + 1] == "bridge_ports"
    runs = [c for c in run.calls if c[0] == "systemd-run"]
    assert [c[1] for c in runs] == ["--unit=homelab-lan-rollback", "--unit=homelab-lan-apply"]
    assert f"--on-active={ROLLBACK_SECONDS}" in runs[0]
    assert runs[1][-3:] == ["pvesh", "set", "/nodes/pve1/network"]  # Proxmox's own apply
    assert run.calls.index(["ifup", "-a", "-s", "-i", str(run_dir / "etc" / "interfaces.new")]) < run.calls.index(
        runs[0]
    )
    assert (run_dir / "state-dir" / "interfaces.before-lan-uplink").read_text() == INSTALLER
    assert (run_dir / "state-dir" / "lan-uplink.unconfirmed").exists()


def test_a_node_already_on_its_bond_is_left_alone(run_dir: Path) -> None:
    run = run_uplink(run_dir, STAGED, bond_exists=True)
    assert run.returncode == 0, run.stderr
    assert "already on bond0 as specified" in run.stdout
    assert "systemd-run" not in run.commands()
    assert not (run_dir / "etc" / "interfaces.new").exists()
    assert not (run_dir / "state-dir" / "lan-uplink.unconfirmed").exists()


def test_pending_changes_made_by_hand_stop_the_move(run_dir: Path) -> None:
    (run_dir / "etc").mkdir()
    (run_dir / "etc" / "interfaces.new").write_text("someone's change\n")
    etc = run_dir / "etc"
    script = program("home").named("pve1-lan-uplink").inputs["create"]
    assert isinstance(script, str)
    run = run_with_stubs(f"INTERFACES={etc / 'interfaces'}\nSTATE_DIR={run_dir / 's'}\n" + script, run_dir / "run", {})
    assert run.returncode == 1 and "pve1 has network changes pending" in run.stderr
    assert (etc / "interfaces.new").read_text() == "someone's change\n"


def test_a_configuration_ifupdown2_refuses_is_never_applied(run_dir: Path) -> None:
    run = run_uplink(run_dir, INSTALLER, ifup="echo 'error: bond0: invalid bond-mode' >&2; exit 1")
    assert run.returncode == 1
    assert "ifupdown2 refuses the new network configuration of pve1, nothing applied" in run.stderr
    assert "systemd-run" not in run.commands()
    assert not (run_dir / "etc" / "interfaces.new").exists()
    assert (run_dir / "etc" / "interfaces").read_text() == INSTALLER


def test_the_provider_inputs_are_what_the_script_stages(run_dir: Path) -> None:
    # The import on `pulumi up` reads back what the script wrote: the two must agree.
    run = run_uplink(run_dir, INSTALLER)
    created = next(c for c in run.calls if c[:2] == ["pvesh", "create"])
    onto = [c for c in run.calls if c[:3] == ["pvesh", "set", "/nodes/pve1/network/vmbr0"]][-1]

    def arg(call: list[str], name: str) -> str:
        return call[call.index(name) + 1]

    prog = program("home")
    bond, bridge = prog.named("pve1-bond0").inputs, prog.named("pve1-vmbr0").inputs
    assert arg(created, "--slaves").split() == bond["slaves"]
    assert arg(created, "--bond_mode") == bond["bondMode"]
    assert arg(created, "--bond-primary") == bond["bondPrimary"]
    assert arg(created, "--comments") == bond["comment"]
    assert [arg(onto, "--bridge_ports")] == bridge["ports"]
    assert arg(onto, "--bridge_vlan_aware") == "1" and bridge["vlanAware"] is True
    assert arg(onto, "--bridge_vids") == bridge["vids"]
    assert (arg(onto, "--cidr"), arg(onto, "--gateway")) == (bridge["address"], bridge["gateway"])
    assert arg(onto, "--comments") == bridge["comment"]


def test_up_adopts_the_confirmed_bond_and_bridge_and_a_preview_does_not() -> None:
    up = run_program("home", config_for("home"), shape=Shape.UPDATE, preview=False)
    preview = program("home")
    for node in stack_cluster("home").nodes:
        for iface in ("bond0", "vmbr0"):
            adopted = up.named(f"{node.name}-{iface}")
            assert adopted.import_id == f"{node.name}:{iface}" and adopted.protect
            assert preview.named(f"{node.name}-{iface}").import_id == ""
    # Nothing else is imported.
    assert {r.name for r in up.resources if r.import_id} == {
        f"{n.name}-{i}" for n in stack_cluster("home").nodes for i in ("bond0", "vmbr0")
    }
    assert all(r.type in (tokens.BOND, tokens.BRIDGE) for r in up.resources if r.import_id)


def confirm(tmp_path: Path, *, in_bridge: bool, rolled_back: bool = False, unconfirmed: bool = True) -> ScriptRun:
    state, net = tmp_path / "state-dir", tmp_path / "net"
    state.mkdir()
    (tmp_path / "run").mkdir()
    (net / "bond0" / "bonding").mkdir(parents=True)
    (net / "bond0" / "bonding" / "slaves").write_text("enp1s0 enp2s0\n")
    (net / "bond0" / "operstate").write_text("up\n")
    (net / "vmbr0" / "brif").mkdir(parents=True)
    if in_bridge:
        (net / "vmbr0" / "brif" / "bond0").touch()
    if unconfirmed:
        (state / "lan-uplink.unconfirmed").touch()
    if rolled_back:
        (state / "lan-uplink.rolled-back").touch()
    script = program("home").named("pve1-lan-uplink-confirm").inputs["create"]
    assert isinstance(script, str)
    stubs = {"systemctl": "exit 1", "ping": "exit 0", "sleep": "exit 0", "hostname": "echo pve1"}
    return run_with_stubs(f"STATE_DIR={state}\nSYSFS_NET={net}\n" + script, tmp_path / "run", stubs)


def test_confirming_calls_the_rollback_off(tmp_path: Path) -> None:
    run = confirm(tmp_path, in_bridge=True)
    assert run.returncode == 0, run.stderr
    assert run.called("systemctl", "stop", "homelab-lan-rollback.timer")
    assert run.called("ping", "-c", "1", "-W", "1", "10.0.10.1")
    assert not (tmp_path / "state-dir" / "lan-uplink.unconfirmed").exists()


def test_a_bridge_without_its_bond_is_left_to_roll_back(tmp_path: Path) -> None:
    run = confirm(tmp_path, in_bridge=False)
    assert run.returncode == 1
    assert "new LAN configuration does not hold: bond0 is not a port of vmbr0" in run.stderr
    assert "pulumi up --replace" in run.stderr and "pve1-lan-uplink" in run.stderr
    assert not run.called("systemctl", "stop", "homelab-lan-rollback.timer")


def test_a_rollback_that_came_first_is_reported(tmp_path: Path) -> None:
    run = confirm(tmp_path, in_bridge=True, rolled_back=True)
    assert run.returncode == 1 and "went back to its previous LAN configuration" in run.stderr


def test_nothing_to_confirm_when_nothing_was_applied(tmp_path: Path) -> None:
    run = confirm(tmp_path, in_bridge=True, unconfirmed=False)
    assert run.returncode == 0 and "no LAN change waiting for confirmation" in run.stdout
    assert set(run.commands()) == {"hostname"}


def test_an_unconfirmed_change_is_undone_at_boot_too(run_dir: Path) -> None:
    # A reboot (power cut, fencing) before the confirmation boots the previous configuration.
    run = run_uplink(run_dir, INSTALLER)
    assert run.returncode == 0, run.stderr
    unit = run_dir / "units" / "homelab-lan-rollback-at-boot.service"
    text = unit.read_text()
    state = run_dir / "state-dir"
    assert f"ConditionPathExists={state}/lan-uplink.unconfirmed" in text
    assert f"ExecStart=/bin/cp -a {state}/interfaces.before-lan-uplink {run_dir / 'etc' / 'interfaces'}" in text
    # Pulled in by networking.service itself: nothing on Proxmox wants network-pre.target.
    assert "Before=networking.service" in text and "WantedBy=networking.service" in text
    enabled = run.calls.index(["systemctl", "enable", "homelab-lan-rollback-at-boot.service"])
    assert enabled < run.calls.index(next(c for c in run.calls if c[:2] == ["systemd-run", "--unit=homelab-lan-apply"]))
    assert systemd_verify(unit, run_dir, ["/bin/cp", "/bin/touch"]) == "0:"


def test_a_rollback_at_boot_is_reported_even_with_no_change_waiting(tmp_path: Path) -> None:
    run = confirm(tmp_path, in_bridge=False, rolled_back=True, unconfirmed=False)
    assert run.returncode == 1 and "went back to its previous LAN configuration" in run.stderr


def test_one_nodes_uplink_changes_at_a_time() -> None:
    run = program("home")
    nodes = [n.name for n in stack_cluster("home").nodes]
    for before, node in pairwise(nodes):
        assert run.named(f"{before}-lan-uplink-confirm").urn in run.named(f"{node}-lan-uplink").dependencies
    assert not any("lan-uplink" in d for d in run.named(f"{nodes[0]}-lan-uplink").dependencies)


def test_a_new_nic_in_the_file_is_no_change_of_the_uplink(run_dir: Path) -> None:
    # Proxmox's writer lists every NIC present: a USB4 port that came up adds a stanza.
    run = run_uplink(run_dir, STAGED.replace("iface enp1s0 inet manual\n", ""), bond_exists=True)
    assert run.returncode == 0 and "already on bond0 as specified" in run.stdout
    assert "systemd-run" not in run.commands()


def test_a_changed_comment_is_a_change(run_dir: Path) -> None:
    run = run_uplink(run_dir, STAGED.replace("#LAN uplink", "#old words"), bond_exists=True)
    assert run.returncode == 0 and "systemd-run" in run.commands()


def test_a_failed_staging_leaves_no_half_built_file_for_the_gui_to_apply(run_dir: Path) -> None:
    failing = pvesh_stub(bond_exists=False).replace(
        "  set|create)", '  create) echo "unable to find slave enp9s0" >&2; exit 255 ;;\n  set)'
    )
    run = run_uplink(run_dir, INSTALLER, pvesh=failing)
    assert run.returncode != 0
    assert not (run_dir / "etc" / "interfaces.new").exists()
    assert (run_dir / "etc" / "interfaces").read_text() == INSTALLER
    assert "systemd-run" not in run.commands()


def test_a_busy_ifupdown2_is_asked_again(run_dir: Path) -> None:
    busy_twice = (
        'n=$(cat "$STATE/ifup" 2>/dev/null || echo 0); echo $((n + 1)) > "$STATE/ifup"; '
        '[ "$n" -ge 2 ] || { echo "error: Another instance of this program is already running." >&2; exit 1; }'
    )
    run = run_uplink(run_dir, INSTALLER, ifup=busy_twice)
    assert run.returncode == 0, run.stderr
    assert run.commands().count("ifup") == 3 and "systemd-run" in run.commands()


def test_the_new_mac_is_announced(run_dir: Path) -> None:
    run = run_uplink(run_dir, INSTALLER)
    announce = run.calls.index(["sysctl", "-qw", "net.ipv4.conf.vmbr0.arp_notify=1"])
    assert announce < next(i for i, c in enumerate(run.calls) if c[:2] == ["systemd-run", "--unit=homelab-lan-apply"])
