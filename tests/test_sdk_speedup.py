"""The offline cycle-check shortcut answers exactly as the SDK's own walk, stays out of the real
program, and refuses an SDK it was not written for."""

from __future__ import annotations

import itertools
import subprocess
import sys
from typing import Any

import pytest
from pulumi.runtime import resource_cycle_breaker as breaker

from offline import (
    harness,  # noqa: F401 - installs the shortcut
    sdk_speedup,
)
from offline.harness import ROOT


class _Stand:
    """Stands in for a Resource: the breaker only stores attributes on it."""


def Node() -> Any:  # noqa: N802 - reads like the constructor it stands for
    return _Stand()


def test_installed() -> None:
    assert getattr(breaker, "_homelab_patched", False)


def test_written_for_the_pinned_sdk() -> None:
    # Fails when a Pulumi upgrade changes the module: re-check the shortcut, then WRITTEN_FOR.
    assert sdk_speedup.source_digest() == sdk_speedup.WRITTEN_FOR


def test_refuses_another_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(breaker, "_homelab_patched", False)
    monkeypatch.setattr(sdk_speedup, "WRITTEN_FOR", "0" * 64)
    with pytest.raises(sdk_speedup.SdkChangedError, match="the pinned Pulumi SDK changed"):
        sdk_speedup.install()


def test_the_real_program_does_not_patch_the_sdk() -> None:
    # Every module the program imports (the components, the spec, the plan); running `__main__`
    # itself needs a stack's config, which the offline harness supplies and this test must not.
    code = (
        "import sys, pkgutil, importlib; sys.path.insert(0, '.'); import components, spec, plan; "
        "[importlib.import_module(f'{p.__name__}.{m.name}') for p in (components, spec, plan) "
        "for m in pkgutil.iter_modules(p.__path__)]; "
        "from pulumi.runtime import resource_cycle_breaker as b; print(getattr(b, '_homelab_patched', False))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_edges_that_close_a_cycle_are_still_refused() -> None:
    a, b, c = Node(), Node(), Node()
    assert breaker.declare_dependency(a, b)  # a depends on b
    assert breaker.declare_dependency(b, c)  # b depends on c
    assert not breaker.declare_dependency(c, a)  # c -> a would close a -> b -> c -> a
    assert not breaker.declare_dependency(a, a)
    assert breaker.declare_dependency(a, c)  # a shortcut edge, no cycle


def test_a_resource_nothing_depends_on_is_never_reachable() -> None:
    fresh, old = Node(), Node()
    assert not breaker._reachable(old, fresh)
    assert breaker.declare_dependency(fresh, old)


def test_deep_chains_are_walked_without_recursion() -> None:
    chain = [Node() for _ in range(5000)]  # deeper than Python's recursion limit
    for before, after in itertools.pairwise(chain):
        assert breaker.declare_dependency(before, after)
    assert not breaker.declare_dependency(chain[-1], chain[0])
