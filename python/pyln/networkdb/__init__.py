"""networkdb: libnetwork's gossip-replicated tables on memberlist-compatible
SWIM membership. The protocol runs as sans-IO machines in the Rust core; this
package is the asyncio transport (uvloop by default) and the public API:

    db = await NetworkDB.create(Config(node_name="n1", bind_addr="127.0.0.1", bind_port=0))
    await db.join(["127.0.0.1:7946"])
    await db.join_network(nid)
    await db.create_entry(table, nid, key, b"value")
    async for ev in db.watch(table, nid): ...
"""

from collections.abc import Coroutine
from typing import Any, TypeVar

import uvloop

from pyln.networkdb.config import Config
from pyln.networkdb.db import Event, NetworkDB, PeerInfo, Watch
from pyln.networkdb.memberlist import Memberlist, MemberlistConfig, Peer

_T = TypeVar("_T")


def run(main: Coroutine[Any, Any, _T]) -> _T:
    """Runs `main` on uvloop, networkdb's default event loop (asyncio.run works too)."""
    return uvloop.run(main)


__all__ = [
    "Config",
    "Event",
    "Memberlist",
    "MemberlistConfig",
    "NetworkDB",
    "Peer",
    "PeerInfo",
    "Watch",
    "run",
]
