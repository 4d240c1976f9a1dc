"""Network create / delete through the controller, in a throwaway host namespace.

Two patterns, per firewall backend: 20 creates then 20 deletes (each call alone),
and 20 create+delete cycles back to back (churn: a create then waits for the
previous delete's rule removal, which runs in the background). Targets from the
issue: create <= 10 ms, delete <= 20 ms (docker network create 79 ms / rm 177 ms,
quoted). Run as root: .venv/bin/python benches/network_bench.py
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import pyln
from pyln.osl import Namespace

N = 20


def q(xs: list[float]) -> str:
    xs = sorted(xs)
    return f"{1000 * statistics.median(xs):.1f} / {1000 * xs[int(0.9 * len(xs))]:.1f}"


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory(prefix="pyln-netbench-") as tmp:
        host = Namespace.create(Path(tmp) / "host")
        try:
            for backend in ("nftables", "iptables"):
                c = pyln.Controller(
                    Path(tmp) / backend, {"bridge": {"firewall": backend}}, host_namespace=host
                )
                c.new_network("bridge", "warm-up").delete()
                c.close()  # waits for the background work
                c = pyln.Controller(
                    Path(tmp) / backend, {"bridge": {"firewall": backend}}, host_namespace=host
                )
                cr: list[float] = []
                de: list[float] = []
                nets = []
                for i in range(N):
                    t = time.perf_counter()
                    nets.append(c.new_network("bridge", f"n{i}"))
                    cr.append(time.perf_counter() - t)
                for n in nets:
                    t = time.perf_counter()
                    n.delete()
                    de.append(time.perf_counter() - t)
                ccr: list[float] = []
                cde: list[float] = []
                for i in range(N):
                    t = time.perf_counter()
                    n = c.new_network("bridge", f"c{i}")
                    t1 = time.perf_counter()
                    n.delete()
                    ccr.append(t1 - t)
                    cde.append(time.perf_counter() - t1)
                c.close()
                rows.append((backend, q(cr), q(de), q(ccr), q(cde)))
        finally:
            host.delete()
    print(
        "| backend | create (alone) p50 / p90 ms | delete (alone) "
        "| create (churn) | delete (churn) |"
    )
    print("|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    print("targets: create <= 10 ms, delete <= 20 ms (docker: 79 ms / 177 ms, quoted)")


if __name__ == "__main__":
    main()
