"""The synchronous rtnetlink client (osl/rtnl.py) on the real kernel: pyroute2's
requests answered without its event loop, from any thread, with the kernel's errors
as NetlinkError, dumps that span several datagrams, and filters."""

from __future__ import annotations

import errno
import socket
import threading
from collections.abc import Callable

import pytest
from pyroute2.netlink.exceptions import NetlinkError  # type: ignore[import-untyped]

from pyln.osl import InvalidLinkConfig, LinkNotFound, Namespace, interfaces

MakeNs = Callable[..., Namespace]


def test_link_add_get_set_delete(make_ns: MakeNs) -> None:
    ns = make_ns()
    rt = ns.netlink()
    rt.link("add", ifname="rt-a", kind="veth", peer="rt-b")
    (msg,) = rt.link("get", ifname="rt-a")
    assert msg.get("ifname") == "rt-a"
    peer = msg.get("IFLA_LINK")
    rt.link("set", index=msg["index"], mtu=1400, state="up")
    (again,) = rt.link("get", index=msg["index"])
    assert again.get("IFLA_MTU") == 1400
    assert rt.link_lookup(ifname="rt-b") == [peer]
    rt.link("del", ifname="rt-a")
    assert rt.link_lookup(ifname="rt-a") == []
    assert rt.link_lookup(ifname="rt-b") == []  # a veth goes with its peer


def test_kernel_errors_are_netlink_errors(make_ns: MakeNs) -> None:
    rt = make_ns().netlink()
    with pytest.raises(NetlinkError) as e:
        rt.link("get", ifname="nosuchlink")
    assert e.value.code == errno.ENODEV
    rt.link("add", ifname="rt-br", kind="bridge")
    with pytest.raises(NetlinkError) as e:
        rt.link("add", ifname="rt-br", kind="bridge")
    assert e.value.code == errno.EEXIST
    # The socket is still in step with the kernel after the errors.
    assert [m.get("ifname") for m in rt.link("get", ifname="rt-br")] == ["rt-br"]


def test_addresses_routes_and_filters(make_ns: MakeNs) -> None:
    rt = make_ns().netlink()
    rt.link("add", ifname="rt-br", kind="bridge")
    (index,) = rt.link_lookup(ifname="rt-br")
    rt.link("set", index=index, state="up")
    rt.addr("replace", index=index, address="10.230.1.1", prefixlen=24)
    rt.addr("replace", index=index, address="fd10:230::1", prefixlen=64)
    mine = rt.get_addr(index=index, family=socket.AF_INET)
    assert [(a.get("IFA_ADDRESS"), a["prefixlen"]) for a in mine] == [("10.230.1.1", 24)]
    rt.route("add", dst="10.230.9.0/24", gateway="10.230.1.9")
    routes = rt.route("dump", family=socket.AF_INET, table=254)
    dsts = {(r.get("RTA_DST"), r["dst_len"]) for r in routes}
    assert ("10.230.9.0", 24) in dsts and ("10.230.1.0", 24) in dsts
    rt.route("del", dst="10.230.9.0/24", gateway="10.230.1.9")
    routes = rt.route("dump", family=socket.AF_INET, table=254)
    assert ("10.230.9.0", 24) not in {(r.get("RTA_DST"), r["dst_len"]) for r in routes}


def test_a_dump_larger_than_one_datagram(make_ns: MakeNs) -> None:
    rt = make_ns().netlink()
    names = {f"rt-br{i}" for i in range(150)}
    for name in names:
        rt.link("add", ifname=name, kind="bridge")
    dumped = [m.get("ifname") for m in rt.get_links()]
    assert len(dumped) == len(set(dumped)) == len(names) + 1  # and lo
    assert set(dumped) == names | {"lo"}


def test_usable_from_another_thread_and_in_its_namespace(make_ns: MakeNs) -> None:
    ns = make_ns()
    rt = ns.netlink()
    out: list[object] = []
    t = threading.Thread(target=lambda: out.append(rt.link("add", ifname="rt-x", kind="bridge")))
    t.start()
    t.join()
    assert out == [[]]
    assert interfaces.link_exists(ns, "rt-x")
    assert not interfaces.link_exists(Namespace.current(), "rt-x")


def test_ipv4_devconf_by_netlink(make_ns: MakeNs) -> None:
    ns = make_ns()
    interfaces.create_bridge(ns, "rt-br")
    path = "net.ipv4.conf.rt-br.route_localnet"
    assert ns.sysctl(path) == "0"
    interfaces.set_ipv4_devconf(ns, "rt-br", interfaces.IPV4_DEVCONF_ROUTE_LOCALNET, 1)
    assert ns.sysctl(path) == "1"
    interfaces.set_ipv4_devconf(ns, "rt-br", interfaces.IPV4_DEVCONF_ROUTE_LOCALNET, 0)
    assert ns.sysctl(path) == "0"
    with pytest.raises(LinkNotFound, match="nosuch"):
        interfaces.set_ipv4_devconf(ns, "nosuch", interfaces.IPV4_DEVCONF_ROUTE_LOCALNET, 1)
    with pytest.raises(InvalidLinkConfig):
        interfaces.set_ipv4_devconf(ns, "rt-br", 999, 1)


def test_unsupported_calls_say_so(make_ns: MakeNs) -> None:
    rt = make_ns().netlink()
    with pytest.raises(TypeError, match="frobnicate"):
        rt.link("frobnicate", ifname="x")


def test_a_dump_cut_short_gives_a_fresh_socket(
    make_ns: MakeNs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dump whose reading stops part way (here the second datagram is made to fail)
    leaves the kernel mid-dump; that socket is retired and the next call gets a new
    one, on which dumps work."""
    ns = make_ns()
    rt = ns.netlink()
    for i in range(150):
        rt.link("add", ifname=f"rt-br{i}", kind="bridge")
    real = rt._recv
    calls = {"n": 0}

    def flaky() -> bytes:
        calls["n"] += 1
        if calls["n"] == 2:
            raise InterruptedError("injected")
        return real()

    monkeypatch.setattr(rt, "_recv", flaky)
    with pytest.raises(InterruptedError):
        rt.get_links()
    assert rt.broken
    fresh = ns.netlink()
    assert fresh is not rt and not fresh.broken
    assert len(fresh.link_briefs()) == 151
    with pytest.raises(NetlinkError) as e:
        rt.get_links()  # the retired one refuses plainly
    assert e.value.code == errno.EBADFD
