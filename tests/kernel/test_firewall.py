"""The firewall backends on the real kernel, checked with real sockets between
throwaway namespaces: masquerade, isolation, icc, internal networks, published ports
(from outside, from the host's loopback and bridge address, hairpin), state read back
after a restart, and flush."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Iterator

import pytest

from pyln.firewall import (
    Firewall,
    FirewallConflict,
    InvalidFirewallRequest,
    NetworkNotInstalled,
    NetworkRules,
    PortMapping,
    UnknownBackend,
    new_firewall,
)
from pyln.osl import Namespace

from .fw_topology import OUTSIDE_IP, UPLINK_IP, Server, Topology, connect, in_ns, make_topology

NO = 0.5  # deadline for connections expected to fail (dropped packets time out)
NET1 = ipaddress.ip_network("10.220.1.0/24")
NET2 = ipaddress.ip_network("10.220.2.0/24")
ANY4 = ipaddress.ip_address("0.0.0.0")


def ip(s: str) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(s)


@pytest.fixture(params=["nftables", "iptables"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def topo(make_ns: Callable[[str], Namespace]) -> Topology:
    """host with br1 (10.220.1.0/24: c1, c2), br2 (10.220.2.0/24: c3), and the outside."""
    t = make_topology(make_ns)
    t.bridge("br1", "10.220.1.1/24")
    t.bridge("br2", "10.220.2.1/24")
    t.container("c1", "br1", "10.220.1.2/24")
    t.container("c2", "br1", "10.220.1.3/24")
    t.container("c3", "br2", "10.220.2.2/24")
    return t


@pytest.fixture
def fw(topo: Topology, backend: str) -> Iterator[Firewall]:
    f = new_firewall(topo.host, backend)
    yield f
    f.flush()


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    made: list[Server] = []
    yield made
    for s in made:
        s.close()


def serve(servers: list[Server], ns: Namespace, port: int = 0) -> Server:
    s = Server(ns, port=port)
    servers.append(s)
    return s


def net(nid: str = "n1", bridge: str = "br1", subnet: ipaddress.IPv4Network = NET1, **kw: bool):
    return NetworkRules(nid, bridge, (subnet,), **kw)


def has_br_netfilter(ns: Namespace) -> bool:
    try:
        ns.sysctl("net.bridge.bridge-nf-call-iptables")
    except OSError:
        return False
    return True


# -- outbound, isolation, icc, internal ----------------------------------------------


def test_masquerade_outbound(topo: Topology, fw: Firewall, servers: list[Server]) -> None:
    fw.setup_network(net())
    assert topo.host.sysctl("net.ipv4.ip_forward") == "1"
    world = serve(servers, topo.outside)
    assert connect(topo.containers["c1"], OUTSIDE_IP, world.port)
    assert world.peers == [UPLINK_IP]  # the outside has no route back: masqueraded


def test_no_masquerade_means_container_source(
    topo: Topology, fw: Firewall, servers: list[Server]
) -> None:
    fw.setup_network(net(masquerade=False))
    topo.outside.netlink().route("add", dst="10.220.1.0/24", gateway=UPLINK_IP)
    world = serve(servers, topo.outside)
    assert connect(topo.containers["c1"], OUTSIDE_IP, world.port)
    assert world.peers == [topo.ips["c1"]]


def test_networks_are_isolated(topo: Topology, fw: Firewall, servers: list[Server]) -> None:
    c1, c3 = topo.containers["c1"], topo.containers["c3"]
    s1, s3 = serve(servers, c1), serve(servers, c3)
    topo.host.sysctl("net.ipv4.ip_forward", "1")
    assert connect(c1, topo.ips["c3"], s3.port)  # routed through the host before any rule
    fw.setup_network(net("n1", "br1", NET1))
    fw.setup_network(net("n2", "br2", NET2))
    assert not connect(c1, topo.ips["c3"], s3.port, NO)
    assert not connect(c3, topo.ips["c1"], s1.port, NO)
    world = serve(servers, topo.outside)
    assert connect(c1, OUTSIDE_IP, world.port)
    assert connect(c3, OUTSIDE_IP, world.port)
    fw.remove_network("n2")
    assert connect(c1, topo.ips["c3"], s3.port)  # n2's rules are gone, n1 accepts


def test_icc(topo: Topology, fw: Firewall, servers: list[Server]) -> None:
    if not has_br_netfilter(topo.host):
        pytest.skip("kernel lacks br_netfilter (needed to filter bridged traffic)")
    c1, c2 = topo.containers["c1"], topo.containers["c2"]
    s2 = serve(servers, c2)
    fw.setup_network(net(icc=True))
    assert connect(c1, topo.ips["c2"], s2.port)
    fw.setup_network(net(icc=False))  # an update of the same network
    assert not connect(c1, topo.ips["c2"], s2.port, NO)
    world = serve(servers, topo.outside)
    assert connect(c1, OUTSIDE_IP, world.port)


def test_internal_has_no_way_out(topo: Topology, fw: Firewall, servers: list[Server]) -> None:
    c1, c2 = topo.containers["c1"], topo.containers["c2"]
    fw.setup_network(net(internal=True))
    world = serve(servers, topo.outside)
    assert not connect(c1, OUTSIDE_IP, world.port, NO)
    s2 = serve(servers, c2)
    assert connect(c1, topo.ips["c2"], s2.port)  # inside the network all is well
    topo.outside.netlink().route("add", dst="10.220.1.0/24", gateway=UPLINK_IP)
    assert not connect(topo.outside, topo.ips["c2"], s2.port, NO)


# -- published ports -------------------------------------------------------------------


def test_published_port(topo: Topology, fw: Firewall, servers: list[Server]) -> None:
    c1, c2 = topo.containers["c1"], topo.containers["c2"]
    s2 = serve(servers, c2)
    fw.setup_network(net())
    m = PortMapping("tcp", ANY4, 8080, ip(topo.ips["c2"]), s2.port)
    fw.add_port_mappings("n1", [m])
    assert connect(topo.outside, UPLINK_IP, 8080)  # from the world
    assert s2.peers[-1] == OUTSIDE_IP  # DNAT only: the container sees the real client
    assert connect(topo.host, "127.0.0.1", 8080)  # loopback, in-kernel (route_localnet)
    assert connect(topo.host, "10.220.1.1", 8080)  # the bridge address
    assert connect(c1, UPLINK_IP, 8080)  # hairpin to another container
    assert connect(c2, UPLINK_IP, 8080)  # hairpin to itself
    assert connect(c1, "10.220.1.1", 8080)
    fw.remove_port_mappings("n1", [m])
    for ns, addr in ((topo.outside, UPLINK_IP), (topo.host, "127.0.0.1"), (c1, UPLINK_IP)):
        assert not connect(ns, addr, 8080, NO)
    fw.remove_port_mappings("n1", [m])  # idempotent


def test_published_port_on_one_address(topo: Topology, fw: Firewall, servers: list[Server]) -> None:
    s2 = serve(servers, topo.containers["c2"])
    fw.setup_network(net())
    m = PortMapping("tcp", ip(UPLINK_IP), 8081, ip(topo.ips["c2"]), s2.port)
    fw.add_port_mappings("n1", [m])
    assert connect(topo.outside, UPLINK_IP, 8081)
    assert not connect(topo.host, "10.220.1.1", 8081, NO)  # not on the bridge address


def test_many_mappings_and_remove_network(
    topo: Topology, fw: Firewall, servers: list[Server]
) -> None:
    s2 = serve(servers, topo.containers["c2"])
    fw.setup_network(net())
    ms = [PortMapping("tcp", ANY4, 9000 + i, ip(topo.ips["c2"]), s2.port) for i in range(50)]
    for m in ms:
        fw.add_port_mappings("n1", [m])
    assert connect(topo.outside, UPLINK_IP, 9000)
    assert connect(topo.outside, UPLINK_IP, 9049)
    fw.setup_network(net())  # idempotent: mappings survive
    assert connect(topo.outside, UPLINK_IP, 9049)
    fw.remove_network("n1")
    fw.remove_network("n1")
    assert not connect(topo.outside, UPLINK_IP, 9049, NO)
    assert fw.networks() == []


def test_hairpin_off(topo: Topology, fw: Firewall, servers: list[Server]) -> None:
    c1 = topo.containers["c1"]
    s2 = serve(servers, topo.containers["c2"])
    fw.setup_network(net(hairpin=False))
    fw.add_port_mappings("n1", [PortMapping("tcp", ANY4, 8080, ip(topo.ips["c2"]), s2.port)])
    assert connect(topo.outside, UPLINK_IP, 8080)
    assert not connect(c1, UPLINK_IP, 8080, NO)


def test_mappings_need_the_network(topo: Topology, fw: Firewall) -> None:
    m = PortMapping("tcp", ANY4, 8080, ip("10.220.1.3"), 80)
    with pytest.raises(NetworkNotInstalled):
        fw.add_port_mappings("nope", [m])
    fw.remove_port_mappings("nope", [m])  # nothing to remove: fine


def test_bridge_belongs_to_one_network(topo: Topology, fw: Firewall) -> None:
    fw.setup_network(net("n1", "br1"))
    with pytest.raises(FirewallConflict):
        fw.setup_network(net("other", "br1"))


# -- state in the kernel -----------------------------------------------------------------


def test_networks_read_back_and_flush(topo: Topology, backend: str) -> None:
    fw = new_firewall(topo.host, backend)
    fw.setup_network(net("n1", "br1", NET1))
    fw.setup_network(net("n2", "br2", NET2, internal=True))
    fw.add_port_mappings("n1", [PortMapping("udp", ANY4, 5353, ip("10.220.1.3"), 53)])
    again = new_firewall(topo.host, backend)  # as after a restart
    assert again.backend == backend
    assert again.networks() == ["n1", "n2"]
    again.remove_network("n1")
    assert fw.networks() == ["n2"]
    again.flush()
    again.flush()
    assert again.networks() == []
    if backend == "nftables":
        assert "pyln" not in in_ns(topo.host, "nft", "list", "ruleset")
    else:
        dump = in_ns(topo.host, "iptables-save") + in_ns(topo.host, "ip6tables-save")
        assert "DOCKER" not in dump and "pyln" not in dump
        assert [ln for ln in dump.splitlines() if ln.startswith("-A")] == []


def test_setup_is_idempotent(topo: Topology, backend: str) -> None:
    fw = new_firewall(topo.host, backend)
    fw.setup_network(net())
    fw.add_port_mappings("n1", [PortMapping("tcp", ANY4, 8080, ip("10.220.1.3"), 80)])

    def dump() -> str:
        if backend == "nftables":
            return in_ns(topo.host, "nft", "list", "ruleset")
        return "".join(
            ln
            for ln in in_ns(topo.host, "iptables-save").splitlines(True)
            if not ln.startswith("#")
        )

    before = dump()
    fw.setup_network(net())
    assert dump() == before
    fw.flush()


def test_nftables_sees_what_others_changed(topo: Topology) -> None:
    """The nftables backend keeps what it read of its table; changes by anyone else
    (another controller, an admin's nft command) must still be seen."""
    fw = new_firewall(topo.host, "nftables")
    fw.setup_network(net("n1", "br1", NET1))
    other = new_firewall(topo.host, "nftables")  # e.g. a second controller
    other.setup_network(net("n2", "br2", NET2))
    with pytest.raises(FirewallConflict, match="n2"):
        fw.setup_network(net("n3", "br2", ipaddress.ip_network("10.220.3.0/24")))
    assert fw.networks() == ["n1", "n2"]
    # An admin removes the whole table behind both firewalls' backs.
    in_ns(topo.host, "nft", "delete", "table", "inet", "pyln")
    assert fw.networks() == []
    fw.remove_network("n1")  # already gone: fine
    fw.setup_network(net("n1", "br1", NET1))
    assert other.networks() == ["n1"]
    fw.add_port_mappings("n1", [PortMapping("tcp", ANY4, 8080, ip("10.220.1.3"), 80)])
    other.remove_network("n1")  # its port mapping goes with it
    assert "8080" not in in_ns(topo.host, "nft", "list", "ruleset")
    fw.close()
    other.flush()
    other.close()


def test_iptables_layout_is_dockers(topo: Topology) -> None:
    fw = new_firewall(topo.host, "iptables")
    fw.setup_network(net("n1", "br1", NET1, icc=False))
    fw.add_port_mappings("n1", [PortMapping("tcp", ANY4, 8080, ip("10.220.1.3"), 80)])
    dump = in_ns(topo.host, "iptables-save")
    for chain in ("DOCKER", "DOCKER-USER", "DOCKER-ISOLATION-STAGE-1", "DOCKER-ISOLATION-STAGE-2"):
        assert f":{chain} - [0:0]" in dump
    forward = [ln for ln in dump.splitlines() if ln.startswith("-A FORWARD")]
    assert forward[:2] == ["-A FORWARD -j DOCKER-USER", "-A FORWARD -j DOCKER-ISOLATION-STAGE-1"]
    assert "-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER" in dump
    assert "-j DNAT --to-destination 10.220.1.3:80" in dump
    assert '-i br1 -o br1 -m comment --comment "pyln:n1" -j DROP' in dump
    fw.flush()


def test_port_conflict(topo: Topology, backend: str) -> None:
    fw = new_firewall(topo.host, backend)
    fw.setup_network(net("n1", "br1", NET1))
    fw.setup_network(net("n2", "br2", NET2))
    fw.add_port_mappings("n1", [PortMapping("tcp", ANY4, 8080, ip("10.220.1.3"), 80)])
    with pytest.raises(FirewallConflict):
        fw.add_port_mappings("n2", [PortMapping("tcp", ANY4, 8080, ip("10.220.2.2"), 80)])
    # A restarted controller (a new object reading the kernel) refuses it too.
    again = new_firewall(topo.host, backend)
    with pytest.raises(FirewallConflict):
        again.add_port_mappings("n2", [PortMapping("tcp", ANY4, 8080, ip("10.220.2.2"), 80)])
    # Another protocol, or the port once freed, is fine.
    again.add_port_mappings("n2", [PortMapping("udp", ANY4, 8080, ip("10.220.2.2"), 80)])
    fw.remove_port_mappings("n1", [PortMapping("tcp", ANY4, 8080, ip("10.220.1.3"), 80)])
    fw.add_port_mappings("n2", [PortMapping("tcp", ANY4, 8080, ip("10.220.2.2"), 80)])
    fw.flush()


# -- contract ---------------------------------------------------------------------------


def test_unknown_backend_names_the_choices(make_ns: Callable[[str], Namespace]) -> None:
    with pytest.raises(UnknownBackend, match="nftables, iptables"):
        new_firewall(make_ns("x"), "pf")


@pytest.mark.parametrize(
    "make",
    [
        lambda: NetworkRules("bad id", "br1", (NET1,)),
        lambda: NetworkRules("n1", "br 1", (NET1,)),
        lambda: NetworkRules("n1", "br1", ()),
        lambda: PortMapping("icmp", ANY4, 1, ip("10.220.1.2"), 1),
        lambda: PortMapping("tcp", ipaddress.ip_address("::"), 1, ip("10.220.1.2"), 1),
        lambda: PortMapping("tcp", ANY4, 0, ip("10.220.1.2"), 1),
        lambda: PortMapping("tcp", ANY4, 1, ip("10.220.1.2"), 65536),
    ],
)
def test_bad_input_is_refused(make: Callable[[], object]) -> None:
    with pytest.raises(InvalidFirewallRequest):
        make()


def test_machine_namespace_untouched() -> None:
    """The suite never writes to the machine's namespace (a cheap guard: no pyln table)."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    out = in_ns(Namespace.current(), "nft", "list", "tables")
    assert "pyln" not in out
