"""The GitHub workflows: schema-valid, no security findings, every action pinned by commit."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, cast

import pytest
import yaml

from offline.harness import ROOT

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
ACTIONS = sorted((ROOT / ".github" / "actions").glob("*/action.yml"))
BIN = Path(sys.executable).parent


def test_there_are_workflows() -> None:
    assert {w.name for w in WORKFLOWS} >= {"pull-request.yml", "deploy.yml"}


def test_workflows_match_the_github_schema() -> None:
    result = subprocess.run(
        [BIN / "check-jsonschema", "--builtin-schema", "vendor.github-workflows", *map(str, WORKFLOWS)],
        check=False,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_zizmor_finds_nothing_even_as_an_auditor() -> None:
    result = subprocess.run(
        [BIN / "zizmor", "--offline", "--no-progress", "--persona=auditor", str(ROOT / ".github")],
        check=False,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("workflow", [*WORKFLOWS, *ACTIONS], ids=lambda p: p.parent.name + "/" + p.name)
def test_every_action_is_pinned_by_commit(workflow: Path) -> None:
    uses = re.findall(r"uses:\s*([^\s#]+)", workflow.read_text())
    assert uses
    for ref in uses:
        # An action of this repository (`$/...`) comes with the checked-out commit itself.
        pinned = re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", ref) or re.fullmatch(r"\$/\.github/actions/[\w-]+", ref)
        assert pinned, f"{workflow.name}: {ref} is not pinned by SHA"


def test_home_waits_for_the_lab_and_an_approval() -> None:
    deploy = yaml.safe_load((ROOT / ".github" / "workflows" / "deploy.yml").read_text())
    home = deploy["jobs"]["home"]
    assert home["needs"] == "lab" and home["environment"] == "home"
    assert deploy["concurrency"]["cancel-in-progress"] is False


def test_pull_requests_run_make_test_and_skip_cloud_preview_on_forks() -> None:
    pr = yaml.safe_load((ROOT / ".github" / "workflows" / "pull-request.yml").read_text())
    steps = [s.get("run", "") for s in pr["jobs"]["offline"]["steps"]]
    assert "make test" in steps
    # Both shapes: a first preview cannot judge the k3s objects together, a built stack's can.
    offline = next(step for step in steps if "make preview" in step)
    assert "SHAPE=update-preview" in offline and "SHAPE=first-preview" in offline
    assert "head.repo.full_name == github.repository" in pr["jobs"]["pulumi-preview"]["if"]


def load(name: str) -> dict[str, Any]:
    return cast(dict[str, Any], yaml.safe_load((ROOT / ".github" / "workflows" / name).read_text()))


def runs(job: dict[str, Any]) -> list[str]:
    return [s["run"] for s in job["steps"] if "run" in s]


def test_the_cli_is_pinned_to_the_sdk_version() -> None:
    sdk = next(
        line.split("==")[1] for line in (ROOT / "requirements.txt").read_text().split() if line.startswith("pulumi==")
    )
    assert load("deploy.yml")["env"]["PULUMI_VERSION"] == sdk
    assert load("pull-request.yml")["jobs"]["pulumi-preview"]["env"]["PULUMI_VERSION"] == sdk
    action = yaml.safe_load((ROOT / ".github" / "actions" / "pulumi-on-the-lan" / "action.yml").read_text())
    (install,) = [s for s in action["runs"]["steps"] if s.get("uses", "").startswith("pulumi/actions@")]
    # No `command`: the action only installs the CLI, so it never reads the stack's outputs (it
    # would read them with --show-secrets and set each one as a step output, kubeconfig included).
    assert install["with"] == {"pulumi-version": "${{ inputs.pulumi-version }}"}


@pytest.mark.parametrize("stack", ["lab", "home"])
def test_each_deploy_previews_with_the_policy_pack_before_it_applies(stack: str) -> None:
    job = load("deploy.yml")["jobs"][stack]
    assert job["environment"] == stack and job["env"]["STACK"] == stack
    preview, up = runs(job)
    assert preview.startswith('pulumi preview --stack "$STACK" --policy-pack policies')
    assert up.startswith('pulumi up --stack "$STACK" --policy-pack policies') and "--skip-preview" in up
    lan = [s for s in job["steps"] if s.get("uses") == "$/.github/actions/pulumi-on-the-lan"]
    assert lan and lan[0]["with"]["tailscale-tag"] == "tag:homelab-deploy"


def test_no_workflow_prints_stack_outputs_or_runs_a_pull_request_on_a_lan_runner() -> None:
    for workflow in WORKFLOWS:
        text = workflow.read_text()
        assert "--show-secrets" not in text and "stack output" not in text, workflow.name
    for name, job in load("pull-request.yml")["jobs"].items():
        assert "self-hosted" not in str(job["runs-on"]), name


def test_secrets_are_only_read_in_jobs_with_an_environment() -> None:
    for workflow in WORKFLOWS:
        for name, job in load(workflow.name)["jobs"].items():
            if "secrets." in yaml.safe_dump(job).replace("secrets.GITHUB_TOKEN", ""):
                assert job.get("environment"), f"{workflow.name}: job {name} reads secrets outside an environment"


# --- TLS to the Proxmox API is always verified ---------------------------------------------

CA_BUNDLE_SCRIPT = Path(".github/actions/pulumi-on-the-lan/proxmox-ca-bundle.sh")
FAKE_CA = "-----BEGIN CERTIFICATE-----\nMIIBfakecluster\n-----END CERTIFICATE-----"


def run_ca_bundle(tmp_path: Path, stack_config: dict[str, object]) -> tuple[subprocess.CompletedProcess[str], Path]:
    (tmp_path / "Pulumi.lab.yaml").write_text(yaml.safe_dump({"config": stack_config}))
    system = tmp_path / "system.pem"
    system.write_text("-----BEGIN CERTIFICATE-----\nMIIBsystem\n-----END CERTIFICATE-----\n")
    env_file = tmp_path / "github_env"
    env_file.touch()
    env = {
        "PATH": os.environ["PATH"],
        "STACK": "lab",
        "GITHUB_ENV": str(env_file),
        "RUNNER_TEMP": str(tmp_path),
        "SYSTEM_CA_BUNDLE": str(system),
    }
    script = ROOT / CA_BUNDLE_SCRIPT
    run = subprocess.run(["bash", str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
    return run, env_file


def test_the_deploy_job_trusts_the_stacks_proxmox_ca_beside_the_system_cas(tmp_path: Path) -> None:
    run, env_file = run_ca_bundle(tmp_path, {"homelab:proxmoxCaCertificate": FAKE_CA})
    assert run.returncode == 0, run.stderr
    [line] = env_file.read_text().splitlines()
    assert line == f"SSL_CERT_FILE={tmp_path / 'homelab-ca-bundle.pem'}"
    bundle = (tmp_path / "homelab-ca-bundle.pem").read_text()
    assert "MIIBsystem" in bundle and bundle.rstrip().endswith(FAKE_CA)
    # Without a CA in the stack, the system's trust is left as it is.
    (tmp_path / "plain").mkdir()
    run, env_file = run_ca_bundle(tmp_path / "plain", {"homelab:proxmoxEndpoint": "https://x:8006/"})
    assert run.returncode == 0 and env_file.read_text() == ""


def test_the_bundle_holds_the_home_ca_that_signs_the_nodes_certificates(tmp_path: Path) -> None:
    home_ca = "-----BEGIN CERTIFICATE-----\nMIIBhomeca\n-----END CERTIFICATE-----\n"
    cluster = {"gateway": {"private_ca": {"certificate": home_ca}}}
    run, _ = run_ca_bundle(tmp_path, {"homelab:proxmoxCaCertificate": FAKE_CA, "homelab:cluster": cluster})
    assert run.returncode == 0, run.stderr
    bundle = (tmp_path / "homelab-ca-bundle.pem").read_text()
    assert FAKE_CA in bundle and bundle.rstrip().endswith(home_ca.rstrip())
    # The home CA alone (a stack that never set the cluster's) is trusted too.
    (tmp_path / "alone").mkdir()
    run, env_file = run_ca_bundle(tmp_path / "alone", {"homelab:cluster": cluster})
    assert run.returncode == 0 and env_file.read_text().startswith("SSL_CERT_FILE=")
    assert "MIIBhomeca" in (tmp_path / "alone" / "homelab-ca-bundle.pem").read_text()


def test_the_ca_bundle_script_passes_shellcheck(tmp_path: Path) -> None:
    from tests.shell import shellcheck

    assert shellcheck({"ca-bundle": (ROOT / CA_BUNDLE_SCRIPT).read_text()}, tmp_path) == {"ca-bundle": []}


def test_the_action_runs_the_ca_step_before_the_cli_is_used() -> None:
    steps = yaml.safe_load((ROOT / ".github/actions/pulumi-on-the-lan/action.yml").read_text())["runs"]["steps"]
    names = [s.get("name", s.get("uses", "")) for s in steps]
    ca = next(i for i, n in enumerate(names) if "CA" in n)
    keys = next(i for i, n in enumerate(names) if "host keys" in n)
    cli = next(i for i, s in enumerate(steps) if "pulumi/actions" in s.get("uses", ""))
    assert "proxmox-ca-bundle.sh" in steps[ca]["run"] and "known-hosts.sh" in steps[keys]["run"]
    # Both take effect for every later step, the CLI's preview and up among them.
    assert ca < cli and keys < cli


@pytest.mark.parametrize("stack", ["home", "lab"])
def test_no_stack_turns_tls_checks_off(stack: str) -> None:
    config = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
    assert "homelab:proxmoxInsecure" not in config


DEPLOY_ENVIRONMENTS = {"lab", "home"}
MAIN_ONLY = "github.ref == 'refs/heads/main'"


def environments(job: dict[str, Any]) -> set[str]:
    """The environments a job may run in: its `environment` (a name or {name, url}), once per matrix value."""
    env = job.get("environment")
    name = env.get("name") if isinstance(env, dict) else env
    if not isinstance(name, str):
        return set()
    names = {name}
    for key, values in job.get("strategy", {}).get("matrix", {}).items():
        if isinstance(values, list):
            names = {n.replace(f"${{{{ matrix.{key} }}}}", str(v)) for n in names for v in values}
    return names


def test_only_main_deploys_even_from_a_manual_run() -> None:
    # workflow_dispatch runs on any branch; a deploy job's `if` turns every other ref away before its
    # environment hands out secrets (and the environments' own branch policy must say `main` too).
    guarded = set()
    for workflow in WORKFLOWS:
        for name, job in load(workflow.name)["jobs"].items():
            deploys = environments(job) & DEPLOY_ENVIRONMENTS
            if not deploys:
                continue
            condition = str(job.get("if", "")).strip().removeprefix("${{").removesuffix("}}").strip()
            conjuncts = [part.strip() for part in condition.split("&&")]
            assert "||" not in condition and MAIN_ONLY in conjuncts, (
                f"{workflow.name}: job {name} deploys to {sorted(deploys)} without `if: {MAIN_ONLY}`"
            )
            guarded |= deploys
    assert guarded == DEPLOY_ENVIRONMENTS
    triggers = cast(dict[Any, Any], load("deploy.yml"))[True]  # YAML 1.1 reads the `on` key as True
    assert set(triggers) == {"push", "workflow_dispatch"} and triggers["push"] == {"branches": ["main"]}


def test_the_deploy_environments_recognised_in_a_matrix() -> None:
    job = {"environment": "${{ matrix.stack }}-preview", "strategy": {"matrix": {"stack": ["home", "lab"]}}}
    assert environments(job) == {"home-preview", "lab-preview"}
    assert environments({"environment": {"name": "home", "url": "https://example.org"}}) == {"home"}
    assert environments({"runs-on": "ubuntu-24.04"}) == set()


# --- SSH host keys of the nodes are pinned -------------------------------------------------


def test_the_deploy_job_pins_the_nodes_host_keys_for_the_provider(tmp_path: Path) -> None:
    from tests.support import stack_cluster

    (tmp_path / "Pulumi.home.yaml").write_text((ROOT / "Pulumi.home.yaml").read_text())
    known = tmp_path / "ssh" / "known_hosts"
    env = {"PATH": os.environ["PATH"], "STACK": "home", "KNOWN_HOSTS": str(known), "HOME": str(tmp_path)}
    script = ROOT / ".github/actions/pulumi-on-the-lan/known-hosts.sh"
    run = subprocess.run(["bash", str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    expected = [f"{n.address} {n.ssh_host_key}" for n in stack_cluster("home").nodes]
    assert known.read_text().splitlines() == expected
    from tests.shell import shellcheck

    assert shellcheck({"known-hosts": script.read_text()}, tmp_path) == {"known-hosts": []}


# --- CI installs every package against a hash ------------------------------------------------

HASHED = {
    "requirements.txt": "requirements.hashes.txt",
    "policies/requirements.txt": "policies/requirements.hashes.txt",
}
PIN = re.compile(r"^([A-Za-z0-9_.-]+)==([^\s;\\]+)", re.MULTILINE)


@pytest.mark.parametrize(("pins", "locked"), sorted(HASHED.items()))
def test_the_hashed_lock_files_pin_what_the_requirements_pin_every_package_hashed(pins: str, locked: str) -> None:
    wanted = {name.lower().replace("_", "-"): v for name, v in PIN.findall((ROOT / pins).read_text())}
    text = (ROOT / locked).read_text()
    # Each entry: `name==version \` at the start of a line, then its indented `--hash` lines.
    entries: dict[str, list[str]] = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if line[0].isspace():
            assert entries, f"{locked}: an indented line before any entry: {line!r}"
            entries[next(reversed(entries))].append(line)
            continue
        assert PIN.match(line), f"{locked}: not a pinned entry: {line!r}"
        entries[line] = []
    locked_pins: dict[str, str] = {}
    for head, rest in entries.items():
        match = PIN.match(head)
        assert match
        name = match[1].lower().replace("_", "-")
        locked_pins[name] = match[2]
        assert any("--hash=sha256:" in x for x in rest), f"{locked}: {name} has no hash (make hashes)"
    # Every package the requirements name, at the same version: a change there needs `make hashes`.
    stale = {n: (v, locked_pins.get(n)) for n, v in wanted.items() if locked_pins.get(n) != v}
    assert not stale, f"{locked} is out of date with {pins} (run `make hashes`): {stale}"
    assert "://" not in text, f"{locked} records a download address"
    source = re.search(r"^--(find-links|index-url|extra-index-url)", text, re.MULTILINE)
    assert not source, f"{locked}: names a package source"


def test_the_deploy_action_installs_with_hashes_only() -> None:
    steps = yaml.safe_load((ROOT / ".github/actions/pulumi-on-the-lan/action.yml").read_text())["runs"]["steps"]
    installs = [line for s in steps for line in s.get("run", "").splitlines() if "pip install" in line]
    assert len(installs) == 2
    assert all("--require-hashes -r" in line and "hashes.txt" in line for line in installs)
