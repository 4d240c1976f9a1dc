"""The asyncio transport that drives a sans-IO gossip machine: one UDP socket
and one TCP listener on the same port, a timer, and TCP exchanges for streams.
The machine decides everything; this module only moves bytes and time."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Callable
from typing import Any, Protocol

from pyln import errors

# One stream message may not exceed this (memberlist caps push/pull state at 20 MB).
MAX_STREAM_BYTES = 32 << 20


def now_us() -> int:
    """The machines' clock: monotonic microseconds."""
    return time.monotonic_ns() // 1000


class Machine(Protocol):
    """What the transport needs from a machine (the _core classes have it)."""

    def handle_packet(self, now: int, host: str, port: int, data: bytes) -> None: ...
    def handle_stream(self, now: int, host: str, port: int, data: bytes) -> bytes | None: ...
    def handle_stream_reply(self, now: int, token: int, data: bytes | None = None) -> bool: ...
    def stream_frame_len(self, buf: bytes) -> int | None: ...
    def poll_timeout(self) -> int: ...
    def handle_timeout(self, now: int) -> None: ...
    def take_actions(self) -> list[tuple[str, str, int, bytes, int | None]]: ...
    def leave(self, now: int) -> None: ...
    def leave_finished(self) -> bool: ...


def parse_peer(addr: str, default_port: int = 7946) -> tuple[str, int]:
    """'host:port', '[v6]:port', 'name/host:port' or 'host' -> (ip, port)."""
    text = addr
    if "/" in addr:
        addr = addr.split("/", 1)[1]
    host, port_s = addr, str(default_port)
    if addr.startswith("["):
        end = addr.find("]")
        if end < 0:
            raise errors.BadRequest(f"bad peer address {text!r}")
        host = addr[1:end]
        if addr[end + 1 :].startswith(":"):
            port_s = addr[end + 2 :]
    elif addr.count(":") == 1:
        host, port_s = addr.split(":")
    try:
        port = int(port_s)
    except ValueError:
        raise errors.BadRequest(f"bad port in peer address {text!r}") from None
    if not 0 < port < 65536:
        raise errors.BadRequest(f"port out of range in peer address {text!r}")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except OSError as e:
        raise errors.BadRequest(f"cannot resolve peer {text!r}: {e}") from e
    return str(infos[0][4][0]), port


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, owner: Transport) -> None:
        self.owner = owner

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.owner.on_packet(data, str(addr[0]), int(addr[1]))

    def error_received(self, exc: Exception) -> None:
        # ICMP unreachable and the like: UDP is best effort; the protocol copes.
        pass


class Transport:
    """Binds, then runs `machine` until `close()`. `drop` may return True for
    (direction, host, port) to simulate a partition at the transport."""

    def __init__(
        self,
        machine_factory: Callable[[int], Machine],
        bind_addr: str,
        bind_port: int,
        tcp_timeout: float = 10.0,
    ) -> None:
        self._factory = machine_factory
        self.bind_addr = bind_addr
        self.bind_port = bind_port
        self.tcp_timeout = tcp_timeout
        self.machine: Machine | None = None
        self.port = 0
        self._udp: asyncio.DatagramTransport | None = None
        self._server: asyncio.Server | None = None
        # One loop timer at the machine's next deadline, moved only when that changes.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.Handle | None = None
        self._timer_at = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._waiters: dict[int, asyncio.Future[bool]] = {}
        self._closed = False
        self.drop: Callable[[str, str, int], bool] | None = None
        # Hook run after every input, so layers above can drain their events.
        self.after_input: Callable[[], None] | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        last: OSError | None = None
        for _ in range(20):
            try:
                server = await asyncio.start_server(
                    self._on_conn, self.bind_addr, self.bind_port, reuse_address=True
                )
            except OSError as e:
                raise errors.Unavailable(
                    f"cannot listen on {self.bind_addr}:{self.bind_port}: {e}"
                ) from e
            port = server.sockets[0].getsockname()[1]
            try:
                udp, _ = await loop.create_datagram_endpoint(
                    lambda: _Udp(self), local_addr=(self.bind_addr, port)
                )
            except OSError as e:
                server.close()
                await server.wait_closed()
                last = e
                if self.bind_port:
                    break
                continue
            self._server, self._udp, self.port = server, udp, port
            break
        if self._udp is None:
            raise errors.Unavailable(
                f"cannot bind UDP on {self.bind_addr}:{self.bind_port}: {last}"
            )
        self.machine = self._factory(self.port)
        self._loop = loop
        self.flush()

    @property
    def m(self) -> Machine:
        if self.machine is None or self._closed:
            raise errors.DatabaseClosed("the gossip transport is closed")
        return self.machine

    # ---- inputs ----------------------------------------------------------------

    def on_packet(self, data: bytes, host: str, port: int) -> None:
        if self._closed or self.machine is None:
            return
        if self.drop is not None and self.drop("in", host, port):
            return
        self.machine.handle_packet(now_us(), host, port, data)
        self.flush()

    async def _read_frame(self, reader: asyncio.StreamReader, buf: bytearray) -> bytes | None:
        """Reads until one whole stream message is in `buf`; returns it."""
        while True:
            if buf:
                n = self.m.stream_frame_len(bytes(buf))
                if n is not None:
                    msg = bytes(buf[:n])
                    del buf[:n]
                    return msg
            if len(buf) > MAX_STREAM_BYTES:
                raise errors.GossipProtocolError("stream message too large")
            chunk = await reader.read(65536)
            if not chunk:
                return None
            buf.extend(chunk)

    async def _on_conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        host, port = str(peer[0]), int(peer[1])
        buf = bytearray()
        try:
            if self.drop is not None and self.drop("in", host, port):
                return
            while not self._closed:
                msg = await asyncio.wait_for(self._read_frame(reader, buf), self.tcp_timeout)
                if msg is None:
                    return
                reply = self.m.handle_stream(now_us(), host, port, msg)
                self.flush()
                if reply is not None:
                    writer.write(reply)
                    await writer.drain()
        except (OSError, TimeoutError, errors.PylnError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await writer.wait_closed()

    async def _stream(self, host: str, port: int, data: bytes, token: int | None) -> None:
        reply: bytes | None = None
        try:
            if self.drop is not None and self.drop("out", host, port):
                raise ConnectionRefusedError("dropped")
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port), self.tcp_timeout
            )
            try:
                writer.write(data)
                await writer.drain()
                if token is not None:
                    reply = await asyncio.wait_for(
                        self._read_frame(reader, bytearray()), self.tcp_timeout
                    )
            finally:
                writer.close()
                with contextlib.suppress(OSError, ConnectionError):
                    await writer.wait_closed()
        except (OSError, TimeoutError, errors.PylnError):
            reply = None
        if token is None or self._closed:
            return
        ok = False
        try:
            ok = self.m.handle_stream_reply(now_us(), token, reply)
        except errors.PylnError:
            ok = False
        self.flush()
        fut = self._waiters.pop(token, None)
        if fut is not None and not fut.done():
            fut.set_result(ok)

    # ---- outputs ---------------------------------------------------------------

    def flush(self) -> None:
        """Carries out the machine's actions and re-arms the timer."""
        if self.machine is None or self._closed:
            return
        for kind, host, port, data, token in self.machine.take_actions():
            if kind == "packet":
                if self._udp is not None and not (
                    self.drop is not None and self.drop("out", host, port)
                ):
                    self._udp.sendto(data, (host, port))
            else:
                t = asyncio.create_task(self._stream(host, port, data, token))
                self._tasks.add(t)
                t.add_done_callback(self._tasks.discard)
        self._arm()
        if self.after_input is not None:
            self.after_input()

    def waiter(self, token: int) -> asyncio.Future[bool]:
        """A future resolved with the outcome of the stream exchange `token`."""
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiters[token] = fut
        return fut

    def _arm(self) -> None:
        """Schedules `_on_timer` at the machine's next deadline (if it moved)."""
        m = self.machine
        if m is None or self._closed or self._loop is None:
            return
        at = m.poll_timeout()
        if self._timer is not None:
            if at == self._timer_at:
                return
            self._timer.cancel()
        self._timer_at = at
        # Whole milliseconds, rounded up: the loop's timers step in milliseconds, and a
        # shorter delay would run the callback early, again and again, until due.
        ms = max(0, -(-(at - now_us()) // 1000))
        self._timer = self._loop.call_later(ms / 1000, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        m = self.machine
        if m is None or self._closed:
            return
        try:
            now = now_us()
            # The loop's clock has millisecond steps: a timer may fire a little early.
            if m.poll_timeout() <= now:
                m.handle_timeout(now)
        finally:
            self.flush()

    async def leave(self, timeout: float) -> bool:
        """The machine's graceful leave; waits (up to `timeout`) until the leave
        went out. True if it did."""
        m = self.m
        m.leave(now_us())
        self.flush()
        deadline = asyncio.get_running_loop().time() + timeout
        while not m.leave_finished() and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        return bool(m.leave_finished())

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for t in list(self._tasks):
            t.cancel()
        for t in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        for fut in self._waiters.values():
            if not fut.done():
                fut.set_result(False)
        if self._udp is not None:
            self._udp.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        # Drop the machine here, on the loop's thread. The layer above holds this
        # transport in a reference cycle (after_input is its bound method), so the
        # machine would otherwise be freed by the cyclic GC on whatever thread runs
        # it, and an unsendable PyO3 object dropped on another thread is leaked
        # with an error printed.
        self.after_input = None
        self.machine = None
