"""networkdb clusters in one process on loopback: real UDP and TCP sockets,
the real protocol machines, asyncio on uvloop."""

from __future__ import annotations

import asyncio

import pytest

from pyln import errors
from pyln.networkdb.db import NetworkDB

from .cluster import (
    FAST,
    close_all,
    config,
    everywhere,
    heal,
    join_all,
    partition,
    run,
    start,
    wait_for,
)


@pytest.mark.parametrize("n", [3, 10, 30])
def test_creates_updates_deletes_converge(n: int) -> None:
    async def main() -> None:
        dbs = await start(n)
        try:
            await join_all(dbs, "net1")
            w = dbs[-1].watch("ep", nid="net1")
            await dbs[0].create_entry("ep", "net1", "k1", b"v1")
            await dbs[n // 2].create_entry("ep", "net1", "k2", b"v2")
            await wait_for(lambda: everywhere(dbs, "ep", "net1", "k1", b"v1"), 20, "k1 created")
            await wait_for(lambda: everywhere(dbs, "ep", "net1", "k2", b"v2"), 20, "k2 created")
            await dbs[0].update_entry("ep", "net1", "k1", b"v1b")
            await wait_for(lambda: everywhere(dbs, "ep", "net1", "k1", b"v1b"), 20, "k1 updated")
            await dbs[n // 2].delete_entry("ep", "net1", "k2")
            await wait_for(lambda: everywhere(dbs, "ep", "net1", "k2", None), 20, "k2 deleted")
            for d in dbs:
                with pytest.raises(errors.NotFound):
                    d.get_entry("ep", "net1", "k2")
                assert d.get_entry("ep", "net1", "k1") == b"v1b"
            seen = [await w.__anext__() for _ in range(4)]
            by_key = {(e.kind, e.key) for e in seen}
            assert by_key == {
                ("create", "k1"),
                ("create", "k2"),
                ("update", "k1"),
                ("delete", "k2"),
            }
        finally:
            await close_all(dbs)

    run(main())


def test_entries_stay_within_their_network() -> None:
    async def main() -> None:
        dbs = await start(4)
        try:
            await join_all(dbs[:2], "red")
            await join_all(dbs[2:], "blue")
            await dbs[0].create_entry("t", "red", "k", b"r")
            await dbs[2].create_entry("t", "blue", "k", b"b")
            await wait_for(
                lambda: dbs[1].get_table_by_network("t", "red") == {"k": b"r"}, 10, "red"
            )
            await wait_for(
                lambda: dbs[3].get_table_by_network("t", "blue") == {"k": b"b"}, 10, "blue"
            )
            # Network-scoped gossip: the other network's nodes never hold it.
            await asyncio.sleep(0)
            assert dbs[2].get_table_by_network("t", "red") == {}
            assert dbs[0].get_table_by_network("t", "blue") == {}
            assert {p.name for p in dbs[0].network_peers("red")} == {"n0", "n1"}
        finally:
            await close_all(dbs)

    run(main())


def test_conflicting_writes_resolve_by_lamport_time() -> None:
    async def main() -> None:
        dbs = await start(5)
        try:
            await join_all(dbs, "net")
            await dbs[0].create_entry("t", "net", "k", b"base")
            await wait_for(lambda: everywhere(dbs, "t", "net", "k", b"base"), 10, "base")
            # Two nodes update at once; the later Lamport time (then the owner
            # name, on a tie) wins, and every node agrees.
            await asyncio.gather(
                dbs[1].update_entry("t", "net", "k", b"from-1"),
                dbs[3].update_entry("t", "net", "k", b"from-3"),
            )
            await wait_for(
                lambda: (
                    len({d.get_table_by_network("t", "net").get("k") for d in dbs}) == 1
                    and dbs[0].get_table_by_network("t", "net").get("k") in (b"from-1", b"from-3")
                ),
                20,
                "agreement",
            )
            # A later write from a node that saw the winner wins over it.
            await dbs[4].update_entry("t", "net", "k", b"last")
            await wait_for(lambda: everywhere(dbs, "t", "net", "k", b"last"), 10, "last write")
        finally:
            await close_all(dbs)

    run(main())


def test_killed_node_restarted_catches_up() -> None:
    async def main() -> None:
        dbs = await start(4, memberlist=FAST)
        try:
            await join_all(dbs, "net")
            await dbs[1].create_entry("t", "net", "a", b"1")
            await wait_for(lambda: everywhere(dbs, "t", "net", "a", b"1"), 10, "a")
            port = dbs[3].transport.port
            await dbs[3].kill()
            live = dbs[:3]
            await wait_for(
                lambda: all(len(d.cluster_peers()) == 3 for d in live), 20, "failure seen"
            )
            await dbs[1].create_entry("t", "net", "b", b"2")
            await wait_for(lambda: everywhere(live, "t", "net", "b", b"2"), 10, "b")
            # Restarted on the same address and name: joins, syncs both entries.
            cfg = config(3, memberlist=FAST)
            cfg.bind_port = port
            dbs[3] = await NetworkDB.create(cfg)
            await dbs[3].join([dbs[0].local_address()])
            await dbs[3].join_network("net")
            await wait_for(lambda: everywhere(dbs, "t", "net", "a", b"1"), 20, "a after restart")
            await wait_for(lambda: everywhere(dbs, "t", "net", "b", b"2"), 20, "b after restart")
            await wait_for(lambda: all(len(d.cluster_peers()) == 4 for d in dbs), 20, "4 members")
        finally:
            await close_all(dbs)

    run(main())


def test_partition_heals_and_deleted_entries_stay_deleted() -> None:
    async def main() -> None:
        dbs = await start(6, memberlist=FAST, bulk_sync_interval=2.0)
        try:
            await join_all(dbs, "net")
            await dbs[0].create_entry("t", "net", "gone", b"x")
            await dbs[0].create_entry("t", "net", "kept", b"y")
            await wait_for(lambda: everywhere(dbs, "t", "net", "gone", b"x"), 10, "created")
            a, b = dbs[:3], dbs[3:]
            partition(a, b)
            await wait_for(lambda: all(len(d.cluster_peers()) == 3 for d in dbs), 30, "split seen")
            await dbs[0].delete_entry("t", "net", "gone")
            await dbs[4].create_entry("t", "net", "during", b"z")
            heal(dbs)
            # Nobody calls join: reconnects through failed nodes merge the halves.
            await wait_for(lambda: all(len(d.cluster_peers()) == 6 for d in dbs), 40, "healed")
            await wait_for(
                lambda: everywhere(dbs, "t", "net", "during", b"z"), 30, "write during split"
            )
            await wait_for(
                lambda: everywhere(dbs, "t", "net", "gone", None), 30, "delete everywhere"
            )
            await wait_for(lambda: everywhere(dbs, "t", "net", "kept", b"y"), 30, "kept entry")
            # Several bulk syncs later, the delete still holds.
            for _ in range(3):
                await asyncio.sleep(1.0)
                assert everywhere(dbs, "t", "net", "gone", None), "a deleted entry came back"
        finally:
            await close_all(dbs)

    run(main(), timeout=180)


def test_seed_scenario_every_peer_fails_transiently_and_node_rejoins_by_itself() -> None:
    async def main() -> None:
        dbs = await start(5, memberlist=FAST, bulk_sync_interval=2.0)
        try:
            await join_all(dbs, "net")
            lonely, rest = dbs[4], dbs[:4]
            partition([lonely], rest)
            # Every member the node knows fails (for it) at once.
            await wait_for(lambda: len(lonely.cluster_peers()) == 1, 30, "peers failed")
            await wait_for(
                lambda: all(len(d.cluster_peers()) == 4 for d in rest), 30, "node failed"
            )
            await lonely.create_entry("t", "net", "while-alone", b"1")
            await rest[0].create_entry("t", "net", "while-apart", b"2")
            heal(dbs)
            await wait_for(lambda: all(len(d.cluster_peers()) == 5 for d in dbs), 40, "rejoined")
            await wait_for(
                lambda: all(len(d.network_peers("net")) == 5 for d in dbs), 30, "network"
            )
            await wait_for(
                lambda: everywhere(dbs, "t", "net", "while-alone", b"1"), 30, "its entry"
            )
            await wait_for(lambda: everywhere(dbs, "t", "net", "while-apart", b"2"), 30, "theirs")
        finally:
            await close_all(dbs)

    run(main(), timeout=180)


def test_graceful_leave_is_a_leave_not_a_failure() -> None:
    async def main() -> None:
        dbs = await start(3, memberlist=FAST)
        try:
            await join_all(dbs, "net")
            await dbs[2].create_entry("t", "net", "k", b"v")
            await wait_for(lambda: everywhere(dbs, "t", "net", "k", b"v"), 10, "entry")
            await dbs[2].close()
            live = dbs[:2]
            await wait_for(lambda: all(len(d.cluster_peers()) == 2 for d in live), 10, "leave")
            # A leave drops the node's entries; a failure would only suspend them.
            await wait_for(lambda: everywhere(live, "t", "net", "k", None), 10, "entries dropped")
            for d in live:
                s = d.stats()
                assert s["left_nodes"] == 1 and s["failed_nodes"] == 0, s
        finally:
            await close_all(dbs)

    run(main())


def test_deletes_are_reaped() -> None:
    async def main() -> None:
        dbs = await start(3, reap_entry_interval=2.0)
        try:
            await join_all(dbs, "net")
            await dbs[0].create_entry("t", "net", "k", b"v")
            await wait_for(lambda: everywhere(dbs, "t", "net", "k", b"v"), 10, "entry")
            await dbs[0].delete_entry("t", "net", "k")
            await wait_for(lambda: everywhere(dbs, "t", "net", "k", None), 10, "deleted")
            assert all(d.stats()["entries"] == 1 for d in dbs), "tombstones kept until reaped"
            await wait_for(lambda: all(d.stats()["entries"] == 0 for d in dbs), 20, "reaped")
        finally:
            await close_all(dbs)

    run(main())


def test_encrypted_cluster_and_key_rotation() -> None:
    k1, k2 = bytes(range(16)), bytes(range(100, 132))

    async def main() -> None:
        dbs = await start(3, keys=[k1])
        outsider = await NetworkDB.create(config(9))
        try:
            await join_all(dbs, "net")
            await dbs[0].create_entry("t", "net", "k", b"secret")
            await wait_for(lambda: everywhere(dbs, "t", "net", "k", b"secret"), 10, "entry")
            with pytest.raises(errors.JoinFailed):
                await outsider.join([dbs[0].local_address()])
            # Rotate: install everywhere, then switch, then drop the old key.
            for d in dbs:
                d.set_key(k2)
            for d in dbs:
                d.set_primary_key(k2)
            for d in dbs:
                d.remove_key(k1)
            await dbs[1].update_entry("t", "net", "k", b"rotated")
            await wait_for(
                lambda: everywhere(dbs, "t", "net", "k", b"rotated"), 10, "after rotation"
            )
            with pytest.raises(errors.Forbidden):
                dbs[0].remove_key(k2)  # the primary key cannot be removed
        finally:
            await outsider.kill()
            await close_all(dbs)

    run(main())


def test_api_errors_are_typed() -> None:
    async def main() -> None:
        (db,) = await start(1)
        try:
            await db.join_network("net")
            await db.create_entry("t", "net", "k", b"v")
            with pytest.raises(errors.EntryExists):
                await db.create_entry("t", "net", "k", b"again")
            with pytest.raises(errors.NotFound):
                await db.update_entry("t", "net", "missing", b"v")
            with pytest.raises(errors.NotFound):
                db.get_entry("t", "net", "missing")
            with pytest.raises(errors.NetworkAlreadyJoined):
                await db.join_network("net")
            with pytest.raises(errors.NetworkNotJoined):
                await db.leave_network("other")
            with pytest.raises(errors.BadRequest):
                await db.join(["not an address:x"])
            assert db.get_entry("t", "net", "k") == b"v", "nothing stored was lost"
        finally:
            await db.close()
        with pytest.raises(errors.DatabaseClosed):
            db.get_entry("t", "net", "k")

    run(main())
    with pytest.raises(errors.BadRequest):
        config(0, keys=[b"short"]).validate()
    with pytest.raises(errors.BadRequest):
        config(0, profile="wan").validate()


def test_join_retries_until_a_member_appears() -> None:
    async def main() -> None:
        (a,) = await start(1)
        b = await NetworkDB.create(config(1, retry_interval=0.2))
        port = 0
        try:
            # Join a port nobody listens on: it fails, then keeps retrying.
            from socket import socket

            s = socket()
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            s.close()
            with pytest.raises(errors.JoinFailed):
                await b.join([f"127.0.0.1:{port}"])
            cfg = config(2)
            cfg.bind_port = port
            c = await NetworkDB.create(cfg)
            await c.join([a.local_address()])
            await wait_for(lambda: len(b.cluster_peers()) == 3, 20, "retried join")
            await c.kill()
        finally:
            await a.kill()
            await b.kill()

    run(main())
