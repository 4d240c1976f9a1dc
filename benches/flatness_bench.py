"""Does a container's setup (endpoint create + join) cost more as the bridge fills up?
Sets up 200 containers in a row on one network, per firewall backend, in a throwaway
host namespace, and prints the median of each block of 40 and last/first quarter.
Run as root: .venv/bin/python benches/flatness_bench.py [N]"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import pyln
from pyln.osl import Namespace


def run(backend: str, n: int) -> str:
    with tempfile.TemporaryDirectory(prefix="pyln-flat-") as tmp:
        host = Namespace.create(Path(tmp) / "host")
        try:
            c = pyln.Controller(
                Path(tmp) / "state", {"bridge": {"firewall": backend}}, host_namespace=host
            )
            net = c.new_network("bridge", "flat", ipam_v4=[{"pool": "10.99.0.0/16"}])
            sandboxes = [c.new_sandbox(f"c{i}") for i in range(n)]
            took: list[float] = []
            for i, sbx in enumerate(sandboxes):
                t0 = time.perf_counter()
                net.create_endpoint(f"e{i}").join(sbx)
                took.append((time.perf_counter() - t0) * 1000)
            for sbx in c.sandboxes():
                sbx.delete()
            for ep in net.endpoints():
                ep.delete()
            net.delete()
            c.close()
        finally:
            host.delete()
    q = max(1, n // 4)
    blocks = " ".join(f"{statistics.median(took[k : k + 40]):.2f}" for k in range(0, n, 40))
    ratio = statistics.median(took[-q:]) / statistics.median(took[:q])
    return f"| {backend} | {blocks} | {ratio:.2f} |"


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    print("| backend | p50 ms per block of 40 containers | last / first quarter |")
    print("|---|---|---|")
    for backend in ("nftables", "iptables"):
        print(run(backend, n))


if __name__ == "__main__":
    main()
