"""The simulator against real clusters: the same workload on N real networkdb
nodes in this process (UDP and TCP on loopback, asyncio on uvloop) and on N
simulated ones, entry convergence measured the same way in both.

A write's convergence time is the time from the write until the last node of
the cluster has the entry (the writer counts at 0). In the real cluster each
node's table events are seen by a watcher at the moment the machine applies
them; in the simulator by the node's trace at the same point."""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from dataclasses import dataclass, replace
from typing import Any

import uvloop

from pyln.networkdb.config import Config
from pyln.networkdb.db import Event, NetworkDB, Watch
from pyln.sim.runner import run as run_sim

TABLE = "endpoint_table"
NET = "net0"


@dataclass
class Workload:
    nodes: int
    writes: int = 40
    rate: float = 4.0  # writes per second, spread over random nodes
    value_size: int = 100
    seed: int = 1
    settle: float = 4.0
    # Tick-only gossip (libnetwork's) by default: with eager gossip, convergence is
    # bimodal (first wave or next tick) and a p50 falls on either mode by chance.
    eager_delay: float = 0.0


class _Seen(Watch):
    """A watch that only notes when each key first shows up on its node."""

    def __init__(self, db: NetworkDB, seen: dict[str, float]) -> None:
        super().__init__(db, TABLE, "", "")
        self.seen = seen

    def wants(self, ev: Event) -> bool:
        if ev.kind != "delete" and ev.key not in self.seen:
            self.seen[ev.key] = time.monotonic()
        return False


def _percentile(v: list[float], q: float) -> float:
    s = sorted(v)
    return s[max(0, min(len(s) - 1, int(len(s) * q + 0.999999) - 1))]


def summarize(times: list[float]) -> dict[str, float]:
    return {
        "p50": _percentile(times, 0.5),
        "p99": _percentile(times, 0.99),
        "max": max(times),
        "mean": statistics.fmean(times),
        "count": len(times),
    }


async def _real(w: Workload) -> dict[str, Any]:
    dbs: list[NetworkDB] = []
    try:
        for i in range(w.nodes):
            cfg = Config(
                node_name=f"n{i}",
                bind_addr="127.0.0.1",
                bind_port=0,
                seed=w.seed * 1000 + i,
                eager_delay=w.eager_delay,
            )
            dbs.append(await NetworkDB.create(cfg))
        seed_addr = dbs[0].local_address()
        await asyncio.gather(*(d.join([seed_addr]) for d in dbs[1:]))
        t0 = time.monotonic()
        while not all(len(d.cluster_peers()) == w.nodes for d in dbs):
            if time.monotonic() - t0 > 60:
                raise TimeoutError("the real cluster did not form")
            await asyncio.sleep(0.01)
        for d in dbs:
            await d.join_network(NET)
        while not all(len(d.network_peers(NET)) == w.nodes for d in dbs):
            if time.monotonic() - t0 > 90:
                raise TimeoutError("the real cluster did not join the network")
            await asyncio.sleep(0.01)
        seen: list[dict[str, float]] = [{} for _ in dbs]
        for d, s in zip(dbs, seen, strict=True):
            d._watches.add(_Seen(d, s))
        rng = random.Random(w.seed)
        written: dict[str, tuple[int, float]] = {}
        start = time.monotonic()
        for k in range(w.writes):
            due = start + k / w.rate
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            owner = rng.randrange(w.nodes)
            key = f"k{k + 1}"
            value = (k + 1).to_bytes(8, "big") + bytes(w.value_size - 8)
            written[key] = (owner, time.monotonic())
            await dbs[owner].create_entry(TABLE, NET, key, value)
        deadline = time.monotonic() + w.settle + 30
        while time.monotonic() < deadline:
            if all(
                key in s or o == i for key, (o, _) in written.items() for i, s in enumerate(seen)
            ):
                break
            await asyncio.sleep(0.05)
        times = []
        for key, (owner, at) in written.items():
            arrivals = [
                0.0 if i == owner else s.get(key, float("inf")) - at for i, s in enumerate(seen)
            ]
            times.append(max(arrivals) * 1000)
        done = [t for t in times if t != float("inf")]
        return {
            "entry_convergence_ms": summarize(done),
            "writes": len(times),
            "writes_converged": len(done),
        }
    finally:
        for d in dbs:
            await d.kill()


def measure_real(w: Workload) -> dict[str, Any]:
    """Entry convergence of a real in-process cluster on loopback."""
    return uvloop.run(_real(w))


# Loopback-like links. (With eager gossip on, ~0.5 ms models the one-process
# transport's per-message wait better; with tick-only gossip it does not matter.)
LOOPBACK_LATENCY_MS = 0.05
LOOPBACK_JITTER_MS = 0.05
# The simulator reports the median p50 of this many seeds (robust to one odd seed).
SIM_SEEDS = 3


def measure_sim(
    w: Workload, latency_ms: float = LOOPBACK_LATENCY_MS, jitter_ms: float = LOOPBACK_JITTER_MS
) -> dict[str, Any]:
    """The same workload in the simulator: the cluster forms by joining over
    the protocol, as the real one does, on a loopback-like network."""
    span = w.writes / w.rate
    return run_sim(
        {
            "nodes": w.nodes,
            "bootstrap": "join",
            "writes": w.writes,
            "duration": span + w.settle,
            "settle": w.settle,
            "value_size": w.value_size,
            "seed": w.seed,
            "latency": latency_ms / 1000,
            "jitter": jitter_ms / 1000,
            "eager_delay": w.eager_delay,
        }
    )


def compare(w: Workload) -> dict[str, Any]:
    """Both measurements and the relative difference of their p50s (the simulator's
    p50 is the median over SIM_SEEDS seeds)."""
    runs = [measure_sim(replace(w, seed=w.seed + i)) for i in range(SIM_SEEDS)]
    runs.sort(key=lambda r: r["entry_convergence_ms"]["p50"])
    sim = runs[len(runs) // 2]
    real = measure_real(w)
    s50 = sim["entry_convergence_ms"]["p50"]
    r50 = real["entry_convergence_ms"]["p50"]
    return {
        "nodes": w.nodes,
        "sim": sim["entry_convergence_ms"],
        "sim_p50_per_seed": [r["entry_convergence_ms"]["p50"] for r in runs],
        "real": real["entry_convergence_ms"],
        "p50_diff": (s50 - r50) / r50 if r50 else float("inf"),
        "sim_writes_converged": min(r["writes_converged"] for r in runs),
        "real_writes_converged": real["writes_converged"],
    }
