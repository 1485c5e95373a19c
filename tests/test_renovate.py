"""Renovate keeps every pin fresh: each pin of the repository is matched by one of its managers.

The pins are found here independently of renovate.json, by what a pin looks like: `name==version`
lines in requirements files, `uses:` refs and runner labels in the workflows and actions, container
images (`name:tag`, `name@sha256:...`), exact versions (`1.2.3`, `v1.34.1+k3s1`), versioned URLs
and LXC templates as values in the stack files, and the same as string literals in the Python code.
Each pin must then be matched by a custom manager of renovate.json (its `matchStrings` applied, as
Python regexes, to the files its `managerFilePatterns` select, capturing the pin's version) or sit
in a file that an enabled built-in manager (pip_requirements, github-actions) reads in a form it
understands. Renovate's own defaults come from its schema, the one `make lint` validates against.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.renovate_pins import (
    CONFIG_FILE,
    covering_managers,
    custom_matches,
    js_regex,
    load_config,
    pin_kind,
    pins_in,
    renovate_schema,
    repository_files,
    uncovered,
)


def test_the_repository_has_the_pins_the_config_is_about() -> None:
    """The enumeration finds what it should (whatever the versions): if it found nothing, all would pass."""
    pins = [p for path, text in repository_files().items() for p in pins_in(path, text)]

    def some(path: str, kind: str, pattern: str) -> bool:
        return any(p.path == path and p.kind == kind and re.fullmatch(pattern, p.text) for p in pins)

    assert some("requirements.txt", "pip", r"pulumi==\S+")
    assert some("requirements-dev.txt", "pip", r"pytest==\S+")
    assert some("policies/requirements.txt", "pip", r"pulumi-policy==\S+")
    assert some(".github/workflows/deploy.yml", "action", r"actions/checkout@[0-9a-f]{40}")
    assert some(".github/workflows/deploy.yml", "version", r"\d+\.\d+\.\d+")  # PULUMI_VERSION
    assert some(".github/workflows/deploy.yml", "runner", r"ubuntu-\S+")
    assert some(".github/actions/pulumi-on-the-lan/action.yml", "action", r"pulumi/actions@[0-9a-f]{40}")
    assert some("components/seeds.py", "image", r"busybox[:@]\S+")
    assert some("components/platform.py", "image", r"ghcr\.io/kube-vip/kube-vip-cloud-provider[:@]\S+")
    assert some("spec/kubernetes.py", "image", r"ghcr\.io/kube-vip/kube-vip:v\S+@sha256:\S+")  # kube_vip_image
    assert some("spec/kubernetes.py", "version", r"\d+\.\d+\.\d+")  # ceph_csi_chart_version
    for stack in ("Pulumi.home.yaml", "Pulumi.lab.yaml"):
        assert some(stack, "version", r"v1\.\d+\.\d+\+k3s\d+")
        assert some(stack, "image", r"traefik/whoami[:@]\S+")
    assert some("Pulumi.home.yaml", "lxc-template", r"local:vztmpl/\S+")


def test_a_latest_url_names_no_version_and_a_dated_one_does() -> None:
    """A `latest` cloud image is not a pin (renovate.json's description says why); a dated one is."""
    base = "https://cloud.debian.org/images/cloud/trixie"
    assert pin_kind(f"{base}/latest/debian-13-genericcloud-amd64.qcow2") is None
    assert pin_kind(f"{base}/20251117-2299/debian-13-genericcloud-amd64-20251117-2299.qcow2") == "url"
    assert pin_kind("https://10.0.10.11:8006/") is None and pin_kind("0.0.0.0:3000") is None


def test_every_pin_in_the_repository_is_matched_by_a_renovate_manager() -> None:
    problems = uncovered(load_config(), repository_files())
    assert not problems, "pins Renovate would never update:\n" + "\n".join(problems)


def test_the_config_matches_renovates_schema() -> None:
    """What `make lint` runs. The schema lets unknown keys through, so the option names are checked below."""
    check = Path(sys.executable).parent / "check-jsonschema"
    result = subprocess.run(
        [str(check), "--builtin-schema", "vendor.renovate", str(CONFIG_FILE)],
        check=False,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _options(definition: dict[str, Any]) -> set[str]:
    return set(definition["allOf"][0]["properties"])


def test_every_option_name_is_one_renovate_knows() -> None:
    """A misspelt or retired option (say `fileMatch`) passes the schema, and Renovate ignores it."""
    schema = renovate_schema()
    config = load_config()
    defs = schema["definitions"]
    unknown = [k for k in config if k not in schema["properties"] and k != "$schema"]
    for i, manager in enumerate(config.get("customManagers", [])):
        unknown += [f"customManagers[{i}].{k}" for k in manager if k not in _options(defs["customManagers"]["items"])]
    for name, source in config.get("customDatasources", {}).items():
        known = _options(defs["customDatasources"]["additionalProperties"])
        unknown += [f"customDatasources.{name}.{k}" for k in source if k not in known]
    for i, rule in enumerate(config.get("packageRules", [])):
        unknown += [f"packageRules[{i}].{k}" for k in rule if k not in _options(defs["packageRules"]["items"])]
    assert not unknown


@pytest.mark.parametrize("index", range(len(load_config()["customManagers"])))
def test_each_custom_manager_can_name_a_lookup_and_matches_something(index: int) -> None:
    """Renovate needs a currentValue, a depName and a datasource (captured or templated); RE2 has no lookarounds."""
    config = load_config()
    manager = config["customManagers"][index]
    assert manager["customType"] == "regex" and manager.get("description")
    for pattern in manager["matchStrings"]:
        assert not re.search(r"\(\?<?[=!]|\\[1-9]", pattern), f"RE2 has no lookarounds or backreferences: {pattern}"
        groups = js_regex(pattern).groupindex
        assert "currentValue" in groups, pattern
        assert "depName" in groups or "depNameTemplate" in manager, pattern
        assert "datasource" in groups or "datasourceTemplate" in manager, pattern
    datasource = manager.get("datasourceTemplate", "")
    if datasource.startswith("custom."):
        assert datasource.removeprefix("custom.") in config.get("customDatasources", {})
    files = repository_files()
    values = [
        m["currentValue"] for path, text in files.items() for i, m in custom_matches(config, path, text) if i == index
    ]
    assert values, f"{manager['description']}: matches nothing in the repository"
    versioning = manager.get("versioningTemplate", "")
    if versioning.startswith("regex:"):
        for value in values:
            assert js_regex(versioning.removeprefix("regex:")).fullmatch(value), f"{versioning} cannot read {value}"


def test_the_pulumi_cli_and_sdk_are_one_update() -> None:
    """A test keeps PULUMI_VERSION equal to pulumi== in requirements.txt: Renovate must move them together."""
    config = load_config()
    cli = [m for m in config["customManagers"] if "PULUMI_VERSION" in " ".join(m["matchStrings"])]
    assert [(m["datasourceTemplate"], m["depNameTemplate"]) for m in cli] == [("pypi", "pulumi")]
    assert any(r.get("groupName") and "pulumi" in r.get("matchPackageNames", []) for r in config["packageRules"])


# ---------------------------------------------------------------------------------------------
# Negative controls: the check sees a pin that nothing updates


def test_an_image_pinned_in_a_new_place_is_reported() -> None:
    files = {"addons/registry.py": 'REGISTRY_IMAGE = "quay.io/example/registry:2.8.3"\n'}
    problems = uncovered(load_config(), files)
    assert problems == ["addons/registry.py:1: quay.io/example/registry:2.8.3 (image): matched by no Renovate manager"]


def test_a_new_image_in_components_is_matched_and_a_digest_only_one_is_reported() -> None:
    digest = "sha256:" + "ab" * 32
    text = f'SIDECAR_IMAGE = "quay.io/example/sidecar:1.2.3"\nPAUSE_IMAGE = "registry.k8s.io/pause@{digest}"\n'
    problems = uncovered(load_config(), {"components/sidecar.py": text})
    assert problems == [
        f"components/sidecar.py:2: registry.k8s.io/pause@{digest} (image): matched by no Renovate manager"
    ]


def test_a_stack_image_with_a_digest_is_matched_only_with_its_digest() -> None:
    config = load_config()
    digest = "sha256:" + "0f" * 32
    text = f"workloads:\n  - name: app\n    image: ghcr.io/example/app:1.0.0@{digest}\n"
    assert uncovered(config, {"Pulumi.test.yaml": text}) == []
    (pin,) = pins_in("Pulumi.test.yaml", text)
    # The same managers, but capturing the digest under a name Renovate does not read.
    renamed = [
        dict(m, matchStrings=[s.replace("(?<currentDigest>", "(?<digest>") for s in m["matchStrings"]])
        for m in config["customManagers"]
    ]
    without_digest = dict(config, customManagers=renamed)
    assert covering_managers(without_digest, pin, text) == []


def test_a_new_version_field_in_a_stack_is_reported() -> None:
    text = "config:\n  homelab:cluster:\n    k3s:\n      version: v1.34.1+k3s1\n      metallb_version: 0.15.2\n"
    problems = uncovered(load_config(), {"Pulumi.test.yaml": text})
    assert problems == ["Pulumi.test.yaml:5: 0.15.2 (version): matched by no Renovate manager"]


def test_an_action_pinned_to_a_bare_sha_is_reported() -> None:
    sha = "0123456789abcdef0123456789abcdef01234567"
    text = f"jobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n      - uses: example/action@{sha}\n"
    problems = uncovered(load_config(), {".github/workflows/new.yml": text})
    assert problems == [f".github/workflows/new.yml:5: example/action@{sha} (action): matched by no Renovate manager"]
    assert uncovered(load_config(), {".github/workflows/new.yml": text.rstrip("\n") + " # v1.2.3\n"}) == []


def test_a_disabled_builtin_manager_leaves_its_pins_uncovered() -> None:
    files = {"requirements.txt": "pulumi==3.272.0\n"}
    assert uncovered(load_config(), files) == []
    for config in (
        dict(load_config(), pip_requirements={"enabled": False}),
        dict(load_config(), enabledManagers=["custom.regex", "github-actions"]),
    ):
        assert uncovered(config, files) == ["requirements.txt:1: pulumi==3.272.0 (pip): matched by no Renovate manager"]


def test_removing_a_custom_manager_uncovers_its_pins() -> None:
    config = load_config()
    for index, manager in enumerate(config["customManagers"]):
        fewer = dict(config, customManagers=[m for i, m in enumerate(config["customManagers"]) if i != index])
        assert uncovered(fewer, repository_files()), f"nothing depends on: {manager['description']}"


def test_a_version_pinned_in_a_script_is_reported() -> None:
    text = 'HELM_VERSION="v3.19.0"\ncurl -fsSL "https://get.helm.sh/helm-${HELM_VERSION}-linux-amd64.tar.gz"\n'
    problems = uncovered(load_config(), {"components/scripts/helm-install.sh": text})
    assert problems == ["components/scripts/helm-install.sh:1: v3.19.0 (version): matched by no Renovate manager"]
