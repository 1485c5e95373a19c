"""The managed Proxmox Backup Server: what the program declares for `backups.pbs.host`, and what
its two scripts do on a Debian machine, run against stub commands that record every call."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from components.backup_server import KEYRING, KEYRING_SHA256, PRUNE_JOB, VERIFY_JOB, last_line
from offline.harness import UNKNOWN, ProgramRun, config_for
from offline.policy_run import run_policies
from plan.placement import plan_guests
from plan.power import BACKUP_HOST, cluster_draw
from policies import tokens
from spec import parse_cluster
from tests.policy_support import full_stack
from tests.shell import ScriptRun, run_with_stubs
from tests.support import patched, program, script_param, stack_cluster, stack_data

FINGERPRINT = ":".join(["ab"] * 32)
KEYRING_BYTES = b"the archive keyring\n"


def rendered(run: ProgramRun, name: str) -> str:
    text = run.named(name).inputs["create"]
    assert isinstance(text, str)
    return text


def with_param(script: str, name: str, value: str | Path) -> str:
    """SCRIPT with parameter NAME set to VALUE (a path under the test's folder, not the host's)."""
    out, count = re.subn(rf"^{name}=.*$", f"{name}='{value}'", script, count=1, flags=re.MULTILINE)
    assert count == 1, name
    return out


# --- what the program declares ----------------------------------------------------------------


def test_the_home_stack_sets_up_its_pbs_over_ssh_and_pins_what_it_reads() -> None:
    run, cluster = program("home"), stack_cluster("home")
    assert cluster.backups is not None and cluster.backups.pbs.host is not None
    install, configure = run.named("home-pbs-install"), run.named("home-pbs-configure")
    for command in (install, configure):
        connection = command.inputs["connection"]
        # As root on the spec's address, and only to the machine with the spec's host key.
        assert connection["host"] == "10.0.10.5" and connection["user"] == "root"
        assert connection["hostKey"] == cluster.backups.pbs.host.ssh_host_key
    assert install.urn in configure.dependencies
    # The configure script carries the password: a secret, and its stdout stays out of the log.
    assert "create" in configure.secret_paths and configure.inputs["logging"] == "stderr"
    assert script_param(rendered(run, "home-pbs-configure"), "PASSWORD") == config_for("home")["homelab:pbsPassword"]
    # The nodes' storage pins the certificate the configure script read: unknown until it ran.
    [storage] = run.of_type(tokens.PBS_STORAGE)
    assert storage.inputs["fingerprint"] == UNKNOWN and configure.urn in storage.dependencies
    assert storage.inputs["username"] == "homelab@pbs"


def test_lab_names_an_existing_pbs_and_sets_up_nothing() -> None:
    run = program("lab")
    assert not [r for r in run.of_type(tokens.REMOTE_COMMAND) if "-pbs-" in r.name]
    [storage] = run.of_type(tokens.PBS_STORAGE)
    assert storage.inputs["fingerprint"] == stack_cluster("lab").backups.pbs.fingerprint  # type: ignore[union-attr]


def test_on_a_managed_pbs_the_nodes_delete_nothing_and_pbs_prunes_to_the_spec() -> None:
    run, cluster = program("home"), stack_cluster("home")
    assert cluster.backups is not None
    [job] = run.of_type(tokens.BACKUP_JOB)
    assert job.inputs["pruneBackups"] == {"keep-all": "1"}
    keep = script_param(rendered(run, "home-pbs-configure"), "KEEP")
    assert dict(o.split("=") for o in keep.split()) == cluster.backups.guests.retention.prune_options()


def test_a_managed_pbs_with_less_than_a_week_of_dailies_is_refused() -> None:
    data = patched(stack_data("home"), {"backups.guests.retention.keep_daily": 3})
    found = [
        v
        for v in run_policies(full_stack("home"), config_for("home", cluster=data))
        if v.policy == "backup-retention" and not v.not_known_yet
    ]
    assert [v.message for v in found] == [
        "homelab-guests (PBS's prune job): backups.guests.retention keeps 3 daily copies, fewer than 7: a mistake "
        "noticed a week later has no copy left; keep more, or say why in retention.short_because"
    ]


def test_the_backup_host_is_on_the_power_bill() -> None:
    cluster = stack_cluster("home")
    plan = plan_guests(cluster)
    running = {g: n for g, n in plan.where.items() if g not in plan.parked}
    draw = cluster_draw(cluster, running)
    [host] = [d for d in draw.nodes if d.node == BACKUP_HOST]
    assert host.watts == 5.0
    without = cluster_draw(parse_cluster(patched(stack_data("home"), delete=["backups"])), running)
    assert draw.watts == pytest.approx(without.watts + 5.0)


def test_a_backup_host_over_the_budget_is_refused() -> None:
    data = stack_data("home")
    cluster = parse_cluster(data)
    plan = plan_guests(cluster)
    draw = cluster_draw(cluster, {g: n for g, n in plan.where.items() if g not in plan.parked})
    # A budget the nodes fit in, and the backup host does not.
    data = patched(data, {"power.budget_watts": round(draw.watts - 2), "backups.pbs.host.idle_watts": 5})
    found = [
        v for v in run_policies(full_stack("home"), config_for("home", cluster=data)) if v.policy == "power-budget"
    ]
    assert len(found) == 1 and f"{BACKUP_HOST} 5.0 W = idle 5 W" in found[0].message


def test_the_fingerprint_is_the_scripts_last_line() -> None:
    assert last_line(f"Datastore created\nTASK OK\n{FINGERPRINT}\n") == FINGERPRINT
    assert last_line("") == ""


# --- pbs-install.sh on a Debian machine ---------------------------------------------------


def run_install(
    tmp_path: Path, codename: str = "trixie", keyring: bytes = KEYRING_BYTES, installed: bool = False
) -> ScriptRun:
    tmp_path.mkdir(parents=True, exist_ok=True)
    text = rendered(program("home"), "home-pbs-install")
    os_release = tmp_path / "os-release"
    os_release.write_text(f'PRETTY_NAME="Debian GNU/Linux"\nVERSION_CODENAME={codename}\n')
    text = with_param(text, "OS_RELEASE", os_release)
    text = with_param(text, "KEYRING", tmp_path / "keyring.gpg")
    text = with_param(text, "SOURCES", tmp_path / "pbs.sources")
    # The test's keyring passes the check only when it is the bytes the pin was computed from.
    text = with_param(text, "KEYRING_SHA256", hashlib.sha256(KEYRING_BYTES).hexdigest())
    (tmp_path / "served").write_bytes(keyring)
    stubs = {
        "dpkg-query": 'if [ -e "$STATE/installed" ]; then echo "install ok installed"; else exit 1; fi',
        "systemctl": 'case "$1" in is-active) [ -e "$STATE/installed" ] ;; *) exit 0 ;; esac',
        "apt-get": 'case "$*" in *proxmox-backup-server*) touch "$STATE/installed" ;; esac',
        "curl": (
            'while [ $# -gt 0 ]; do if [ "$1" = -o ]; then out=$2; fi; shift; done\n'
            f'cat "{tmp_path / "served"}" >"$out"'
        ),
        "hostname": "echo pbs",
    }
    if installed:
        stubs["dpkg-query"] = 'echo "install ok installed"'
        stubs["systemctl"] = "exit 0"
    return run_with_stubs(text, tmp_path, stubs)


def test_a_fresh_debian_gets_pbs_from_the_checked_repository(tmp_path: Path) -> None:
    run = run_install(tmp_path)
    assert run.returncode == 0, run.stderr
    [download] = [c for c in run.calls if c[0] == "curl"]
    assert download[1:3] == ["--proto", "=https"] and download[-1].startswith("https://enterprise.proxmox.com/")
    assert (tmp_path / "keyring.gpg").read_bytes() == KEYRING_BYTES
    sources = (tmp_path / "pbs.sources").read_text()
    assert "Suites: trixie\nComponents: pbs-no-subscription\n" in sources
    assert f"Signed-By: {tmp_path / 'keyring.gpg'}\n" in sources
    apt = [c[1:] for c in run.calls if c[0] == "apt-get"]
    assert apt == [["update"], ["install", "-y", "--no-install-recommends", "proxmox-backup-server"]]
    assert ["systemctl", "enable", "--now", "proxmox-backup", "proxmox-backup-proxy"] in run.calls


def test_a_keyring_that_is_not_proxmoxs_is_never_trusted(tmp_path: Path) -> None:
    other = b"someone else's key\n"
    run = run_install(tmp_path, keyring=other)
    assert run.returncode == 1
    pinned = hashlib.sha256(KEYRING_BYTES).hexdigest()
    assert f"has sha256 {hashlib.sha256(other).hexdigest()}, not {pinned}: not trusting it" in run.stderr
    assert not (tmp_path / "keyring.gpg").exists() and not (tmp_path / "pbs.sources").exists()
    assert "apt-get" not in run.commands()


def test_pbs_is_installed_on_debian_13_only(tmp_path: Path) -> None:
    run = run_install(tmp_path, codename="bookworm")
    assert run.returncode == 1
    assert "PBS from the trixie repository needs Debian trixie" in run.stderr
    assert {"apt-get", "curl", "systemctl"}.isdisjoint(run.commands())


def test_an_installed_pbs_is_left_alone(tmp_path: Path) -> None:
    run = run_install(tmp_path, installed=True)
    assert run.returncode == 0, run.stderr
    assert "already installed and running" in run.stdout
    assert {"apt-get", "curl"}.isdisjoint(run.commands())


def test_the_pinned_keyring_hash_is_sha256() -> None:
    assert re.fullmatch(r"[0-9a-f]{64}", KEYRING_SHA256) and KEYRING.startswith("/usr/share/keyrings/")


# --- pbs-configure.sh on the PBS ----------------------------------------------------------

EXISTING = {
    "datastore.cfg": "datastore: homelab\n\tpath {path}\n\tgc-schedule daily\n",
    "user.cfg": "user: root@pam\n\temail root@example.org\n\nuser: homelab@pbs\n\tenable true\n",
    "prune.cfg": f"prune: {PRUNE_JOB}\n\tstore homelab\n\tschedule daily\n\tkeep-yearly 2\n",
    "verification.cfg": f"verification: {VERIFY_JOB}\n\tstore homelab\n",
}


def run_configure(
    tmp_path: Path, existing: bool = False, path: str = "/srv/pbs/homelab", cert: str = "", password: str = ""
) -> ScriptRun:
    tmp_path.mkdir(parents=True, exist_ok=True)
    config = tmp_path / "etc"
    config.mkdir()
    if existing:
        for name, text in EXISTING.items():
            (config / name).write_text(text.format(path=path))
    script = with_param(rendered(program("home"), "home-pbs-configure"), "CONFIG_DIR", config)
    if password:
        script = with_param(script, "PASSWORD", password)
    cert_info = cert or f"Subject: CN=pbs\nFingerprint (sha256): {FINGERPRINT}\n"
    stubs = {
        "proxmox-backup-manager": f'if [ "$1 $2" = "cert info" ]; then printf "%s" "{cert_info}"; fi',
        "proxmox-backup-debug": "exit 0",
        "mkdir": "exit 0",
    }
    return run_with_stubs(script, tmp_path, stubs)


def manager_calls(run: ScriptRun) -> list[list[str]]:
    return [c[1:] for c in run.calls if c[0] == "proxmox-backup-manager"]


def test_a_new_pbs_gets_the_datastore_user_and_jobs_and_prints_its_fingerprint(tmp_path: Path) -> None:
    run = run_configure(tmp_path)
    assert run.returncode == 0, run.stderr
    calls = manager_calls(run)
    assert ["datastore", "create", "homelab", "/srv/pbs/homelab", "--gc-schedule", "*-*-* 05:00"] in calls
    password = config_for("home")["homelab:pbsPassword"]
    comment = "the homelab cluster's nodes"
    assert ["user", "create", "homelab@pbs", "--password", password, "--comment", comment] in calls
    # Back up and restore its own, nothing more: no prune, no delete.
    assert ["acl", "update", "/datastore/homelab", "DatastoreBackup", "--auth-id", "homelab@pbs"] in calls
    [prune] = [c for c in calls if c[:2] == ["prune-job", "create"]]
    keep = ["--keep-daily", "7", "--keep-weekly", "4", "--keep-monthly", "6"]
    assert prune[2:] == [PRUNE_JOB, "--store", "homelab", "--schedule", "*-*-* 04:30", *keep]
    verify = ["--store", "homelab", "--schedule", "Sat *-*-* 06:00"]
    verify += ["--ignore-verified", "true", "--outdated-after", "30"]
    assert ["verify-job", "create", VERIFY_JOB, *verify] in calls
    assert run.stdout.strip().splitlines()[-1] == FINGERPRINT


def test_a_rerun_updates_in_place_and_drops_what_the_spec_no_longer_keeps(tmp_path: Path) -> None:
    run = run_configure(tmp_path, existing=True)
    assert run.returncode == 0, run.stderr
    calls = manager_calls(run)
    assert not [c for c in calls if c[1] in ("create", "remove")], calls
    assert ["datastore", "update", "homelab", "--gc-schedule", "*-*-* 05:00"] in calls
    # The password through the API PBS honours (`user update --password` is ignored since 3.3).
    assert ["user", "update", "homelab@pbs", "--enable", "true"] in calls
    password = config_for("home")["homelab:pbsPassword"]
    api = ["api", "set", "/access/password", "--userid", "homelab@pbs", "--password", password]
    assert [c[1:] for c in run.calls if c[0] == "proxmox-backup-debug"] == [api]
    [prune] = [c for c in calls if c[:2] == ["prune-job", "update"]]
    # The job had keep-yearly; the spec keeps no yearlies, so it goes (and no job loses its state).
    assert prune[prune.index("--keep-daily") :] == [
        "--keep-daily", "7", "--keep-weekly", "4", "--keep-monthly", "6",
        "--delete", "keep-last", "--delete", "keep-hourly", "--delete", "keep-yearly",
    ]  # fmt: skip
    assert [c for c in calls if c[:2] == ["verify-job", "update"]]


def test_a_datastore_elsewhere_than_the_spec_says_is_refused_before_any_change(tmp_path: Path) -> None:
    run = run_configure(tmp_path, existing=True, path="/mnt/old")
    assert run.returncode == 1
    assert "datastore homelab is at /mnt/old, the spec says /srv/pbs/homelab" in run.stderr
    assert manager_calls(run) == []


@pytest.mark.parametrize("length", [4, 65])
def test_a_password_pbs_would_refuse_stops_before_any_change(tmp_path: Path, length: int) -> None:
    run = run_configure(tmp_path, password="x" * length)
    assert run.returncode == 1
    assert f"homelab:pbsPassword has {length} characters; PBS takes 5 to 64" in run.stderr
    assert manager_calls(run) == []


def test_no_fingerprint_no_success(tmp_path: Path) -> None:
    run = run_configure(tmp_path, cert="Subject: CN=pbs\n")
    assert run.returncode == 1 and "no sha256 fingerprint" in run.stderr
