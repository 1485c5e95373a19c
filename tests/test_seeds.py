"""Seed files: written onto an app's volume before its first start, never over what it has."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from components.seeds import SEED_IMAGE, seed_script
from offline.harness import stand_in
from policies import tokens
from tests.support import program, stack_cluster


def run_seed(files: list[tuple[Path, Path]]) -> subprocess.CompletedProcess[str]:
    script = seed_script([(str(src), str(dest)) for src, dest in files])
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=False, timeout=30)


def test_a_file_is_seeded_once_and_the_apps_own_copy_is_kept(tmp_path: Path) -> None:
    seed = tmp_path / "seed" / "file-0"
    seed.parent.mkdir()
    seed.write_text("http:\n  address: 0.0.0.0:3000\n")
    dest = tmp_path / "volume" / "conf" / "AdGuardHome.yaml"  # the folder does not exist yet
    first = run_seed([(seed, dest)])
    assert first.returncode == 0, first.stderr
    assert dest.read_text() == seed.read_text() and f"seeded {dest}" in first.stdout
    dest.write_text("what the app wrote since\n")
    again = run_seed([(seed, dest)])
    assert again.returncode == 0 and again.stdout == ""
    assert dest.read_text() == "what the app wrote since\n"


def test_a_failed_copy_fails_the_pod_start(tmp_path: Path) -> None:
    run = run_seed([(tmp_path / "missing", tmp_path / "dest")])
    assert run.returncode != 0 and not (tmp_path / "dest").exists()


def adguard() -> tuple[dict[str, Any], dict[str, Any], str]:
    run = program("home")
    [sts] = [r for r in run.of_type(tokens.STATEFUL_SET) if r.name == "dns-adguard-home"]
    [secret] = [r for r in run.of_type(tokens.K8S_SECRET) if r.name == "dns-adguard-home-seed"]
    return sts.inputs["spec"]["template"]["spec"], secret.inputs, secret.secret_paths[0] if secret.secret_paths else ""


def test_adguard_starts_from_its_seeded_config_where_the_readiness_check_looks() -> None:
    pod, secret, secret_path = adguard()
    [init] = pod["initContainers"]
    assert init["image"] == SEED_IMAGE
    mounts = {m["name"]: m["mountPath"] for m in init["volumeMounts"]}
    assert mounts == {"conf": "/opt/adguardhome/conf", "work": "/opt/adguardhome/work", "seed-files": "/seed"}
    assert "/opt/adguardhome/conf/AdGuardHome.yaml" in init["command"][-1]
    assert pod["volumes"] == [
        {"name": "seed-files", "secret": {"secretName": "adguard-home-seed", "defaultMode": 0o400}}
    ]
    # The password hash comes from the stack's secrets and stays one in the state.
    assert secret_path.startswith("stringData")
    config = yaml.safe_load(secret["stringData"]["file-0"])
    assert config["users"] == [{"name": "admin", "password": stand_in("homelab:adguardAdminPasswordHash")}]
    # The UI stays on the port the readiness check and the LoadBalancer use; DNS on its own.
    workload = next(w for w in stack_cluster("home").workloads if w.name == "adguard-home")
    ports = {p.name: p.port for p in workload.ports}
    assert config["http"]["address"] == f"0.0.0.0:{ports[workload.readiness_port or '']}"
    assert config["dns"]["port"] == ports["dns-udp"] == ports["dns-tcp"]
