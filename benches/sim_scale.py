"""Scale of `pyln sim` against the issue's targets: 60 s of virtual time, one
network every node is in, 1,000 table writes, default LAN parameters. Each size
runs in its own process (`pyln sim ... --report`), so that its peak memory is
its own.

    .venv/bin/python benches/sim_scale.py [N ...]   (default 1000)
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGETS = {1000: (30, 2), 5000: (180, 8), 10000: (600, 20)}  # wall s, GiB


def one(n: int) -> dict:
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "r.json"
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        t = time.monotonic()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pyln.cli",
                "sim",
                "--nodes",
                str(n),
                "--duration",
                "60",
                "--writes",
                "1000",
                "--seed",
                "1",
                "--report",
                str(out),
                "--quiet",
            ],
            check=False,
            stdout=subprocess.DEVNULL,
        )
        wall = time.monotonic() - t
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        r = json.loads(out.read_text())
    r["_wall"] = wall
    r["_peak_kib"] = max(peak, before)
    return r


def main(argv: list[str]) -> None:
    sizes = [int(a) for a in argv] or [1000]
    print(
        f"{'nodes':>6} {'wall s':>7} {'target':>7} {'peak GiB':>9} {'target':>7} {'events/s':>9} "
        f"{'B/node':>9} {'p50 ms':>8} {'p99 ms':>8} {'B/node/s':>9} conv"
    )
    for n in sizes:
        r = one(n)
        tw, tm = TARGETS.get(n, (None, None))
        e = r["entry_convergence_ms"]
        gib = r["_peak_kib"] / 2**20
        conv = "yes" if r["converged"] else "no"
        print(
            f"{n:>6} {r['_wall']:>7.1f} {tw or '-':>7} {gib:>9.2f} {tm or '-':>7} "
            f"{r['events_per_s']:>9.0f} {r['memory_per_node_bytes']:>9.0f} {e['p50']:>8.0f} "
            f"{e['p99']:>8.0f} {r['bytes_per_node_per_s']:>9.0f} {conv}",
            flush=True,
        )


if __name__ == "__main__":
    main(sys.argv[1:])
