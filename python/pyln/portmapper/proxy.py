"""The userland proxy: ONE process serving every published port of a network namespace
(libnetwork ran one docker-proxy process per port). Run as

    python -m pyln.portmapper.proxy --netns PATH --control SOCKETPATH

It enters the namespace first (setns affects only the calling thread, so this happens
before any thread or socket exists), then serves TCP and UDP forwards on an asyncio
loop and takes orders as JSON lines on a unix stream socket:

    {"op": "add", "proto": "tcp", "host_ip": "127.0.0.1", "host_port": 8080,
     "backend_ip": "10.230.0.2", "backend_port": 80}    -> {"ok": true, "host_port": 8080}
    {"op": "adopt", "proto": ..., "host_ip": ..., "host_port": ..., "backend_ip": ...,
     "backend_port": ...}    (with the bound socket passed as SCM_RIGHTS; see below)
    {"op": "remove", "proto": ..., "host_ip": ..., "host_port": ...}  -> {"ok": true}
    {"op": "list"}  -> {"ok": true, "forwards": [...]}
    {"op": "ping"}  -> {"ok": true, "pid": ..., "forwards": N, "connections": N,
                        "udp_flows": N}

"adopt" is how pyln's manager publishes ports: it binds the host port itself (so that
publishing never waits for this process to start, and a port stays bound across a
proxy restart) and sends the socket with the request line, one descriptor per adopt
request, in the same sendmsg. Each adopt request takes the oldest descriptor received
on its connection and not yet taken.

Failures answer {"ok": false, "error": "...", "kind": K} with K one of "bind" (the
host address cannot be bound), "bad_request", "not_found" or "internal"; bad input
never stops the process. SIGTERM (also sent when the parent dies) stops it cleanly.

This module imports the standard library only, so the
manager runs it as a file (`python -I .../proxy.py`) without loading the pyln package.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import collections
import ctypes
import ipaddress
import json
import logging
import os
import signal
import socket
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

CLONE_NEWNET = 0x40000000
PR_SET_PDEATHSIG = 1
#: libnetwork's UDPConnTrackTimeout.
DEFAULT_UDP_TIMEOUT = 90.0
DEFAULT_CONNECT_TIMEOUT = 30.0
UDP_BUFSIZE = 65535
MAX_CONTROL_LINE = 64 * 1024
LISTEN_BACKLOG = 1024
#: Datagrams read from one backend socket per wake-up, so one busy flow cannot starve
#: the others.
UDP_READ_BATCH = 64
PROTOCOLS = ("tcp", "udp", "sctp")
#: Descriptors one recvmsg may carry (the kernel's SCM_MAX_FD).
MAX_FDS_PER_MSG = 253

log = logging.getLogger("pyln.portmapper.proxy")


class RequestError(Exception):
    """A control request that fails with a reply kind (bind, bad_request, ...)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


# -- forwards ----------------------------------------------------------------------


@dataclass(frozen=True)
class ForwardSpec:
    """One published port: host address and port to the backend address and port."""

    proto: str
    host_ip: str
    host_port: int
    backend_ip: str
    backend_port: int

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.proto, self.host_ip, self.host_port)


def _port(msg: dict[str, Any], field: str, *, allow_zero: bool) -> int:
    value = msg.get(field)
    if not isinstance(value, int) or isinstance(value, bool):
        raise RequestError("bad_request", f"{field} must be an integer, not {value!r}")
    low = 0 if allow_zero else 1
    if not low <= value <= 65535:
        raise RequestError("bad_request", f"{field} {value} is not in {low}-65535")
    return value


def _address(msg: dict[str, Any], field: str) -> str:
    value = msg.get(field)
    if not isinstance(value, str):
        raise RequestError("bad_request", f"{field} must be an address string, not {value!r}")
    try:
        addr = ipaddress.ip_address(value)
    except ValueError:
        raise RequestError("bad_request", f"{field} {value!r} is not an IP address") from None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    return str(addr)


def _proto(msg: dict[str, Any]) -> str:
    proto = msg.get("proto")
    if proto not in PROTOCOLS:
        raise RequestError("bad_request", f"proto must be one of {PROTOCOLS}, not {proto!r}")
    return str(proto)


def _family(ip: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in ip else socket.AF_INET


def socket_kind(proto: str) -> tuple[socket.SocketKind, int]:
    """The socket type and protocol number serving `proto` (sctp: one-to-one style)."""
    if proto == "udp":
        return socket.SOCK_DGRAM, 0
    if proto == "sctp":
        return socket.SOCK_STREAM, socket.IPPROTO_SCTP
    return socket.SOCK_STREAM, 0


def _bind(spec: ForwardSpec) -> socket.socket:
    """A non-blocking socket bound to the host address; bind failures (and a kernel
    without the protocol) are RequestErrors of kind "bind"."""
    family = _family(spec.host_ip)
    kind, proto = socket_kind(spec.proto)
    try:
        sock = socket.socket(family, kind, proto)
    except OSError as e:
        raise RequestError("bind", f"cannot open a {spec.proto} socket: {e.strerror}") from None
    try:
        if kind == socket.SOCK_STREAM:
            # As Go's net.Listen: restarting over TIME_WAIT connections must work; two
            # listeners on one port are still refused.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        try:
            sock.bind((spec.host_ip, spec.host_port))
        except OSError as e:
            raise RequestError("bind", e.strerror or str(e)) from None
        sock.setblocking(False)
        return sock
    except BaseException:
        sock.close()
        raise


def _adopted(spec: ForwardSpec, fd: int) -> socket.socket:
    """Wraps a descriptor passed with an adopt request, after checking that it is a
    socket of the request's protocol bound to its host address and port; the
    descriptor is closed if not."""
    try:
        sock = socket.socket(fileno=fd)
    except OSError as e:
        os.close(fd)
        raise RequestError("bad_request", f"the passed descriptor is not a socket: {e}") from None
    try:
        kind, proto = socket_kind(spec.proto)
        got_proto = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PROTOCOL)
        if sock.type != kind or (proto and got_proto != proto):
            raise RequestError("bad_request", f"the passed socket is not a {spec.proto} socket")
        if sock.family != _family(spec.host_ip):
            raise RequestError("bad_request", f"the passed socket is not bound to {spec.host_ip}")
        host, port = sock.getsockname()[:2]
        if ipaddress.ip_address(host) != ipaddress.ip_address(spec.host_ip) or (
            spec.host_port and port != spec.host_port
        ):
            raise RequestError(
                "bad_request",
                f"the passed socket is bound to {host} port {port},"
                f" not {spec.host_ip} port {spec.host_port}",
            )
        sock.setblocking(False)
        return sock
    except BaseException:
        sock.close()
        raise


class _Side(asyncio.Protocol):
    """One socket of a TCP pipe; what it reads goes to its peer."""

    def __init__(self, pipe: _Pipe) -> None:
        self.pipe = pipe
        self.transport: asyncio.Transport | None = None
        self.peer: _Side | None = None
        self.eof = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.pipe.made(self)

    def data_received(self, data: bytes) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.write(data)

    def eof_received(self) -> bool:
        self.eof = True
        self.pipe.half_closed(self)
        return True  # keep the transport: the other direction may still be running

    def pause_writing(self) -> None:
        # Our send buffer is full: stop reading what the peer would have us write.
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.pipe.lost(self, exc)


class _Pipe:
    """An accepted client connection and its backend connection, copied both ways.
    EOF travels as a half-close; an error on either side aborts both."""

    def __init__(self, fwd: TcpForward) -> None:
        self.fwd = fwd
        self.client = _Side(self)
        self.backend: _Side | None = None
        self.closed = False
        self.task: asyncio.Task[None] | None = None

    def made(self, side: _Side) -> None:
        if side is self.client:
            # Hold the client's bytes in the kernel until the backend is there.
            assert side.transport is not None
            side.transport.pause_reading()
            self.fwd.pipes.add(self)
            self.task = asyncio.get_running_loop().create_task(self._connect())
        else:
            self.backend = side
            side.peer, self.client.peer = self.client, side

    async def _connect(self) -> None:
        spec = self.fwd.spec
        try:
            transport, _ = await asyncio.wait_for(self._open(), self.fwd.connect_timeout)
        except (OSError, TimeoutError) as e:
            log.warning("cannot forward tcp %s:%d to %s:%d: %s", *spec.key[1:], *_backend(spec), e)
            self.abort()
            return
        if self.closed:
            transport.abort()
            return
        assert self.client.transport is not None
        self.client.transport.resume_reading()

    async def _open(self) -> tuple[asyncio.Transport, asyncio.BaseProtocol]:
        """The backend connection: tcp, or sctp on a socket opened here (asyncio only
        opens tcp sockets itself)."""
        loop = asyncio.get_running_loop()
        spec = self.fwd.spec
        if spec.proto != "sctp":
            return await loop.create_connection(
                lambda: _Side(self), spec.backend_ip, spec.backend_port
            )
        sock = socket.socket(_family(spec.backend_ip), socket.SOCK_STREAM, socket.IPPROTO_SCTP)
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, _backend(spec))
            return await loop.create_connection(lambda: _Side(self), sock=sock)
        except BaseException:
            sock.close()
            raise

    def half_closed(self, side: _Side) -> None:
        other = side.peer
        if other is None or other.transport is None or other.transport.is_closing():
            self.close()
            return
        if other.transport.can_write_eof():
            other.transport.write_eof()
        if other.eof:
            self.close()

    def lost(self, side: _Side, exc: Exception | None) -> None:
        if exc is not None:
            self.abort()
        else:
            self.close()

    def close(self) -> None:
        """Closes both sides after their buffered bytes are sent."""
        self._finish(abort=False)

    def abort(self) -> None:
        """Closes both sides now, dropping buffered bytes (an error, or the forward is
        removed)."""
        self._finish(abort=True)

    def _finish(self, *, abort: bool) -> None:
        first = not self.closed
        self.closed = True
        for side in (self.client, self.backend):
            if side is not None and side.transport is not None:
                if abort:
                    side.transport.abort()
                elif not side.transport.is_closing():
                    side.transport.close()
        if first:
            self.fwd.pipes.discard(self)
            if self.task is not None and not self.task.done():
                self.task.cancel()


def _backend(spec: ForwardSpec) -> tuple[str, int]:
    return spec.backend_ip, spec.backend_port


class TcpForward:
    """A listener on the host address (tcp, or sctp one-to-one style); each accepted
    connection gets a _Pipe."""

    def __init__(self, spec: ForwardSpec, connect_timeout: float) -> None:
        self.spec = spec
        self.connect_timeout = connect_timeout
        self.pipes: set[_Pipe] = set()
        self.server: asyncio.AbstractServer | None = None

    async def start(self, sock: socket.socket | None = None) -> int:
        """Serves `sock` (bound by the caller), or a socket bound here."""
        sock = _bind(self.spec) if sock is None else sock
        try:
            sock.listen(LISTEN_BACKLOG)  # again on a listening socket: only the backlog
            loop = asyncio.get_running_loop()
            self.server = await loop.create_server(lambda: _Pipe(self).client, sock=sock)
        except BaseException:
            sock.close()
            raise
        return int(sock.getsockname()[1])

    def close(self) -> None:
        """Stops listening and drops the established connections, as docker-proxy did."""
        if self.server is not None:
            self.server.close()
        for pipe in list(self.pipes):
            pipe.abort()


class _Flow:
    """One UDP client of a forward: a connected socket to the backend whose replies go
    back to the client from the forward's own socket. Ends after `idle` seconds with
    no datagram either way."""

    def __init__(self, fwd: UdpForward, client: tuple[Any, ...]) -> None:
        self.fwd = fwd
        self.client = client
        self.key = client[:2]
        self.loop = asyncio.get_running_loop()
        sock = socket.socket(_family(fwd.spec.backend_ip), socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.connect(_backend(fwd.spec))
            self.loop.add_reader(sock.fileno(), self._readable)
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self.last = self.loop.time()
        self.timer = self.loop.call_later(fwd.idle_timeout, self._check_idle)

    def send(self, data: bytes) -> None:
        self.last = self.loop.time()
        try:
            self.sock.send(data)
        except (BlockingIOError, ConnectionRefusedError):
            pass  # UDP may drop; a refusal reports an earlier datagram, as in docker-proxy
        except OSError as e:
            log.warning("cannot forward a udp datagram to %s:%d: %s", *_backend(self.fwd.spec), e)

    def _readable(self) -> None:
        for _ in range(UDP_READ_BATCH):
            try:
                data = self.sock.recv(UDP_BUFSIZE)
            except BlockingIOError:
                return
            except ConnectionRefusedError:
                continue  # nothing listens on the backend (yet); keep the flow
            except OSError as e:
                log.warning("udp flow from %s ended: %s", self.client, e)
                self.close()
                return
            self.last = self.loop.time()
            if self.fwd.transport is not None:
                self.fwd.transport.sendto(data, self.client)

    def _check_idle(self) -> None:
        idle = self.loop.time() - self.last
        if idle >= self.fwd.idle_timeout:
            self.close()
        else:
            self.timer = self.loop.call_later(self.fwd.idle_timeout - idle, self._check_idle)

    def close(self) -> None:
        self.timer.cancel()
        if self.fwd.flows.get(self.key) is self:
            del self.fwd.flows[self.key]
        if self.sock.fileno() >= 0:
            self.loop.remove_reader(self.sock.fileno())
            self.sock.close()


class UdpForward(asyncio.DatagramProtocol):
    """A datagram socket on the host address with one _Flow per client address."""

    def __init__(self, spec: ForwardSpec, idle_timeout: float) -> None:
        self.spec = spec
        self.idle_timeout = idle_timeout
        self.flows: dict[tuple[Any, ...], _Flow] = {}
        self.transport: asyncio.DatagramTransport | None = None
        #: Set once the transport has closed the socket (asyncio does that on a later
        #: loop pass than close()).
        self.closed = asyncio.get_running_loop().create_future()

    async def start(self, sock: socket.socket | None = None) -> int:
        """Serves `sock` (bound by the caller), or a socket bound here."""
        sock = _bind(self.spec) if sock is None else sock
        try:
            loop = asyncio.get_running_loop()
            await loop.create_datagram_endpoint(lambda: self, sock=sock)
        except BaseException:
            sock.close()
            raise
        return int(sock.getsockname()[1])

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        flow = self.flows.get(addr[:2])
        if flow is None:
            try:
                flow = _Flow(self, addr)
            except OSError as e:
                log.warning("cannot proxy a datagram to udp %s:%d: %s", *_backend(self.spec), e)
                return
            self.flows[flow.key] = flow
        flow.send(data)

    def error_received(self, exc: Exception) -> None:
        log.debug("udp %s:%d: %s", self.spec.host_ip, self.spec.host_port, exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        elif not self.closed.done():
            self.closed.set_result(None)
        for flow in list(self.flows.values()):
            flow.close()

    async def wait_closed(self) -> None:
        """Returns once the host socket is closed (the port is free)."""
        await self.closed


Forward = TcpForward | UdpForward


# -- control -----------------------------------------------------------------------


class Proxy:
    """The forwards of this process and the control protocol that changes them."""

    def __init__(self, udp_timeout: float, connect_timeout: float) -> None:
        self.udp_timeout = udp_timeout
        self.connect_timeout = connect_timeout
        self.forwards: dict[tuple[str, str, int], Forward] = {}
        self.controls: set[_Control] = set()
        self.stopping = asyncio.Event()

    async def dispatch(
        self, line: bytes, fds: collections.deque[int] | None = None
    ) -> dict[str, Any]:
        """The reply to one request line; never raises. An adopt request takes the
        oldest descriptor of `fds` (those passed on its connection)."""
        try:
            try:
                msg = json.loads(line)
            except ValueError as e:
                raise RequestError("bad_request", f"invalid JSON: {e}") from None
            if not isinstance(msg, dict):
                raise RequestError("bad_request", "a request must be a JSON object")
            op = msg.get("op")
            if op == "ping":
                flows = sum(
                    len(f.flows) for f in self.forwards.values() if isinstance(f, UdpForward)
                )
                connections = sum(
                    len(f.pipes) for f in self.forwards.values() if isinstance(f, TcpForward)
                )
                return {
                    "ok": True,
                    "pid": os.getpid(),
                    "forwards": len(self.forwards),
                    "connections": connections,
                    "udp_flows": flows,
                }
            if op == "list":
                specs = [asdict(f.spec) for f in self.forwards.values()]
                return {"ok": True, "forwards": specs}
            if op == "add":
                return {"ok": True, "host_port": await self.add(msg)}
            if op == "adopt":
                if not fds:
                    raise RequestError("bad_request", "adopt needs a socket passed with it")
                return {"ok": True, "host_port": await self.add(msg, fds.popleft())}
            if op == "remove":
                await self.remove(msg)
                return {"ok": True}
            raise RequestError("bad_request", f"unknown op {op!r}")
        except RequestError as e:
            return _fail(e.kind, str(e))
        except Exception as e:
            log.exception("control request failed: %r", line[:200])
            return _fail("internal", f"{type(e).__name__}: {e}")

    async def add(self, msg: dict[str, Any], fd: int | None = None) -> int:
        """Starts a forward on socket `fd` (adopt) or on one bound here (add); adding
        the same one again is a no-op (and closes `fd`: the first socket serves)."""
        try:
            spec = ForwardSpec(
                proto=_proto(msg),
                host_ip=_address(msg, "host_ip"),
                host_port=_port(msg, "host_port", allow_zero=fd is None),
                backend_ip=_address(msg, "backend_ip"),
                backend_port=_port(msg, "backend_port", allow_zero=False),
            )
        except BaseException:
            if fd is not None:
                os.close(fd)
            raise
        sock = None if fd is None else _adopted(spec, fd)
        existing = self.forwards.get(spec.key)
        if existing is not None:
            if sock is not None:
                sock.close()
            if existing.spec == spec:
                return spec.host_port
            old = existing.spec
            raise RequestError("bind", f"already forwarded to {old.backend_ip}:{old.backend_port}")
        fwd: Forward = (
            UdpForward(spec, self.udp_timeout)
            if spec.proto == "udp"
            else TcpForward(spec, self.connect_timeout)
        )
        port = await fwd.start(sock)
        if port != spec.host_port:  # host_port 0: the kernel chose one
            fwd.spec = ForwardSpec(spec.proto, spec.host_ip, port, *_backend(spec))
        self.forwards[fwd.spec.key] = fwd
        log.info("forwarding %s %s:%d to %s:%d", *fwd.spec.key, *_backend(fwd.spec))
        return port

    async def remove(self, msg: dict[str, Any]) -> None:
        """Stops a forward: the port is closed (before the reply, so that the caller
        can bind it again at once) and its connections dropped."""
        key = (_proto(msg), _address(msg, "host_ip"), _port(msg, "host_port", allow_zero=False))
        fwd = self.forwards.pop(key, None)
        if fwd is None:
            raise RequestError("not_found", "no forward on {} {}:{}".format(*key))
        fwd.close()  # a tcp listener closes here and now; a udp transport on a later pass
        if isinstance(fwd, UdpForward):
            await fwd.wait_closed()
        log.info("stopped forwarding %s %s:%d", *key)

    def close_all(self) -> None:
        for fwd in self.forwards.values():
            fwd.close()
        self.forwards.clear()


class _Control:
    """One control connection: request lines in, a reply line for each, in order.
    Read with recvmsg, so that sockets passed with adopt requests (SCM_RIGHTS) are
    received; asyncio's streams would drop them."""

    def __init__(self, proxy: Proxy, sock: socket.socket) -> None:
        self.proxy = proxy
        self.sock = sock
        self.loop = asyncio.get_running_loop()
        self.buf = b""
        self.fds: collections.deque[int] = collections.deque()
        self.lines: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.reading = True
        sock.setblocking(False)
        self.loop.add_reader(sock.fileno(), self._readable)
        self.task = self.loop.create_task(self._serve())

    def _readable(self) -> None:
        try:
            data, ancdata, flags, _ = self.sock.recvmsg(
                65536, socket.CMSG_SPACE(MAX_FDS_PER_MSG * 4)
            )
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data, ancdata, flags = b"", [], 0
        for level, kind, cdata in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                passed = array.array("i")
                passed.frombytes(cdata[: len(cdata) - len(cdata) % passed.itemsize])
                self.fds.extend(passed)
        if flags & socket.MSG_CTRUNC:
            log.warning("control message truncated: passed sockets were lost")
        if not data:
            self._stop_reading()
            self.lines.put_nowait(None)
            return
        self.buf += data
        *lines, self.buf = self.buf.split(b"\n")
        for line in lines:
            self.lines.put_nowait(line)
        if len(self.buf) > MAX_CONTROL_LINE:
            self._stop_reading()
            self.lines.put_nowait(_TOO_LONG)

    def _stop_reading(self) -> None:
        if self.reading:
            self.reading = False
            self.loop.remove_reader(self.sock.fileno())

    async def _serve(self) -> None:
        try:
            while True:
                line = await self.lines.get()
                if line is None:
                    return
                if line is _TOO_LONG:
                    reply = _fail("bad_request", f"request longer than {MAX_CONTROL_LINE} bytes")
                    await self.loop.sock_sendall(self.sock, _encode(reply))
                    return
                if not line.strip():
                    continue
                reply = await self.proxy.dispatch(line, self.fds)
                await self.loop.sock_sendall(self.sock, _encode(reply))
        except (ConnectionError, OSError):
            pass
        finally:
            self.close()

    def close(self) -> None:
        self._stop_reading()
        while self.fds:
            os.close(self.fds.popleft())
        self.sock.close()
        self.proxy.controls.discard(self)


_TOO_LONG = b"\0too long"


async def _control_server(proxy: Proxy, path: Path) -> socket.socket:
    """Listens on the unix socket `path` (owner-only) and serves each connection."""
    loop = asyncio.get_running_loop()
    if path.is_socket():
        path.unlink()
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    # A unix socket path is limited to 108 bytes: bind by name from its directory.
    old_umask = os.umask(0o177)
    cwd = os.getcwd()
    try:
        os.chdir(path.parent)
        srv.bind(path.name)
    finally:
        os.chdir(cwd)
        os.umask(old_umask)
    srv.listen(64)
    srv.setblocking(False)

    def accept() -> None:
        try:
            conn, _ = srv.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            log.warning("control accept failed: %s", e)
            return
        proxy.controls.add(_Control(proxy, conn))

    loop.add_reader(srv.fileno(), accept)
    return srv


def _fail(kind: str, error: str) -> dict[str, Any]:
    return {"ok": False, "error": error, "kind": kind}


def _encode(reply: dict[str, Any]) -> bytes:
    return json.dumps(reply, separators=(",", ":")).encode() + b"\n"


# -- process -----------------------------------------------------------------------


def enter_netns(path: str) -> None:
    """Moves this (still single-threaded) process into the network namespace at `path`."""
    threads = os.listdir("/proc/self/task")
    if len(threads) != 1:
        raise RuntimeError(f"refusing to setns with {len(threads)} threads running")
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns into {path}: {os.strerror(err)}")
    finally:
        os.close(fd)


def die_with_parent(parent_pid: int) -> bool:
    """Asks for SIGTERM when the parent goes; False if it is already gone."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    return os.getppid() == parent_pid


async def _serve(args: argparse.Namespace) -> int:
    loop = asyncio.get_running_loop()
    proxy = Proxy(args.udp_timeout, args.connect_timeout)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, proxy.stopping.set)

    control = Path(args.control)
    server = await _control_server(proxy, control)
    log.info("pid %d serving control socket %s", os.getpid(), control)
    if args.ready_fd is not None:
        os.write(args.ready_fd, b"ready\n")
        os.close(args.ready_fd)
    try:
        await proxy.stopping.wait()
    finally:
        loop.remove_reader(server.fileno())
        server.close()
        for conn in list(proxy.controls):
            conn.close()
        proxy.close_all()
        control.unlink(missing_ok=True)
    log.info("stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m pyln.portmapper.proxy")
    parser.add_argument("--netns", required=True, help="network namespace file to enter")
    parser.add_argument("--control", required=True, help="unix socket path for control")
    parser.add_argument("--udp-timeout", type=float, default=DEFAULT_UDP_TIMEOUT)
    parser.add_argument("--connect-timeout", type=float, default=DEFAULT_CONNECT_TIMEOUT)
    parser.add_argument("--ready-fd", type=int, help="fd to write 'ready' to, then close")
    parser.add_argument("--parent-pid", type=int, help="exit when this parent exits")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s pyln-proxy[%(process)d] %(levelname)s %(message)s",
    )
    try:
        enter_netns(args.netns)  # first: before any thread or socket exists
    except (OSError, RuntimeError) as e:
        log.error("%s", e)
        return 2
    if args.parent_pid is not None and not die_with_parent(args.parent_pid):
        log.error("parent %d is gone", args.parent_pid)
        return 1
    # The stdlib loop on purpose: the proxy relies on its half-close and add_reader
    # behaviour for TCP and UDP relaying (uvloop differs there).
    return int(asyncio.run(_serve(args)))


if __name__ == "__main__":
    sys.exit(main())
