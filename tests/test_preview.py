"""`make preview` end to end: the plan, the reports, and a clean refusal of a bad stack file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from offline.harness import ROOT
from offline.preview import EXIT_BAD_SPEC, main, short_type
from policies import tokens
from tests.support import patched, stack_data


def write_stack(directory: Path, stack: str, cluster: dict[str, object]) -> None:
    doc = yaml.safe_load((ROOT / "Pulumi.home.yaml").read_text())
    doc["config"]["homelab:cluster"] = cluster
    (directory / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump(doc))


def test_home_preview_prints_the_plan_and_writes_the_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--stack", "home", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "pve1-bond0  [proxmoxve:network/linux:Bond]  on pve1" in out
    assert "k3s-server-1  [proxmoxve:index:VmLegacy]" in out
    assert "Power (modelled):" in out and "within the budget of 75 W" in out
    assert "Failover (each node lost in turn):" in out and "pve1 down" in out
    doc = json.loads((tmp_path / "home.json").read_text())
    assert {"resources", "violations", "power", "failover"} <= set(doc)
    assert {"type": tokens.BOND, "name": "pve1-bond0", "parent": "pve1"} in doc["resources"]
    assert doc["power"]["within_budget"] is True and len(doc["power"]["nodes"]) == 4
    assert [f["node"] for f in doc["failover"]] == ["pve1", "pve2", "pve3"]
    md = (tmp_path / "home.md").read_text()
    assert "```mermaid" in md and "### Power" in md and "### If a node dies" in md


def test_bad_stack_file_is_refused_with_nothing_else_printed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_stack(tmp_path, "broken", patched(stack_data("home"), {"nodes[0].bond.members": ["enp1s0"]}))
    code = main(["--stack", "broken", "--stack-dir", str(tmp_path), "--out", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert code == EXIT_BAD_SPEC
    assert captured.out == ""
    assert "nodes[pve1].bond.members: a bond needs at least two members" in captured.err
    assert not (tmp_path / "out").exists()


def test_missing_stack_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--stack", "nope", "--stack-dir", str(tmp_path)]) == EXIT_BAD_SPEC
    assert "no stack file" in capsys.readouterr().err


def test_short_type_keeps_types_apart() -> None:
    assert short_type("proxmoxve:sdn/fabric/openfabric:Openfabric") == "proxmoxve:sdn/fabric:Openfabric"
    assert short_type("proxmoxve:sdn/fabric/node/openfabric:Openfabric") == "proxmoxve:sdn/fabric/node:Openfabric"


def test_a_yaml_syntax_error_names_its_line_and_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = (ROOT / "Pulumi.home.yaml").read_text().replace("budget_watts: 75", "budget_watts: 75: 80", 1)
    (tmp_path / "Pulumi.typo.yaml").write_text(text)
    rows = text.splitlines()
    line = next(i for i, row in enumerate(rows, 1) if "budget_watts: 75: 80" in row)
    column = rows[line - 1].index(": 80") + 1  # where the second `:` is (1-based)
    assert main(["--stack", "typo", "--stack-dir", str(tmp_path)]) == EXIT_BAD_SPEC
    captured = capsys.readouterr()
    assert captured.out == ""
    # PyYAML's message, from LibYAML or its pure-Python loader (the two word it differently).
    assert captured.err.startswith(f"error: Pulumi.typo.yaml:{line}:{column}: not valid YAML: mapping values are not")
    assert captured.err.count("\n") == 1


@pytest.mark.parametrize("key", ["homelab:proxmoxApiToken", "homelab:sshPrivateKey"])
def test_a_plain_text_secret_in_a_stack_file_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str
) -> None:
    doc = yaml.safe_load((ROOT / "Pulumi.home.yaml").read_text())
    doc["config"][key] = "root@pam!homelab=0a1b2c3d"
    (tmp_path / "Pulumi.leaky.yaml").write_text(yaml.safe_dump(doc))
    assert main(["--stack", "leaky", "--stack-dir", str(tmp_path)]) == EXIT_BAD_SPEC
    err = capsys.readouterr().err
    assert err.startswith(f"error: {key} is plain text in Pulumi.leaky.yaml")
    assert f"pulumi config set --secret {key}" in err
    # Encrypted, as `pulumi config set --secret` writes it, it is fine (the preview needs no key).
    doc["config"][key] = {"secure": "v1:c2FsdA==:Y2lwaGVydGV4dA=="}
    (tmp_path / "Pulumi.sealed.yaml").write_text(yaml.safe_dump(doc))
    capsys.readouterr()
    assert main(["--stack", "sealed", "--stack-dir", str(tmp_path), "--out", str(tmp_path / "out")]) == 0
    other = next(k for k in ("homelab:proxmoxApiToken", "homelab:sshPrivateKey") if k != key)
    # The one it has is no longer listed among those `pulumi up` would still need.
    out = capsys.readouterr().out
    # ... and the backups' and the home apps' own secrets.
    backups = ", ".join(
        f"homelab:{k}" for k in ("pbsPassword", "pbsEncryptionKey", "s3AccessKey", "s3SecretKey", "resticPassword")
    )
    needed = f"{other}, {backups}, homelab:upsPassword, homelab:alertWebhookUrl, homelab:watchdogUrl, "
    needed += "homelab:caPrivateKey, homelab:adguardAdminPassword, homelab:adguardAdminPasswordHash"
    assert f"(stand-ins here; `pulumi up` needs each, set with `pulumi config set --secret`): {needed}\n" in out


def test_the_preview_answers_as_a_built_stack_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--stack", "lab", "--shape", "update-preview", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Plan for stack lab (offline update-preview")
    assert json.loads((tmp_path / "lab.json").read_text())["violations"] == []
