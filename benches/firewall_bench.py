"""Micro-benchmark of the firewall backends in a throwaway namespace: setup_network,
one port mapping, 200 mappings added one by one (is the 200th as cheap as the first?)
and remove_network. Run as root: `.venv/bin/python benches/firewall_bench.py`."""

from __future__ import annotations

import ipaddress
import statistics
import tempfile
import time
from pathlib import Path

from pyln.firewall import NetworkRules, PortMapping, new_firewall
from pyln.osl import Namespace

N = 200


def bench(backend: str, root: Path) -> dict[str, float]:
    """Timings in milliseconds for one backend, in a fresh namespace."""
    ns = Namespace.create(root / backend)
    try:
        ns.netlink().link("add", ifname="br-bench", kind="bridge")
        fw = new_firewall(ns, backend)
        rules = NetworkRules("bench", "br-bench", (ipaddress.ip_network("10.220.1.0/24"),))
        t0 = time.perf_counter()
        fw.setup_network(rules)
        setup = time.perf_counter() - t0
        any4, cip = ipaddress.ip_address("0.0.0.0"), ipaddress.ip_address("10.220.1.2")
        t0 = time.perf_counter()
        fw.add_port_mappings("bench", [PortMapping("tcp", any4, 10000, cip, 80)])
        one = time.perf_counter() - t0
        each: list[float] = []
        for i in range(N):
            m = PortMapping("tcp", any4, 20000 + i, cip, 80)
            t0 = time.perf_counter()
            fw.add_port_mappings("bench", [m])
            each.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        fw.setup_network(rules)
        resetup = time.perf_counter() - t0
        t0 = time.perf_counter()
        fw.remove_network("bench")
        remove = time.perf_counter() - t0
        fw.flush()
        ms = 1000.0
        return {
            "setup_network": setup * ms,
            "add 1 mapping": one * ms,
            f"{N} mappings, total": sum(each) * ms,
            "  first 10, median": statistics.median(each[:10]) * ms,
            "  last 10, median": statistics.median(each[-10:]) * ms,
            f"setup_network again ({N + 1} mappings)": resetup * ms,
            f"remove_network ({N + 1} mappings)": remove * ms,
        }
    finally:
        ns.delete()


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="pyln-fw-bench-") as tmp:
        results = {b: bench(b, Path(tmp)) for b in ("nftables", "iptables")}
    rows = list(next(iter(results.values())))
    width = max(len(r) for r in rows)
    print(f"{'(milliseconds)':<{width}}  {'nftables':>10}  {'iptables':>10}")
    for r in rows:
        print(f"{r:<{width}}  {results['nftables'][r]:>10.2f}  {results['iptables'][r]:>10.2f}")


if __name__ == "__main__":
    main()
