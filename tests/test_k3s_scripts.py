"""The k3s install, label and cordon scripts' decisions, run against stub commands."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml

from components import remote
from components.k3s import CONFIG_FILE, ENCRYPTION_CONFIG, INSTALLER, JOIN_TOKEN_FILE, OUT_OF_SERVICE, node_config
from components.kube_vip import kube_vip_manifest
from spec.kubernetes import K3s
from tests.shell import ScriptRun, run_with_stubs
from tests.support import stack_cluster


def spec_of() -> K3s:
    spec = stack_cluster("home").k3s
    assert spec is not None
    return spec


# --- the install script, run against stub commands ------------------------------------------

TOKEN = "K10deadbeef::server:s3cret"
VERSION = "v1.33.5+k3s1"
# What the stub curl serves as the installer, and the hash pinned for it.
INSTALLER_TEXT = "echo installer\n"
PINNED = hashlib.sha256(INSTALLER_TEXT.encode()).hexdigest()


def render(role: str, version: str = VERSION, installer_sha256: str = PINNED) -> str:
    spec = spec_of()
    params: dict[str, str | int] = {
        "role": role,
        "version": version,
        "node_name": "k3s-server-1",
        "api_vip": str(spec.api_vip),
        "installer": INSTALLER,
        "installer_sha256": installer_sha256,
        "token_file": JOIN_TOKEN_FILE,
        "config_file": CONFIG_FILE,
        "data_dir": "/var/lib/rancher/k3s",
        "encryption_config": ENCRYPTION_CONFIG,
        "k3s_config": node_config(spec, "k3s-server-1", "10.0.10.31", role),
    }
    if role != "agent":
        params |= {"manifests": "/var/lib/rancher/k3s/server/manifests", "kube_vip_manifest": "kind: DaemonSet"}
    return remote.script("k3s-install", **params)


def run_install(
    tmp_path: Path,
    role: str,
    installed: str | None,
    active: bool = True,
    files_differ: bool = True,
    vip_answers: bool = False,
    has_etcd_data: bool = False,
    flags_in_unit: bool = False,
    installer_sha256: str = PINNED,
    encrypted: bool = True,
) -> ScriptRun:
    tmp_path.mkdir(parents=True, exist_ok=True)
    text = render(role, installer_sha256=installer_sha256)
    # What pulumi-command pipes to the joins: the token on stdin (nothing for the first server).
    stdin = f"exec 0<<<'{TOKEN}'\n" if role != "server-init" else "exec 0</dev/null\n"
    text = text.replace(remote.HEADER, remote.HEADER + stdin, 1)
    stubs = {
        # sudo runs nothing: it records, keeps what is written through it, and reports every file
        # as differing (so every write shows) or as already up to date.
        "sudo": (
            f'if [ "$2" = cmp ]; then exit {1 if files_differ else 0}; fi\n'
            f'if [ "$2" = test ]; then case "$*" in *encryption-config*) exit {0 if encrypted else 1} ;; esac; '
            f"exit {0 if has_etcd_data else 1}; fi\n"
            f'if [ "$2" = grep ]; then exit {0 if flags_in_unit else 1}; fi\n'
            'if [ "$2" = sh ]; then cat >"$STATE/$(basename "${*: -1}")"; exit 0; fi\n'
            "if [ -p /dev/stdin ]; then cat >/dev/null; fi"
        ),
        "k3s": f"echo 'k3s version {installed} (1a2b3c4d)'" if installed else "exit 127",
        "systemctl": "exit 0" if active else "exit 3",
        # The VIP answers for a join (an earlier server holds it); for the first server only when
        # a cluster already runs there.
        "curl": f'case "$*" in *cacerts*) exit {0 if vip_answers or role != "server-init" else 7} ;; esac\n'
        # The installer download: written where -o says.
        'while [ $# -gt 0 ]; do if [ "$1" = -o ]; then out=$2; fi; shift; done\n'
        f"printf '%s\\n' '{INSTALLER_TEXT.rstrip()}' >\"$out\"",
        "cloud-init": "exit 0",
        "sleep": "exit 0",
    }
    return run_with_stubs(text, tmp_path, stubs)


def installer_args(run: ScriptRun) -> list[str]:
    calls = [c for c in run.calls if c[:3] == ["sudo", "-n", "env"]]
    assert len(calls) == 1, run.calls
    call = calls[0]
    assert f"INSTALL_K3S_VERSION={VERSION}" in call
    # Else the installer skips starting a service whose files did not change.
    assert "INSTALL_K3S_FORCE_RESTART=true" in call
    # sh runs the downloaded file (checked), never a script piped in from the network.
    run_at = call.index("sh")
    assert Path(call[run_at + 1]).is_absolute(), call
    return call[run_at + 2 :]


def written_config(tmp_path: Path) -> dict[str, object]:
    config: dict[str, object] = yaml.safe_load((tmp_path / "state" / Path(CONFIG_FILE).name).read_text())
    return config


def test_first_server_installs_with_cluster_init(tmp_path: Path) -> None:
    run = run_install(tmp_path, "server-init", installed=None)
    assert run.returncode == 0, run.stderr
    # Every flag is in the config file; the installer's own arguments would be baked into the unit.
    assert installer_args(run) == ["server"]
    spec = spec_of()
    assert written_config(tmp_path) == {
        "node-name": "k3s-server-1",
        "node-ip": "10.0.10.31",
        "flannel-iface": spec.vip_interface,
        "kubelet-arg": ["shutdown-grace-period=60s", "shutdown-grace-period-critical-pods=20s"],
        "cluster-init": True,
        "tls-san": [str(spec.api_vip)],
        "disable": ["servicelb", "traefik", "local-storage"],
        "etcd-snapshot-schedule-cron": "0 */6 * * *",
        "etcd-snapshot-retention": 28,
        "flannel-backend": "wireguard-native",
        "secrets-encryption": True,
    }
    assert (tmp_path / "state" / "kube-vip.yaml").read_text() == "kind: DaemonSet\n"
    assert run.called("sudo", "-n", "modprobe", "rbd")
    # The next server waits for this one: its API server (etcd included) ready, its node Ready.
    assert run.called("sudo", "-n", "k3s", "kubectl", "get", "--raw", "/readyz")
    assert run.called(
        "sudo", "-n", "k3s", "kubectl", "wait", "--for=condition=Ready", "node/k3s-server-1", "--timeout=5s"
    )


def test_a_rebuilt_first_server_never_starts_a_second_cluster(tmp_path: Path) -> None:
    # No etcd data here, yet a cluster answers on the VIP: cluster-init would split it.
    run = run_install(tmp_path / "rebuilt", "server-init", installed=None, vip_answers=True)
    assert run.returncode == 1
    assert "has no etcd data" in run.stderr and "list it last in k3s.servers" in run.stderr
    assert not any(c[:3] == ["sudo", "-n", "env"] for c in run.calls)
    assert not (tmp_path / "rebuilt" / "state" / Path(CONFIG_FILE).name).exists()
    # The first server itself, re-run: it has its etcd data, so the VIP answering is its own.
    own = run_install(tmp_path / "own", "server-init", installed=VERSION, vip_answers=True, has_etcd_data=True)
    assert own.returncode == 0, own.stderr


def test_joining_server_uses_the_vip_and_the_token_from_stdin(tmp_path: Path) -> None:
    run = run_install(tmp_path, "server-join", installed=None)
    assert run.returncode == 0, run.stderr
    assert installer_args(run) == ["server"]
    vip = str(spec_of().api_vip)
    config = written_config(tmp_path)
    assert "cluster-init" not in config
    assert config["server"] == f"https://{vip}:6443"
    assert config["token-file"] == JOIN_TOKEN_FILE
    assert (tmp_path / "state" / Path(JOIN_TOKEN_FILE).name).read_text() == TOKEN + "\n"
    assert all(TOKEN not in " ".join(call) for call in run.calls)  # never on a command line
    assert run.called("curl", "-ksf", "--max-time", "5", f"https://{vip}:6443/cacerts")


def test_agent_joins_without_server_flags(tmp_path: Path) -> None:
    run = run_install(tmp_path, "agent", installed=None)
    assert run.returncode == 0, run.stderr
    assert installer_args(run) == ["agent"]
    config = written_config(tmp_path)
    assert not {"tls-san", "disable", "cluster-init", "etcd-snapshot-schedule-cron"} & set(config)
    assert config["server"] == f"https://{spec_of().api_vip}:6443"
    assert not (tmp_path / "state" / "kube-vip.yaml").exists()
    assert not any("kubectl" in call for call in run.calls)  # an agent has no admin kubeconfig


@pytest.mark.parametrize("role", ["server-init", "server-join", "agent"])
def test_rerun_at_the_pinned_version_with_the_same_config_changes_nothing(tmp_path: Path, role: str) -> None:
    run = run_install(tmp_path, role, installed=VERSION, files_differ=False, has_etcd_data=True)
    assert run.returncode == 0, run.stderr
    assert "already installed" in run.stdout
    assert not any(c[:3] == ["sudo", "-n", "env"] for c in run.calls)
    assert not any(c[0] == "curl" for c in run.calls)
    assert not any("restart" in c for c in run.calls)


@pytest.mark.parametrize(("role", "service"), [("server-init", "k3s"), ("server-join", "k3s"), ("agent", "k3s-agent")])
def test_a_changed_config_restarts_a_running_node_without_reinstalling(tmp_path: Path, role: str, service: str) -> None:
    run = run_install(tmp_path, role, installed=VERSION, files_differ=True, has_etcd_data=True)
    assert run.returncode == 0, run.stderr
    assert run.called("sudo", "-n", "systemctl", "restart", service)
    assert not any(c[:3] == ["sudo", "-n", "env"] for c in run.calls)


def test_a_unit_still_carrying_installer_flags_is_reinstalled_bare(tmp_path: Path) -> None:
    # Written by an older install: its flags would override the config file at every start.
    run = run_install(tmp_path, "agent", installed=VERSION, files_differ=False, flags_in_unit=True)
    assert run.returncode == 0, run.stderr
    assert installer_args(run) == ["agent"]


@pytest.mark.parametrize("role", ["server-init", "server-join"])
def test_encryption_is_never_added_to_a_server_started_without_it(tmp_path: Path, role: str) -> None:
    # A server with etcd data but no encryption config: k3s cannot turn encryption on later.
    run = run_install(tmp_path, role, VERSION, has_etcd_data=True, encrypted=False, vip_answers=False)
    assert run.returncode == 1
    assert "started without secrets encryption" in run.stderr
    assert not (tmp_path / "state" / Path(CONFIG_FILE).name).exists()
    assert not [c for c in run.calls if c[:2] == ["sudo", "-n"] and "systemctl" in c]


def test_an_encrypted_server_and_an_agent_pass_the_encryption_check(tmp_path: Path) -> None:
    server = run_install(tmp_path / "server", "server-join", VERSION, has_etcd_data=True)
    assert server.returncode == 0, server.stderr
    # An agent has no etcd and no encryption config of its own.
    agent = run_install(tmp_path / "agent", "agent", VERSION, has_etcd_data=True, encrypted=False)
    assert agent.returncode == 0, agent.stderr


def test_an_installer_other_than_the_pinned_one_is_never_run(tmp_path: Path) -> None:
    # What the network hands back differs from the hash kept in the repository.
    run = run_install(tmp_path, "server-init", None, installer_sha256="0" * 64)
    assert run.returncode == 1
    assert f"has sha256 {PINNED}, not the pinned {'0' * 64}" in run.stderr
    assert not [c for c in run.calls if c[:3] == ["sudo", "-n", "env"]]


def test_the_installer_is_fetched_over_https_only(tmp_path: Path) -> None:
    run = run_install(tmp_path, "agent", None)
    downloads = [c for c in run.calls if c[0] == "curl" and INSTALLER in c]
    assert len(downloads) == 1, run.calls
    assert "--proto" in downloads[0] and "=https" in downloads[0]


def test_without_curl_the_install_stops_with_a_reason(tmp_path: Path) -> None:
    text = render("server-init").replace(remote.HEADER, remote.HEADER + "exec 0</dev/null\n", 1)
    # Only the stubs' folder on PATH, plus what bash needs for `seq`: no curl anywhere.
    text = text.replace(remote.HEADER, remote.HEADER + 'PATH="${PATH%%:*}"\n', 1)
    run = run_with_stubs(text, tmp_path, {"sudo": "exit 0", "cloud-init": "exit 0"})
    assert run.returncode == 1
    assert "curl is not installed" in run.stderr


def test_other_version_or_stopped_service_reinstalls(tmp_path: Path) -> None:
    upgrade = run_install(tmp_path / "upgrade", "server-join", installed="v1.32.9+k3s1")
    assert upgrade.returncode == 0, upgrade.stderr
    assert installer_args(upgrade) == ["server"]
    # An install interrupted after the binary landed: same version, service not running.
    interrupted = run_install(tmp_path / "interrupted", "agent", installed=VERSION, active=False)
    assert interrupted.returncode == 0, interrupted.stderr
    assert installer_args(interrupted) == ["agent"]


def test_a_stopped_node_at_the_pinned_version_is_started_again(tmp_path: Path) -> None:
    # k3s crashed (or was stopped) and its files are unchanged: the installer alone would leave it down.
    run = run_install(tmp_path, "server-join", installed=VERSION, active=False, files_differ=False)
    assert run.returncode == 0, run.stderr
    assert installer_args(run) == ["server"]
    reset = run.calls.index(["sudo", "-n", "systemctl", "reset-failed", "k3s"])
    assert reset < next(i for i, c in enumerate(run.calls) if c[:3] == ["sudo", "-n", "env"])


def test_node_config_never_carries_a_node_label() -> None:
    spec = spec_of()
    for role in ("server-init", "server-join", "agent"):
        assert "node-label" not in yaml.safe_load(node_config(spec, "k3s-agent-1", "10.0.10.51", role))


def test_kube_vip_manifest_has_no_yaml_aliases() -> None:
    # Shared label dicts must be written out in full: not every YAML reader takes anchors.
    text = kube_vip_manifest(spec_of())
    assert "&id" not in text and "*id" not in text


def test_join_without_a_token_stops(tmp_path: Path) -> None:
    text = render("agent").replace(remote.HEADER, remote.HEADER + "exec 0</dev/null\n", 1)
    run = run_with_stubs(text, tmp_path, {"sudo": "exit 0", "k3s": "exit 127", "curl": "exit 0"})
    assert run.returncode == 1
    assert "no join token on stdin" in run.stderr
    assert not any(c[:3] == ["sudo", "-n", "env"] for c in run.calls)


def test_unknown_role_stops(tmp_path: Path) -> None:
    text = render("agent").replace("ROLE=agent", "ROLE=worker")
    run = run_with_stubs(text, tmp_path, {"sudo": "exit 0"})
    assert run.returncode == 1 and "ROLE must be" in run.stderr


def test_cordon_taints_out_of_service_only_a_node_that_is_down(tmp_path: Path) -> None:
    text = remote.script("k3s-cordon", node="k3s-server-1", out_of_service=OUT_OF_SERVICE, timeout="10m")
    (tmp_path / "down").mkdir()
    down = run_with_stubs(
        text, tmp_path / "down", {"sudo": 'case "$*" in *jsonpath*) echo Unknown ;; esac', "sleep": "exit 0"}
    )
    assert down.returncode == 0, down.stderr
    assert down.called("sudo", "-n", "k3s", "kubectl", "taint", "node", "k3s-server-1", OUT_OF_SERVICE, "--overwrite")
    assert any(c[3:5] == ["kubectl", "drain"] for c in down.calls)
    # Ready or NotReady (False): a kubelet is still running there, so its volumes stay attached.
    for status in ("True", "False"):
        (tmp_path / status).mkdir()
        up = run_with_stubs(
            text, tmp_path / status, {"sudo": f'case "$*" in *jsonpath*) echo {status} ;; esac', "sleep": "exit 0"}
        )
        assert up.returncode == 0, up.stderr
        assert not any("taint" in c for c in up.calls), status
        assert any(c[3:5] == ["kubectl", "drain"] for c in up.calls)


# --- a VM's SSH host key, read through Proxmox -----------------------------------------------

VM_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMvmkeyofthevm0123456789abcdefghijklmnop"


def run_host_key(tmp_path: Path, agent_after: int) -> ScriptRun:
    """The key script for k3s-server-2 (VM 202, now on pve3 after a failover); the guest agent
    answers from the AGENT_AFTER-th try on."""
    from tests.support import program

    text = program("home").named("k3s-server-2-host-key").inputs["create"]
    assert isinstance(text, str)
    resources = '[{"vmid": 201, "node": "pve1"}, {"vmid": 202, "node": "pve3"}, {"vmid": 203, "node": "pve2"}]'
    pvesh = (
        f"case \"$2\" in\n  /cluster/resources) echo '{resources}' ;;\n"
        "  /nodes/pve3/qemu/202/agent/file-read)\n"
        '    n=$(cat "$STATE/n" 2>/dev/null || echo 0); echo $((n + 1)) > "$STATE/n"\n'
        f'    [ "$n" -ge {agent_after} ] || {{ echo "QEMU guest agent is not running" >&2; exit 255; }}\n'
        f'    echo \'{{"content": "{VM_KEY} root@k3s-server-2\\\\n", "truncated": 0}}\' ;;\n'
        "  *) exit 2 ;;\nesac"
    )
    return run_with_stubs(text, tmp_path, {"pvesh": pvesh, "sleep": "exit 0"})


def test_the_vm_host_key_is_read_from_the_node_it_runs_on_once_its_agent_answers(tmp_path: Path) -> None:
    run = run_host_key(tmp_path, agent_after=2)
    assert run.returncode == 0, run.stderr
    assert run.stdout == VM_KEY + "\n"  # type and key only: what pulumi-command pins
    reads = [c for c in run.calls if c[:2] == ["pvesh", "get"] and "agent" in c[2]]
    assert len(reads) == 3 and all(c[2] == "/nodes/pve3/qemu/202/agent/file-read" for c in reads)
    assert reads[0][3:5] == ["--file", "/etc/ssh/ssh_host_ed25519_key.pub"]


def test_no_agent_no_key(tmp_path: Path) -> None:
    run = run_host_key(tmp_path, agent_after=999)
    assert run.returncode == 1 and run.stdout == ""
    assert "could not read VM 202's SSH host key through its guest agent after 60 tries" in run.stderr
