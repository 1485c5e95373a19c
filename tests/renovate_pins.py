"""Finding the repository's pins and applying renovate.json's managers to them (see
tests/test_renovate.py)."""

from __future__ import annotations

import ast
import importlib.resources
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, cast

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
# Versions the program checks a host for, as a floor, and never installs: nothing to update.
FLOORS = {("components/ups.py", "5.1.3")}  # pve-ha-manager's first `disarm-ha`


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
        if kind is None or (path, node.value) in FLOORS:
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

    Not tests/ (test data, never deployed; Renovate's recommended config skips tests/ too), not
    manifests/ (upstream files vendored whole, whose version is in their name and header), and no
    dot directories but .github (virtualenvs, caches).
    """
    found: dict[str, str] = {}
    for folder, dirs, names in os.walk(root):
        rel_folder = Path(folder).relative_to(root).as_posix()
        dirs[:] = [
            d
            for d in sorted(dirs)
            if not (d.startswith(".") and d != ".github")
            and d != "__pycache__"
            and (rel_folder, d) not in ((".", "tests"), (".", "manifests"))
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
