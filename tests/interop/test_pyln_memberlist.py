"""pyln's membership against real Go memberlist 0.2.2 nodes: joins both ways,
failure and leave seen both ways, user broadcasts and push/pull state both ways,
with and without encryption. Traffic stays on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest
import uvloop

from pyln import errors
from pyln.networkdb import Memberlist, MemberlistConfig

from .conftest import PeerFactory
from .memberlist_peer import MemberlistPeer

T = TypeVar("T")
KEY = bytes(range(32))


def run(coro: Coroutine[Any, Any, T], timeout: float = 90) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return uvloop.run(bounded())


async def until(
    cond: Callable[[], bool], timeout: float, what: str, detail: Callable[[], str] = lambda: ""
) -> float:
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}{detail()}")
        await asyncio.sleep(0.01)
    return time.monotonic() - t0


async def go_wait(
    peer: MemberlistPeer, kind: str, timeout: float = 15, **fields: Any
) -> dict[str, Any]:
    """Waits for a Go peer event off the event loop, so pyln keeps answering."""
    return await asyncio.to_thread(peer.wait_event, kind, timeout, **fields)


async def go_members(peer: MemberlistPeer, names: set[str], timeout: float = 15) -> None:
    await asyncio.to_thread(peer.wait_members, names, timeout)


async def node(name: str, encrypted: bool, profile: str = "lan") -> Memberlist:
    m = await Memberlist.create(
        MemberlistConfig(name, profile=profile, keys=[KEY] if encrypted else [])
    )
    m.set_local_state(json.dumps({"name": name, "seq": 42}).encode())
    return m


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
def test_go_joins_pyln_and_they_exchange_state_and_broadcasts(
    memberlist_peer_factory: PeerFactory, encrypted: bool
) -> None:
    async def main() -> None:
        py = await node("py", encrypted)
        try:
            go = await asyncio.to_thread(
                memberlist_peer_factory,
                "go",
                join=[py.local_address()],
                secret=KEY if encrypted else None,
                broadcast_every="200ms",
            )
            await go_wait(go, "joined")
            await until(lambda: py.alive() == {"py", "go"}, 10, "pyln sees go")
            await go_members(go, {"py", "go"})
            # Push/pull at join: each side merged the other's user state.
            state = await go_wait(go, "remote_state", join=True)
            assert state["data"] == {"name": "py", "seq": 42}
            await until(lambda: bool(py.take_remote_states()), 5, "go's state at pyln")
            # User broadcasts, both ways.
            py.broadcast(b"hello from pyln")
            await go_wait(go, "user_msg", from_bytes=b"hello from pyln".hex())
            got: list[bytes] = []
            await until(
                lambda: bool(
                    got.extend(py.take_received()) or any(m.startswith(b"go:") for m in got)
                ),
                10,
                "go's broadcast at pyln",
            )
        finally:
            await py.close()

    run(main())


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
def test_pyln_joins_go_and_a_third_node_joins_through_pyln(
    memberlist_peer_factory: PeerFactory, encrypted: bool
) -> None:
    async def main() -> None:
        secret = KEY if encrypted else None
        a = await asyncio.to_thread(memberlist_peer_factory, "a", secret=secret)
        py = await node("py", encrypted)
        try:
            assert await py.join([a.addr]) == 1
            c = await asyncio.to_thread(
                memberlist_peer_factory, "c", join=[py.local_address()], secret=secret
            )
            await until(lambda: py.alive() == {"a", "py", "c"}, 10, "pyln sees three")
            for p in (a, c):
                await go_members(p, {"a", "py", "c"})
        finally:
            await py.close()

    run(main())


def test_failures_are_detected_both_ways(memberlist_peer_factory: PeerFactory) -> None:
    async def main() -> None:
        py = await node("py", False, profile="local")
        keep = await node("py2", False, profile="local")
        try:
            a = await asyncio.to_thread(memberlist_peer_factory, "a", config="local")
            b = await asyncio.to_thread(memberlist_peer_factory, "b", config="local", join=[a.addr])
            # b is in before the pyln nodes join, so a's push/pull tells them of b
            # (with the local profile a's gossip alone may miss a node).
            await go_members(a, {"a", "b"})
            await py.join([a.addr])
            await keep.join([a.addr])
            every = {"a", "b", "py", "py2"}
            await until(
                lambda: py.alive() == every and keep.alive() == every,
                10,
                "four members",
                lambda: f": {py.members()} {keep.members()}",
            )
            await go_members(a, every)
            # A Go node is SIGKILLed: pyln declares it dead (a failure, not a leave).
            await asyncio.to_thread(b.kill)
            took = await until(lambda: "b" not in py.alive(), 20, "pyln detects b")
            assert took > 1.0, "declared dead before any suspicion timeout"
            await until(
                lambda: {p.name: p.state for p in py.members()}.get("b") == "dead", 20, "b dead"
            )
            # pyln's node stops without a word: Go declares it failed.
            await py.transport.close()
            ev = await go_wait(a, "leave", timeout=25, node="py")
            assert ev["node"] == "py"
            await until(lambda: "py" not in keep.alive(), 25, "pyln peer sees py gone")
            # Nobody else was ever taken for dead.
            assert "a" in keep.alive()
        finally:
            await keep.close()
            await py.close(leave=False)

    run(main())


def test_graceful_leaves_both_ways(memberlist_peer_factory: PeerFactory) -> None:
    async def main() -> None:
        py = await node("py", False)
        other = await node("py2", False)
        try:
            a = await asyncio.to_thread(memberlist_peer_factory, "a", join=[py.local_address()])
            await other.join([py.local_address()])
            await until(lambda: py.alive() == {"a", "py", "py2"}, 10, "three")
            await go_members(a, {"a", "py", "py2"})
            # pyln leaves: Go sees a leave well before any failure detection could.
            t0 = time.monotonic()
            await other.close()
            await go_wait(a, "leave", node="py2", timeout=5)
            assert time.monotonic() - t0 < 3.0
            # Go leaves: pyln records it as left, not dead.
            await asyncio.to_thread(a.stop)
            await until(
                lambda: {p.name: p.state for p in py.members()}.get("a") == "left", 5, "a left"
            )
        finally:
            await py.close()

    run(main())


def test_mismatched_keys_cannot_join(memberlist_peer_factory: PeerFactory) -> None:
    async def main() -> None:
        a = await asyncio.to_thread(memberlist_peer_factory, "a", secret=KEY)
        plain = await node("plain", False)
        wrong = await Memberlist.create(MemberlistConfig("wrong", keys=[bytes(16)]))
        try:
            with pytest.raises(errors.JoinFailed):
                await plain.join([a.addr])
            with pytest.raises(errors.JoinFailed):
                await wrong.join([a.addr])
            assert plain.alive() == {"plain"} and wrong.alive() == {"wrong"}
        finally:
            await plain.close()
            await wrong.close()

    run(main())
