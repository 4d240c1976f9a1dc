"""NetworkDB: the public asyncio API over the networkdb machine (membership,
network attachments, replicated tables, watches)."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass

from pyln import _core, errors
from pyln.networkdb.config import Config
from pyln.networkdb.transport import Transport, now_us, parse_peer

_seeds = itertools.count(1)


@dataclass(frozen=True)
class Event:
    """A change seen in a table: kind is "create", "update" or "delete"."""

    kind: str
    table: str
    nid: str
    key: str
    value: bytes


@dataclass(frozen=True)
class PeerInfo:
    name: str
    addr: str


class Watch:
    """A stream of table events, registered as soon as it is made (so nothing
    between `db.watch(...)` and the first `async for` step is missed)."""

    def __init__(self, db: NetworkDB, table: str, nid: str, key: str) -> None:
        self._db = db
        self.table, self.nid, self.key = table, nid, key
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self._done = False

    def wants(self, ev: Event) -> bool:
        return (
            (not self.table or ev.table == self.table)
            and (not self.nid or ev.nid == self.nid)
            and (not self.key or ev.key == self.key)
        )

    def __aiter__(self) -> Watch:
        return self

    async def __anext__(self) -> Event:
        if self._done:
            raise StopAsyncIteration
        ev = await self.queue.get()
        if ev is None:
            self._done = True
            raise StopAsyncIteration
        return ev

    def close(self) -> None:
        """Stops the stream (pending events are dropped)."""
        self._db._watches.discard(self)
        self._done = True


class NetworkDB:
    """One node of a networkdb cluster. Create it with `await NetworkDB.create(cfg)`."""

    def __init__(self, cfg: Config) -> None:
        cfg.validate()
        self.cfg = cfg
        seed = cfg.seed if cfg.seed is not None else next(_seeds) ^ now_us()

        def factory(port: int) -> _core.NetworkDBMachine:
            return _core.NetworkDBMachine(
                now_us(),
                cfg.node_name,
                cfg.bind_addr,
                port,
                cfg.profile,
                list(cfg.keys),
                seed,
                cfg.machine_overrides(),
                cfg.db_settings(),
            )

        tcp_timeout = float(
            cfg.memberlist.get("tcp_timeout", 1.0 if cfg.profile == "local" else 10.0)
        )
        self.transport = Transport(factory, cfg.bind_addr, cfg.bind_port, tcp_timeout)
        self.transport.after_input = self._dispatch
        self._watches: set[Watch] = set()
        self._closed = False

    @classmethod
    async def create(cls, cfg: Config) -> NetworkDB:
        """Binds the UDP and TCP sockets and starts the node (alone)."""
        self = cls(cfg)
        await self.transport.start()
        return self

    @property
    def _m(self) -> _core.NetworkDBMachine:
        if self._closed:
            raise errors.DatabaseClosed("the NetworkDB is closed")
        m = self.transport.m
        assert isinstance(m, _core.NetworkDBMachine)
        return m

    def _kick(self) -> None:
        self.transport.flush()

    def _dispatch(self) -> None:
        m = self.transport.machine
        if not isinstance(m, _core.NetworkDBMachine):
            return
        evs = m.take_watch_events()
        if not evs or not self._watches:
            return
        for kind, table, nid, key, value in evs:
            ev = Event(kind, table, nid, key, value)
            for w in self._watches:
                if w.wants(ev):
                    w.queue.put_nowait(ev)

    # ---- cluster ---------------------------------------------------------------

    async def join(self, members: list[str]) -> None:
        """Joins the cluster through `members` ("host:port"). Raises JoinFailed if
        none answers; the node then keeps retrying until it joins or is closed."""
        addrs = [parse_peer(p) for p in members]
        if not addrs:
            raise errors.BadRequest("join needs at least one member address")
        tokens = self._m.join(now_us(), addrs)
        futs = [self.transport.waiter(t) for t in tokens]
        self._kick()
        results = await asyncio.gather(*futs)
        if not any(results):
            raise errors.JoinFailed(f"no node answered the join: {', '.join(members)}; retrying")

    def local_address(self) -> str:
        return f"{self.cfg.bind_addr}:{self.transport.port}"

    def cluster_peers(self) -> list[PeerInfo]:
        """Live members of the cluster (this node included), as networkdb knows them."""
        return [PeerInfo(n, f"{h}:{p}") for n, h, p in self._m.cluster_peers()]

    def network_peers(self, nid: str) -> list[PeerInfo]:
        """Nodes attached to network `nid` (this node included, if attached)."""
        return [PeerInfo(n, f"{h}:{p}") for n, h, p in self._m.network_peers(nid)]

    def stats(self) -> dict[str, float]:
        """Queue lengths, message and byte counters, rates and health."""
        return dict(self._m.stats(now_us()))

    # ---- networks --------------------------------------------------------------

    async def join_network(self, nid: str) -> None:
        self._m.join_network(now_us(), nid)
        self._kick()

    async def leave_network(self, nid: str) -> None:
        self._m.leave_network(now_us(), nid)
        self._kick()

    # ---- tables ----------------------------------------------------------------

    async def create_entry(self, table: str, nid: str, key: str, value: bytes) -> None:
        self._m.create_entry(now_us(), table, nid, key, bytes(value))
        self._kick()

    async def update_entry(self, table: str, nid: str, key: str, value: bytes) -> None:
        self._m.update_entry(now_us(), table, nid, key, bytes(value))
        self._kick()

    async def delete_entry(self, table: str, nid: str, key: str) -> None:
        self._m.delete_entry(now_us(), table, nid, key)
        self._kick()

    def get_entry(self, table: str, nid: str, key: str) -> bytes:
        """The live value; raises pyln.errors.NotFound if missing or deleted."""
        return bytes(self._m.get_entry(table, nid, key))

    def get_table_by_network(self, table: str, nid: str) -> dict[str, bytes]:
        return dict(self._m.get_table_by_network(table, nid))

    def watch(self, table: str, nid: str = "", key: str = "") -> Watch:
        """Create, update and delete events of `table` (optionally of one network
        and one key) from now on: `async for ev in db.watch(...)`. The stream
        ends when the db closes or `close()` is called on it."""
        w = Watch(self, table, nid, key)
        self._watches.add(w)
        return w

    # ---- keys ------------------------------------------------------------------

    def set_key(self, key: bytes) -> None:
        self._m.install_key(key)

    def set_primary_key(self, key: bytes) -> None:
        self._m.use_key(key)

    def remove_key(self, key: bytes) -> None:
        self._m.remove_key(key)

    # ---- shutdown --------------------------------------------------------------

    async def close(self, timeout: float = 3.0) -> None:
        """Graceful leave: tells the cluster, waits (up to `timeout`) for the
        leave to go out, then stops."""
        if self._closed:
            return
        if self.transport.machine is not None and not self.transport._closed:
            await self.transport.leave(timeout)
        self._closed = True
        for w in self._watches:
            w.queue.put_nowait(None)
        await self.transport.close()

    async def kill(self) -> None:
        """Stops at once without telling anyone (a crash, for tests)."""
        self._closed = True
        for w in self._watches:
            w.queue.put_nowait(None)
        await self.transport.close()
