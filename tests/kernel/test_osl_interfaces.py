"""Links in namespaces: veth pairs made straight into a container namespace, bridges,
addresses, MAC/MTU, failure cleanup, and traffic between two containers on a bridge.
Everything happens in namespaces made by the make_ns/host_ns fixtures."""

from __future__ import annotations

import ipaddress
import re
import socket
import threading
import time
from collections.abc import Callable

import pytest

from pyln.errors import BadRequest, Forbidden, NotFound
from pyln.osl import (
    InvalidLinkConfig,
    LinkError,
    LinkExists,
    LinkNotFound,
    Namespace,
    configure_interface,
    create_bridge,
    create_veth,
    delete_link,
    generate_iface_name,
    generate_mac_from_ip,
    generate_random_mac,
    interfaces,
    link_exists,
    link_info,
)

MakeNs = Callable[..., Namespace]


def link_names(ns: Namespace) -> set[str]:
    return {m.get("ifname") for m in ns.netlink().get_links()}


def iface(text: str) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
    return ipaddress.ip_interface(text)


def global_addresses(ns: Namespace, name: str) -> set[str]:
    return {str(a) for a in link_info(ns, name).addresses if not a.ip.is_link_local}


def tcp_roundtrip(server_ns: Namespace, server_ip: str, client_ns: Namespace) -> bytes:
    """Opens a listener inside `server_ns`, connects from inside `client_ns` (retrying
    until a deadline while the path comes up) and echoes one message."""
    family = socket.AF_INET6 if ":" in server_ip else socket.AF_INET
    server = server_ns.socket(family, socket.SOCK_STREAM)
    client: socket.socket | None = None
    conn: socket.socket | None = None
    try:
        server.bind((server_ip, 0))
        server.listen()
        server.settimeout(5)
        port = server.getsockname()[1]
        deadline = time.monotonic() + 10
        while True:
            client = client_ns.socket(family, socket.SOCK_STREAM)
            client.settimeout(max(0.1, min(1.0, deadline - time.monotonic())))
            err = client.connect_ex((server_ip, port))
            if err == 0:
                break
            client.close()
            client = None
            if time.monotonic() > deadline:
                raise AssertionError(f"could not connect to {server_ip}:{port}: errno {err}")
            time.sleep(0.05)  # back-off between attempts, bounded by the deadline
        conn, _ = server.accept()
        client.sendall(b"hello over the bridge")
        conn.settimeout(5)
        return conn.recv(64)
    finally:
        for s in (conn, client, server):
            if s is not None:
                s.close()


def test_veth_peer_created_inside_container(host_ns: Namespace, make_ns: MakeNs) -> None:
    ctr = make_ns("ctr")
    create_bridge(host_ns, "pyln-br0", mac="02:42:0a:d2:00:01")
    mac = generate_mac_from_ip(ipaddress.IPv4Address("10.210.0.2"))
    host_index, peer_index = create_veth(
        host_ns, "veth0a", ctr, "eth0", mtu=1400, peer_mac=mac, master="pyln-br0"
    )

    host_end = link_info(host_ns, "veth0a")
    assert host_end.index == host_index
    assert (host_end.kind, host_end.mtu, host_end.master, host_end.up) == (
        "veth",
        1400,
        "pyln-br0",
        True,
    )
    peer = link_info(ctr, "eth0")
    assert peer.index == peer_index
    assert (peer.kind, peer.mac, peer.mtu, peer.master, peer.up) == (
        "veth",
        "02:42:0a:d2:00:02",
        1400,
        None,
        False,
    )
    # Each end is only in its own namespace.
    assert link_names(ctr) == {"lo", "eth0"}
    assert link_names(host_ns) == {"lo", "pyln-br0", "veth0a"}
    # The bridge keeps its own MAC as ports join.
    assert link_info(host_ns, "pyln-br0").mac == "02:42:0a:d2:00:01"


def test_configure_interface_sets_everything(host_ns: Namespace, make_ns: MakeNs) -> None:
    ctr = make_ns("ctr")
    create_veth(host_ns, "veth1a", ctr, "eth0")
    addrs = [iface("10.210.1.2/24"), iface("fd10:210:1::2/64")]
    index = configure_interface(ctr, "eth0", addresses=addrs, mac="02:42:0a:d2:01:02", mtu=1450)

    info = link_info(ctr, "eth0")
    assert info.index == index
    assert (info.mac, info.mtu, info.up) == ("02:42:0a:d2:01:02", 1450, True)
    assert global_addresses(ctr, "eth0") == {"10.210.1.2/24", "fd10:210:1::2/64"}

    # Idempotent: the same call again changes nothing; a new address is added.
    configure_interface(ctr, "eth0", addresses=addrs, mac="02:42:0a:d2:01:02", mtu=1450)
    configure_interface(ctr, "eth0", addresses=["10.210.1.3/24"])
    assert global_addresses(ctr, "eth0") == {
        "10.210.1.2/24",
        "10.210.1.3/24",
        "fd10:210:1::2/64",
    }
    configure_interface(ctr, "eth0", up=False)
    assert not link_info(ctr, "eth0").up


def test_two_containers_on_one_bridge_talk(host_ns: Namespace, make_ns: MakeNs) -> None:
    c1, c2 = make_ns("c1"), make_ns("c2")
    create_bridge(host_ns, "pyln-br1", addresses=[iface("10.210.2.1/24")])
    for ctr, host_name, last in ((c1, "veth2a", 2), (c2, "veth2b", 3)):
        v4 = ipaddress.IPv4Address(f"10.210.2.{last}")
        create_veth(
            host_ns, host_name, ctr, "eth0", peer_mac=generate_mac_from_ip(v4), master="pyln-br1"
        )
        configure_interface(
            ctr, "eth0", addresses=[iface(f"{v4}/24"), iface(f"fd10:210:2::{last}/64")]
        )

    assert tcp_roundtrip(c1, "10.210.2.2", c2) == b"hello over the bridge"
    assert tcp_roundtrip(c2, "fd10:210:2::3", c1) == b"hello over the bridge"
    # The bridge learned both containers' MACs on their ports.
    assert link_info(host_ns, "veth2a").master == link_info(host_ns, "veth2b").master


def test_create_bridge_is_idempotent(host_ns: Namespace) -> None:
    first = create_bridge(host_ns, "pyln-br2", mtu=1400, addresses=["10.210.3.1/24"])
    mac = link_info(host_ns, "pyln-br2").mac
    again = create_bridge(host_ns, "pyln-br2", addresses=["10.210.3.1/24", "fd10:210:3::1/64"])
    assert first == again
    info = link_info(host_ns, "pyln-br2")
    assert (info.kind, info.mtu, info.mac, info.up) == ("bridge", 1400, mac, True)
    assert global_addresses(host_ns, "pyln-br2") == {"10.210.3.1/24", "fd10:210:3::1/64"}
    assert mac is not None and int(mac[:2], 16) & 0b11 == 0b10  # local, unicast


def test_create_bridge_refuses_a_non_bridge(host_ns: Namespace) -> None:
    create_veth(host_ns, "veth3a", host_ns, "veth3b")
    with pytest.raises(LinkExists, match=r"veth3a.*not a bridge") as exc:
        create_bridge(host_ns, "veth3a")
    assert isinstance(exc.value, Forbidden)


def test_create_bridge_failure_removes_it(host_ns: Namespace) -> None:
    with pytest.raises(BadRequest, match="MTU"):
        create_bridge(host_ns, "pyln-br3", mtu=10)
    # The kernel refuses the IPv6 address after the bridge exists: it is removed again.
    host_ns.sysctl("net.ipv6.conf.default.disable_ipv6", "1")
    with pytest.raises(LinkError, match=r"fd10:210:4::1/64.*pyln-br3"):
        create_bridge(host_ns, "pyln-br3", addresses=["10.210.4.1/24", "fd10:210:4::1/64"])
    assert not link_exists(host_ns, "pyln-br3")


def test_create_veth_duplicate_leaves_nothing(host_ns: Namespace, make_ns: MakeNs) -> None:
    ctr = make_ns("ctr")
    create_veth(host_ns, "veth4a", ctr, "eth0")
    before_host, before_ctr = link_names(host_ns), link_names(ctr)

    # The host name is taken.
    with pytest.raises(LinkExists, match="veth4a") as exc:
        create_veth(host_ns, "veth4a", ctr, "eth1")
    assert isinstance(exc.value, Forbidden)
    # The peer name is taken in the container.
    with pytest.raises(LinkExists, match=r"'eth0' in .*ctr"):
        create_veth(host_ns, "veth4b", ctr, "eth0")
    # The bridge does not exist.
    with pytest.raises(LinkNotFound, match="no-such-br"):
        create_veth(host_ns, "veth4c", ctr, "eth2", master="no-such-br")
    # Bad input is refused before anything is made.
    with pytest.raises(InvalidLinkConfig, match="multicast"):
        create_veth(host_ns, "veth4d", ctr, "eth3", peer_mac="01:00:5e:00:00:01")
    with pytest.raises(InvalidLinkConfig, match="name"):
        create_veth(host_ns, "veth4e", ctr, "a-name-far-too-long")

    assert link_names(host_ns) == before_host
    assert link_names(ctr) == before_ctr


def test_enslaving_to_a_non_bridge_leaves_nothing(host_ns: Namespace, make_ns: MakeNs) -> None:
    ctr = make_ns("ctr")
    create_veth(host_ns, "veth5a", host_ns, "veth5b")
    before_host, before_ctr = link_names(host_ns), link_names(ctr)
    with pytest.raises(InvalidLinkConfig, match="veth5c"):
        create_veth(host_ns, "veth5c", ctr, "eth0", master="veth5a")  # a veth is no master
    assert link_names(host_ns) == before_host
    assert link_names(ctr) == before_ctr


def test_delete_link_takes_the_peer(host_ns: Namespace, make_ns: MakeNs) -> None:
    ctr = make_ns("ctr")
    create_veth(host_ns, "veth6a", ctr, "eth0")
    assert link_exists(host_ns, "veth6a") and link_exists(ctr, "eth0")
    assert delete_link(host_ns, "veth6a") is True
    assert not link_exists(host_ns, "veth6a")
    assert not link_exists(ctr, "eth0")
    assert delete_link(host_ns, "veth6a") is False


def test_missing_links_are_typed_errors(make_ns: MakeNs) -> None:
    ns = make_ns("x")
    with pytest.raises(LinkNotFound, match="eth9") as exc:
        link_info(ns, "eth9")
    assert isinstance(exc.value, NotFound)
    assert str(ns.path) in str(exc.value)
    with pytest.raises(LinkNotFound, match="eth9"):
        configure_interface(ns, "eth9", addresses=["10.210.5.2/24"])
    with pytest.raises(InvalidLinkConfig, match="not-an-address"):
        configure_interface(ns, "lo", addresses=["not-an-address"])


def test_works_from_any_thread(host_ns: Namespace, make_ns: MakeNs) -> None:
    """pyroute2 0.9 binds an IPRoute to its thread; calls from other threads must
    still act in the right namespace."""
    ctr = make_ns("ctr")
    link_exists(host_ns, "lo")  # the cached socket now belongs to this thread
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            create_veth(host_ns, f"veth7{i}", ctr, f"eth{i}")
            configure_interface(ctr, f"eth{i}", addresses=[f"10.210.7.{i + 2}/24"])
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert link_names(ctr) == {"lo", "eth0", "eth1", "eth2", "eth3"}
    assert {f"veth7{i}" for i in range(4)} <= link_names(host_ns)


def test_generated_names_and_macs() -> None:
    assert generate_mac_from_ip(ipaddress.IPv4Address("10.210.0.2")) == "02:42:0a:d2:00:02"
    assert generate_mac_from_ip(ipaddress.IPv4Address("172.17.255.254")) == "02:42:ac:11:ff:fe"
    with pytest.raises(InvalidLinkConfig, match="IPv4"):
        generate_mac_from_ip("fd10::1")
    macs = {generate_random_mac() for _ in range(64)}
    assert len(macs) > 60
    for mac in macs:
        assert re.fullmatch(r"02:42(:[0-9a-f]{2}){4}", mac)
    names = {generate_iface_name() for _ in range(64)}
    assert len(names) > 60
    for name in names:
        assert re.fullmatch(r"veth[0-9a-f]{7}", name)
    assert len(generate_iface_name("vx-", 12)) == 15
    assert re.fullmatch(r"br[0-9a-f]{3}", generate_iface_name("br", 3))
    with pytest.raises(InvalidLinkConfig, match="15"):
        generate_iface_name("vethxxxxx", 7)


def test_move_link_renames_on_the_way_or_leaves_the_link_where_it_was(
    host_ns: Namespace, make_ns: MakeNs
) -> None:
    ctr = make_ns("ctr")
    host_ns.netlink().link("add", ifname="mvsrc0", kind="veth", peer="mvsrc1")
    index = interfaces.move_link(host_ns, "mvsrc0", ctr, "eth0")
    assert interfaces.link_index(ctr, "eth0") == index
    assert not interfaces.link_exists(host_ns, "mvsrc0")
    # Back, then again into a namespace where the new name is taken: the kernel moves
    # the link under its own name and then fails the rename; it must come back.
    interfaces.move_link(ctr, "eth0", host_ns, "mvsrc0")
    ctr.netlink().link("add", ifname="eth0", kind="veth", peer="other1")
    with pytest.raises(interfaces.LinkExists):
        interfaces.move_link(host_ns, "mvsrc0", ctr, "eth0")
    assert interfaces.link_exists(host_ns, "mvsrc0")
    assert not interfaces.link_exists(ctr, "mvsrc0")
    with pytest.raises(interfaces.LinkNotFound):
        interfaces.move_link(host_ns, "nosuchlink0", ctr, "eth1")
    interfaces.delete_link(host_ns, "mvsrc0")
