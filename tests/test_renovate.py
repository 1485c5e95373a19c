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

import ast
import importlib.resources
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, cast

import pytest
import yaml

from offline.harness import ROOT

CONFIG_FILE = ROOT / "renovate.json"
# Renovate's `:ignoreModulesAndTests` preset, part of `config:recommended`.
RECOMMENDED_IGNORE_PATHS = (
    "**/node_modules/**",
    "**/bower_components/**",
    "**/vendor/**",
    "**/examples/**",
    "**/__tests__/**",
    "**/test/**",
    "**/tests/**",
    "**/__fixtures__/**",
)

# What a pin looks like, whatever file it is in.
EXACT_VERSION = re.compile(r"v?\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.+-]+)?")
_NAME = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
IMAGE_REF = re.compile(
    rf"(?P<name>(?:[a-z0-9.-]+(?::\d+)?/)?{_NAME}(?:/{_NAME})*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?"
)
VERSIONED_URL = re.compile(r"https?://\S*/(?:v?\d+\.\d+[^/\s]*|\d{8}[^/\s]*)/\S*")
LXC_TEMPLATE = re.compile(r"[a-z][a-z0-9-]*:vztmpl/[\w.+-]*_\d[\w.+-]*")
REQUIREMENT = re.compile(r"^[ \t]*(?P<pin>[A-Za-z0-9][\w.-]*(?:\[[^\]]*\])?[ \t]*==[ \t]*[^\s;#]+)", re.MULTILINE)
SHA_REF = re.compile(r"[0-9a-f]{40}")
# The versions of this repository's own artifacts, (file, key): nothing upstream to look them up in.
OWN_VERSIONS = {("policies/PulumiPolicy.yaml", "version")}


@dataclass(frozen=True)
class Pin:
    path: str  # relative to the repository root, with forward slashes
    start: int  # offsets of the pin's text in the file
    end: int
    text: str
    kind: str
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.text} ({self.kind})"


# ---------------------------------------------------------------------------------------------
# The pins, by what they look like


def is_image(value: str) -> bool:
    """`name:tag` with a version-ish tag, or `name@sha256:...`; not `host:port` or `a:b/c`."""
    m = IMAGE_REF.fullmatch(value)
    if m is None or not (m["tag"] or m["digest"]):
        return False
    last = m["name"].rsplit("/", 1)[-1]
    return bool(re.search(r"[a-z]", last)) and (m["digest"] is not None or bool(re.search(r"\d", m["tag"] or "")))


def pin_kind(value: str) -> str | None:
    if "\n" in value:
        return None
    if EXACT_VERSION.fullmatch(value):
        return "version"
    if is_image(value):
        return "image"
    if LXC_TEMPLATE.fullmatch(value):
        return "lxc-template"
    if VERSIONED_URL.fullmatch(value) and "/latest/" not in value:
        return "url"
    return None


def _line(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _pin(path: str, text: str, start: int, value: str, kind: str) -> Pin:
    return Pin(path, start, start + len(value), value, kind, _line(text, start))


def _scalars(node: yaml.Node, parent_key: str | None = None) -> Iterator[tuple[str | None, yaml.ScalarNode]]:
    if isinstance(node, yaml.ScalarNode):
        yield parent_key, node
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            yield from _scalars(item, parent_key)
    elif isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            yield from _scalars(value, str(key.value) if isinstance(key, yaml.ScalarNode) else None)


def yaml_pins(path: str, text: str) -> list[Pin]:
    root = yaml.compose(text)
    if root is None:
        return []
    workflow = path.startswith(".github/")
    pins: dict[int, Pin] = {}  # by offset: an alias visits its anchor's nodes again
    for key, node in _scalars(root):
        value = str(node.value)
        raw = text[node.start_mark.index : node.end_mark.index]
        if value not in raw:
            continue  # a folded or escaped scalar: not a pin
        start = node.start_mark.index + raw.index(value)
        kind = None if (path, key) in OWN_VERSIONS else pin_kind(value)
        if workflow and key == "uses" and not value.startswith(("./", "$/")):
            kind = "action"
        elif workflow and key == "runs-on" and "${{" not in value and re.search(r"\d", value):
            kind = "runner"
        if kind is not None:
            pins[start] = _pin(path, text, start, value, kind)
    return list(pins.values())


def python_pins(path: str, text: str) -> list[Pin]:
    lines = text.splitlines(keepends=True)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))
    pins = []
    for node in ast.walk(ast.parse(text)):
        if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
            continue
        kind = pin_kind(node.value)
        if kind is None:
            continue
        line = lines[node.lineno - 1]
        begin = starts[node.lineno - 1] + len(line.encode()[: node.col_offset].decode())
        found = text.find(node.value, begin)
        if found >= 0:
            pins.append(_pin(path, text, found, node.value, kind))
    return pins


def requirement_pins(path: str, text: str) -> list[Pin]:
    return [_pin(path, text, m.start("pin"), m["pin"], "pip") for m in REQUIREMENT.finditer(text)]


def shell_pins(path: str, text: str) -> list[Pin]:
    """`SOMETHING_VERSION=1.2.3` and versioned download URLs in the scripts the program runs."""
    pins = [
        _pin(path, text, m.start(1), m[1], "version")
        for m in re.finditer(r"\b[A-Z0-9_]*VERSION=[\"']?(v?\d+\.\d+\.\d+[^\s\"']*)", text)
    ]
    for m in re.finditer(r"https?://[^\s\"'$]+", text):
        if pin_kind(m[0]) == "url":
            pins.append(_pin(path, text, m.start(), m[0], "url"))
    return pins


def pins_in(path: str, text: str) -> list[Pin]:
    name = path.rsplit("/", 1)[-1]
    if name.endswith(".sh"):
        return shell_pins(path, text)
    if re.fullmatch(r"requirements.*\.txt", name):
        return requirement_pins(path, text)
    if name.endswith((".yml", ".yaml")):
        return yaml_pins(path, text)
    if name.endswith(".py"):
        return python_pins(path, text)
    return []


@cache
def repository_files(root: Path = ROOT) -> dict[str, str]:
    """Where pins live: requirements files, YAML (workflows, actions, stacks), the code and its scripts.

    Not tests/ (test data, never deployed; Renovate's recommended config skips tests/ too) and no
    dot directories but .github (virtualenvs, caches).
    """
    found: dict[str, str] = {}
    for folder, dirs, names in os.walk(root):
        rel_folder = Path(folder).relative_to(root).as_posix()
        dirs[:] = [
            d
            for d in sorted(dirs)
            if not (d.startswith(".") and d != ".github") and d != "__pycache__" and (rel_folder, d) != (".", "tests")
        ]
        for name in names:
            rel = name if rel_folder == "." else f"{rel_folder}/{name}"
            if re.fullmatch(r"requirements.*\.txt", name) or name.endswith((".yml", ".yaml", ".py", ".sh")):
                found[rel] = (Path(folder) / name).read_text()
    return dict(sorted(found.items()))


# ---------------------------------------------------------------------------------------------
# What Renovate matches


@cache
def renovate_schema() -> dict[str, Any]:
    text = importlib.resources.files("check_jsonschema.builtin_schemas.vendor").joinpath("renovate.json").read_text()
    return cast(dict[str, Any], json.loads(text))


def load_config() -> dict[str, Any]:
    return cast(dict[str, Any], json.loads(CONFIG_FILE.read_text()))


def js_regex(pattern: str) -> re.Pattern[str]:
    """A Renovate (JavaScript/RE2) regex as a Python one: `(?<name>` named groups become `(?P<name>`."""
    return re.compile(re.sub(r"\(\?<(?=[A-Za-z_])", "(?P<", pattern))


def glob_regex(glob: str) -> re.Pattern[str]:
    """A minimatch glob (as Renovate's managerFilePatterns and ignorePaths use them) as a regex."""
    out, i = "", 0
    while i < len(glob):
        if glob.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif glob.startswith("**", i):
            out, i = out + ".*", i + 2
        elif glob[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif glob[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(glob[i]), i + 1
    return re.compile(out)


def file_matches(patterns: str | list[str], path: str) -> bool:
    for pattern in [patterns] if isinstance(patterns, str) else patterns:
        regex = re.fullmatch(r"/(.*)/([a-z]*)", pattern, re.DOTALL)
        if regex:
            flags = re.IGNORECASE if "i" in regex[2] else 0
            if re.compile(js_regex(regex[1]).pattern, flags).search(path):
                return True
        elif glob_regex(pattern).fullmatch(path):
            return True
    return False


def ignored(config: dict[str, Any], path: str) -> bool:
    paths = list(config.get("ignorePaths", []))
    if "config:recommended" in config.get("extends", []):
        paths += RECOMMENDED_IGNORE_PATHS
    return file_matches(paths, path)


def builtin_enabled(config: dict[str, Any], manager: str) -> bool:
    if "enabledManagers" in config and manager not in config["enabledManagers"]:
        return False
    if config.get(manager, {}).get("enabled", True) is False:
        return False
    for rule in config.get("packageRules", []):
        matchers = {k for k in rule if k.startswith("match")}
        if matchers == {"matchManagers"} and manager in rule["matchManagers"] and rule.get("enabled") is False:
            return False
    return True


def builtin_patterns(config: dict[str, Any], manager: str) -> list[str]:
    """The manager's default managerFilePatterns (from Renovate's schema) plus any the config adds."""
    default = renovate_schema()["definitions"][manager]["default"]["managerFilePatterns"]
    return [*default, *config.get(manager, {}).get("managerFilePatterns", [])]


def builtin_reads(config: dict[str, Any], pin: Pin, text: str) -> bool:
    """An enabled built-in manager reads this file and understands this kind of pin."""
    if pin.kind == "pip":
        manager = "pip_requirements"
    elif pin.kind == "action":
        manager = "github-actions"
        ref = pin.text.rpartition("@")[2]
        line = text.splitlines()[pin.line - 1]
        # Renovate leaves an action pinned to a bare SHA alone: it needs the `# vX.Y.Z` comment.
        if "@" not in pin.text or (SHA_REF.fullmatch(ref) and not re.search(r"#\s*\S*v?\d", line)):
            return False
    elif pin.kind == "runner":
        manager = "github-actions"
    else:
        return False
    return builtin_enabled(config, manager) and file_matches(builtin_patterns(config, manager), pin.path)


def custom_matches(config: dict[str, Any], path: str, text: str) -> Iterator[tuple[int, re.Match[str]]]:
    for index, manager in enumerate(config.get("customManagers", [])):
        if manager.get("customType") != "regex" or not file_matches(manager["managerFilePatterns"], path):
            continue
        for pattern in manager["matchStrings"]:
            for m in js_regex(pattern).finditer(text):
                yield index, m


def _within(m: re.Match[str], group: str, pin: Pin) -> bool:
    if group not in m.re.groupindex or m.start(group) < 0 or m.start(group) == m.end(group):
        return False
    return pin.start <= m.start(group) and m.end(group) <= pin.end


def covering_managers(config: dict[str, Any], pin: Pin, text: str) -> list[str]:
    """Which managers see this pin: a custom one must capture its version (and its digest, if any)."""
    found = []
    if builtin_reads(config, pin, text):
        found.append("pip_requirements" if pin.kind == "pip" else "github-actions")
    for index, m in custom_matches(config, pin.path, text):
        digest_ok = "@sha256:" not in pin.text or _within(m, "currentDigest", pin)
        if _within(m, "currentValue", pin) and digest_ok:
            found.append(f"customManagers[{index}]")
    return found


def uncovered(config: dict[str, Any], files: dict[str, str]) -> list[str]:
    problems = []
    for path, text in sorted(files.items()):
        for pin in pins_in(path, text):
            if ignored(config, path):
                problems.append(f"{pin}: the file is in Renovate's ignorePaths")
            elif not covering_managers(config, pin, text):
                problems.append(f"{pin}: matched by no Renovate manager")
    return problems


# ---------------------------------------------------------------------------------------------
# The repository


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
    assert some("spec/kubernetes.py", "version", r"v\d+\.\d+\.\d+")  # kube_vip_version
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
