"""The Container Network Model on the real kernel: libnetwork's README scenario and
the behaviours a user checks, inside throwaway namespaces (see cnm_world.py)."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import pyln
from pyln import errors, netlabel
from pyln.osl import Namespace, interfaces, routes

from .cnm_world import Server, World, connect, eventually, make_world


@pytest.fixture
def world(make_ns: Callable[[str], Namespace]) -> World:
    return make_world(make_ns)


@pytest.fixture(params=["nftables", "iptables"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def ctrl(tmp_path: Path, world: World, backend: str) -> Iterator[pyln.Controller]:
    c = pyln.Controller(
        state_dir=tmp_path / "state",
        drivers={"bridge": {"firewall": backend}},
        host_namespace=world.host,
    )
    yield c
    cleanup(c)


def cleanup(c: pyln.Controller) -> None:
    """Deletes everything the controller has, then closes it."""
    if c._closed:
        return
    for sbx in c.sandboxes():
        sbx.delete()
    for net in c.networks():
        for ep in net.endpoints():
            ep.delete(force=True)
        net.delete()
    c.close()


def container(ctrl: pyln.Controller, net: pyln.Network, name: str, **ep_opts: object):
    sbx = ctrl.new_sandbox(name, hostname=name, domainname="docker.io")
    ep = net.create_endpoint(f"ep-{name}", **ep_opts)
    ep.join(sbx)
    return sbx, ep


def connect_seen(src: pyln.Sandbox, dst: pyln.Sandbox, dst_ep: pyln.Endpoint) -> str | None:
    """Connects from sandbox `src` to a server in `dst` at `dst_ep`'s address; returns
    the source address the server saw (None if the connection failed)."""
    srv = Server(Namespace.open(dst.key))
    try:
        return connect(Namespace.open(src.key), str(dst_ep.info().iface.address.ip), srv.port)
    finally:
        srv.close()


def reach(src: Namespace, dst: pyln.Endpoint, timeout: float = 3.0) -> str | None:
    """Connects from `src` to a server started in `dst`'s sandbox; the answer is the
    source address the server saw (None: no connection)."""
    sbx = dst.sandbox()
    assert sbx is not None
    srv = Server(Namespace.open(sbx.key))
    try:
        addr = dst.info().iface.address
        assert addr is not None
        return connect(src, str(addr.ip), srv.port, timeout)
    finally:
        srv.close()


def test_readme_example(ctrl: pyln.Controller) -> None:
    net = ctrl.new_network("bridge", "network1", ipam_v4=[{"pool": "10.241.0.0/24"}])
    ep = net.create_endpoint("Endpoint1")
    sbx = ctrl.new_sandbox("container1", hostname="test", domainname="docker.io")
    ep.join(sbx)
    info = ep.driver_info()
    mac = info[netlabel.MAC_ADDRESS]
    assert mac == "02:42:0a:f1:00:02", "MAC derived from the IP, as libnetwork does"
    i = ep.info()
    assert str(i.iface.address) == "10.241.0.2/24"
    assert i.iface.mac_address == mac
    assert str(i.gateway) == "10.241.0.1"
    assert i.sandbox_key == sbx.key
    ns = Namespace.open(sbx.key)
    link = interfaces.link_info(ns, "eth0")
    assert link.mac == mac
    assert ipaddress.ip_interface("10.241.0.2/24") in link.addresses
    assert any(
        r.destination.prefixlen == 0 and str(r.gateway) == "10.241.0.1"
        for r in routes.routes(ns, 2)
    )
    ns.close()
    assert ctrl.network_by_name("network1") == net
    assert ctrl.network_by_id(net.id) == net
    assert net.endpoints() == [ep]
    assert ctrl.sandbox_by_id(sbx.id) == sbx and sbx.container_id == "container1"
    ep.leave(sbx)
    ep.delete()
    sbx.delete()
    net.delete()
    assert ctrl.networks() == [] and ctrl.sandboxes() == []


def test_two_sandboxes_on_one_network_connect(ctrl: pyln.Controller) -> None:
    net = ctrl.new_network("bridge", "n1", ipam_v4=[{"pool": "10.242.0.0/24"}])
    a, ep_a = container(ctrl, net, "a")
    b, ep_b = container(ctrl, net, "b")
    assert connect_seen(a, b, ep_b) == str(ep_a.info().iface.address.ip)


def test_bridge_networks_are_isolated(ctrl: pyln.Controller) -> None:
    n1 = ctrl.new_network("bridge", "n1", ipam_v4=[{"pool": "10.243.1.0/24"}])
    n2 = ctrl.new_network("bridge", "n2", ipam_v4=[{"pool": "10.243.2.0/24"}])
    a, _ = container(ctrl, n1, "a")
    _, ep_b = container(ctrl, n2, "b")
    c, _ = container(ctrl, n2, "c")
    assert reach(Namespace.open(c.key), ep_b), "same network: reachable"
    assert reach(Namespace.open(a.key), ep_b, 1.0) is None, "other network: isolated"


def test_outbound_nat_and_internal_network(ctrl: pyln.Controller, world: World) -> None:
    out = Server(world.outside)
    try:
        pub = ctrl.new_network("bridge", "pub", ipam_v4=[{"pool": "10.244.1.0/24"}])
        a, _ = container(ctrl, pub, "a")
        seen = connect(Namespace.open(a.key), "10.240.200.2", out.port)
        assert seen == "10.240.200.1", "the outside sees the host's address (masquerade)"
        internal = ctrl.new_network(
            "bridge", "int", internal=True, ipam_v4=[{"pool": "10.244.2.0/24"}]
        )
        b, ep_b = container(ctrl, internal, "b")
        assert ep_b.info().gateway is None
        assert connect(Namespace.open(b.key), "10.240.200.2", out.port, 1.0) is None
    finally:
        out.close()


def test_icc_off_blocks_containers_on_one_network(ctrl: pyln.Controller, world: World) -> None:
    net = ctrl.new_network(
        "bridge",
        "noicc",
        ipam_v4=[{"pool": "10.245.0.0/24"}],
        driver_options={netlabel.BRIDGE_ENABLE_ICC: "false"},
    )
    a, _ = container(ctrl, net, "a")
    _, ep_b = container(ctrl, net, "b")
    assert reach(world.host, ep_b), "the host still reaches the container"
    assert reach(Namespace.open(a.key), ep_b, 1.0) is None, "containers do not reach each other"


def test_published_port(ctrl: pyln.Controller, world: World) -> None:
    net = ctrl.new_network("bridge", "web", ipam_v4=[{"pool": "10.246.0.0/24"}])
    sbx, ep = container(
        ctrl, net, "web", port_bindings=[{"proto": "tcp", "port": 8080, "host_port": 18080}]
    )
    srv = Server(Namespace.open(sbx.key), port=8080)
    try:
        bindings = ep.driver_info()[netlabel.PORT_MAP]
        assert bindings == [
            {"proto": "tcp", "port": 8080, "host_ip": "0.0.0.0", "host_port": 18080}
        ]
        # from the outside, at the host's uplink address
        assert eventually(lambda: connect(world.outside, "10.240.200.1", 18080))
        # from the host itself, on loopback and on the bridge address
        assert eventually(lambda: connect(world.host, "127.0.0.1", 18080))
        assert eventually(lambda: connect(world.host, "10.246.0.1", 18080))
        ep.leave(sbx)
        assert connect(world.outside, "10.240.200.1", 18080, 1.0) is None
    finally:
        srv.close()


def test_ephemeral_host_port(ctrl: pyln.Controller, world: World) -> None:
    net = ctrl.new_network("bridge", "eph", ipam_v4=[{"pool": "10.247.0.0/24"}])
    sbx, ep = container(ctrl, net, "e", port_bindings=[{"proto": "tcp", "port": 80}])
    srv = Server(Namespace.open(sbx.key), port=80)
    try:
        (b,) = ep.driver_info()[netlabel.PORT_MAP]
        assert b["host_port"] > 1024
        assert eventually(lambda: connect(world.outside, "10.240.200.1", b["host_port"]))
    finally:
        srv.close()


def test_hosts_file_resolves_own_name(ctrl: pyln.Controller) -> None:
    net = ctrl.new_network("bridge", "h", ipam_v4=[{"pool": "10.248.0.0/24"}])
    sbx = ctrl.new_sandbox("c1", hostname="web", domainname="example.org",
                           extra_hosts=[("db", "10.248.0.200")])  # fmt: skip
    ep = net.create_endpoint("e1")
    ep.join(sbx)
    hosts = sbx.hosts_path.read_text().splitlines()

    def resolve(name: str) -> str | None:
        for line in hosts:
            fields = line.split("#")[0].split()
            if len(fields) > 1 and name in fields[1:]:
                return fields[0]
        return None

    assert resolve("web") == "10.248.0.2"
    assert resolve("web.example.org") == "10.248.0.2"
    assert resolve("db") == "10.248.0.200"
    assert resolve("localhost") == "127.0.0.1"


def test_restart_restores_everything(tmp_path: Path, world: World, backend: str) -> None:
    c = pyln.Controller(
        tmp_path / "s", {"bridge": {"firewall": backend}}, host_namespace=world.host
    )
    net = c.new_network("bridge", "keep", ipam_v4=[{"pool": "10.249.0.0/24"}])
    a, ep_a = container(
        c, net, "a", port_bindings=[{"proto": "tcp", "port": 80, "host_port": 18081}]
    )
    b, ep_b = container(c, net, "b")
    ids = (net.id, ep_a.id, ep_b.id, a.id, b.id)
    c.close()
    c2 = pyln.Controller(
        tmp_path / "s", {"bridge": {"firewall": backend}}, host_namespace=world.host
    )
    try:
        net2 = c2.network_by_name("keep")
        assert (net2.id, *[e.id for e in sorted(net2.endpoints(), key=lambda e: e.name)]) == ids[:3]
        assert {s.id for s in c2.sandboxes()} == {a.id, b.id}
        srv = Server(Namespace.open(a.key), port=80)
        try:
            assert eventually(lambda: connect(world.outside, "10.240.200.1", 18081))
            assert connect(Namespace.open(b.key), "10.249.0.2", 80) == "10.249.0.3"
        finally:
            srv.close()
        # A new endpoint gets a fresh address, not one in use.
        _, ep_c = container(c2, net2, "c")
        assert str(ep_c.info().iface.address) == "10.249.0.4/24"
    finally:
        cleanup(c2)


def test_typed_errors_leave_no_state(ctrl: pyln.Controller) -> None:
    with pytest.raises(errors.NotFound, match="nosuch"):
        ctrl.new_network("nosuch", "x")
    with pytest.raises(errors.BadRequest):
        ctrl.new_network("bridge", "x", ipam_v4=[{"pool": "10.250.0.0/33"}])
    with pytest.raises(errors.InvalidName):
        ctrl.new_network("bridge", "")
    net = ctrl.new_network("bridge", "x", ipam_v4=[{"pool": "10.250.0.0/24"}])
    with pytest.raises(errors.NetworkNameExists):
        ctrl.new_network("bridge", "x", ipam_v4=[{"pool": "10.250.1.0/24"}])
    with pytest.raises(errors.Forbidden, match="overlaps"):
        ctrl.new_network("bridge", "y", ipam_v4=[{"pool": "10.250.0.0/16"}])
    ep = net.create_endpoint("e")
    with pytest.raises(errors.EndpointExists):
        net.create_endpoint("e")
    with pytest.raises(errors.ActiveEndpoints):
        net.delete()
    sbx = ctrl.new_sandbox("c")
    ep.join(sbx)
    with pytest.raises(errors.AlreadyJoined):
        ep.join(sbx)
    with pytest.raises(errors.ActiveContainer):
        ep.delete()
    ep.leave(sbx)
    ep.delete()
    with pytest.raises(errors.EndpointNotFound):
        ep.join(sbx)
    with pytest.raises(errors.BadRequest):
        net.create_endpoint("bad", mac_address="zz:zz")
    assert [n.name for n in ctrl.networks()] == ["x"]
    assert net.endpoints() == []
    pools = [p.pool for p in ctrl.ipam.pools()]
    assert [str(p) for p in pools] == ["10.250.0.0/24"]


def test_bridge_name_taken_by_another_link(ctrl: pyln.Controller, world: World) -> None:
    """A network whose bridge name is a link of another kind fails with LinkExists and
    leaves no rule, record or link behind; the subnet and name are free again."""
    world.host.netlink().link("add", ifname="brtaken", kind="veth", peer="brtaken-p")
    fw = ctrl.driver("bridge").firewall
    with pytest.raises(interfaces.LinkExists, match="brtaken"):
        ctrl.new_network(
            "bridge", "x", ipam_v4=[{"pool": "10.250.0.0/24"}],
            driver_options={netlabel.BRIDGE_NAME: "brtaken"},
        )  # fmt: skip
    assert ctrl.networks() == [] and fw.networks() == []
    assert interfaces.link_kind(world.host, "brtaken") == "veth"
    net = ctrl.new_network("bridge", "x", ipam_v4=[{"pool": "10.250.0.0/24"}])
    assert fw.networks() == [net.id]
    interfaces.delete_link(world.host, "brtaken")


def test_failed_bridge_leaves_no_rules(
    ctrl: pyln.Controller, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rules go in while the bridge is made; if making the bridge fails (here the
    kernel call is made to fail), they are gone when the error is raised, so a retry on
    the same subnet works at once."""
    fw = ctrl.driver("bridge").firewall

    def refuse(*args: object, **kw: object) -> int:
        raise interfaces.LinkError("injected failure")

    with monkeypatch.context() as m:
        m.setattr(interfaces, "create_bridge", refuse)
        with pytest.raises(interfaces.LinkError, match="injected"):
            ctrl.new_network("bridge", "x", ipam_v4=[{"pool": "10.250.0.0/24"}])
    assert ctrl.networks() == [] and fw.networks() == []
    net = ctrl.new_network("bridge", "x", ipam_v4=[{"pool": "10.250.0.0/24"}])
    assert fw.networks() == [net.id]
    a, ea = container(ctrl, net, "a")
    b, eb = container(ctrl, net, "b")
    assert connect_seen(a, b, eb) == str(ea.info().iface.address.ip)


def test_null_and_host_drivers(ctrl: pyln.Controller, world: World) -> None:
    null = ctrl.new_network("null", "none")
    sbx = ctrl.new_sandbox("isolated")
    ep = null.create_endpoint("n")
    ep.join(sbx)
    ns = Namespace.open(sbx.key)
    assert [link.get("ifname") for link in ns.netlink().get_links()] == ["lo"]
    ns.close()
    host = ctrl.new_network("host", "host")
    hsbx = ctrl.new_sandbox("hostmode", use_host_namespace=True)
    hep = host.create_endpoint("h")
    hep.join(hsbx)
    assert hsbx.key == str(world.host.path)
    with pytest.raises(errors.Forbidden):
        host.create_endpoint("h2").join(sbx)


def test_ipv6_between_containers(ctrl: pyln.Controller) -> None:
    net = ctrl.new_network(
        "bridge",
        "v6",
        enable_ipv6=True,
        ipam_v4=[{"pool": "10.252.0.0/24"}],
        ipam_v6=[{"pool": "fd00:252::/64"}],
    )
    a, _ = container(ctrl, net, "a")
    b, ep_b = container(ctrl, net, "b")
    info = ep_b.info()
    assert str(info.iface.address_ipv6) == "fd00:252::3/64"
    assert str(info.gateway_ipv6) == "fd00:252::1"
    srv = Server(Namespace.open(b.key), addr="::")
    try:
        got = eventually(
            lambda: connect(Namespace.open(a.key), "fd00:252::3", srv.port), timeout=10
        )
        assert got == "fd00:252::2"
    finally:
        srv.close()


def test_dns_options_in_resolv_conf(ctrl: pyln.Controller) -> None:
    sbx = ctrl.new_sandbox(
        "dns", dns=["10.0.0.53", "10.0.0.54"], dns_search=["example.org"], dns_options=["ndots:2"]
    )
    text = sbx.resolv_conf_path.read_text()
    assert "nameserver 10.0.0.53" in text and "nameserver 10.0.0.54" in text
    assert "search example.org" in text
    assert "options ndots:2" in text
    with pytest.raises(errors.BadRequest):
        ctrl.new_sandbox("bad-dns", dns=["not-an-ip"])
    assert [s.container_id for s in ctrl.sandboxes()] == ["dns"]


def test_gateway_endpoint_selection(ctrl: pyln.Controller) -> None:
    internal = ctrl.new_network(
        "bridge", "aaa-internal", internal=True, ipam_v4=[{"pool": "10.253.1.0/24"}]
    )
    pub = ctrl.new_network("bridge", "zzz-public", ipam_v4=[{"pool": "10.253.2.0/24"}])
    other = ctrl.new_network("bridge", "bbb-other", ipam_v4=[{"pool": "10.253.3.0/24"}])
    sbx = ctrl.new_sandbox("multi")
    e_int = internal.create_endpoint("i")
    e_int.join(sbx)
    assert sbx.gateway_endpoint() is None, "an internal network gives no gateway"
    e_pub = pub.create_endpoint("p")
    e_pub.join(sbx)
    assert sbx.gateway_endpoint() == e_pub
    e_other = other.create_endpoint("o")
    e_other.join(sbx, priority=10)
    assert sbx.gateway_endpoint() == e_other, "higher priority wins"
    ns = Namespace.open(sbx.key)

    def default_via() -> str | None:
        for r in routes.routes(ns, 2):
            if r.destination.prefixlen == 0:
                return str(r.gateway)
        return None

    assert default_via() == "10.253.3.1"
    e_other.leave(sbx)
    assert sbx.gateway_endpoint() == e_pub
    assert default_via() == "10.253.2.1"
    names = {e.name: ctrl._endpoints[e.id]["iface_name"] for e in sbx.endpoints()}
    assert names == {"i": "eth0", "p": "eth1"}
    ns.close()


def test_default_bridge(ctrl: pyln.Controller, world: World) -> None:
    opts = {netlabel.BRIDGE_DEFAULT_BRIDGE: "true"}
    ctrl.new_network("bridge", "bridge", driver_options=opts)
    assert interfaces.link_info(world.host, "pyln0").kind == "bridge"
    with pytest.raises(errors.BadRequest, match="default bridge"):
        ctrl.new_network("bridge", "second", driver_options=opts)
    ctrl.new_network("bridge", "named", driver_options={netlabel.BRIDGE_NAME: "mybr0"})
    assert interfaces.link_exists(world.host, "mybr0")
    with pytest.raises(errors.BadRequest, match="mybr0"):
        ctrl.new_network("bridge", "clash", driver_options={netlabel.BRIDGE_NAME: "mybr0"})
    with pytest.raises(errors.BadRequest, match="unknown bridge network options"):
        ctrl.new_network("bridge", "typo", driver_options={"com.docker.network.bridge.nmae": "x"})
    assert {n.name for n in ctrl.networks()} == {"bridge", "named"}


def test_restart_removes_rules_of_vanished_networks(
    tmp_path: Path, world: World, backend: str
) -> None:
    """A crash after a network's record was removed but before its rules were: the
    next controller removes the rules."""
    cfg = {"bridge": {"firewall": backend}}
    c = pyln.Controller(tmp_path / "s", cfg, host_namespace=world.host)
    gone = c.new_network("bridge", "gone", ipam_v4=[{"pool": "10.254.1.0/24"}])
    kept = c.new_network("bridge", "kept", ipam_v4=[{"pool": "10.254.2.0/24"}])
    fw = c.driver("bridge").firewall  # type: ignore[attr-defined]
    assert set(fw.networks()) >= {gone.id, kept.id}
    c.store.delete("pyln/network/" + gone.id)  # the record, as if deleted before a crash
    gone_id = gone.id
    c.close()
    c2 = pyln.Controller(tmp_path / "s", cfg, host_namespace=world.host)
    try:
        fw2 = c2.driver("bridge").firewall  # type: ignore[attr-defined]
        assert gone_id not in fw2.networks()
        assert kept.id in fw2.networks()
    finally:
        cleanup(c2)


def test_published_port_over_ipv6(ctrl: pyln.Controller, world: World) -> None:
    """A port published on :: is reachable at the bridge's IPv6 address (kernel DNAT)
    and at [::1] (the userland proxy: IPv6 has no route_localnet)."""
    net = ctrl.new_network(
        "bridge",
        "v6pub",
        enable_ipv6=True,
        ipam_v4=[{"pool": "10.255.1.0/24"}],
        ipam_v6=[{"pool": "fd00:255::/64"}],
    )
    sbx, _ = container(
        ctrl,
        net,
        "w6",
        port_bindings=[{"proto": "tcp", "port": 80, "host_ip": "::", "host_port": 18090}],
    )
    srv = Server(Namespace.open(sbx.key), addr="::", port=80)
    try:
        assert eventually(lambda: connect(world.host, "fd00:255::1", 18090), timeout=10)
        assert eventually(lambda: connect(world.host, "::1", 18090), timeout=10)
    finally:
        srv.close()
