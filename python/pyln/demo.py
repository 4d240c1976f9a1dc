"""`make demo`: libnetwork's README example as a real scenario. A bridge network, two
containers (sandboxes) that reach each other, a published port reached from the
host, then everything cleaned up.

The demo runs inside a network namespace of its own, which plays the host: the
bridge, the firewall rules and the proxy go there, so the machine's own network is
never touched. Passing host_namespace=None to Controller (the default) does the
same on the real host.
"""

from __future__ import annotations

import argparse
import functools
import shutil
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pyln
from pyln import netlabel
from pyln.osl import Namespace, is_namespace_mount

T = TypeVar("T")


def timed(what: str, fn: Callable[[], T]) -> T:
    t = time.perf_counter()
    out = fn()
    print(f"  {what:<46} {1000 * (time.perf_counter() - t):7.1f} ms")
    return out


def serve_once(ns: Namespace, port: int) -> tuple[socket.socket, threading.Thread]:
    """A TCP server in `ns` answering one connection with the peer address it saw."""
    srv = ns.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", port))
    srv.listen(4)
    srv.settimeout(10)

    def run() -> None:
        try:
            conn, peer = srv.accept()
        except OSError:
            return
        with conn:
            conn.sendall(f"hello {peer[0]}".encode())

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return srv, t


def ask(ns: Namespace, addr: str, port: int, timeout: float = 5.0) -> str:
    """Connects from `ns` and returns the server's answer ("" if it failed)."""
    c = ns.socket(socket.AF_INET, socket.SOCK_STREAM)
    c.settimeout(timeout)
    try:
        c.connect((addr, port))
        return c.recv(100).decode()
    except OSError as e:
        return f"failed: {e}"
    finally:
        c.close()


def _remove(ep: pyln.Endpoint, sbx: pyln.Sandbox) -> None:
    ep.leave(sbx)
    ep.delete()


def run(state_dir: Path) -> bool:
    demo_dir = state_dir / "cnm-demo"
    if demo_dir.exists():  # a previous run was interrupted: start afresh
        for p in (demo_dir / "host-netns", *(demo_dir / "netns").glob("*")):
            if is_namespace_mount(p):
                Namespace.open(p).delete()
        shutil.rmtree(demo_dir)
    host = Namespace.create(demo_dir / "host-netns")
    ok = True
    try:
        print(f"host namespace for the demo: {host.path}\n")
        ctrl = timed("controller", lambda: pyln.Controller(demo_dir, host_namespace=host))
        net = timed(
            'new_network("bridge", "network1")', lambda: ctrl.new_network("bridge", "network1")
        )
        print()
        sandboxes = []
        for name in ("container1", "container2"):
            sbx = timed(
                f"new_sandbox({name!r})",
                lambda n=name: ctrl.new_sandbox(n, hostname=n, domainname="docker.io"),  # type: ignore[misc]
            )
            ep = timed(f"{name}: create_endpoint", lambda n=name: net.create_endpoint(f"ep-{n}"))  # type: ignore[misc]
            timed(f"{name}: join", lambda e=ep, s=sbx: e.join(s))  # type: ignore[misc]
            sandboxes.append((sbx, ep))
        print()
        for sbx, ep in sandboxes:
            info = ep.info()
            print(
                f"  {sbx.container_id}: address {info.iface.address}, "
                f"MAC {ep.driver_info()[netlabel.MAC_ADDRESS]}, gateway {info.gateway}, "
                f"netns {sbx.key}"
            )
        (s1, e1), (s2, e2) = sandboxes
        ip2 = str(e2.info().iface.address.ip)  # type: ignore[union-attr]
        srv, t = serve_once(Namespace.open(s2.key), 8080)
        answer = ask(Namespace.open(s1.key), ip2, 8080)
        t.join(5)
        srv.close()
        reached = answer == f"hello {e1.info().iface.address.ip}"  # type: ignore[union-attr]
        ok &= reached
        print(f"\n  container1 -> {ip2}:8080: {answer!r} ({'ok' if reached else 'FAILED'})")

        print()
        web = timed("new_sandbox('web')", lambda: ctrl.new_sandbox("web", hostname="web"))
        wep = timed(
            "web: create_endpoint, publish 80 -> host 8080",
            lambda: net.create_endpoint(
                "ep-web", port_bindings=[{"proto": "tcp", "port": 80, "host_port": 8080}]
            ),
        )
        timed("web: join", lambda: wep.join(web))
        gw = str(wep.info().gateway)
        for target in ("127.0.0.1", gw):
            srv, t = serve_once(Namespace.open(web.key), 80)
            answer = ask(host, target, 8080)
            t.join(5)
            srv.close()
            good = answer.startswith("hello ")
            ok &= good
            print(f"  host -> {target}:8080 -> web:80: {answer!r} ({'ok' if good else 'FAILED'})")

        print()
        for sbx, ep in [*sandboxes, (web, wep)]:
            timed(
                f"{sbx.container_id}: leave + delete endpoint", functools.partial(_remove, ep, sbx)
            )
            timed(f"{sbx.container_id}: delete sandbox", sbx.delete)
        timed("delete network", net.delete)
        ctrl.close()
        left = [link.get("ifname") for link in host.netlink().get_links()]
        print(f"\n  links left in the host namespace: {left}")
        ok &= left == ["lo"]
    finally:
        host.delete()
        shutil.rmtree(demo_dir, ignore_errors=True)
    print(f"\ndemo {'passed' if ok else 'FAILED'}; cleaned up")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pyln demo", description=__doc__)
    parser.add_argument("what", nargs="?", choices=["cnm", "ipam"], default="cnm")
    parser.add_argument("--state-dir", type=Path, default=Path("state"))
    args = parser.parse_args(argv)
    args.state_dir.mkdir(parents=True, exist_ok=True)
    if args.what == "ipam":
        from pyln import demo_ipam

        return demo_ipam.main(["--state-dir", str(args.state_dir)])
    return 0 if run(args.state_dir.resolve()) else 1


if __name__ == "__main__":
    sys.exit(main())
