"""A loopback UDP + TCP recorder: captures the raw bytes a memberlist node sends to
127.0.0.1:<port>, for codec tests.

- UDP: every datagram received, with its source.
- TCP: every connection's bytes. By default the recorder answers nothing (the sender
  times out); with `tcp_forward="127.0.0.1:port"` it relays each connection to that
  address and records both directions, e.g. a whole push/pull exchange.

It binds 127.0.0.1 only, and UDP and TCP on the same port, as memberlist does.
"""

from __future__ import annotations

import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import TypeVar

HOST = "127.0.0.1"
T = TypeVar("T")


@dataclass(frozen=True)
class Datagram:
    src: tuple[str, int]
    data: bytes
    t: float  # time.monotonic() at reception


@dataclass
class TcpStream:
    src: tuple[str, int]
    t: float  # time.monotonic() at accept
    received: bytearray = field(default_factory=bytearray)  # what the client sent
    replied: bytearray = field(default_factory=bytearray)  # what the forward target answered
    client_closed: bool = False  # the client shut down its sending side (or reset)
    closed: bool = False  # both directions finished, sockets closed


@dataclass
class _Relay:
    stream: TcpStream
    client: socket.socket
    upstream: socket.socket | None
    open_ends: int


def _parse_addr(addr: str | tuple[str, int]) -> tuple[str, int]:
    if isinstance(addr, tuple):
        host, port = addr
    else:
        host, _, p = addr.rpartition(":")
        port = int(p)
    if host not in (HOST, "localhost"):
        raise ValueError(f"the recorder only talks to {HOST}, not {host}")
    return HOST, port


class LoopbackRecorder:
    """Listens on 127.0.0.1:`port` (0 = a free port usable by both UDP and TCP)."""

    def __init__(
        self,
        port: int = 0,
        *,
        udp: bool = True,
        tcp: bool = True,
        tcp_forward: str | tuple[str, int] | None = None,
    ) -> None:
        if not (udp or tcp):
            raise ValueError("record UDP, TCP or both")
        self._forward = _parse_addr(tcp_forward) if tcp_forward is not None else None
        self._cond = threading.Condition()
        self._datagrams: list[Datagram] = []
        self._streams: list[TcpStream] = []
        self._udp: socket.socket | None = None
        self._tcp: socket.socket | None = None
        self._bind(port, udp, tcp)
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        if self._udp is not None:
            self._sel.register(self._udp, selectors.EVENT_READ, self._on_udp)
        if self._tcp is not None:
            self._sel.register(self._tcp, selectors.EVENT_READ, self._on_accept)
        self._stopping = False
        self._thread = threading.Thread(
            target=self._loop, name=f"recorder-{self.port}", daemon=True
        )
        self._thread.start()

    def _bind(self, port: int, udp: bool, tcp: bool) -> None:
        for _ in range(50):
            socks: list[socket.socket] = []
            try:
                p = port
                if udp:
                    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    socks.append(u)
                    u.bind((HOST, p))
                    p = u.getsockname()[1]
                if tcp:
                    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    socks.append(t)
                    # A node just killed on this port may leave TIME_WAIT connections.
                    t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    t.bind((HOST, p))
                    t.listen(16)
                    p = t.getsockname()[1]
            except OSError:
                for sock in socks:
                    sock.close()
                if port:
                    raise
                continue  # the free UDP port is taken for TCP: try another one
            self._udp = socks[0] if udp else None
            self._tcp = socks[-1] if tcp else None
            self.port = p
            return
        raise OSError(f"no port free for both UDP and TCP on {HOST}")

    @property
    def addr(self) -> str:
        return f"{HOST}:{self.port}"

    # -- event loop ----------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stopping:
            for key, _ in self._sel.select():
                if key.data is None:
                    return  # woken by close()
                key.data(key.fileobj)

    def _on_udp(self, sock: socket.socket) -> None:
        data, src = sock.recvfrom(65536)
        with self._cond:
            self._datagrams.append(Datagram(src=src, data=data, t=time.monotonic()))
            self._cond.notify_all()

    def _on_accept(self, sock: socket.socket) -> None:
        client, src = sock.accept()
        stream = TcpStream(src=src, t=time.monotonic())
        upstream = None
        if self._forward is not None:
            try:
                upstream = socket.create_connection(self._forward, timeout=5)
            except OSError:
                client.close()
                stream.client_closed = stream.closed = True
                self._add_stream(stream)
                return
        relay = _Relay(stream, client, upstream, 2 if upstream else 1)
        self._add_stream(stream)
        self._sel.register(client, selectors.EVENT_READ, self._reader(relay, from_client=True))
        if upstream is not None:
            self._sel.register(
                upstream, selectors.EVENT_READ, self._reader(relay, from_client=False)
            )

    def _add_stream(self, stream: TcpStream) -> None:
        with self._cond:
            self._streams.append(stream)
            self._cond.notify_all()

    def _reader(self, relay: _Relay, *, from_client: bool) -> Callable[[socket.socket], None]:
        def on_read(sock: socket.socket) -> None:
            try:
                data = sock.recv(65536)
            except OSError:
                data = b""
            peer = relay.upstream if from_client else relay.client
            with self._cond:
                if data:
                    (relay.stream.received if from_client else relay.stream.replied).extend(data)
                elif from_client:
                    relay.stream.client_closed = True
                self._cond.notify_all()
            if data:
                if peer is not None:
                    try:
                        peer.sendall(data)
                    except OSError:
                        pass
                return
            # This direction is finished: pass the end of stream on.
            self._sel.unregister(sock)
            relay.open_ends -= 1
            if peer is not None:
                try:
                    peer.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
            if relay.open_ends == 0:
                relay.client.close()
                if relay.upstream is not None:
                    relay.upstream.close()
                with self._cond:
                    relay.stream.closed = True
                    self._cond.notify_all()

        return on_read

    # -- results -------------------------------------------------------------------

    def datagrams(self) -> list[Datagram]:
        with self._cond:
            return list(self._datagrams)

    def streams(self) -> list[TcpStream]:
        """The TCP connections so far (live objects: they fill while connections last)."""
        with self._cond:
            return list(self._streams)

    def _await(self, check: Callable[[], T | None], timeout: float, what: str) -> T:
        deadline = time.monotonic() + timeout
        with self._cond:
            while (result := check()) is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"recorder {self.addr}: no {what} within {timeout:.1f} s "
                        f"({len(self._datagrams)} datagrams, {len(self._streams)} TCP streams)"
                    )
                self._cond.wait(remaining)
            return result

    def wait_datagram(
        self, predicate: Callable[[Datagram], bool] = lambda d: True, timeout: float = 10.0
    ) -> Datagram:
        """The first datagram received for which `predicate` is true."""
        return self._await(
            lambda: next((d for d in self._datagrams if predicate(d)), None), timeout, "datagram"
        )

    def wait_stream(
        self, predicate: Callable[[TcpStream], bool] = lambda s: s.closed, timeout: float = 10.0
    ) -> TcpStream:
        """The first TCP stream for which `predicate` is true (by default: finished)."""
        return self._await(
            lambda: next((s for s in self._streams if predicate(s)), None), timeout, "TCP stream"
        )

    # -- lifetime ------------------------------------------------------------------

    def close(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        self._wake_w.send(b"x")
        self._thread.join(timeout=5)
        for key in list(self._sel.get_map().values()):
            sock = key.fileobj
            if isinstance(sock, socket.socket):
                sock.close()
        self._sel.close()
        self._wake_w.close()

    def __enter__(self) -> LoopbackRecorder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
