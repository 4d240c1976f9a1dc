"""networkdb benchmarks (the networkdb issue's table): clusters of pyln NetworkDB and
Memberlist nodes in this process on loopback, real Go memberlist 0.2.2 peers as
subprocesses, and the same Rust protocol machines on a virtual clock (no sockets and
no CPU time: what the protocol alone gives, measured in the same run).

Measured (median and max over the runs):
  1. 50 NetworkDB nodes: create all and have every node see 50 members (all joining
     node 0 at once); then every node joins one network, until all see 50 attached.
  2. entry propagation on that cluster (gossip interval 200 ms, the default): an entry
     created on one node, the time until each other node's watch stream delivers it;
     12 entries from different nodes, p50 and max over all the node samples.
  3. memory per node at 50 nodes, in fresh child processes: RSS growth from before the
     50 nodes to after they converged, joined a network and replicated 100 entries,
     divided by 50. A child with PYTHONMALLOC=malloc and tracemalloc splits it into
     Python objects and the rest of malloc (the Rust machines, libuv); another builds
     the same state with the machines alone on the virtual clock.
  4. membership convergence, 50 Memberlist nodes started together (all joining node 0
     at once), "local" and "lan" profiles; 50 Go memberlist peers the same way; and, as
     an experiment, the same with each node calling join() once more, through a random
     member, 0.5 s later.
  5. failure detection, 10 NetworkDB nodes, LAN profile: one killed (`db.kill()`) while
     table writes run, until every other node declared it dead; false positives (a live
     node ever seen suspect or dead, or refuting a suspicion). 10 Go peers: SIGKILL.
Steps 1, 2 and 4 are also run on the virtual clock, over many seeds where the outcome
is a matter of chance (stragglers), to tell the protocol's share from the transport's.

Run (about 3 minutes on 2 cores; no root; loopback only):
    .venv/bin/python benches/networkdb_bench.py
Options: --reps, --entries, --conv-reps, --go-reps, --no-go, --only, --quick (a smoke
run), --profile (cProfile of the propagation runs, to /tmp/networkdb_bench_profile.txt).
The table is printed and written to /tmp/networkdb_bench_table.md.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import ctypes
import gc
import heapq
import io
import itertools
import json
import os
import platform
import pstats
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import uvloop

from pyln import _core, errors
from pyln.networkdb.config import Config
from pyln.networkdb.db import NetworkDB
from pyln.networkdb.memberlist import Memberlist, MemberlistConfig

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

T = TypeVar("T")
NID = "benchnet"
TABLE = "endpoint_table"
VALUE = bytes(range(128))  # an endpoint_table value is ~100-200 bytes
HOST = "127.0.0.1"
MS = 1000.0
SEC = 1_000_000
INF = float("inf")

# Go libnetwork / memberlist figures quoted in the issue (this kind of machine).
GO_CREATE_JOIN_50_S = 32.0
GO_PROPAGATION_P50_MS = 452.0
GO_PROPAGATION_MAX_MS = 664.0
GO_MEMORY_MB = "0.47-0.52"
GO_CONVERGE_LOCAL_S = 41.0
GO_FAILURE_S = 6.0
# The codec (benches/networkdb_wire.rs, benches/test_networkdb_wire_bench.py), quoted
# from docs/BENCHMARKS.md, not rerun here.
CODEC_ROWS = [
    (
        "codec (Rust): encode a table event, wrapped, into a reused Vec",
        "33.7-43.6 ns",
        "Go gogo proto: 148 ns",
        "0.23-0.29",
        "<= 100 ns",
        "yes",
    ),
    (
        "codec (Rust): decode_gossip to an owned TableEvent",
        "109-115 ns",
        "Go gogo proto: 234 ns",
        "0.47-0.49",
        "<= 150 ns",
        "yes",
    ),
    (
        "codec (Python): encode_table_events, per event in 10,000",
        "0.110-0.113 us",
        "plain Python: 2.63 us",
        "0.042",
        "<= 0.3 us",
        "yes",
    ),
    (
        "codec (Python): decode_gossip, per event in 10,000",
        "0.233 us",
        "plain Python: 3.12 us",
        "0.075",
        "<= 0.4 us",
        "yes",
    ),
]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def pct(xs: list[float], q: float) -> float:
    """The q-quantile (0..1) by nearest rank."""
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


@dataclass
class Row:
    what: str
    pyln: str
    baseline: str = "-"
    ratio: str = "-"
    target: str = "-"
    met: str = "-"


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *a: str) -> None:
        self.rows.append(Row(*a))

    def table(self) -> str:
        out = [
            "| what | pyln (median / max of runs) | baseline | pyln / baseline | target | met |",
            "|---|---|---|---|---|---|",
        ]
        for r in self.rows:
            out.append(f"| {r.what} | {r.pyln} | {r.baseline} | {r.ratio} | {r.target} | {r.met} |")
        return "\n".join(out + [""] + [f"- {n}" for n in self.notes])


def med_max(xs: list[float], unit: str, scale: float = 1.0, digits: int = 2) -> str:
    if not xs:
        return "-"
    if any(x == INF for x in xs):
        return f"{len([x for x in xs if x == INF])} of {len(xs)} runs did not finish"
    m, x = statistics.median(xs) * scale, max(xs) * scale
    return f"{m:.{digits}f} / {x:.{digits}f} {unit}"


def runs_s(xs: list[float], cap: float) -> str:
    """Seconds of each run (median / max), or how many did not finish within `cap`."""
    done = [x for x in xs if x != INF]
    if len(done) == len(xs):
        return med_max(xs, "s") + (f" ({', '.join(f'{x:.2f}' for x in xs)})" if len(xs) > 2 else "")
    tail = f"; the others {', '.join(f'{x:.2f}' for x in done)} s" if done else ""
    return f"{len(xs) - len(done)} of {len(xs)} runs not converged in {cap:.0f} s{tail}"


def yes(ok: bool) -> str:
    return "yes" if ok else "**no**"


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Runs on uvloop (pyln.networkdb's loop), then collects garbage cycles here, on the
    main thread: the Rust machines may only be dropped on the thread that made them."""
    try:
        return uvloop.run(coro)
    finally:
        gc.collect()


# -- helpers on the asyncio side ----------------------------------------------------------


async def wait_until(
    cond: Callable[[], bool], timeout: float, what: str, step: float = 0.01
) -> float:
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"no {what} within {timeout:.0f} s")
        await asyncio.sleep(step)
    return time.monotonic() - t0


class LoopLag:
    """Samples how late a 5 ms sleep wakes up: the event loop's own delay."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            t = time.monotonic()
            await asyncio.sleep(0.005)
            self.samples.append(time.monotonic() - t - 0.005)

    def __enter__(self) -> LoopLag:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()

    def summary(self) -> str:
        if not self.samples:
            return "-"
        return (
            f"p50 {pct(self.samples, 0.5) * MS:.1f} ms, p99 {pct(self.samples, 0.99) * MS:.1f} ms, "
            f"max {max(self.samples) * MS:.1f} ms"
        )


def ndb_config(i: int, seed: int = 7000, **kw: Any) -> Config:
    return Config(node_name=f"n{i}", bind_addr=HOST, bind_port=0, seed=seed + i, **kw)


async def kill_all(dbs: Iterable[NetworkDB]) -> None:
    for d in dbs:
        if not d._closed:
            await d.kill()


STRAGGLERS: list[str] = []


async def ndb_cluster(n: int, seed: int = 7000) -> tuple[list[NetworkDB], float, float]:
    """N NetworkDB nodes, all joining node 0 at once, then one network. Returns the
    nodes, the seconds until all saw N members and the seconds to attach all."""
    t0 = time.monotonic()
    dbs = [await NetworkDB.create(ndb_config(i, seed)) for i in range(n)]
    seed_addr = dbs[0].local_address()
    await asyncio.gather(*(d.join([seed_addr]) for d in dbs[1:]))
    pending = set(range(n))

    def all_members() -> bool:
        for i in list(pending):
            if len(dbs[i].cluster_peers()) == n:
                pending.discard(i)
        return not pending

    await wait_until(all_members, 90, f"{n} members everywhere")
    t_joined = time.monotonic() - t0
    t1 = time.monotonic()
    for d in dbs:
        await d.join_network(NID)
    pending = set(range(n))
    reported = False

    def all_attached() -> bool:
        nonlocal reported
        for i in list(pending):
            if len(dbs[i].network_peers(NID)) == n:
                pending.discard(i)
        if pending and not reported and time.monotonic() - t1 > 3:
            reported = True
            everyone = {f"n{i}" for i in range(n)}
            miss = {
                dbs[i].cfg.node_name: sorted(everyone - {p.name for p in dbs[i].network_peers(NID)})
                for i in sorted(pending)
            }
            STRAGGLERS.append(f"{n} nodes: after 3 s, still missing attachments: {miss}")
            log(f"  {STRAGGLERS[-1]}")
        return not pending

    await wait_until(all_attached, 90, f"{n} attached to {NID}")
    t_attached = time.monotonic() - t1
    if reported:
        STRAGGLERS[-1] += f"; all attached after {t_attached:.1f} s"
    return dbs, t_joined, t_attached


# -- 1 and 2: a 50-node NetworkDB cluster, entry propagation ------------------------------


async def propagate(dbs: list[NetworkDB], entries: int, rng: random.Random) -> list[list[float]]:
    """Creates `entries` entries, each from another node; for each, the seconds until
    each other node's watch stream delivered it."""
    n = len(dbs)
    seen: dict[str, dict[int, float]] = {}
    done: dict[str, asyncio.Event] = {}

    async def consume(i: int) -> None:
        async for ev in dbs[i].watch(TABLE, nid=NID):
            if ev.kind == "create" and ev.key in seen:
                got = seen[ev.key]
                got.setdefault(i, time.monotonic())
                if len(got) == n:
                    done[ev.key].set()

    tasks = [asyncio.create_task(consume(i)) for i in range(n)]
    await asyncio.sleep(0)
    out: list[list[float]] = []
    try:
        for k in range(entries):
            origin = rng.randrange(n)
            key = f"ep-{k}-{rng.getrandbits(32):08x}"
            seen[key], done[key] = {}, asyncio.Event()
            await asyncio.sleep(rng.uniform(0, 0.2))  # a random phase of the gossip timers
            t0 = time.monotonic()
            await dbs[origin].create_entry(TABLE, NID, key, VALUE)
            await asyncio.wait_for(done[key].wait(), 30)
            out.append([t - t0 for i, t in seen[key].items() if i != origin])
    finally:
        for t in tasks:
            t.cancel()
    return out


def bench_cluster(args: argparse.Namespace, rep: Report) -> None:
    n = args.nodes
    joined: list[float] = []
    attached: list[float] = []
    samples: list[list[float]] = []
    lag = LoopLag()
    prof = cProfile.Profile() if args.profile else None
    cpu = [0.0, 0.0]  # process CPU seconds and wall seconds during propagation

    async def main() -> None:
        rng = random.Random(1)
        for r in range(args.reps):
            dbs, tj, ta = await ndb_cluster(n, seed=7000 + 100 * r)
            joined.append(tj)
            attached.append(ta)
            log(f"  run {r + 1}: {n} joined in {tj:.2f} s, attached in {ta:.2f} s")
            try:
                per = args.entries // args.reps + (r < args.entries % args.reps)
                if prof is not None:
                    prof.enable()
                c0, w0 = time.process_time(), time.monotonic()
                with lag:
                    s = await propagate(dbs, per, rng)
                cpu[0] += time.process_time() - c0
                cpu[1] += time.monotonic() - w0
                if prof is not None:
                    prof.disable()
                samples.extend(s)
                log(
                    "  entries, p50 over the nodes: "
                    + " ".join(f"{pct(x, 0.5) * MS:.0f}" for x in s)
                    + " ms; max: "
                    + " ".join(f"{max(x) * MS:.0f}" for x in s)
                    + " ms"
                )
            finally:
                await kill_all(dbs)

    log(f"1-2. {n} NetworkDB nodes, {args.reps} runs, {args.entries} entries")
    run(main())
    rep.add(
        f"{n} NetworkDB nodes in one process: create all, all joined (every node sees {n} members)",
        runs_s(joined, 90),
        f"Go libnetwork (issue): {GO_CREATE_JOIN_50_S:g} s",
        f"{statistics.median(joined) / GO_CREATE_JOIN_50_S:.3f}",
        "<= 5 s",
        yes(max(joined) <= 5.0),
    )
    rep.add(f"  then join one network, all {n} attached", runs_s(attached, 90))
    bench_virtual_cluster(args, rep)
    pooled = [x for s in samples for x in s]
    p50s = [pct(s, 0.5) for s in samples]
    maxes = [max(s) for s in samples]
    p50_all, max_all = pct(pooled, 0.5), max(pooled)
    rep.add(
        f"entry created on one node, seen by all {n} (gossip 200 ms): p50 over the nodes "
        f"({len(samples)} entries x {n - 1} nodes)",
        f"{p50_all * MS:.0f} ms (per entry: {med_max(p50s, 'ms', MS, 0)})",
        f"Go libnetwork (issue): {GO_PROPAGATION_P50_MS:g} ms",
        f"{p50_all * MS / GO_PROPAGATION_P50_MS:.2f}",
        "<= 400 ms",
        yes(p50_all * MS <= 400),
    )
    rep.add(
        "  same, max over the nodes",
        f"{max_all * MS:.0f} ms (per entry: {med_max(maxes, 'ms', MS, 0)})",
        f"Go libnetwork (issue): {GO_PROPAGATION_MAX_MS:g} ms",
        f"{max_all * MS / GO_PROPAGATION_MAX_MS:.2f}",
        "<= 650 ms",
        yes(max_all * MS <= 650),
    )
    rep.add("  same, p90 over the nodes", f"{pct(pooled, 0.9) * MS:.0f} ms")
    rep.notes.append(
        f"Event-loop delay during propagation (how late a 5 ms sleep wakes, {n} nodes): "
        f"{lag.summary()}. Process CPU during propagation: {cpu[0] / cpu[1] * 100:.0f}% of one "
        f"core ({cpu[0]:.1f} s in {cpu[1]:.1f} s{', with cProfile' if prof else ''})."
    )
    if prof is not None:
        s = io.StringIO()
        st = pstats.Stats(prof, stream=s)
        st.sort_stats("tottime").print_stats(30)
        st.sort_stats("cumulative").print_stats(30)
        Path(args.profile).write_text(s.getvalue())
        log(f"  profile written to {args.profile}")
    bench_virtual_propagation(args, rep, samples)


# -- the same machines on a virtual clock ---------------------------------------------------


class VirtualNet:
    """The real sans-IO machines on a virtual microsecond clock: every packet and
    stream arrives `latency` us after it is sent and processing takes no time. What
    the protocol alone gives, to set the transport's figures against."""

    def __init__(self, latency: int = 100) -> None:
        self.now = 0
        self.latency = latency
        self.nodes: list[Any] = []
        self.by_port: dict[int, int] = {}
        self._heap: list[tuple[int, int, str, tuple[Any, ...]]] = []
        self._seq = itertools.count()
        self.on_input: Callable[[int], None] | None = None

    def port(self, i: int) -> int:
        return 20000 + i

    def add(self, make: Callable[[int, int], Any]) -> int:
        i = len(self.nodes)
        self.nodes.append(make(self.now, self.port(i)))
        self.by_port[self.port(i)] = i
        self.after(i)
        return i

    def _push(self, t: int, kind: str, args: tuple[Any, ...]) -> None:
        heapq.heappush(self._heap, (t, next(self._seq), kind, args))

    def after(self, i: int) -> None:
        m = self.nodes[i]
        for kind, _host, port, data, token in m.take_actions():
            j = self.by_port.get(port)
            if j is None:
                continue
            if kind == "packet":
                self._push(self.now + self.latency, "packet", (j, i, data))
            else:
                self._push(self.now + self.latency, "stream", (j, i, data, token))
        self._push(m.poll_timeout(), "timer", (i,))
        if self.on_input is not None:
            self.on_input(i)

    def run_until(self, until: int) -> None:
        while self._heap and self._heap[0][0] <= until:
            t, _, kind, a = heapq.heappop(self._heap)
            self.now = max(self.now, t)
            i = a[0]
            m = self.nodes[i]
            if kind == "timer":
                if m.poll_timeout() <= self.now:
                    m.handle_timeout(self.now)
                    self.after(i)
            elif kind == "packet":
                m.handle_packet(self.now, HOST, self.port(a[1]), a[2])
                self.after(i)
            elif kind == "stream":
                try:
                    reply = m.handle_stream(self.now, HOST, self.port(a[1]), a[2])
                except errors.PylnError:
                    reply = None
                self.after(i)
                if a[3] is not None:
                    self._push(self.now + self.latency, "reply", (a[1], a[3], reply))
            elif kind == "reply":
                try:
                    m.handle_stream_reply(self.now, a[1], a[2])
                except errors.PylnError:
                    pass
                self.after(i)
        self.now = max(self.now, until)

    def run_until_cond(self, cond: Callable[[], bool], step: int, deadline: int) -> bool:
        while not cond():
            if self.now >= deadline:
                return False
            self.run_until(self.now + step)
        return True

    def call(self, i: int, f: Callable[[Any, int], T]) -> T:
        r = f(self.nodes[i], self.now)
        self.after(i)
        return r

    def close(self) -> None:
        """Drops the machines now (on_input closures make cycles, and the cyclic GC
        may run on another thread, where the unsendable machines cannot be freed)."""
        self.on_input = None
        self.nodes.clear()
        self._heap.clear()


def virtual_ndb(n: int, seed: int, cap: float) -> tuple[VirtualNet, float, float]:
    """ndb_cluster on the virtual clock: the net, the seconds until all joined and the
    seconds to attach all to one network (INF when past `cap`; then not attached)."""
    net = VirtualNet()
    for i in range(n):
        cfg = ndb_config(i, seed)
        net.add(
            lambda now, port, cfg=cfg: _core.NetworkDBMachine(
                now,
                cfg.node_name,
                HOST,
                port,
                cfg.profile,
                [],
                cfg.seed,
                cfg.machine_overrides(),
                cfg.db_settings(),
            )
        )

    def converged(f: Callable[[Any], int]) -> Callable[[], bool]:
        pending = set(range(n))

        def check() -> bool:
            for i in list(pending):
                if f(net.nodes[i]) == n:
                    pending.discard(i)
            return not pending

        return check

    for i in range(1, n):
        net.call(i, lambda m, now: m.join(now, [(HOST, net.port(0))]))
    if not net.run_until_cond(converged(lambda m: len(m.cluster_peers())), 10_000, int(cap * SEC)):
        return net, INF, INF
    t_joined = net.now / SEC
    t1 = net.now
    for i in range(n):
        net.call(i, lambda m, now: m.join_network(now, NID))
    check = converged(lambda m: len(m.network_peers(NID)))
    if not net.run_until_cond(check, 10_000, t1 + int(cap * SEC)):
        return net, t_joined, INF
    return net, t_joined, (net.now - t1) / SEC


def bench_virtual_cluster(args: argparse.Namespace, rep: Report) -> None:
    n = args.nodes
    joined: list[float] = []
    attached: list[float] = []
    for s in range(args.virtual_seeds):
        net, tj, ta = virtual_ndb(n, 7000 + 100 * s, 60)
        net.close()
        joined.append(tj)
        attached.append(ta)
    log(f"  virtual clock: joined {[round(x, 2) for x in joined]}")
    log(f"  virtual clock: attached {[round(x, 2) for x in attached]}")

    def dist(xs: list[float], bound: float) -> str:
        done = sorted(x for x in xs if x != INF)
        out = f"{sum(1 for x in xs if x <= bound)} of {len(xs)} within {bound:g} s"
        if done:
            out += f"; median {statistics.median(done):.2f} s, max {done[-1]:.1f} s"
        if len(done) < len(xs):
            out += f"; {len(xs) - len(done)} not within 60 s"
        return out

    rep.add(
        f"  the same machines on a virtual clock (0.1 ms per message, no CPU), {len(joined)} "
        "seeds: all joined",
        dist(joined, 5.0),
        "-",
        "-",
        "<= 5 s",
        yes(all(x <= 5.0 for x in joined)),
    )
    rep.add(
        f"  the same machines on a virtual clock, {len(attached)} seeds: all attached",
        dist(attached, 5.0),
    )


def bench_virtual_propagation(
    args: argparse.Namespace, rep: Report, real: list[list[float]]
) -> None:
    n = args.nodes
    net, _, ta = virtual_ndb(n, 7000, 120)
    if ta == INF:
        net.close()
        rep.notes.append("virtual clock: the cluster did not converge")
        return
    seen: dict[str, dict[int, int]] = {}

    def on_input(i: int) -> None:
        for kind, _t, _nid, key, _v in net.nodes[i].take_watch_events():
            if kind == "create" and key in seen:
                seen[key].setdefault(i, net.now)

    net.on_input = on_input
    rng = random.Random(2)
    samples: list[list[float]] = []
    for k in range(args.virtual_entries):
        origin = rng.randrange(n)
        key = f"v{k}"
        seen[key] = {}
        net.run_until(net.now + rng.randrange(200_000))
        t0 = net.now
        net.call(origin, lambda m, now, key=key: m.create_entry(now, TABLE, NID, key, VALUE))
        net.run_until_cond(lambda key=key: len(seen[key]) == n, 5_000, net.now + 30 * SEC)
        samples.append([(t - t0) / SEC for i, t in seen[key].items() if i != origin])
    net.close()
    pooled = [x for s in samples for x in s]
    real_pooled = [x for s in real for x in s]
    first = samples[: len(real)]
    first_max = max(x for s in first for x in s)
    rep.add(
        f"  the same machines on a virtual clock (0.1 ms per message, no CPU): p50 / p90 / "
        f"max over {len(samples)} entries",
        f"{pct(pooled, 0.5) * MS:.0f} / {pct(pooled, 0.9) * MS:.0f} / {max(pooled) * MS:.0f} ms "
        f"(max of the first {len(first)} entries: {first_max * MS:.0f} ms)",
        f"pyln on sockets, same run: {pct(real_pooled, 0.5) * MS:.0f} / "
        f"{pct(real_pooled, 0.9) * MS:.0f} / {max(real_pooled) * MS:.0f} ms",
        f"{pct(real_pooled, 0.5) / pct(pooled, 0.5):.2f} (p50, sockets / virtual)",
    )
    maxes = sorted(max(s) for s in samples)
    rep.notes.append(
        f"Virtual clock, {len(samples)} entries: the max over the nodes of one entry is "
        f"p50 {pct(maxes, 0.5) * MS:.0f} ms, above 650 ms for "
        f"{sum(1 for m in maxes if m > 0.65)} of them."
    )


# -- 3: memory --------------------------------------------------------------------------------


class Mallinfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def malloc_in_use() -> int:
    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = Mallinfo2
    mi = libc.mallinfo2()
    return int(mi.uordblks + mi.hblkhd)


def malloc_trim() -> None:
    ctypes.CDLL(None).malloc_trim(0)


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def machines_memory(n: int) -> dict[str, float]:
    """The Rust machines alone: N on the virtual clock (no sockets, no asyncio), in
    the same state as in memory_child; malloc in use before and after."""
    warm, _, _ = virtual_ndb(2, 100, 60)
    warm.close()
    gc.collect()
    malloc_trim()
    m0 = malloc_in_use()
    net, _, ta = virtual_ndb(n, 7100, 120)
    assert ta != INF
    t_burst = net.now
    for i in range(n):
        for j in range(2):
            key = f"ep-{i}-{j}"
            net.call(i, lambda m, now, key=key: m.create_entry(now, TABLE, NID, key, VALUE))
    assert net.run_until_cond(
        lambda: all(len(m.get_table_by_network(TABLE, NID)) == 2 * n for m in net.nodes),
        100_000,
        net.now + 120 * SEC,
    )
    burst = (net.now - t_burst) / SEC
    net.run_until(net.now + SEC)
    net._heap.clear()  # in-flight packets and timer entries: the simulator's, not the nodes'
    for m in net.nodes:
        m.take_watch_events()  # NetworkDB drains these after every input
    gc.collect()
    out = {"machines": malloc_in_use() - m0, "burst_s": burst}  # burst: one seed, for logs
    net.close()
    return out


def memory_child(mode: str, n: int) -> None:
    """Runs in a fresh process; prints one JSON line."""
    import tracemalloc

    if mode == "machines":
        print(json.dumps(machines_memory(n)))
        return

    async def main() -> dict[str, float]:
        # Warm up: the code paths, the loop's structures, a first small cluster.
        warm, _, _ = await ndb_cluster(2, seed=100)
        await warm[0].create_entry(TABLE, NID, "warm", VALUE)
        await asyncio.sleep(0.5)
        await kill_all(warm)
        del warm
        await asyncio.sleep(0.1)
        gc.collect()
        malloc_trim()
        if mode == "traced":
            tracemalloc.start()
        r0, m0 = rss(), malloc_in_use()
        t0 = tracemalloc.get_traced_memory()[0] if mode == "traced" else 0
        o0 = tracemalloc.get_tracemalloc_memory() if mode == "traced" else 0
        dbs, _, _ = await ndb_cluster(n)
        keys = []
        t_burst = time.monotonic()
        for i, d in enumerate(dbs):
            for j in range(2):
                key = f"ep-{i}-{j}"
                keys.append(key)
                await d.create_entry(TABLE, NID, key, VALUE)
        await wait_until(
            lambda: all(len(d.get_table_by_network(TABLE, NID)) == len(keys) for d in dbs),
            60,
            "entries everywhere",
            0.05,
        )
        burst = time.monotonic() - t_burst
        await asyncio.sleep(1.0)  # queues drain
        gc.collect()
        out = {
            "rss": rss() - r0,
            "malloc": malloc_in_use() - m0,
            "entries": len(keys),
            "burst_s": burst,
        }
        if mode == "traced":
            out["python"] = tracemalloc.get_traced_memory()[0] - t0
            out["tracemalloc_overhead"] = tracemalloc.get_tracemalloc_memory() - o0
        await kill_all(dbs)
        return out

    print(json.dumps(run(main())))


def run_child(mode: str, n: int, env: dict[str, str]) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--child-memory", mode, "--nodes", str(n)]
    r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **env}, timeout=300)
    if r.returncode != 0:
        raise RuntimeError(f"memory child ({mode}) failed:\n{r.stderr[-3000:]}")
    return dict(json.loads(r.stdout.strip().splitlines()[-1]))


def bench_memory(args: argparse.Namespace, rep: Report) -> None:
    n = args.nodes
    log(f"3. memory per node at {n} nodes ({args.mem_reps + 2} child processes)")
    runs = [run_child("rss", n, {}) for _ in range(args.mem_reps)]
    traced = run_child("traced", n, {"PYTHONMALLOC": "malloc"})
    machines = run_child("machines", n, {})
    log(f"  machines alone: {machines}")
    per = [r["rss"] / n / 1e6 for r in runs]
    mal = [r["malloc"] / n / 1e6 for r in runs]
    py = traced["python"] / n / 1e6
    rest = (traced["malloc"] - traced["python"] - traced["tracemalloc_overhead"]) / n / 1e6
    log(f"  RSS per node {', '.join(f'{x:.3f}' for x in per)} MB; traced run {traced}")
    rep.add(
        f"memory per node at {n} nodes: RSS growth / {n} (fresh process; converged, one "
        f"network, {int(runs[0]['entries'])} entries of {len(VALUE)} B replicated everywhere)",
        med_max(per, "MB", digits=3),
        f"Go libnetwork (issue): {GO_MEMORY_MB} MB",
        f"{statistics.median(per) / 0.5:.2f} (to 0.5 MB)",
        "<= 0.5 MB",
        yes(max(per) <= 0.5),
    )
    rep.add("  malloc in use (mallinfo2) growth / node, same runs", med_max(mal, "MB", digits=3))
    rep.add("  of which Python objects (tracemalloc, PYTHONMALLOC=malloc run)", f"{py:.3f} MB")
    rep.add(
        "  of which the rest: Rust machines, libuv (mallinfo2 - tracemalloc - its own tables)",
        f"{rest:.3f} MB",
    )
    rep.add(
        "  the Rust machines alone, same state, on the virtual clock (malloc growth / node)",
        f"{machines['machines'] / n / 1e6:.3f} MB",
    )
    rep.add(
        f"(info) those {int(runs[0]['entries'])} entries, created at once (2 per node), seen "
        "everywhere",
        med_max([r["burst_s"] for r in runs], "s", digits=1),
        "-",
        "-",
        "-",
        "-",
    )


# -- 4: membership convergence ------------------------------------------------------------


async def memberlist_converge(
    n: int, profile: str, cap: float, seed: int, second_join: float | None = None
) -> float:
    """N Memberlist nodes; node 0 up first, then the others created and joining it at
    once. Seconds from then until every node has every other alive (INF past `cap`).
    `second_join`: each node calls join() once more, through a random member, that long
    after its first join (the public API; what a fix in the machine could do)."""
    ms = [await Memberlist.create(MemberlistConfig(name="m0", profile=profile, seed=seed))]
    seed_addr = ms[0].local_address()
    alive: list[set[str]] = []
    done_at: dict[int, int] = {}
    rng = random.Random(seed)
    t0 = time.monotonic_ns() // 1000
    try:
        for i in range(1, n):
            cfg = MemberlistConfig(name=f"m{i}", profile=profile, seed=seed + i)
            ms.append(await Memberlist.create(cfg))
        alive = [{m.cfg.name} for m in ms]
        await asyncio.gather(*(m.join([seed_addr]) for m in ms[1:]))
        if second_join is not None:
            await asyncio.sleep(max(0.0, second_join - (time.monotonic_ns() // 1000 - t0) / SEC))
            await asyncio.gather(
                *(m.join([rng.choice([o for o in ms if o is not m]).local_address()]) for m in ms)
            )

        def check() -> bool:
            for i, m in enumerate(ms):
                for kind, name, _h, _p, at in m.take_events():
                    if kind == "join":
                        alive[i].add(name)
                    elif kind == "leave":
                        alive[i].discard(name)
                    if len(alive[i]) == n:
                        done_at.setdefault(i, at)
                    else:
                        done_at.pop(i, None)
            return len(done_at) == n

        try:
            await wait_until(check, cap, "convergence", 0.02)
        except TimeoutError:
            return INF
        return (max(done_at.values()) - t0) / SEC
    finally:
        for m in ms:
            await m.close(leave=False)


def virtual_converge(n: int, profile: str, cap: float, seed: int, second_join: int = 0) -> float:
    """memberlist_converge with the same machines on a virtual clock."""
    net = VirtualNet()
    alive = [{f"m{i}"} for i in range(n)]
    done_at: dict[int, int] = {}

    def on_input(i: int) -> None:
        if i >= len(net.nodes):
            return
        for kind, name, _h, _p, at in net.nodes[i].take_events():
            if kind == "join":
                alive[i].add(name)
            elif kind == "leave":
                alive[i].discard(name)
            if len(alive[i]) == n:
                done_at.setdefault(i, at)
            else:
                done_at.pop(i, None)

    net.on_input = on_input
    for i in range(n):
        net.add(
            lambda now, port, i=i: _core.MemberlistMachine(
                now, f"m{i}", HOST, port, profile, [], seed + i, {}
            )
        )
    t0 = net.now
    for i in range(1, n):
        net.call(i, lambda m, now: m.join(now, [(HOST, net.port(0))]))
    if second_join:
        rng = random.Random(seed)
        net.run_until(t0 + second_join)
        for i in range(n):
            j = rng.choice([k for k in range(n) if k != i])
            net.call(i, lambda m, now, j=j: m.join(now, [(HOST, net.port(j))]))
    ok = net.run_until_cond(lambda: len(done_at) == n, 20_000, t0 + int(cap * SEC))
    net.close()
    return (max(done_at.values()) - t0) / SEC if ok else INF


def go_converge(binary: Path, n: int, profile: str, cap: float) -> float:
    """N Go peers: g0 first, then the others started together, all joining g0. Seconds
    from then until every peer reported every other joined (NotifyJoin times)."""
    from tests.interop.memberlist_peer import MemberlistPeer

    peers: list[MemberlistPeer] = []
    try:
        peers.append(MemberlistPeer(binary, "g0", config=profile))
        t0 = time.time()
        with ThreadPoolExecutor(max_workers=n) as ex:
            futs = [
                ex.submit(MemberlistPeer, binary, f"g{i}", join=[peers[0].addr], config=profile)
                for i in range(1, n)
            ]
            peers += [f.result() for f in futs]
        deadline = time.monotonic() + cap
        while True:
            done: list[float] = []
            for p in peers:
                names: set[str] = set()
                at = None
                for ev in p.events():
                    if ev.get("event") == "join":
                        names.add(ev["node"])
                    elif ev.get("event") == "leave":
                        names.discard(ev["node"])
                    else:
                        continue
                    at = ev["t"] / 1000 if len(names) == n else None
                if at is None:
                    break
                done.append(at)
            if len(done) == n:
                return max(done) - t0
            if time.monotonic() > deadline:
                return INF
            time.sleep(0.2)
    finally:
        for p in peers:
            p.kill()


def bench_convergence(args: argparse.Namespace, rep: Report, binary: Path | None) -> None:
    n = args.nodes
    cap = args.converge_cap
    for profile in ("local", "lan"):
        log(f"4. membership convergence, {n} Memberlist nodes, {profile} profile")
        xs = []
        for r in range(args.conv_reps):
            xs.append(run(memberlist_converge(n, profile, cap, seed=11 + 1000 * r)))
            log(f"  pyln {profile}: {xs[-1]:.2f} s")
        fixed = []
        for r in range(args.conv_reps):
            fixed.append(run(memberlist_converge(n, profile, cap, 11 + 1000 * r, second_join=0.5)))
            log(f"  pyln {profile}, second join at 0.5 s: {fixed[-1]:.2f} s")
        seeds = range(1, 1 + args.virtual_seeds)
        vs = [virtual_converge(n, profile, 120, seed=100 * s) for s in seeds]
        vf = [virtual_converge(n, profile, 120, seed=100 * s, second_join=SEC // 2) for s in seeds]
        go: list[float] = []
        if binary is not None:
            for _ in range(args.go_reps):
                go.append(go_converge(binary, args.go_nodes, profile, cap))
                log(f"  Go, {args.go_nodes} peers, {profile}: {go[-1]:.2f} s")
        base, ratio = "-", "-"
        if go:
            base = f"{args.go_nodes} Go memberlist peers, same run: {runs_s(go, cap)}"
            if args.go_nodes == n and INF not in go + xs:
                ratio = f"{statistics.median(xs) / statistics.median(go):.2f}"
        if profile == "local":
            base += f"; Go (issue): {GO_CONVERGE_LOCAL_S:g} s"
        rep.add(
            f"membership converged, {n} Memberlist nodes started together, {profile} profile",
            runs_s(xs, cap),
            base,
            ratio,
            "<= 2 s",
            yes(all(x <= 2.0 for x in xs)),
        )
        rep.add(
            f"  the same machines on a virtual clock, {len(vs)} seeds: converged within 2 s",
            f"{sum(1 for x in vs if x <= 2)} of {len(vs)}; median {statistics.median(vs):.1f} s, "
            f"max {max(vs):.1f} s",
            "-",
            "-",
            "<= 2 s",
            yes(all(x <= 2.0 for x in vs)),
        )
        rep.add(
            "  (experiment) each node calls join() once more, through a random member, 0.5 s "
            "after the first",
            f"sockets: {runs_s(fixed, cap)}; virtual clock: {sum(1 for x in vf if x <= 2)} of "
            f"{len(vf)} seeds within 2 s, max {max(vf):.2f} s",
        )


# -- 5: failure detection ---------------------------------------------------------------------


@dataclass
class Failure:
    dead: float  # every live node declared the victim dead
    suspected: float  # the first live node suspected it
    false_samples: int  # (observer, live subject) pairs ever seen not alive
    refuted: int  # live nodes whose incarnation went up (they refuted a suspicion)
    writes: int


async def ndb_failure(n: int, writes_per_s: float, lag: LoopLag, seed: int) -> Failure:
    """Kills one of N NetworkDB nodes (LAN profile) while table writes run."""
    dbs, _, _ = await ndb_cluster(n, seed=seed)
    victim, live = dbs[-1], dbs[:-1]
    vname = victim.cfg.node_name
    stop = asyncio.Event()
    writes = 0

    async def load() -> None:
        nonlocal writes
        keys = [f"w-{i}" for i in range(len(live))]
        for d, k in zip(live, keys, strict=True):
            await d.create_entry(TABLE, NID, k, VALUE)
        period = 1.0 / writes_per_s
        nxt = time.monotonic()
        i = 0
        while not stop.is_set():
            j = i % len(live)
            await live[j].update_entry(TABLE, NID, keys[j], VALUE + i.to_bytes(8, "big"))
            writes += 1
            i += 1
            nxt += period
            await asyncio.sleep(max(0.0, nxt - time.monotonic()))

    def members(d: NetworkDB) -> list[tuple[str, str, int, int, int]]:
        m = d.transport.m
        assert isinstance(m, _core.NetworkDBMachine)
        return m.members()

    def incarnations() -> dict[str, int]:
        out: dict[str, int] = {}
        for d in live:
            for name, _h, _p, _s, inc in members(d):
                out[name] = max(out.get(name, 0), inc)
        return out

    false: set[tuple[str, str]] = set()
    dead_at: dict[str, float] = {}
    suspected: list[float] = []

    def sample(t_kill: float | None) -> None:
        for d in live:
            state = None
            for name, _h, _p, st, _inc in members(d):
                if name == vname:
                    state = st
                elif st != 0:
                    false.add((d.cfg.node_name, name))
            if t_kill is None:
                continue
            now = time.monotonic() - t_kill
            if state is not None and state != 0 and not suspected:
                suspected.append(now)
            if state is None or state >= 2:
                dead_at.setdefault(d.cfg.node_name, now)

    load_task = asyncio.create_task(load())
    try:
        inc0 = incarnations()
        with lag:
            t_end = time.monotonic() + 1.5
            while time.monotonic() < t_end:  # the load runs on the healthy cluster first
                sample(None)
                await asyncio.sleep(0.01)
            await victim.kill()
            t_kill = time.monotonic()
            while len(dead_at) < len(live):
                if time.monotonic() - t_kill > 60:
                    raise TimeoutError("the killed node was not declared dead within 60 s")
                sample(t_kill)
                await asyncio.sleep(0.01)
            t_end = time.monotonic() + 0.5
            while time.monotonic() < t_end:
                sample(t_kill)
                await asyncio.sleep(0.01)
        inc1 = incarnations()
        refuted = sum(1 for k, v in inc1.items() if k != vname and v > inc0.get(k, 0))
    finally:
        stop.set()
        await load_task
        await kill_all(dbs)
    f = Failure(
        max(dead_at.values()), suspected[0] if suspected else INF, len(false), refuted, writes
    )
    log(
        f"  pyln: first suspected at {f.suspected:.2f} s, dead everywhere at {f.dead:.2f} s; "
        f"false positives {f.false_samples}, refuted {f.refuted}; {writes} writes"
    )
    return f


def go_failure(binary: Path, n: int) -> tuple[float, int]:
    """N Go peers (LAN, a user broadcast every 50 ms each); SIGKILL one. Seconds until
    every other reported it gone (NotifyLeave), and false positives (leave events of
    live peers, or a live peer not alive in the 1 s members snapshots)."""
    from tests.interop.memberlist_peer import MemberlistPeer

    peers: list[MemberlistPeer] = []
    try:
        peers.append(MemberlistPeer(binary, "g0", broadcast_every=0.05))
        with ThreadPoolExecutor(max_workers=n) as ex:
            futs = [
                ex.submit(
                    MemberlistPeer, binary, f"g{i}", join=[peers[0].addr], broadcast_every=0.05
                )
                for i in range(1, n)
            ]
            peers += [f.result() for f in futs]
        names = {p.name for p in peers}
        for p in peers:
            p.wait_members(names, timeout=60)
        time.sleep(1.5)
        victim, live = peers[-1], peers[:-1]
        marks = [p.mark() for p in live]
        t_kill = time.time()
        victim.kill()
        seen = [
            p.wait_event("leave", timeout=60, since=m, node=victim.name)["t"] / 1000 - t_kill
            for p, m in zip(live, marks, strict=True)
        ]
        time.sleep(1.0)
        false = 0
        for p in live:
            for ev in p.events():
                if ev.get("event") == "leave" and ev.get("node") != victim.name:
                    false += 1
                if ev.get("event") == "members":
                    false += sum(
                        1 for m in ev["members"] if m["name"] != victim.name and m["state"] != 0
                    )
        log(f"  Go: dead everywhere at {max(seen):.2f} s; false positives {false}")
        return max(seen), false
    finally:
        for p in peers:
            p.kill()


def bench_failure(args: argparse.Namespace, rep: Report, binary: Path | None) -> None:
    n = args.fd_nodes
    log(f"5. failure detection, {n} nodes, LAN profile, {args.writes:g} writes/s")
    lag = LoopLag()
    fs = [run(ndb_failure(n, args.writes, lag, seed=9000 + 100 * r)) for r in range(args.reps)]
    go_t: list[float] = []
    go_fp: list[int] = []
    if binary is not None:
        for _ in range(args.go_fd_reps):
            t, fp = go_failure(binary, n)
            go_t.append(t)
            go_fp.append(fp)
    times = [f.dead for f in fs]
    base = f"Go (issue): {GO_FAILURE_S:g} s"
    ref = statistics.median(go_t) if go_t else GO_FAILURE_S
    ratio = f"{statistics.median(times) / ref:.2f}"
    if go_t:
        base = f"{n} Go memberlist peers, same run: {med_max(go_t, 's')}; " + base
    rep.add(
        f"failure of a killed node detected (declared dead) by all others, {n} nodes, LAN "
        f"profile, {args.writes:g} table writes/s",
        med_max(times, "s") + f" (first suspicion {med_max([f.suspected for f in fs], 's')})",
        base,
        ratio,
        "same order as Go",
        yes(0.5 * ref <= statistics.median(times) <= 2 * ref),
    )
    fps, refs = sum(f.false_samples for f in fs), sum(f.refuted for f in fs)
    rep.add(
        "  false positives: a live node seen suspect or dead (10 ms samples); suspicions "
        "refuted (incarnation bumps)",
        f"{fps}; {refs} (over {len(fs)} runs, {sum(f.writes for f in fs)} writes)",
        f"Go: {sum(go_fp)} (leave events, 1 s snapshots)" if go_fp else "-",
        "-",
        "0",
        yes(fps == 0 and refs == 0),
    )
    rep.notes.append(
        f"Event-loop delay during the failure runs ({n} nodes, {args.writes:g} writes/s): "
        f"{lag.summary()}. The Go peers' load is a user broadcast every 50 ms from each peer."
    )


# -- main ---------------------------------------------------------------------------------------


def go_binary(args: argparse.Namespace) -> Path | None:
    if args.no_go:
        return None
    from tests.interop.memberlist_peer import PeerBuildError, build_peer

    try:
        return build_peer()
    except PeerBuildError as e:
        log(f"Go peer not available, Go columns skipped: {e}")
        return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--nodes", type=int, default=50)
    ap.add_argument("--reps", type=int, default=3, help="runs of steps 1-2 and 5")
    ap.add_argument("--entries", type=int, default=12)
    ap.add_argument("--virtual-entries", type=int, default=100)
    ap.add_argument("--mem-reps", type=int, default=1)
    ap.add_argument("--conv-reps", type=int, default=2, help="pyln runs per profile, step 4")
    ap.add_argument("--virtual-seeds", type=int, default=20)
    ap.add_argument("--go-nodes", type=int, default=50)
    ap.add_argument("--go-reps", type=int, default=1, help="Go runs per profile, step 4")
    ap.add_argument("--go-fd-reps", type=int, default=2, help="Go runs, step 5")
    ap.add_argument("--fd-nodes", type=int, default=10)
    ap.add_argument("--writes", type=float, default=500.0, help="table writes/s in step 5")
    ap.add_argument("--converge-cap", type=float, default=60.0)
    ap.add_argument("--no-go", action="store_true")
    ap.add_argument("--only", default="cluster,memory,converge,failure")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--profile", nargs="?", const="/tmp/networkdb_bench_profile.txt")
    ap.add_argument("--table", default="/tmp/networkdb_bench_table.md")
    ap.add_argument("--child-memory", choices=("rss", "traced", "machines"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_memory:
        memory_child(args.child_memory, args.nodes)
        return
    if args.quick:
        args.reps, args.entries, args.mem_reps, args.go_nodes = 1, 4, 1, 10
        args.virtual_seeds, args.virtual_entries, args.converge_cap = 4, 20, 20.0
        args.go_fd_reps = 1
    t0 = time.monotonic()
    binary = go_binary(args)
    rep = Report()
    only = set(args.only.split(","))
    if "cluster" in only:
        bench_cluster(args, rep)
    if "memory" in only:
        bench_memory(args, rep)
    if "converge" in only:
        bench_convergence(args, rep, binary)
    if "failure" in only:
        bench_failure(args, rep, binary)
    if "cluster" in only:
        for r in CODEC_ROWS:
            rep.add(*r)
        rep.notes.append(
            "Codec rows are quoted from docs/BENCHMARKS.md (cargo bench --bench "
            "networkdb_wire; benches/test_networkdb_wire_bench.py), not rerun here."
        )
    rep.notes += STRAGGLERS
    rep.notes.append(
        f"python {platform.python_version()}, uvloop {uvloop.__version__}, {os.cpu_count()} "
        f"cores; the whole run took {time.monotonic() - t0:.0f} s."
    )
    text = rep.table()
    print(text)
    Path(args.table).write_text(text + "\n")


if __name__ == "__main__":
    main()
