"""Memory and set-up time of pyln's single userland proxy against libnetwork's one
docker-proxy process per published port (602 MB RSS for 500 ports, from the issue).

Run as root: `.venv/bin/python benches/proxy_bench.py [--forwards 500]`. Everything
happens in a throwaway network namespace (loopback only) that is deleted afterwards.
"""

from __future__ import annotations

import argparse
import selectors
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

from pyln.osl import Namespace
from pyln.portmapper import ProxyManager

#: libnetwork at the seed commit: 500 docker-proxy processes, total RSS (the issue).
LIBNETWORK_RSS_MB_500 = 602.0


def rss_mb(pid: int) -> float:
    """VmRSS of `pid` in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


class Backend:
    """An echo server on the namespace's loopback, one thread, non-blocking."""

    def __init__(self, ns: Namespace) -> None:
        self.sock = ns.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4096)
        self.sock.setblocking(False)
        self.port = int(self.sock.getsockname()[1])
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.sock, selectors.EVENT_READ)
        self.stop_r, self.stop_w = socket.socketpair()
        self.sel.register(self.stop_r, selectors.EVENT_READ)
        self.conns: list[socket.socket] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            for key, _ in self.sel.select():
                s = key.fileobj
                assert isinstance(s, socket.socket)
                if s is self.stop_r:
                    return
                if s is self.sock:
                    conn, _ = self.sock.accept()
                    conn.setblocking(False)
                    self.conns.append(conn)
                    self.sel.register(conn, selectors.EVENT_READ)
                    continue
                try:
                    data = s.recv(65536)
                except ConnectionError:
                    data = b""
                if data:
                    s.sendall(data)
                else:
                    self.sel.unregister(s)
                    s.close()

    def close(self) -> None:
        self.stop_w.send(b"x")
        self.thread.join(10)
        for s in self.conns:
            s.close()
        self.sock.close()
        self.stop_r.close()
        self.stop_w.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--forwards", type=int, default=500)
    args = ap.parse_args()
    n = args.forwards

    with tempfile.TemporaryDirectory(prefix="pyln-proxy-bench-") as tmp:
        ns = Namespace.create(Path(tmp) / "netns")
        backend = Backend(ns)
        mgr = ProxyManager(ns, Path(tmp) / "run")
        clients: list[socket.socket] = []
        try:
            t0 = time.perf_counter()
            mgr.start()
            t_start = time.perf_counter() - t0
            pid = mgr.pid
            assert pid is not None
            rss_empty = rss_mb(pid)

            t0 = time.perf_counter()
            ports = [mgr.add("tcp", "127.0.0.1", 0, "127.0.0.1", backend.port) for _ in range(n)]
            t_add = time.perf_counter() - t0
            rss_fwd = rss_mb(pid)

            # One open connection per forward, each checked with a round trip.
            t0 = time.perf_counter()
            for port in ports:
                c = ns.socket(socket.AF_INET, socket.SOCK_STREAM)
                c.settimeout(10)
                c.connect(("127.0.0.1", port))
                c.sendall(b"ping")
                got = b""
                while len(got) < 4:
                    chunk = c.recv(4 - len(got))
                    if not chunk:
                        raise RuntimeError(f"connection through port {port} closed")
                    got += chunk
                clients.append(c)
            t_conn = time.perf_counter() - t0
            stats = mgr.stats()
            rss_conn = rss_mb(pid)
        finally:
            for c in clients:
                c.close()
            mgr.stop()
            backend.close()
            ns.delete()

    per_go = LIBNETWORK_RSS_MB_500 / 500
    rows = [
        ("proxy processes", f"{1}", f"{n}", f"{n}x fewer"),
        ("RSS, no forwards", f"{rss_empty:.1f} MiB", "-", "-"),
        (
            f"RSS, {n} TCP forwards",
            f"{rss_fwd:.1f} MiB",
            f"{per_go * n:.0f} MB",
            f"{per_go * n / rss_fwd:.0f}x less",
        ),
        (
            f"RSS, {n} forwards + {stats['connections']} open connections",
            f"{rss_conn:.1f} MiB",
            "-",
            "-",
        ),
        ("start the proxy", f"{t_start * 1000:.0f} ms", "-", "-"),
        (
            f"add {n} forwards",
            f"{t_add:.3f} s ({t_add / n * 1e6:.0f} us each)",
            "-",
            "-",
        ),
        (f"open {n} connections (round trip each)", f"{t_conn:.3f} s", "-", "-"),
    ]
    print()
    print("| what | pyln (one proxy) | libnetwork (docker-proxy per port) | pyln vs libnetwork |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print()
    print(
        f"libnetwork figure: {LIBNETWORK_RSS_MB_500:g} MB for 500 docker-proxy processes (issue),"
    )
    print(f"scaled linearly to {n}; pyln's RSS is VmRSS of pid {pid} from /proc/PID/status.")
    print(f"python: {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
