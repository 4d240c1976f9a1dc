"""A small world for CNM tests: a throwaway "host" namespace (where the controller
puts bridges, rules and its proxy) joined by a veth uplink to an "outside"
namespace standing for the rest of the network. Plus socket helpers that wait on
conditions with deadlines."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from pyln.osl import Namespace, interfaces

UPLINK_HOST = ipaddress.IPv4Interface("10.240.200.1/24")
UPLINK_OUTSIDE = ipaddress.IPv4Interface("10.240.200.2/24")


@dataclass
class World:
    host: Namespace
    outside: Namespace


def make_world(make_ns: Callable[[str], Namespace]) -> World:
    host = make_ns("host")
    outside = make_ns("outside")
    interfaces.create_veth(host, "uplink0", outside, "uplink0")
    interfaces.configure_interface(host, "uplink0", addresses=[UPLINK_HOST])
    interfaces.configure_interface(outside, "uplink0", addresses=[UPLINK_OUTSIDE])
    return World(host, outside)


class Server:
    """A TCP server inside a namespace that answers each connection with the peer
    address it saw, then closes."""

    def __init__(self, ns: Namespace, addr: str = "0.0.0.0", port: int = 0) -> None:
        family = socket.AF_INET6 if ":" in addr else socket.AF_INET
        self.sock = ns.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((addr, port))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.seen: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, peer = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                self.seen.append(peer[0])
                try:
                    conn.sendall(peer[0].encode())
                except OSError:
                    pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


def connect(ns: Namespace, addr: str, port: int, timeout: float = 3.0) -> str | None:
    """Connects from inside `ns`; returns what the server answered (the source address
    it saw), or None if the connection failed within `timeout`."""
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    s = ns.socket(family, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect((addr, port))
        data = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            chunk = s.recv(256)
            if not chunk:
                break
            data += chunk
        return data.decode()
    except OSError:
        return None
    finally:
        s.close()


def eventually(check: Callable[[], object], timeout: float = 5.0) -> object:
    """Polls `check` until it returns something truthy or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


def servers(*items: Server) -> Iterator[Server]:
    yield from items
