"""A membership-only node (memberlist with a plain delegate): SWIM membership,
user broadcasts and push/pull user state, on the asyncio transport. networkdb
builds on the same machine; this class is for membership alone and for
interoperability checks against hashicorp/memberlist."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field

from pyln import _core, errors
from pyln.networkdb.transport import Transport, now_us, parse_peer

STATES = {0: "alive", 1: "suspect", 2: "dead", 3: "left"}
_seeds = itertools.count(1)


@dataclass(frozen=True)
class Peer:
    """A member as seen by this node."""

    name: str
    addr: str
    state: str
    incarnation: int


@dataclass
class MemberlistConfig:
    name: str
    bind_addr: str = "127.0.0.1"
    bind_port: int = 0
    profile: str = "lan"
    keys: list[bytes] = field(default_factory=list)
    # memberlist settings by name (durations in microseconds), e.g. {"gossip_interval": 50_000}.
    overrides: dict[str, int | bool] = field(default_factory=dict)
    seed: int | None = None


class Memberlist:
    """One memberlist node on a real UDP/TCP socket pair."""

    def __init__(self, cfg: MemberlistConfig) -> None:
        self.cfg = cfg
        seed = cfg.seed if cfg.seed is not None else next(_seeds) ^ now_us()

        def factory(port: int) -> _core.MemberlistMachine:
            return _core.MemberlistMachine(
                now_us(),
                cfg.name,
                cfg.bind_addr,
                port,
                cfg.profile,
                list(cfg.keys),
                seed,
                dict(cfg.overrides),
            )

        tcp_timeout = 1.0 if cfg.profile == "local" else 10.0
        self.transport = Transport(factory, cfg.bind_addr, cfg.bind_port, tcp_timeout)

    @classmethod
    async def create(cls, cfg: MemberlistConfig) -> Memberlist:
        self = cls(cfg)
        await self.transport.start()
        return self

    @property
    def _m(self) -> _core.MemberlistMachine:
        m = self.transport.m
        assert isinstance(m, _core.MemberlistMachine)
        return m

    def local_address(self) -> str:
        return f"{self.cfg.bind_addr}:{self.transport.port}"

    async def join(self, peers: list[str]) -> int:
        """Push/pull join with each peer; returns how many answered."""
        addrs = [parse_peer(p) for p in peers]
        tokens = self._m.join(now_us(), addrs)
        futs = [self.transport.waiter(t) for t in tokens]
        self.transport.flush()
        results = await asyncio.gather(*futs)
        n = sum(1 for r in results if r)
        if n == 0:
            raise errors.JoinFailed(f"no node answered the join: {', '.join(peers)}")
        return n

    def members(self) -> list[Peer]:
        return [
            Peer(name, f"{host}:{port}", STATES.get(state, str(state)), inc)
            for name, host, port, state, inc in self._m.members()
        ]

    def alive(self) -> set[str]:
        return {p.name for p in self.members() if p.state == "alive"}

    def broadcast(self, data: bytes) -> None:
        self._m.broadcast(data)
        self.transport.flush()

    def set_local_state(self, data: bytes) -> None:
        self._m.set_local_state(data)

    def take_received(self) -> list[bytes]:
        return list(self._m.take_received())

    def take_remote_states(self) -> list[tuple[bytes, bool]]:
        return list(self._m.take_remote_states())

    def take_events(self) -> list[tuple[str, str, str, int, int]]:
        return list(self._m.take_events())

    def stats(self) -> dict[str, int]:
        return dict(self._m.stats())

    async def leave(self, timeout: float = 2.0) -> bool:
        """Broadcasts our leave and waits until it went out (or `timeout`)."""
        return await self.transport.leave(timeout)

    async def close(self, leave: bool = True) -> None:
        if leave and not self.transport._closed:
            await self.leave()
        await self.transport.close()
