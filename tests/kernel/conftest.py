"""Fixtures for tests on the real kernel. Every test works inside namespaces it
creates (a throwaway "host" namespace stands in for the machine), so nothing here
touches the machine's own interfaces, routes or rules."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pyln.osl import Namespace


def _mounts_under(root: Path) -> list[Path]:
    prefix = str(root) + "/"
    with open("/proc/self/mountinfo") as f:
        return [
            Path(line.split()[4])
            for line in f
            if " - nsfs " in line and line.split()[4].startswith(prefix)
        ]


@pytest.fixture(autouse=True)
def no_namespace_left(tmp_path: Path) -> Iterator[None]:
    """Fails a test that leaves a namespace mounted under its tmp dir (and unmounts it,
    so one failure does not leak into the rest of the run)."""
    yield
    left = _mounts_under(tmp_path)
    for path in left:
        Namespace(path).delete()
    if left:
        pytest.fail(f"namespaces left mounted: {', '.join(map(str, left))}", pytrace=False)


@pytest.fixture
def make_ns(tmp_path: Path) -> Iterator[Callable[[str], Namespace]]:
    """Creates namespaces under the test's tmp dir; all are deleted afterwards."""
    made: list[Namespace] = []

    def make(name: str = "") -> Namespace:
        ns = Namespace.create(tmp_path / "netns" / (name or uuid.uuid4().hex[:8]))
        made.append(ns)
        return ns

    yield make
    for ns in made:
        ns.delete()


@pytest.fixture
def host_ns(make_ns: Callable[[str], Namespace]) -> Namespace:
    """A throwaway namespace playing the machine's part (bridges, rules, proxies)."""
    return make_ns("host")
