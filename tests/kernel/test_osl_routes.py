"""Routes and neighbours inside container namespaces: default gateways (and traffic
through them), static routes, idempotency, typed errors. All in fixture namespaces."""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable

import pytest

from pyln.errors import BadRequest, Forbidden, NotFound
from pyln.osl import (
    InvalidNeighbor,
    InvalidRoute,
    LinkNotFound,
    Namespace,
    Route,
    RouteDeviceNotFound,
    RouteExists,
    add_neighbor,
    add_route,
    configure_interface,
    create_bridge,
    create_veth,
    default_gateway,
    delete_neighbor,
    remove_route,
    set_default_gateway,
)
from pyln.osl import neighbors as nb
from pyln.osl import routes as rt

from .test_osl_interfaces import tcp_roundtrip

MakeNs = Callable[..., Namespace]
ip = ipaddress.ip_address
net = ipaddress.ip_network


def container(
    host: Namespace, make_ns: MakeNs, name: str, bridge: str, v4: str, v6: str
) -> Namespace:
    """A container namespace whose eth0 is on `bridge` in `host` with these addresses."""
    ctr = make_ns(name)
    create_veth(host, f"v-{name}", ctr, "eth0", master=bridge)
    configure_interface(ctr, "eth0", addresses=[v4, v6])
    return ctr


def defaults(ns: Namespace, family: int) -> list[Route]:
    return [r for r in rt.routes(ns, family) if r.destination.prefixlen == 0]


def test_default_gateway_inside_container(host_ns: Namespace, make_ns: MakeNs) -> None:
    create_bridge(host_ns, "pyln-br0", addresses=["10.210.10.1/24", "fd10:210:10::1/64"])
    ctr = container(host_ns, make_ns, "c", "pyln-br0", "10.210.10.2/24", "fd10:210:10::2/64")

    set_default_gateway(ctr, ip("10.210.10.1"), "eth0")
    set_default_gateway(ctr, ip("fd10:210:10::1"), "eth0")
    assert defaults(ctr, socket.AF_INET) == [Route(net("0.0.0.0/0"), ip("10.210.10.1"), "eth0")]
    assert defaults(ctr, socket.AF_INET6) == [Route(net("::/0"), ip("fd10:210:10::1"), "eth0")]
    assert Route(net("10.210.10.0/24"), None, "eth0") in rt.routes(ctr, socket.AF_INET)

    # Setting it again is a no-op; another gateway replaces it; without dev works too.
    set_default_gateway(ctr, ip("10.210.10.1"), "eth0")
    set_default_gateway(ctr, ip("10.210.10.254"))
    set_default_gateway(ctr, ip("fd10:210:10::fe"), "eth0")
    assert defaults(ctr, socket.AF_INET) == [Route(net("0.0.0.0/0"), ip("10.210.10.254"), "eth0")]
    assert default_gateway(ctr, socket.AF_INET6) == Route(
        net("::/0"), ip("fd10:210:10::fe"), "eth0"
    )
    # The host namespace's routes were never touched.
    assert defaults(host_ns, socket.AF_INET) == []


def test_default_gateway_replaces_other_metrics(host_ns: Namespace, make_ns: MakeNs) -> None:
    create_bridge(host_ns, "pyln-br1", addresses=["10.210.11.1/24"])
    ctr = container(host_ns, make_ns, "c", "pyln-br1", "10.210.11.2/24", "fd10:210:11::2/64")
    # Defaults someone else made with other metrics (e.g. a DHCP client's).
    ctr.netlink().route("add", dst="0.0.0.0/0", gateway="10.210.11.253", priority=100)
    ctr.netlink().route("add", dst="::/0", gateway="fd10:210:11::fd", priority=50)
    set_default_gateway(ctr, ip("10.210.11.1"), "eth0")
    set_default_gateway(ctr, ip("fd10:210:11::1"))
    assert defaults(ctr, socket.AF_INET) == [Route(net("0.0.0.0/0"), ip("10.210.11.1"), "eth0")]
    assert defaults(ctr, socket.AF_INET6) == [Route(net("::/0"), ip("fd10:210:11::1"), "eth0")]


def test_traffic_through_the_default_gateway(host_ns: Namespace, make_ns: MakeNs) -> None:
    """Two containers on two bridges reach each other only through their gateways (the
    host namespace forwards)."""
    host_ns.sysctl("net.ipv4.ip_forward", "1")
    host_ns.sysctl("net.ipv6.conf.all.forwarding", "1")
    create_bridge(host_ns, "pyln-br2", addresses=["10.210.12.1/24", "fd10:210:12::1/64"])
    create_bridge(host_ns, "pyln-br3", addresses=["10.210.13.1/24", "fd10:210:13::1/64"])
    a = container(host_ns, make_ns, "a", "pyln-br2", "10.210.12.2/24", "fd10:210:12::2/64")
    b = container(host_ns, make_ns, "b", "pyln-br3", "10.210.13.2/24", "fd10:210:13::2/64")

    probe = b.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        probe.settimeout(1)
        assert probe.connect_ex(("10.210.12.2", 9)) == 101  # ENETUNREACH: no route yet
    finally:
        probe.close()

    for ctr, n in ((a, 12), (b, 13)):
        set_default_gateway(ctr, ip(f"10.210.{n}.1"), "eth0")
        set_default_gateway(ctr, ip(f"fd10:210:{n}::1"), "eth0")
    assert tcp_roundtrip(a, "10.210.12.2", b) == b"hello over the bridge"
    assert tcp_roundtrip(b, "fd10:210:13::2", a) == b"hello over the bridge"


def test_static_routes(host_ns: Namespace, make_ns: MakeNs) -> None:
    create_bridge(host_ns, "pyln-br4", addresses=["10.210.14.1/24"])
    ctr = container(host_ns, make_ns, "c", "pyln-br4", "10.210.14.2/24", "fd10:210:14::2/64")

    add_route(ctr, net("10.210.200.0/24"), gateway=ip("10.210.14.1"), dev="eth0")
    add_route(ctr, net("10.210.200.0/24"), gateway=ip("10.210.14.1"), dev="eth0")  # again
    add_route(ctr, net("10.210.201.0/24"), dev="eth0")  # on-link
    add_route(ctr, "fd10:210:99::/64", gateway="fd10:210:14::1")
    v4 = rt.routes(ctr, socket.AF_INET)
    assert Route(net("10.210.200.0/24"), ip("10.210.14.1"), "eth0") in v4
    assert Route(net("10.210.201.0/24"), None, "eth0") in v4
    assert Route(net("fd10:210:99::/64"), ip("fd10:210:14::1"), "eth0") in rt.routes(
        ctr, socket.AF_INET6
    )

    # A different route to the same destination is refused, not silently replaced.
    with pytest.raises(RouteExists, match=re.escape("10.210.200.0/24")) as exc:
        add_route(ctr, net("10.210.200.0/24"), gateway=ip("10.210.14.9"))
    assert isinstance(exc.value, Forbidden)

    assert remove_route(ctr, net("10.210.200.0/24"), gateway=ip("10.210.14.1")) is True
    assert remove_route(ctr, net("10.210.200.0/24")) is False
    assert remove_route(ctr, "fd10:210:99::/64", dev="eth0") is True
    assert remove_route(ctr, net("10.210.201.0/24"), dev="nope0") is False
    assert Route(net("10.210.200.0/24"), ip("10.210.14.1"), "eth0") not in rt.routes(
        ctr, socket.AF_INET
    )


def test_route_errors_are_typed(host_ns: Namespace, make_ns: MakeNs) -> None:
    create_bridge(host_ns, "pyln-br5", addresses=["10.210.15.1/24"])
    ctr = container(host_ns, make_ns, "c", "pyln-br5", "10.210.15.2/24", "fd10:210:15::2/64")
    with pytest.raises(InvalidRoute, match=re.escape("10.210.99.1")) as exc:
        add_route(ctr, net("10.210.98.0/24"), gateway=ip("10.210.99.1"))  # not on-link
    assert isinstance(exc.value, BadRequest)
    with pytest.raises(InvalidRoute, match="family"):
        add_route(ctr, net("10.210.98.0/24"), gateway=ip("fd10::1"))
    with pytest.raises(InvalidRoute, match="gateway or a device"):
        add_route(ctr, net("10.210.98.0/24"))
    with pytest.raises(InvalidRoute, match=re.escape("10.210.98.1/24")):
        add_route(ctr, "10.210.98.1/24", dev="eth0")  # host bits set
    with pytest.raises(RouteDeviceNotFound, match="eth7") as nf:
        set_default_gateway(ctr, ip("10.210.15.1"), "eth7")
    assert isinstance(nf.value, NotFound)
    with pytest.raises(InvalidRoute, match="family"):
        rt.routes(ctr, 99)


def test_neighbors(host_ns: Namespace, make_ns: MakeNs) -> None:
    create_bridge(host_ns, "pyln-br6", addresses=["10.210.16.1/24"])
    ctr = container(host_ns, make_ns, "c", "pyln-br6", "10.210.16.2/24", "fd10:210:16::2/64")

    add_neighbor(ctr, ip("10.210.16.50"), "02:42:0a:d2:10:32", "eth0")
    add_neighbor(ctr, ip("10.210.16.50"), "02:42:0a:d2:10:32", "eth0")  # again: no-op
    add_neighbor(ctr, "fd10:210:16::50", "02:42:0a:d2:10:33", "eth0")
    assert set(nb.neighbors(ctr, "eth0")) >= {
        (ip("10.210.16.50"), "02:42:0a:d2:10:32"),
        (ip("fd10:210:16::50"), "02:42:0a:d2:10:33"),
    }
    # A new MAC for the same IP replaces the entry.
    add_neighbor(ctr, ip("10.210.16.50"), "02:42:0a:d2:10:ff", "eth0")
    v4 = [n for n in nb.neighbors(ctr, "eth0") if n[0] == ip("10.210.16.50")]
    assert v4 == [(ip("10.210.16.50"), "02:42:0a:d2:10:ff")]

    assert delete_neighbor(ctr, ip("10.210.16.50"), "eth0") is True
    assert delete_neighbor(ctr, ip("10.210.16.50"), "eth0") is False
    assert all(n[0] != ip("10.210.16.50") for n in nb.neighbors(ctr, "eth0"))

    with pytest.raises(InvalidNeighbor, match="zz"):
        add_neighbor(ctr, ip("10.210.16.51"), "zz:42:0a:d2:10:33", "eth0")
    with pytest.raises(InvalidNeighbor, match=re.escape("10.210.16")):
        add_neighbor(ctr, "10.210.16", "02:42:0a:d2:10:33", "eth0")
    with pytest.raises(LinkNotFound, match="eth5"):
        nb.neighbors(ctr, "eth5")
