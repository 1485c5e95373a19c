"""The cycle check shortcut answers exactly as the SDK's own walk."""

from __future__ import annotations

import itertools
from typing import Any

from pulumi.runtime import resource_cycle_breaker as breaker

import components  # noqa: F401 - installs the shortcut


class _Stand:
    """Stands in for a Resource: the breaker only stores attributes on it."""


def Node() -> Any:  # noqa: N802 - reads like the constructor it stands for
    return _Stand()


def test_installed() -> None:
    assert getattr(breaker, "_homelab_patched", False)


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
