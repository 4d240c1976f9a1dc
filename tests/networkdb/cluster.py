"""Helpers for networkdb tests: in-process clusters on loopback, waiting with
deadlines, partitions at the transport."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import uvloop

from pyln.networkdb.config import Config
from pyln.networkdb.db import NetworkDB

T = TypeVar("T")

# Faster failure detection than the LAN profile, for tests that kill nodes.
FAST = {"probe_interval": 0.2, "probe_timeout": 0.1, "suspicion_mult": 2, "gossip_interval": 0.05}


def run(coro: Coroutine[Any, Any, T], timeout: float = 120) -> T:
    """Runs a test coroutine on uvloop (the default loop of pyln.networkdb)."""

    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return uvloop.run(bounded())


async def wait_for(cond: Callable[[], bool], timeout: float, what: str) -> float:
    """Polls `cond` until true; returns the seconds it took. Fails with `what`."""
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.005)
    return time.monotonic() - t0


def config(i: int, **kw: Any) -> Config:
    return Config(node_name=f"n{i}", bind_addr="127.0.0.1", bind_port=0, seed=1000 + i, **kw)


async def start(n: int, **kw: Any) -> list[NetworkDB]:
    """N nodes, joined through node 0, all converged."""
    dbs = [await NetworkDB.create(config(i, **kw)) for i in range(n)]
    seed = dbs[0].local_address()
    await asyncio.gather(*(d.join([seed]) for d in dbs[1:]))
    await wait_for(lambda: all(len(d.cluster_peers()) == n for d in dbs), 30, f"{n} members")
    return dbs


async def join_all(dbs: list[NetworkDB], nid: str) -> None:
    for d in dbs:
        await d.join_network(nid)
    n = len(dbs)
    await wait_for(lambda: all(len(d.network_peers(nid)) == n for d in dbs), 30, f"{n} in {nid}")


async def close_all(dbs: list[NetworkDB]) -> None:
    for d in dbs:
        if not d._closed:
            await d.kill()


def partition(a: list[NetworkDB], b: list[NetworkDB]) -> None:
    """Drops every packet and connection between the two groups, both ways."""
    pa = {d.transport.port for d in a}
    pb = {d.transport.port for d in b}
    for d in a:
        d.transport.drop = _dropper(pb)
    for d in b:
        d.transport.drop = _dropper(pa)


def _dropper(ports: set[int]) -> Callable[[str, str, int], bool]:
    # Incoming TCP comes from an ephemeral port, so inbound streams are not
    # matched; outbound ones are, and UDP is matched both ways.
    return lambda _direction, _host, port: port in ports


def heal(dbs: list[NetworkDB]) -> None:
    for d in dbs:
        d.transport.drop = None


def everywhere(dbs: list[NetworkDB], table: str, nid: str, key: str, value: bytes | None) -> bool:
    return all(d.get_table_by_network(table, nid).get(key) == value for d in dbs)


async def gather(aws: list[Awaitable[T]]) -> list[T]:
    return list(await asyncio.gather(*aws))
