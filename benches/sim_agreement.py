"""Simulator against real clusters: entry convergence of the same workload on
N real networkdb nodes in one process (loopback, uvloop) and N simulated ones.

    .venv/bin/python benches/sim_agreement.py [N ...]   (default 10 20 30)
"""

from __future__ import annotations

import sys

from pyln.sim.realcheck import Workload, compare


def main(argv: list[str]) -> None:
    sizes = [int(a) for a in argv] or [10, 20, 30]
    print(
        f"{'nodes':>5}  {'sim p50':>8} {'real p50':>8} {'diff':>6}  {'sim p99':>8} {'real p99':>8}"
        f"  {'sim mean':>8} {'real mean':>9}"
    )
    for n in sizes:
        r = compare(Workload(nodes=n, writes=60, rate=6.0, seed=n))
        s, t = r["sim"], r["real"]
        print(
            f"{n:>5}  {s['p50']:>8.0f} {t['p50']:>8.0f} {r['p50_diff']:>+6.0%}  {s['p99']:>8.0f} "
            f"{t['p99']:>8.0f}  {s['mean']:>8.0f} {t['mean']:>9.0f}",
            flush=True,
        )


if __name__ == "__main__":
    main(sys.argv[1:])
