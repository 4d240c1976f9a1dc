"""Network namespaces mounted on files: create, enter, delete."""

from __future__ import annotations

import socket
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from pyln.osl import (
    Namespace,
    NamespaceExists,
    NamespaceNotFound,
    NamespaceWorker,
    is_namespace_mount,
)


def test_create_is_empty_and_isolated(make_ns: Callable[[str], Namespace]) -> None:
    ns = make_ns("a")
    assert is_namespace_mount(ns.path)
    names = [link.get("ifname") for link in ns.netlink().get_links()]
    assert names == ["lo"]
    assert ns != Namespace.current()
    host_names = {link.get("ifname") for link in Namespace.current().netlink().get_links()}
    assert "lo" in host_names


def test_loopback_is_up_and_reachable(make_ns: Callable[[str], Namespace]) -> None:
    ns = make_ns("b")
    server = ns.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    client = ns.socket(socket.AF_INET, socket.SOCK_STREAM)
    client.settimeout(5)
    client.connect(("127.0.0.1", port))
    conn, _ = server.accept()
    client.sendall(b"ping")
    assert conn.recv(4) == b"ping"
    for s in (conn, client, server):
        s.close()
    # The same port on the host's loopback is not this listener.
    probe = socket.socket()
    probe.settimeout(1)
    assert probe.connect_ex(("127.0.0.1", port)) != 0
    probe.close()


def test_sockets_stay_in_their_namespace(make_ns: Callable[[str], Namespace]) -> None:
    ns = make_ns("c")
    ipr = ns.new_netlink()
    try:
        ipr.link("add", ifname="pyln-d0", kind="bridge")
        assert ns.netlink().link_lookup(ifname="pyln-d0")
        assert not Namespace.current().netlink().link_lookup(ifname="pyln-d0")
    finally:
        ipr.close()


def test_sysctl_is_per_namespace(make_ns: Callable[[str], Namespace]) -> None:
    ns = make_ns("d")
    before_host = Namespace.current().sysctl("net.ipv4.ip_forward")
    assert ns.sysctl("net.ipv4.ip_forward", "1") == "1"
    assert Namespace.current().sysctl("net.ipv4.ip_forward") == before_host
    with pytest.raises(Exception, match="net"):
        ns.sysctl("kernel.hostname")


def test_create_twice_and_open(tmp_path: Path) -> None:
    path = tmp_path / "ns" / "x"
    ns = Namespace.create(path)
    try:
        with pytest.raises(NamespaceExists):
            Namespace.create(path)
        again = Namespace.open(path)
        assert again == ns
        again.close()
    finally:
        ns.delete()
    assert not path.exists()
    with pytest.raises(NamespaceNotFound):
        Namespace.open(path)
    ns.delete()  # idempotent


def test_current_cannot_be_deleted() -> None:
    with pytest.raises(Exception, match="not owned"):
        Namespace.current().delete()


def test_worker_runs_calls_inside_the_namespace(make_ns: Callable[[str], Namespace]) -> None:
    ns = make_ns("w")
    worker = NamespaceWorker(ns)
    try:
        # The same long-lived thread, inside the namespace, for every call.
        ids = {worker.run(threading.get_ident) for _ in range(5)}
        assert len(ids) == 1 and threading.get_ident() not in ids
        assert worker.run(ns.holds_this_thread)
        assert not ns.holds_this_thread()
        # A process spawned from it starts in the namespace.
        out = worker.run(
            lambda: (
                subprocess.run(
                    ["cat", "/proc/self/net/dev"], capture_output=True, text=True, check=True
                ).stdout
            )
        )
        assert "lo:" in out and not any(n in out for n in ("eth0:", "docker0:"))
        # Errors reach the caller; the thread goes on.
        with pytest.raises(ZeroDivisionError):
            worker.run(lambda: 1 // 0)
        assert worker.run(lambda: 7) == 7
    finally:
        worker.close()
    names = [t.name for t in threading.enumerate()]
    assert not any(n.startswith("pyln-ns") for n in names)
    # After close, a call still runs in the namespace, on a fresh thread that ends.
    assert worker.run(ns.holds_this_thread)
    assert not any(t.name.startswith("pyln-ns") for t in threading.enumerate())


def test_worker_runs_inline_for_a_caller_already_there(make_ns: Callable[[str], Namespace]) -> None:
    ns = make_ns("w2")
    worker = NamespaceWorker(ns)

    def inside() -> int:
        return worker.run(threading.get_ident)

    assert ns.run(lambda: inside() == threading.get_ident())
    assert not any(t.name.startswith("pyln-ns") for t in threading.enumerate())
    worker.close()
