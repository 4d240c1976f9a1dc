"""How to run a tool inside a network namespace: through `nsenter` (one more exec)
or spawned from a thread that entered the namespace (pyln's way since session 4).
Times `iptables-restore --noflush` with an empty nat table, both ways, in one
process, in a throwaway namespace. Run as root: .venv/bin/python benches/ns_spawn_bench.py
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from pyln.osl import Namespace

RUNS = 40
INPUT = "*nat\nCOMMIT\n"


def p50_ms(fn: object) -> float:
    ts = []
    for _ in range(RUNS):
        t = time.perf_counter()
        fn()  # type: ignore[operator]
        ts.append(time.perf_counter() - t)
    return 1000 * statistics.median(ts)


def main() -> None:
    restore = shutil.which("iptables-restore")
    nsenter = shutil.which("nsenter")
    assert restore and nsenter, "needs iptables-restore and nsenter"
    argv = [restore, "-w", "10", "--noflush"]
    with tempfile.TemporaryDirectory(prefix="pyln-nsspawn-") as tmp:
        ns = Namespace.create(Path(tmp) / "ns")
        try:

            def via_nsenter() -> None:
                subprocess.run(
                    [nsenter, f"--net={ns.path}", "--", *argv],
                    input=INPUT, capture_output=True, text=True, check=True,
                )  # fmt: skip

            def via_thread() -> None:
                ns.run(
                    lambda: subprocess.run(
                        argv, input=INPUT, capture_output=True, text=True, check=True
                    )
                )

            rows = []
            for rnd in range(3):
                a, b = p50_ms(via_nsenter), p50_ms(via_thread)
                rows.append(f"| {rnd + 1} | {a:.2f} | {b:.2f} | {b / a:.2f} |")
        finally:
            ns.delete()
    print("| round | nsenter p50 ms | thread in the namespace p50 ms | thread / nsenter |")
    print("|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
