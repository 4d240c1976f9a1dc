"""IPAM benchmarks through the Python API (pytest-benchmark). Not part of `make test`."""

from __future__ import annotations

import ipaddress
import os
import random
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pyln.bitseq import Bitseq
from pyln.ipam import LOCAL_DEFAULT, Allocator, NoAvailableIPs
from pyln.store import SQLiteStore

SLASH16 = "10.20.0.0/16"
N16 = 65534


def fill(a: Allocator, pid: str) -> int:
    n = 0
    while True:
        try:
            a.request_address(pid)
        except NoAvailableIPs:
            return n
        n += 1


@pytest.fixture
def fresh_dir(tmp_path: Path) -> Iterator[Callable[[], Path]]:
    count = iter(range(1_000_000))

    def make() -> Path:
        d = tmp_path / f"s{next(count)}"
        d.mkdir()
        return d

    yield make


def test_build_16_interfaces(benchmark) -> None:
    """Same-run baseline: building the 65,534 IPv4Interface objects a /16 fill returns."""

    def build() -> None:
        for i in range(1, N16 + 1):
            ipaddress.IPv4Interface((0x0A140000 + i, 16))

    benchmark.pedantic(build, rounds=5, iterations=1)
    benchmark.extra_info["per_op_us"] = benchmark.stats.stats.median / N16 * 1e6


def test_fill_16_memory(benchmark) -> None:
    """Fill a /16 in memory through request_address."""

    def setup() -> tuple[tuple[Allocator, str], dict]:
        a = Allocator()
        return (a, a.request_pool(LOCAL_DEFAULT, SLASH16)[0]), {}

    def run(a: Allocator, pid: str) -> None:
        assert fill(a, pid) == N16

    benchmark.pedantic(run, setup=setup, rounds=5, iterations=1)
    benchmark.extra_info["per_op_us"] = benchmark.stats.stats.median / N16 * 1e6


def test_fill_16_durable(benchmark, fresh_dir: Callable[[], Path]) -> None:
    """Fill a /16 with every allocation committed to SQLite before it returns."""

    def setup() -> tuple[tuple[Allocator, str], dict]:
        a = Allocator(SQLiteStore(fresh_dir()))
        return (a, a.request_pool(LOCAL_DEFAULT, SLASH16)[0]), {}

    def run(a: Allocator, pid: str) -> None:
        assert fill(a, pid) == N16

    benchmark.pedantic(run, setup=setup, rounds=3, iterations=1)
    benchmark.extra_info["per_op_us"] = benchmark.stats.stats.median / N16 * 1e6


@pytest.mark.skipif(not os.environ.get("PYLN_BENCH_BIG"), reason="set PYLN_BENCH_BIG=1 (minutes)")
def test_fill_8_durable(benchmark, fresh_dir: Callable[[], Path]) -> None:
    """Fill a /8 (16,777,214 addresses), durable."""

    def setup() -> tuple[tuple[Allocator, str, Path], dict]:
        d = fresh_dir()
        a = Allocator(SQLiteStore(d))
        return (a, a.request_pool(LOCAL_DEFAULT, "10.0.0.0/8")[0], d), {}

    def run(a: Allocator, pid: str, d: Path) -> None:
        assert fill(a, pid) == (1 << 24) - 2
        benchmark.extra_info["store_bytes"] = sum(f.stat().st_size for f in d.iterdir())

    benchmark.pedantic(run, setup=setup, rounds=1, iterations=1)
    benchmark.extra_info["per_op_us"] = benchmark.stats.stats.median / ((1 << 24) - 2) * 1e6


FRAG_OPS = 2000
FRAG_POOL = "10.0.0.0/8"
FRAG_BASE = 0x0A000000


def written_bytes() -> int:
    """Bytes this process has passed to write(2) so far (/proc/self/io wchar)."""
    with open("/proc/self/io") as f:
        for line in f:
            if line.startswith("wchar:"):
                return int(line.split()[1])
    raise RuntimeError("no wchar in /proc/self/io")


def fragmented(a: Allocator) -> tuple[str, list[str]]:
    """A /8 with 8,192 addresses allocated at random: about 16k runs, 194 KB
    serialized, the fragmentation of the issue's 2^24-bit case. Returns the pool id
    and the addresses to release during the run (allocated in this set-up)."""
    pid = a.request_pool(LOCAL_DEFAULT, FRAG_POOL)[0]
    rng = random.Random(5)
    spots = rng.sample(range(1 << 12, (1 << 24) - 1), 8192)
    for o in spots:
        a.request_address(pid, str(ipaddress.IPv4Address(FRAG_BASE + o)))
    return pid, [str(ipaddress.IPv4Address(FRAG_BASE + o)) for o in spots[:FRAG_OPS]]


def test_fragmented_alloc_journal(benchmark, fresh_dir: Callable[[], Path]) -> None:
    """2,000 allocate+release pairs in the fragmented /8, durable: one journal record
    per change, whatever the fragmentation."""

    def setup() -> tuple[tuple[Allocator, str, list[str]], dict]:
        a = Allocator(SQLiteStore(fresh_dir()))
        pid, holes = fragmented(a)
        return (a, pid, holes), {}

    def run(a: Allocator, pid: str, holes: list[str]) -> None:
        benchmark.extra_info["runs"] = a.bitmask(pid).run_count
        before = written_bytes()
        for i in range(FRAG_OPS):
            a.request_address(pid)
            a.release_address(pid, holes[i])
        benchmark.extra_info["bytes_written_per_change"] = (written_bytes() - before) // (
            2 * FRAG_OPS
        )

    benchmark.pedantic(run, setup=setup, rounds=1, iterations=1)
    benchmark.extra_info["per_op_us"] = benchmark.stats.stats.median / (2 * FRAG_OPS) * 1e6


def test_fragmented_alloc_rewrite(benchmark, fresh_dir: Callable[[], Path]) -> None:
    """Same-run baseline: libnetwork's scheme, the whole serialized bitmask (about
    194 KB here) rewritten to the same SQLite store on every change."""

    def setup() -> tuple[tuple[Bitseq, SQLiteStore, list[int]], dict]:
        a = Allocator()
        pid, holes = fragmented(a)
        order = [int(ipaddress.IPv4Address(h)) - FRAG_BASE for h in holes]
        return (a.bitmask(pid), SQLiteStore(fresh_dir()), order), {}

    def run(bits: Bitseq, store: SQLiteStore, order: list[int]) -> None:
        benchmark.extra_info["runs"] = bits.run_count
        benchmark.extra_info["serialized_bytes"] = len(bits.to_bytes())
        key = "bitseq/LocalDefault/10.0.0.0/8"
        store.put(key, bits.to_bytes().hex())
        before = written_bytes()
        for i in range(FRAG_OPS):
            bits.set_any()
            store.put(key, bits.to_bytes().hex())
            bits.unset(order[i])
            store.put(key, bits.to_bytes().hex())
        benchmark.extra_info["bytes_written_per_change"] = (written_bytes() - before) // (
            2 * FRAG_OPS
        )

    benchmark.pedantic(run, setup=setup, rounds=1, iterations=1)
    benchmark.extra_info["per_op_us"] = benchmark.stats.stats.median / (2 * FRAG_OPS) * 1e6
