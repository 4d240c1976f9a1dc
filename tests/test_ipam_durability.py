"""IPAM state in the SQLite store: what a reopened allocator sees after a kill -9,
several processes sharing one store, and journal compaction."""

from __future__ import annotations

import ipaddress
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import pyln.ipam.bitmask as bitmask_mod
from pyln.ipam import LOCAL_DEFAULT, Allocator, IPAlreadyAllocated, PoolNotFound, PoolOverlap
from pyln.store import SQLiteStore

from conftest import run_python

POOL = "10.44.0.0/22"

# Allocates and releases addresses forever, printing each change once it returned.
# Compaction is forced every 8 records so kills also land inside compactions.
CHURN = """
import random, sys
import pyln.ipam.bitmask as bm
bm.MIN_COMPACT_EVERY = 8
bm.COMPACT_RUN_FACTOR = 0
from pyln.ipam import Allocator, NoAvailableIPs
from pyln.store import SQLiteStore
a = Allocator(SQLiteStore(sys.argv[1]))
pid = sys.argv[2]
rng = random.Random(int(sys.argv[3]))
held = [ipaddress for ipaddress in sys.argv[4:]]
while True:
    if held and rng.random() < 0.35:
        addr = held.pop(rng.randrange(len(held)))
        a.release_address(pid, addr)
        print("-" + addr, flush=True)
    else:
        try:
            addr = str(a.request_address(pid)[0].ip)
        except NoAvailableIPs:
            continue
        held.append(addr)
        print("+" + addr, flush=True)
"""


def allocated(a: Allocator, pid: str) -> set[str]:
    nw = ipaddress.ip_network(POOL)
    bits = a.bitmask(pid)
    reserved = {0, nw.num_addresses - 1}
    return {
        str(nw.network_address + i)
        for i in range(nw.num_addresses)
        if i not in reserved and bits.is_set(i)
    }


def test_kill_9_mid_allocation_loses_and_duplicates_nothing(store_path: Path) -> None:
    db = store_path / "kv.db"
    a = Allocator(SQLiteStore(db))
    pid, _, _ = a.request_pool(LOCAL_DEFAULT, POOL)
    held: set[str] = set()
    rng = random.Random(1)
    for round_ in range(6):
        child = subprocess.Popen(
            [sys.executable, "-c", CHURN, str(db), pid, str(round_), *sorted(held)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        want = rng.randrange(20, 300)
        seen = 0
        deadline = time.monotonic() + 60
        while seen < want and time.monotonic() < deadline:
            line = child.stdout.readline().strip()
            assert line, "the churn process stopped"
            (held.add if line[0] == "+" else held.discard)(line[1:])
            seen += 1
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        # What the child reported between our last read and the kill.
        for line in child.stdout.read().split():
            (held.add if line[0] == "+" else held.discard)(line[1:])
        child.stdout.close()

        reopened = Allocator(SQLiteStore(db))
        stored = allocated(reopened, pid)
        # Everything reported is there; at most the one change the child made but
        # had not printed yet differs.
        assert len(stored ^ held) <= 1, (stored - held, held - stored)
        held = stored
    # The survivors never hand out an address that is in use.
    fresh = Allocator(SQLiteStore(db))
    more = {str(fresh.request_address(pid)[0].ip) for _ in range(50)}
    assert not more & held


WORKER = """
import sys
from pyln.ipam import Allocator
from pyln.store import SQLiteStore
a = Allocator(SQLiteStore(sys.argv[1]))
pid = sys.argv[2]
got = []
for i in range(int(sys.argv[3])):
    got.append(str(a.request_address(pid)[0].ip))
    if i % 5 == 4:
        a.release_address(pid, got.pop(0))
print(" ".join(got))
"""


def test_two_processes_allocate_from_one_pool(store_path: Path) -> None:
    db = store_path / "kv.db"
    a = Allocator(SQLiteStore(db))
    pid, _, _ = a.request_pool(LOCAL_DEFAULT, POOL)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(db), pid, "300"], stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120)[0].split() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    both = outs[0] + outs[1]
    assert len(both) == len(set(both)) == 480, "an address was handed to both processes"
    assert allocated(Allocator(SQLiteStore(db)), pid) == set(both)
    assert allocated(a, pid) == set(both), "a stale allocator catches up from the store"


def test_pool_changes_are_seen_across_processes(store_path: Path) -> None:
    db = store_path / "kv.db"
    a = Allocator(SQLiteStore(db))
    pid, _, _ = a.request_pool(LOCAL_DEFAULT, POOL)
    a.request_address(pid)
    code = """
import sys
from pyln.ipam import Allocator
from pyln.store import SQLiteStore
b = Allocator(SQLiteStore(sys.argv[1]))
print(b.request_address(sys.argv[2])[0])
print(b.request_pool("LocalDefault")[0])
b.release_pool(sys.argv[2])
"""
    r = run_python(code, str(db), pid)
    assert r.returncode == 0, r.stderr
    addr, other_pid = r.stdout.split()
    assert addr == "10.44.0.2/22"
    # `a` still caches the released pool: it must notice, not allocate into nothing.
    with pytest.raises(PoolNotFound):
        a.request_address(pid)
    with pytest.raises(PoolOverlap):
        a.request_pool(LOCAL_DEFAULT, "172.17.5.0/24")
    assert other_pid == "LocalDefault/172.17.0.0/16"
    assert a.request_pool(LOCAL_DEFAULT)[0] == "LocalDefault/172.18.0.0/16"


def test_concurrent_predefined_requests_from_processes(store_path: Path) -> None:
    code = """
import sys
from pyln.ipam import Allocator
from pyln.store import SQLiteStore
a = Allocator(None, SQLiteStore(sys.argv[1], "global"))
print(" ".join(a.request_pool("GlobalDefault")[0] for _ in range(40)))
"""
    db = str(store_path / "kv.db")
    SQLiteStore(db).close()
    procs = [
        subprocess.Popen([sys.executable, "-c", code, db], stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    ids = [i for p in procs for i in p.communicate(timeout=120)[0].split()]
    assert len(ids) == len(set(ids)) == 120
    assert {p.pool_id for p in Allocator(None, SQLiteStore(db, "global")).pools()} == set(ids)


def test_compaction_keeps_the_journal_short(
    store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bitmask_mod, "MIN_COMPACT_EVERY", 16)
    store = SQLiteStore(store_path / "kv.db")
    a = Allocator(store)
    pid, _, _ = a.request_pool(LOCAL_DEFAULT, POOL)
    rng = random.Random(3)
    held: list[str] = []
    for _ in range(2000):
        if held and rng.random() < 0.4:
            a.release_address(pid, held.pop(rng.randrange(len(held))))
        else:
            held.append(str(a.request_address(pid)[0].ip))
    journal = store.list(f"ipam/{LOCAL_DEFAULT}/bits/{POOL}/log/")
    runs = a.bitmask(pid).run_count
    assert len(journal) < max(16, 4 * runs) + 1
    b = Allocator(SQLiteStore(store_path / "kv.db"))
    assert b.bitmask(pid) == a.bitmask(pid)
    assert allocated(b, pid) == set(held)
    with pytest.raises(IPAlreadyAllocated):
        b.request_address(pid, held[0])
