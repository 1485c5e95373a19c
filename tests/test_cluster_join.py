"""Joining nodes: root SSH for `pvecm add --use_ssh` (keys authorized on the first node, its host
key pinned), and a node that joins after corosync link 1 exists (its storage address held for the
join, then handed to the storage network)."""

from __future__ import annotations

from pathlib import Path

import pytest

from components import remote
from offline.engine import Shape
from offline.harness import ProgramRun
from policies import tokens
from tests.shell import ScriptRun, run_with_stubs
from tests.support import program, stack_cluster


def commands(run: ProgramRun) -> dict[str, str]:
    return {r.name: r.inputs["create"] for r in run.of_type(tokens.REMOTE_COMMAND)}


# --- root SSH for `pvecm add --use_ssh` -----------------------------------------------------


def test_each_join_waits_for_its_root_key_to_be_authorized_on_the_first_node() -> None:
    run = program("home", Shape.UPDATE)
    for node in ("pve2", "pve3"):
        authorized = run.named(f"{node}-root-key-authorized")
        assert authorized.inputs["connection"]["host"] == "10.0.10.11"  # the first node
        deps = {d.rsplit("::", 1)[-1] for d in authorized.dependencies}
        assert {"pve1-cluster-create", f"{node}-root-key"} <= deps
        # The joining node's public key, as its key command printed it, goes in on stdin.
        assert authorized.inputs["stdin"] == run.named(f"{node}-root-key").outputs["stdout"]
        join = {d.rsplit("::", 1)[-1] for d in run.named(f"{node}-cluster-join").dependencies}
        assert f"{node}-root-key-authorized" in join


KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB4zb2tZx0a9o0JqWq8t root@pve2"


def run_authorize(tmp_path: Path, key: str) -> ScriptRun:
    text = program("home").named("pve2-root-key-authorized").inputs["create"]
    text = text.replace(remote.HEADER, remote.HEADER + f"exec 0<<<'{key}'\n", 1)
    return run_with_stubs(f"AUTHORIZED_KEYS={tmp_path / 'authorized_keys'}\n" + text, tmp_path / "run", {})


def test_the_first_node_authorizes_a_joining_key_once(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    first = run_authorize(tmp_path, KEY)
    assert first.returncode == 0, first.stderr
    (tmp_path / "run").rename(tmp_path / "run1")
    (tmp_path / "run").mkdir()
    again = run_authorize(tmp_path, KEY)
    assert again.returncode == 0 and "already authorized" in again.stdout
    assert (tmp_path / "authorized_keys").read_text() == KEY + "\n"


def test_no_key_on_stdin_authorizes_nothing(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    run = run_authorize(tmp_path, "")
    assert run.returncode == 1 and "no public key on stdin from pve2" in run.stderr
    assert not (tmp_path / "authorized_keys").exists()


def test_a_node_without_a_root_key_gets_one(tmp_path: Path) -> None:
    text = program("home").named("pve2-root-key").inputs["create"]
    keygen = 'f="${*: -3:1}"; echo private > "$f"; echo "ssh-rsa AAAAB3Nza root@pve2" > "$f.pub"'
    run = run_with_stubs(f"ROOT_KEY={tmp_path / 'ssh' / 'id_rsa'}\n" + text, tmp_path, {"ssh-keygen": keygen})
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "ssh-rsa AAAAB3Nza root@pve2"
    assert [c[0] for c in run.calls] == ["ssh-keygen"]


@pytest.mark.parametrize("recorded", ["", "10.0.10.11 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMITMattacker\n"])
def test_a_join_trusts_the_first_nodes_pinned_host_key_only(tmp_path: Path, recorded: str) -> None:
    # Whatever known_hosts held for the first node (nothing, or a key an impostor showed), the
    # join trusts the spec's key and never asks the network for one.
    text = program("home").named("pve2-cluster-join").inputs["create"]
    known = tmp_path / "ssh" / "known_hosts"
    known.parent.mkdir()
    known.write_text(recorded)
    (tmp_path / "run").mkdir()
    (tmp_path / "run2").mkdir()
    stubs = {
        "ssh-keygen": f'grep -v "^10.0.10.11 " "{known}" > "{known}.tmp"; mv "{known}.tmp" "{known}"',
        "ssh-keyscan": "echo '10.0.10.11 ssh-ed25519 AAAAfromthenetwork'",
        "ssh": "exit 1",  # link 1 not configured yet
        "pvecm": "exit 0",
    }
    run = run_with_stubs(f"KNOWN_HOSTS={known}\n" + text, tmp_path / "run", stubs)
    assert run.returncode == 0, run.stderr
    pinned = stack_cluster("home").nodes[0].ssh_host_key
    assert known.read_text().splitlines() == [f"10.0.10.11 {pinned}"]
    assert "ssh-keyscan" not in run.commands()
    calls = run.commands()
    assert calls.index("pvecm") > 0
    assert run.called("pvecm", "add", "10.0.10.11", "--use_ssh", "1", "--link0", "address=10.0.10.12")
    again = run_with_stubs(f"KNOWN_HOSTS={known}\n" + text, tmp_path / "run2", stubs)
    assert again.returncode == 0 and known.read_text().splitlines() == [f"10.0.10.11 {pinned}"]


# --- a node that joins after corosync link 1 exists -------------------------------------------

# `ip` on a joining node: whether its storage address is held, on lo (the join's stand-in) and by
# the storage network (from the Nth look on: its bond or fabric comes up after the join).
IP_STUB = """
lo_line="1: lo    inet $ADDR/32 scope global lo:join"
net_line="6: bond1    inet $ADDR/24 brd 10.0.50.255 scope global bond1"
n=$(cat "$STATE/looks" 2>/dev/null || echo 0)
case "$*" in
  "address add $ADDR/32 dev lo label lo:join") touch "$STATE/lo" ;;
  "address del $ADDR/32 dev lo") rm "$STATE/lo" ;;
  "-o address show dev lo to $ADDR/32") [ ! -e "$STATE/lo" ] || echo "$lo_line" ;;
  "-o address show to $ADDR/32"*)
    echo $((n + 1)) > "$STATE/looks"
    [ ! -e "$STATE/lo" ] || echo "$lo_line"
    [ "$n" -lt "$HELD_FROM" ] || echo "$net_line" ;;
esac
"""


def ip_stub(address: str, held_from: int, on_lo: bool = False) -> str:
    setup = f'ADDR={address}; HELD_FROM={held_from}\n[ ! -e "$STATE/lo-set" ] && touch "$STATE/lo-set" '
    setup += '&& touch "$STATE/lo"\n' if on_lo else "|| true\n"
    return setup + IP_STUB


@pytest.mark.parametrize("already_local", [False, True])
def test_a_node_joining_after_link1_holds_its_storage_address_for_the_join(tmp_path: Path, already_local: bool) -> None:
    text = program("home").named("pve2-cluster-join").inputs["create"]
    stubs = {
        "ssh-keygen": "exit 0",
        "ssh": "exit 0",  # the first node's corosync.conf has ring1_addr
        "pvecm": "exit 0",
        "ip": ip_stub("10.0.50.12", held_from=0 if already_local else 99),
    }
    run = run_with_stubs(f"KNOWN_HOSTS={tmp_path / 'known_hosts'}\n" + text, tmp_path, stubs)
    assert run.returncode == 0, run.stderr
    add = ["ip", "address", "add", "10.0.50.12/32", "dev", "lo", "label", "lo:join"]
    join = [
        "pvecm",
        "add",
        "10.0.10.11",
        "--use_ssh",
        "1",
        "--link0",
        "address=10.0.10.12",
        "--link1",
        "address=10.0.50.12",
    ]
    assert join in run.calls
    if already_local:
        assert add not in run.calls
    else:
        # pvecm checks every link address is on the node (assert_joinable): it is, before the join.
        assert run.calls.index(add) < run.calls.index(join)


def test_the_storage_check_hands_the_join_address_over_to_the_storage_network(tmp_path: Path) -> None:
    script = commands(program("home"))["pve2-storage-reachable"]
    stubs = {"ping": "exit 0", "sleep": "exit 0", "hostname": "echo pve2", "ip": ip_stub("10.0.50.12", 2, on_lo=True)}
    run = run_with_stubs(script, tmp_path, stubs)
    assert run.returncode == 0, run.stderr
    drop = ["ip", "address", "del", "10.0.50.12/32", "dev", "lo"]
    assert run.calls.count(drop) == 1
    # No peer is judged before the storage network holds the address, and lo lets it go first.
    first_ping = run.commands().index("ping")
    assert run.calls.index(drop) < first_ping
    assert run.calls.count(["sleep", "2"]) == 2
    assert "removed the join's stand-in from lo" in run.stdout


def test_the_storage_check_fails_when_no_interface_takes_the_address(tmp_path: Path) -> None:
    script = commands(program("home"))["pve2-storage-reachable"]
    stubs = {"ping": "exit 0", "sleep": "exit 0", "hostname": "echo pve2", "ip": ip_stub("10.0.50.12", 999, on_lo=True)}
    run = run_with_stubs(script, tmp_path, stubs)
    assert run.returncode == 1
    assert "no interface of pve2 holds its storage address 10.0.50.12 after 60 tries" in run.stderr
    assert "ping" not in run.commands()
