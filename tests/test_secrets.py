"""Secrets as Pulumi keeps them: only from secret config, refused in plain text, and an app's
secrets reach its pods through a Kubernetes Secret, never the pod spec or the stack file."""

from __future__ import annotations

from typing import Any

import pulumi
import pytest

from offline.harness import ProgramRun, config_for, run_program, secrets_of
from policies import tokens
from tests.support import patched, program_with, stack_data


def test_the_program_refuses_a_secret_the_engine_did_not_decrypt() -> None:
    # What the engine passes when the stack file holds `homelab:sshPrivateKey: <plain text>`:
    # the value, without the key in PULUMI_CONFIG_SECRET_KEYS.
    config = config_for("home")
    with pytest.raises(pulumi.RunError, match=r"homelab:sshPrivateKey is plain text in Pulumi.home.yaml"):
        run_program("home", config, secret=["homelab:proxmoxApiToken"])


def with_secret_env() -> dict[str, Any]:
    data = stack_data("home")
    kuma = next(i for i, w in enumerate(data["workloads"]) if w["name"] == "uptime-kuma")
    return patched(data, {f"workloads[{kuma}].secret_env": {"UPTIME_KUMA_ADMIN_PASSWORD": "uptimeKumaPassword"}})


def test_an_apps_secret_is_a_secret_config_key() -> None:
    config = config_for("home", cluster=with_secret_env())
    assert config["homelab:uptimeKumaPassword"].startswith("offline-stand-in")
    assert secrets_of(config) == [
        "homelab:proxmoxApiToken",
        "homelab:sshPrivateKey",
        "homelab:pbsPassword",  # the backups' target and key, and the S3 store's credentials
        "homelab:pbsEncryptionKey",
        "homelab:s3AccessKey",
        "homelab:s3SecretKey",
        "homelab:resticPassword",  # the volumes' restic repositories
        "homelab:upsPassword",  # NUT's users
        "homelab:alertWebhookUrl",  # where the alerts go, and the dead-man's switch
        "homelab:watchdogUrl",
        "homelab:caPrivateKey",  # the home CA's key, and AdGuard Home's password for external-dns
        "homelab:adguardAdminPassword",
        "homelab:adguardAdminPasswordHash",  # AdGuard Home's seeded config
        "homelab:uptimeKumaPassword",
    ]


def test_secret_env_reaches_the_pod_through_a_secret_only() -> None:
    run: ProgramRun = program_with("home", with_secret_env())
    (secret,) = [r for r in run.of_type(tokens.K8S_SECRET) if r.name == "monitoring-uptime-kuma-env"]
    assert secret.inputs["metadata"] == {
        "name": "uptime-kuma-env",
        "namespace": "monitoring",
        "labels": secret.inputs["metadata"]["labels"],
    }
    assert "stringData" in secret.secret_paths
    assert secret.inputs["stringData"] == {
        "UPTIME_KUMA_ADMIN_PASSWORD": "offline-stand-in-for-homelab:uptimeKumaPassword"
    }
    (app,) = [r for r in run.resources if r.name == "monitoring-uptime-kuma" and r.type == tokens.STATEFUL_SET]
    (container,) = app.inputs["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["UPTIME_KUMA_ADMIN_PASSWORD"] == {
        "name": "UPTIME_KUMA_ADMIN_PASSWORD",
        "valueFrom": {"secretKeyRef": {"name": "uptime-kuma-env", "key": "UPTIME_KUMA_ADMIN_PASSWORD"}},
    }
    assert "offline-stand-in-for-homelab:uptimeKumaPassword" not in str(app.inputs)
    assert secret.urn in app.dependencies  # the Secret exists before a pod needs it


def test_the_program_refuses_an_apps_secret_in_plain_text() -> None:
    config = config_for("home", cluster=with_secret_env())
    access = [
        "homelab:proxmoxApiToken",
        "homelab:sshPrivateKey",
        "homelab:pbsPassword",
        "homelab:pbsEncryptionKey",
        "homelab:s3AccessKey",
        "homelab:s3SecretKey",
        "homelab:resticPassword",
        "homelab:upsPassword",
        "homelab:alertWebhookUrl",
        "homelab:watchdogUrl",
        "homelab:caPrivateKey",
        "homelab:adguardAdminPassword",
        "homelab:adguardAdminPasswordHash",
    ]
    with pytest.raises(pulumi.RunError, match=r"homelab:uptimeKumaPassword is plain text in Pulumi.home.yaml"):
        run_program("home", config, secret=access)
