"""The userland proxy on the real kernel: a throwaway "host" namespace and a
"container" namespace joined by a veth pair (10.230.0.1/24 - 10.230.0.2/24), echo
servers in the container, the proxy in the host namespace forwarding loopback ports
to them, clients on the host namespace's loopback."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pyln.errors import BadRequest, Forbidden, NotFound
from pyln.osl import Namespace
from pyln.portmapper import (
    ForwardNotFound,
    ProxyBindError,
    ProxyError,
    ProxyManager,
    UnknownProtocol,
)

HOST_IP = "10.230.0.1"
CTR_IP = "10.230.0.2"
TIMEOUT = 5.0


@dataclass
class Net:
    host: Namespace
    ctr: Namespace


@pytest.fixture
def net(make_ns: Callable[[str], Namespace], host_ns: Namespace) -> Net:
    ctr = make_ns("ctr")
    ipr = host_ns.netlink()
    fd = ctr.fd()
    try:
        ipr.link("add", ifname="vh0", kind="veth", peer={"ifname": "eth0", "net_ns_fd": fd})
    finally:
        os.close(fd)
    idx = ipr.link_lookup(ifname="vh0")[0]
    ipr.addr("add", index=idx, address=HOST_IP, prefixlen=24)
    ipr.link("set", index=idx, state="up")
    cipr = ctr.netlink()
    cidx = cipr.link_lookup(ifname="eth0")[0]
    cipr.addr("add", index=cidx, address=CTR_IP, prefixlen=24)
    cipr.link("set", index=cidx, state="up")
    return Net(host_ns, ctr)


class _Server:
    """A socket served by a thread until stop(); a pipe wakes the thread (no polling)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.port: int = sock.getsockname()[1]
        self._r, self._w = os.pipe()
        self._threads: list[threading.Thread] = []
        self._spawn(self._serve)

    def _spawn(self, fn: Callable[..., None], *args: object) -> None:
        t = threading.Thread(target=fn, args=args, daemon=True)
        self._threads.append(t)
        t.start()

    def _wait(self, sock: socket.socket) -> bool:
        """Whether `sock` is readable (False once stop() was called)."""
        readable, _, _ = select.select([sock, self._r], [], [])
        return self._r not in readable

    def _serve(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        os.write(self._w, b"x")
        for t in self._threads:
            t.join(TIMEOUT)
            assert not t.is_alive()
        self.sock.close()
        os.close(self._r)
        os.close(self._w)


class TcpEcho(_Server):
    """Echoes each connection; on the client's EOF, shuts down its side too."""

    def __init__(self, ns: Namespace, ip: str = CTR_IP) -> None:
        sock = ns.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((ip, 0))
        sock.listen(128)
        self.peers: list[tuple[str, int]] = []
        super().__init__(sock)

    def _serve(self) -> None:
        while self._wait(self.sock):
            conn, peer = self.sock.accept()
            self.peers.append(peer)
            self._spawn(self._echo, conn)

    def _echo(self, conn: socket.socket) -> None:
        with conn:
            while self._wait(conn):
                try:
                    data = conn.recv(65536)
                except ConnectionError:
                    return
                if not data:
                    conn.shutdown(socket.SHUT_WR)
                    return
                conn.sendall(data)


class UdpEcho(_Server):
    """Echoes each datagram to its sender and records the senders."""

    def __init__(self, ns: Namespace, ip: str = CTR_IP) -> None:
        sock = ns.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((ip, 0))
        self.peers: list[tuple[str, int]] = []
        super().__init__(sock)

    def _serve(self) -> None:
        while self._wait(self.sock):
            data, peer = self.sock.recvfrom(65536)
            self.peers.append(peer)
            self.sock.sendto(data, peer)


@pytest.fixture
def tcp_echo(net: Net) -> Iterator[TcpEcho]:
    srv = TcpEcho(net.ctr)
    yield srv
    srv.stop()


@pytest.fixture
def udp_echo(net: Net) -> Iterator[UdpEcho]:
    srv = UdpEcho(net.ctr)
    yield srv
    srv.stop()


@pytest.fixture
def proxy(net: Net, tmp_path: Path) -> Iterator[ProxyManager]:
    mgr = ProxyManager(net.host, tmp_path / "run")
    mgr.start()
    yield mgr
    mgr.stop()


def tcp_roundtrip(ns: Namespace, port: int, payload: bytes, ip: str = "127.0.0.1") -> bytes:
    """Sends `payload`, half-closes, and returns everything read until EOF."""
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with ns.socket(family, socket.SOCK_STREAM) as c:
        c.settimeout(TIMEOUT)
        c.connect((ip, port))
        got = bytearray()

        def reader() -> None:
            while chunk := c.recv(65536):
                got.extend(chunk)

        t = threading.Thread(target=reader)
        t.start()
        c.sendall(payload)
        c.shutdown(socket.SHUT_WR)
        t.join(TIMEOUT * 2)
        assert not t.is_alive()
        return bytes(got)


def udp_roundtrip(ns: Namespace, port: int, payload: bytes, ip: str = "127.0.0.1") -> bytes:
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with ns.socket(family, socket.SOCK_DGRAM) as c:
        c.settimeout(TIMEOUT)
        c.connect((ip, port))
        c.send(payload)
        data = c.recv(65536)
        assert c.getpeername()[1] == port
        return data


def refused_tcp(ns: Namespace, port: int) -> bool:
    with ns.socket(socket.AF_INET, socket.SOCK_STREAM) as c:
        c.settimeout(TIMEOUT)
        return c.connect_ex(("127.0.0.1", port)) == 111  # ECONNREFUSED


def refused_udp(ns: Namespace, port: int) -> bool:
    """A datagram to 127.0.0.1:`port` is answered by port unreachable (nobody bound)."""
    with ns.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.settimeout(TIMEOUT)
        u.connect(("127.0.0.1", port))
        u.send(b"anyone?")
        try:
            u.recv(10)
        except ConnectionRefusedError:
            return True
        return False


def free_port(ns: Namespace, kind: socket.SocketKind = socket.SOCK_STREAM) -> int:
    with ns.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(cond: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    """Polls `cond` until it holds, failing after `timeout`."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


# -- tests -------------------------------------------------------------------------


def test_proxy_runs_in_the_given_namespace(proxy: ProxyManager, net: Net) -> None:
    pid = proxy.pid
    assert pid is not None
    assert os.stat(f"/proc/{pid}/ns/net").st_ino == net.host.inode
    assert os.stat(f"/proc/{pid}/ns/net").st_ino != Namespace.current().inode
    assert proxy.stats()["pid"] == pid
    assert proxy.list() == []


def test_tcp_echo_with_half_close(proxy: ProxyManager, net: Net, tcp_echo: TcpEcho) -> None:
    port = proxy.add("tcp", "127.0.0.1", 0, CTR_IP, tcp_echo.port)
    assert port > 0
    assert tcp_roundtrip(net.host, port, b"hello") == b"hello"
    big = os.urandom(4 << 20)  # more than the socket buffers: exercises flow control
    assert tcp_roundtrip(net.host, port, big) == big
    # The backend sees the proxy's address on the veth, not the client.
    assert tcp_echo.peers[-1][0] == HOST_IP
    wait_until(lambda: proxy.stats()["connections"] == 0, "connections to close")


def test_backend_closing_first_is_relayed(proxy: ProxyManager, net: Net) -> None:
    """The backend half-closes first; the client still gets to send afterwards."""
    srv = net.ctr.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind((CTR_IP, 0))
    srv.listen()
    srv.settimeout(TIMEOUT)
    port = proxy.add("tcp", "127.0.0.1", 0, CTR_IP, srv.getsockname()[1])
    with net.host.socket(socket.AF_INET, socket.SOCK_STREAM) as c:
        c.settimeout(TIMEOUT)
        c.connect(("127.0.0.1", port))
        conn, _ = srv.accept()
        with conn:
            conn.settimeout(TIMEOUT)
            conn.sendall(b"banner")
            conn.shutdown(socket.SHUT_WR)
            got = b""
            while chunk := c.recv(100):
                got += chunk
            assert got == b"banner"  # and EOF
            c.sendall(b"late words")
            c.shutdown(socket.SHUT_WR)
            got = b""
            while chunk := conn.recv(100):
                got += chunk
            assert got == b"late words"
    srv.close()


def test_udp_echo_per_client_flows(proxy: ProxyManager, net: Net, udp_echo: UdpEcho) -> None:
    port = proxy.add("udp", "127.0.0.1", 0, CTR_IP, udp_echo.port)
    assert udp_roundtrip(net.host, port, b"ping") == b"ping"
    # Two clients at once each get their own replies, over their own flows.
    a = net.host.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b = net.host.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with a, b:
        for s in (a, b):
            s.settimeout(TIMEOUT)
            s.connect(("127.0.0.1", port))
        a.send(b"from a")
        b.send(b"from b")
        assert b.recv(100) == b"from b"
        assert a.recv(100) == b"from a"
        a.send(b"again")
        assert a.recv(100) == b"again"
        assert proxy.stats()["udp_flows"] == 3
    assert {p[0] for p in udp_echo.peers} == {HOST_IP}
    assert len({p[1] for p in udp_echo.peers}) == 3


def test_udp_flow_idle_timeout(net: Net, tmp_path: Path, udp_echo: UdpEcho) -> None:
    mgr = ProxyManager(net.host, tmp_path / "run", udp_timeout=0.3)
    mgr.start()
    try:
        port = mgr.add("udp", "127.0.0.1", 0, CTR_IP, udp_echo.port)
        with net.host.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
            c.settimeout(TIMEOUT)
            c.connect(("127.0.0.1", port))
            c.send(b"1")
            assert c.recv(10) == b"1"
            assert mgr.stats()["udp_flows"] == 1
            wait_until(lambda: mgr.stats()["udp_flows"] == 0, "the idle flow to end")
            c.send(b"2")
            assert c.recv(10) == b"2"  # a new flow, from a new backend-side socket
        assert udp_echo.peers[0][1] != udp_echo.peers[1][1]
    finally:
        mgr.stop()


def test_ipv6_loopback_frontend(proxy: ProxyManager, net: Net, tcp_echo: TcpEcho) -> None:
    port = proxy.add("tcp", "::1", 0, CTR_IP, tcp_echo.port)
    assert tcp_roundtrip(net.host, port, b"six", ip="::1") == b"six"


def test_many_forwards(proxy: ProxyManager, net: Net, tcp_echo: TcpEcho, udp_echo: UdpEcho) -> None:
    tcp_ports = [proxy.add("tcp", "127.0.0.1", 0, CTR_IP, tcp_echo.port) for _ in range(60)]
    udp_ports = [proxy.add("udp", "127.0.0.1", 0, CTR_IP, udp_echo.port) for _ in range(60)]
    assert len(set(tcp_ports)) == len(set(udp_ports)) == 60
    assert len(proxy.list()) == 120
    results: dict[int, bytes] = {}

    def hit(i: int) -> None:
        results[i] = tcp_roundtrip(net.host, tcp_ports[i], f"tcp {i}".encode())

    threads = [threading.Thread(target=hit, args=(i,)) for i in range(60)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT * 2)
    assert results == {i: f"tcp {i}".encode() for i in range(60)}
    for i, port in enumerate(udp_ports):
        assert udp_roundtrip(net.host, port, f"udp {i}".encode()) == f"udp {i}".encode()


def test_remove_makes_the_port_refuse(
    proxy: ProxyManager, net: Net, tcp_echo: TcpEcho, udp_echo: UdpEcho
) -> None:
    tport = proxy.add("tcp", "127.0.0.1", 0, CTR_IP, tcp_echo.port)
    uport = proxy.add("udp", "127.0.0.1", 0, CTR_IP, udp_echo.port)
    keep = proxy.add("tcp", "127.0.0.1", 0, CTR_IP, tcp_echo.port)
    assert tcp_roundtrip(net.host, tport, b"x") == b"x"
    # An open connection is dropped with its forward.
    c = net.host.socket(socket.AF_INET, socket.SOCK_STREAM)
    c.settimeout(TIMEOUT)
    c.connect(("127.0.0.1", tport))
    c.sendall(b"y")
    assert c.recv(1) == b"y"
    proxy.remove("tcp", "127.0.0.1", tport)
    with c:
        try:
            assert c.recv(1) == b""
        except ConnectionResetError:
            pass
    assert refused_tcp(net.host, tport)
    proxy.remove("udp", "127.0.0.1", uport)
    assert refused_udp(net.host, uport)
    assert [f.host_port for f in proxy.list()] == [keep]
    assert tcp_roundtrip(net.host, keep, b"still") == b"still"
    with pytest.raises(ForwardNotFound) as ei:
        proxy.remove("tcp", "127.0.0.1", tport)
    assert isinstance(ei.value, NotFound)


def test_bind_conflict_is_a_typed_error(
    proxy: ProxyManager, net: Net, tcp_echo: TcpEcho, udp_echo: UdpEcho
) -> None:
    taken = net.host.socket(socket.AF_INET, socket.SOCK_STREAM)
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    pid = proxy.pid
    with taken, pytest.raises(ProxyBindError) as ei:
        proxy.add("tcp", "127.0.0.1", port, CTR_IP, tcp_echo.port)
    err = ei.value
    assert isinstance(err, Forbidden)
    assert (err.proto, err.host_ip, err.host_port) == ("tcp", "127.0.0.1", port)
    assert "in use" in err.reason
    # An address that is not local cannot be bound either.
    with pytest.raises(ProxyBindError):
        proxy.add("udp", "10.230.9.9", 5353, CTR_IP, udp_echo.port)
    assert proxy.pid == pid  # not fatal
    assert proxy.list() == []
    # The same forward twice is a no-op; the same port to another backend is refused.
    p = proxy.add("tcp", "127.0.0.1", 0, CTR_IP, tcp_echo.port)
    assert proxy.add("tcp", "127.0.0.1", p, CTR_IP, tcp_echo.port) == p
    with pytest.raises(ProxyBindError, match="already forwarded"):
        proxy.add("tcp", "127.0.0.1", p, CTR_IP, tcp_echo.port + 1)
    assert tcp_roundtrip(net.host, p, b"ok") == b"ok"


def test_bad_requests(proxy: ProxyManager) -> None:
    with pytest.raises(UnknownProtocol):
        proxy.add("icmp", "127.0.0.1", 80, CTR_IP, 80)
    for args in [
        ("tcp", "nonsense", 80, CTR_IP, 80),
        ("tcp", "127.0.0.1", 70000, CTR_IP, 80),
        ("tcp", "127.0.0.1", 80, CTR_IP, 0),
        ("tcp", "127.0.0.1", 80, "0.0.0.0", 80),
    ]:
        with pytest.raises(BadRequest):
            proxy.add(*args)


def test_garbage_on_the_control_socket(proxy: ProxyManager, tcp_echo: TcpEcho) -> None:
    """Bad control input gets bad_request replies and never stops the proxy."""
    pid = proxy.pid
    requests: list[bytes] = [
        b"not json",
        b"[1, 2]",
        b'"op"',
        b'{"op": "fly"}',
        b'{"op": "add"}',
        b'{"op": "add", "proto": "tcp", "host_ip": "127.0.0.1", "host_port": "80",'
        b' "backend_ip": "10.230.0.2", "backend_port": 80}',
        b'{"op": "add", "proto": "tcp", "host_ip": "127.0.0.1", "host_port": true,'
        b' "backend_ip": "10.230.0.2", "backend_port": 80}',
        b'{"op": "add", "proto": "udp", "host_ip": 7, "host_port": 1,'
        b' "backend_ip": "10.230.0.2", "backend_port": 80}',
        b'{"op": "remove", "proto": "tcp"}',
        b"\xff\xfe\x00",
    ]
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(TIMEOUT)
        s.connect(str(proxy.control_path))
        f = s.makefile("rwb")
        for req in requests:
            f.write(req + b"\n")
            f.flush()
            reply = json.loads(f.readline())
            assert reply["ok"] is False and reply["kind"] == "bad_request", (req, reply)
            assert reply["error"]
        f.write(b'{"op": "ping"}\n')
        f.flush()
        assert json.loads(f.readline())["pid"] == pid
    # An over-long line is refused and that connection closed.
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(TIMEOUT)
        s.connect(str(proxy.control_path))
        s.sendall(b"{" * (200 * 1024) + b"\n")
        assert json.loads(s.makefile("rb").readline())["kind"] == "bad_request"
    # A client that hangs up mid-request does no harm either.
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(str(proxy.control_path))
        s.sendall(b'{"op": "li')
    assert proxy.pid == pid
    assert proxy.ensure() is False
    proxy.add("tcp", "127.0.0.1", 0, CTR_IP, tcp_echo.port)
    assert len(proxy.list()) == 1


def test_backend_down_closes_the_client(proxy: ProxyManager, net: Net) -> None:
    nobody = free_port(net.ctr)
    port = proxy.add("tcp", "127.0.0.1", 0, CTR_IP, nobody)
    with net.host.socket(socket.AF_INET, socket.SOCK_STREAM) as c:
        c.settimeout(TIMEOUT)
        c.connect(("127.0.0.1", port))  # the proxy accepts, then cannot reach the backend
        try:
            assert c.recv(10) == b""
        except ConnectionResetError:
            pass
    assert proxy.pid is not None


def test_kill9_then_ensure_restores_forwards(
    proxy: ProxyManager, net: Net, tcp_echo: TcpEcho, udp_echo: UdpEcho
) -> None:
    tports = [proxy.add("tcp", "127.0.0.1", 0, CTR_IP, tcp_echo.port) for _ in range(5)]
    uport = proxy.add("udp", "127.0.0.1", 0, CTR_IP, udp_echo.port)
    before = proxy.list()
    old = proxy.pid
    assert old is not None
    os.kill(old, signal.SIGKILL)
    assert proxy.ensure() is True
    new = proxy.pid
    assert new is not None and new != old
    assert not Path(f"/proc/{old}").exists()  # reaped
    assert proxy.restarts == 1
    assert proxy.list() == before
    for p in tports:
        assert tcp_roundtrip(net.host, p, b"back") == b"back"
    assert udp_roundtrip(net.host, uport, b"back") == b"back"
    assert proxy.ensure() is False


def test_add_and_remove_restart_a_dead_proxy(
    proxy: ProxyManager, net: Net, tcp_echo: TcpEcho
) -> None:
    first = proxy.add("tcp", "127.0.0.1", 0, CTR_IP, tcp_echo.port)
    pid = proxy.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: proxy.pid is None, "the killed proxy to exit")
    # add does not wait for the new process; the port works once it runs.
    second = proxy.add("tcp", "127.0.0.1", 0, CTR_IP, tcp_echo.port)
    assert tcp_roundtrip(net.host, second, b"2") == b"2"
    assert {f.host_port for f in proxy.list()} == {first, second}
    assert proxy.pid not in (None, pid)
    assert tcp_roundtrip(net.host, first, b"1") == b"1"
    pid = proxy.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: proxy.pid is None, "the killed proxy to exit")
    proxy.remove("tcp", "127.0.0.1", first)
    assert refused_tcp(net.host, first)
    assert [f.host_port for f in proxy.list()] == [second]
    assert proxy.pid not in (None, pid)
    assert proxy.restarts == 2


def test_a_dead_proxy_loses_no_port(proxy: ProxyManager, net: Net, tcp_echo: TcpEcho) -> None:
    """The manager keeps every host socket: while the proxy is down nobody can take a
    published port, connections made meanwhile wait, and a restart serves them."""
    ports = [proxy.add("tcp", "127.0.0.1", 0, CTR_IP, tcp_echo.port) for _ in range(2)]
    pid = proxy.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: proxy.pid is None, "the killed proxy to exit")
    squatter = net.host.socket(socket.AF_INET, socket.SOCK_STREAM)
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    with squatter, pytest.raises(OSError) as ei:
        squatter.bind(("127.0.0.1", ports[0]))
    assert ei.value.errno == 98  # EADDRINUSE
    with net.host.socket(socket.AF_INET, socket.SOCK_STREAM) as early:
        early.settimeout(TIMEOUT)
        early.connect(("127.0.0.1", ports[1]))  # queued by the kernel: nobody serves yet
        early.sendall(b"waited")
        early.shutdown(socket.SHUT_WR)
        assert proxy.ensure() is True
        got = b""
        while chunk := early.recv(100):
            got += chunk
        assert got == b"waited"
    assert [f.host_port for f in proxy.list()] == sorted(ports)
    for port in ports:
        assert tcp_roundtrip(net.host, port, b"k") == b"k"


def test_first_port_does_not_wait_for_the_process(
    net: Net, tmp_path: Path, tcp_echo: TcpEcho, udp_echo: UdpEcho
) -> None:
    """On a manager never started, add binds at once and returns; what reaches the
    ports before the process runs is served when it does."""
    with ProxyManager(net.host, tmp_path / "run") as mgr:
        mgr.stop()
        tport = mgr.add("tcp", "127.0.0.1", 0, CTR_IP, tcp_echo.port)
        uport = mgr.add("udp", "127.0.0.1", 0, CTR_IP, udp_echo.port)
        with net.host.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.settimeout(TIMEOUT)
            u.connect(("127.0.0.1", uport))
            u.send(b"early datagram")
            assert tcp_roundtrip(net.host, tport, b"early") == b"early"
            assert u.recv(100) == b"early datagram"
        # A port someone else holds fails at once, typed, whether or not the process runs.
        taken = net.host.socket(socket.AF_INET, socket.SOCK_STREAM)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with taken, pytest.raises(ProxyBindError, match="in use"):
            mgr.add("tcp", "127.0.0.1", taken.getsockname()[1], CTR_IP, tcp_echo.port)
        assert {f.host_port for f in mgr.list()} == {tport, uport}


def test_adopt_checks_the_passed_socket(proxy: ProxyManager, tcp_echo: TcpEcho) -> None:
    """An adopt request without a socket, or with one that does not match it, is a
    bad request that leaves the proxy serving."""
    adopt = {
        "op": "adopt", "proto": "tcp", "host_ip": "127.0.0.1", "host_port": 1,
        "backend_ip": CTR_IP, "backend_port": tcp_echo.port,
    }  # fmt: skip
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(TIMEOUT)
        s.connect(str(proxy.control_path))
        f = s.makefile("rb")
        s.sendall(json.dumps(adopt).encode() + b"\n")
        assert "needs a socket" in json.loads(f.readline())["error"]
        for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
            with socket.socket(socket.AF_INET, kind) as wrong:
                wrong.bind(("127.0.0.1", 0))  # udp for a tcp forward; tcp on another port
                socket.send_fds(s, [json.dumps(adopt).encode() + b"\n"], [wrong.fileno()])
                reply = json.loads(f.readline())
                assert reply["kind"] == "bad_request", reply
    assert proxy.list() == []
    assert proxy.ensure() is False


def _kernel_has_sctp() -> bool:
    try:
        socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_SCTP).close()
    except OSError:
        return False
    return True


@pytest.mark.skipif(_kernel_has_sctp(), reason="this kernel has sctp sockets")
def test_sctp_without_kernel_support_is_a_typed_error(proxy: ProxyManager) -> None:
    with pytest.raises(ProxyBindError, match="sctp socket"):
        proxy.add("sctp", "127.0.0.1", 0, CTR_IP, 80)
    assert proxy.list() == []


@pytest.mark.skipif(not _kernel_has_sctp(), reason="this kernel has no sctp sockets")
def test_sctp_forward(proxy: ProxyManager, net: Net) -> None:
    srv = net.ctr.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_SCTP)
    with srv:
        srv.bind((CTR_IP, 0))
        srv.listen()
        srv.settimeout(TIMEOUT)
        port = proxy.add("sctp", "127.0.0.1", 0, CTR_IP, srv.getsockname()[1])
        with net.host.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_SCTP) as c:
            c.settimeout(TIMEOUT)
            c.connect(("127.0.0.1", port))
            conn, _ = srv.accept()
            with conn:
                conn.settimeout(TIMEOUT)
                c.sendall(b"over sctp")
                assert conn.recv(100) == b"over sctp"
                conn.sendall(b"and back")
                assert c.recv(100) == b"and back"


def test_stop_leaves_no_process(net: Net, tmp_path: Path, tcp_echo: TcpEcho) -> None:
    mgr = ProxyManager(net.host, tmp_path / "run")
    mgr.start()
    port = mgr.add("tcp", "127.0.0.1", 0, CTR_IP, tcp_echo.port)
    pid = mgr.pid
    assert pid is not None
    mgr.stop()
    assert mgr.pid is None
    assert not Path(f"/proc/{pid}").exists()
    assert not mgr.control_path.exists()
    assert refused_tcp(net.host, port)
    mgr.stop()  # idempotent
    # start() after stop() gives a fresh, empty proxy.
    mgr.start()
    assert mgr.list() == []
    mgr.stop()


def test_long_run_dir_path(net: Net, tmp_path: Path, tcp_echo: TcpEcho) -> None:
    """Control socket paths beyond the 108-byte sun_path limit still work."""
    run = tmp_path / ("d" * 60) / ("e" * 60)
    assert len(str(run / "proxy.sock")) > 108
    with ProxyManager(net.host, run) as mgr:
        port = mgr.add("tcp", "127.0.0.1", 0, CTR_IP, tcp_echo.port)
        assert tcp_roundtrip(net.host, port, b"long") == b"long"


def test_start_failure_is_reported(tmp_path: Path) -> None:
    bogus = Namespace.__new__(Namespace)
    bogus.path = tmp_path / "not-a-namespace"
    bogus.path.write_text("")
    mgr = ProxyManager(bogus, tmp_path / "run")
    with pytest.raises(ProxyError, match="exited at start"):
        mgr.start()
    assert mgr.pid is None


def test_module_entry_point_and_sigterm(host_ns: Namespace, tmp_path: Path) -> None:
    """`python -m pyln.portmapper.proxy` serves the control socket; SIGTERM stops it
    cleanly and removes the socket."""
    import subprocess
    import sys

    control = tmp_path / "ctl.sock"
    rfd, wfd = os.pipe()
    args = ["--netns", str(host_ns.path), "--control", str(control), "--ready-fd", str(wfd)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "pyln.portmapper.proxy", *args],
        pass_fds=(wfd,),
        stderr=subprocess.DEVNULL,
    )
    os.close(wfd)
    try:
        readable, _, _ = select.select([rfd], [], [], 30)
        assert readable and os.read(rfd, 16) == b"ready\n"
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(TIMEOUT)
            s.connect(str(control))
            s.sendall(b'{"op": "ping"}\n')
            assert json.loads(s.makefile("rb").readline())["pid"] == proc.pid
        proc.terminate()
        assert proc.wait(TIMEOUT) == 0
        assert not control.exists()
    finally:
        os.close(rfd)
        if proc.poll() is None:
            proc.kill()
            proc.wait(TIMEOUT)


def test_a_removed_udp_port_can_be_published_again_at_once(
    proxy: ProxyManager, net: Net, udp_echo: UdpEcho
) -> None:
    """remove returns once the proxy has closed its copy of the socket too (asyncio
    closes a datagram transport on a later loop pass), so the port is free."""
    port = proxy.add("udp", "127.0.0.1", 0, CTR_IP, udp_echo.port)
    for _ in range(50):
        proxy.remove("udp", "127.0.0.1", port)
        assert proxy.add("udp", "127.0.0.1", port, CTR_IP, udp_echo.port) == port
    assert udp_roundtrip(net.host, port, b"again") == b"again"
    proxy.remove("udp", "127.0.0.1", port)
    assert refused_udp(net.host, port)


def test_a_failed_start_is_typed_retried_and_stop_frees_the_ports(
    net: Net, tmp_path: Path, tcp_echo: TcpEcho
) -> None:
    """The run directory cannot be made (a file is in the way): add still binds and
    returns, calls that need the process get a ProxyError, and a background retry
    starts it once the way is clear; stop frees the ports whatever happened."""
    blocker = tmp_path / "run"
    blocker.write_text("not a directory")
    mgr = ProxyManager(net.host, blocker / "sub")
    try:
        port = mgr.add("tcp", "127.0.0.1", 0, CTR_IP, tcp_echo.port)
        with pytest.raises(ProxyError, match="cannot start the proxy"):
            mgr.list()
        blocker.unlink()  # the next retry (after at most a few seconds) succeeds
        wait_until(lambda: mgr.pid is not None, "a retried start", timeout=20)
        assert tcp_roundtrip(net.host, port, b"late") == b"late"
    finally:
        mgr.stop()
    assert mgr.pid is None
    with net.host.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", port))  # free again


def test_stop_during_a_background_start_leaves_nothing(
    net: Net, tmp_path: Path, tcp_echo: TcpEcho
) -> None:
    mgr = ProxyManager(net.host, tmp_path / "run")
    port = mgr.add("tcp", "127.0.0.1", 0, CTR_IP, tcp_echo.port)  # starts it in the background
    mgr.stop()
    assert mgr.pid is None
    assert refused_tcp(net.host, port)
    mine = str(mgr.control_path)

    def proxies() -> list[str]:
        found = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if mine.encode() in f.read():
                        found.append(pid)
            except OSError:
                pass
        return found

    wait_until(lambda: not proxies(), "no proxy process left")
