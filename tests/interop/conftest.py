"""Fixtures for interoperability tests against real hashicorp/memberlist nodes.

The Go peer is built once per session (and cached in .cache/memberlist-peer until its
main.go changes). A failed build fails every test that needs the peer, with
build.sh's message: it is never a reason to skip.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest

from .memberlist_peer import MemberlistPeer, PeerBuildError, build_peer, stop_all


class PeerFactory(Protocol):
    def __call__(self, name: str, **kwargs: Any) -> MemberlistPeer: ...


@pytest.fixture(scope="session")
def memberlist_peer_binary() -> Path:
    """The Go peer binary, built (or found up to date in the cache) once per session."""
    try:
        return build_peer()
    except PeerBuildError as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture
def memberlist_peer_factory(memberlist_peer_binary: Path) -> Iterator[PeerFactory]:
    """`factory(name, **MemberlistPeer kwargs)` starts a peer; every peer started is
    stopped when the test ends (SIGTERM to all at once, SIGKILL if one lingers)."""
    peers: list[MemberlistPeer] = []

    def start(name: str, **kwargs: Any) -> MemberlistPeer:
        peer = MemberlistPeer(memberlist_peer_binary, name, **kwargs)
        peers.append(peer)
        return peer

    try:
        yield start
    finally:
        stop_all(peers, timeout=5)
