"""kill -9 of a process driving a controller, at random points of create, join,
leave and delete; a new controller on the same state directory must find no leaked
address, no duplicate address, no orphaned veth or namespace, and keep working."""

from __future__ import annotations

import ipaddress
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import pyln
from pyln import restore
from pyln.drivers.bridge import host_veth_name
from pyln.osl import Namespace, interfaces

POOL = "10.251.0.0/24"

CHURN = """
import random, sys
import pyln
from pyln.osl import Namespace
host = Namespace.open(sys.argv[1])
c = pyln.Controller(sys.argv[2], {"bridge": {"firewall": sys.argv[4]}}, host_namespace=host)
try:
    net = c.network_by_name("n")
except pyln.errors.NotFound:
    net = c.new_network("bridge", "n", ipam_v4=[{"pool": "__POOL__"}])
rng = random.Random(int(sys.argv[3]))
i = rng.randrange(1_000_000)
while True:
    i += 1
    sandboxes = c.sandboxes()
    op = rng.choice(["add", "add", "del", "leave", "rejoin"])
    if op == "add" and len(sandboxes) < 6:
        sbx = c.new_sandbox(f"c{i}")
        ports = [{"proto": "tcp", "port": 80}] if rng.random() < 0.5 else []
        ep = net.create_endpoint(f"e{i}", port_bindings=ports)
        ep.join(sbx)
    elif op == "del" and sandboxes:
        sbx = rng.choice(sandboxes)
        eps = sbx.endpoints()
        sbx.delete()
        for ep in eps:
            ep.delete()
    elif op == "leave":
        joined = [e for e in net.endpoints() if e.sandbox() is not None]
        if joined:
            ep = rng.choice(joined)
            ep.leave(ep.sandbox())
    elif op == "rejoin":
        free = [e for e in net.endpoints() if e.sandbox() is None]
        empty = [s for s in sandboxes if not s.endpoints()]
        if free and empty:
            free[0].join(empty[0])
        elif free:
            free[0].delete()
    print(op, flush=True)
""".replace("__POOL__", POOL)


def check_consistent(c: pyln.Controller, host: Namespace, state: Path) -> None:
    c.driver("bridge").reaper.drain()  # type: ignore[attr-defined]
    net = c.network_by_name("n")
    eps = net.endpoints()
    addrs = [str(e.info().iface.address.ip) for e in eps]  # type: ignore[union-attr]
    assert len(addrs) == len(set(addrs)), "two endpoints share an address"
    (v4,), _ = net.ipam_info()
    bits = c.ipam.bitmask(v4.pool_id)
    base = ipaddress.ip_network(POOL).network_address
    allocated = {str(base + o) for o in range(1, 255) if bits.is_set(o)}
    assert v4.gateway is not None
    assert allocated == set(addrs) | {str(v4.gateway.ip)}, "leaked or lost addresses"
    links = {str(link.get("ifname")) for link in host.netlink().get_links()}
    veths = {n for n in links if n.startswith("veth")}
    joined = [e for e in eps if e.sandbox() is not None]
    assert veths == {host_veth_name(e.id) for e in joined}, "orphaned or missing veths"
    netns = {p for p in (state / "netns").iterdir()} if (state / "netns").exists() else set()
    assert netns == {Path(s.key) for s in c.sandboxes()}, "orphaned or missing namespaces"
    for e in joined:
        sbx = e.sandbox()
        assert sbx is not None
        ns = Namespace.open(sbx.key)
        name = c._endpoints[e.id]["iface_name"]
        info = interfaces.link_info(ns, name)
        assert e.info().iface.address in info.addresses
        ns.close()
    ports = [b["host_port"] for e in joined for b in e.driver_info()[pyln.netlabel.PORT_MAP]]
    assert len(ports) == len(set(ports)), "a host port is published twice"


@pytest.mark.parametrize("backend", ["nftables", "iptables"])
def test_kill_9_at_random_points(
    make_ns: Callable[[str], Namespace], tmp_path: Path, backend: str
) -> None:
    host = make_ns("host")
    state = tmp_path / "state"
    rng = random.Random(11)
    for round_ in range(8):
        child = subprocess.Popen(
            [sys.executable, "-c", CHURN, str(host.path), str(state), str(round_), backend],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        want = rng.randrange(3, 25)
        deadline = time.monotonic() + 60
        for _ in range(want):
            line = child.stdout.readline()
            if not line:
                pytest.fail(f"churn process died: {child.stderr.read() if child.stderr else ''}")
            assert time.monotonic() < deadline
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        child.stdout.close()
        if child.stderr:
            child.stderr.close()
        c = pyln.Controller(state, {"bridge": {"firewall": backend}}, host_namespace=host)
        try:
            check_consistent(c, host, state)
            # and it keeps working
            sbx = c.new_sandbox(f"after{round_}")
            ep = c.network_by_name("n").create_endpoint(f"after{round_}")
            ep.join(sbx)
            check_consistent(c, host, state)
        finally:
            c.close()
    c = pyln.Controller(state, {"bridge": {"firewall": backend}}, host_namespace=host)
    for sbx in c.sandboxes():
        sbx.delete()
    for ep in c.network_by_name("n").endpoints():
        ep.delete(force=True)
    c.network_by_name("n").delete()
    c.close()


NET_CHURN = """
import random, sys
import pyln
from pyln.osl import Namespace
host = Namespace.open(sys.argv[1])
c = pyln.Controller(sys.argv[2], {"bridge": {"firewall": sys.argv[4]}}, host_namespace=host)
rng = random.Random(int(sys.argv[3]))
i = rng.randrange(1_000_000)
while True:
    i += 1
    nets = [n for n in c.networks() if n.name.startswith("x")]
    if len(nets) < 4 and rng.random() < 0.6:
        c.new_network("bridge", f"x{i}")
    elif nets:
        rng.choice(nets).delete()
    print("op", flush=True)
"""


@pytest.mark.parametrize("backend", ["nftables", "iptables"])
def test_kill_9_during_network_churn_leaves_no_bridge_or_rules(
    make_ns: Callable[[str], Namespace], tmp_path: Path, backend: str
) -> None:
    """A crash in the middle of a network create or delete: after a restart the
    bridges and firewall rules are exactly those of the networks that exist."""
    host = make_ns("host")
    state = tmp_path / "state"
    rng = random.Random(5)
    for round_ in range(6):
        child = subprocess.Popen(
            [sys.executable, "-c", NET_CHURN, str(host.path), str(state), str(round_), backend],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        for _ in range(rng.randrange(2, 15)):
            if not child.stdout.readline():
                pytest.fail(f"churn process died: {child.stderr.read() if child.stderr else ''}")
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        child.stdout.close()
        if child.stderr:
            child.stderr.close()
        c = pyln.Controller(state, {"bridge": {"firewall": backend}}, host_namespace=host)
        try:
            drv = c.driver("bridge")
            drv.reaper.drain()  # type: ignore[attr-defined]
            bridges = {
                str(link.get("ifname"))
                for link in host.netlink().get_links()
                if interfaces.link_kind(host, str(link.get("ifname"))) == "bridge"
            }
            expected = {drv.networks[n.id].bridge for n in c.networks()}  # type: ignore[attr-defined]
            assert bridges == expected, "orphaned or missing bridges"
            assert drv.firewall.networks() == sorted(n.id for n in c.networks())  # type: ignore[attr-defined]
            gone = {str(link.get("ifname")) for link in host.netlink().get_links()}
            assert not {g for g in gone if g.startswith("gone")}, "parked links left"
        finally:
            c.close()
    c = pyln.Controller(state, {"bridge": {"firewall": backend}}, host_namespace=host)
    for n in c.networks():
        n.delete()
    c.close()


def test_restore_collects_stray_addresses_of_a_64_pool(
    make_ns: Callable[[str], Namespace], tmp_path: Path
) -> None:
    """Addresses a crash left allocated without a record are released on restore, also
    in pools of 2^64 addresses (found run by run, never bit by bit); the gateway and
    the endpoints' addresses stay."""
    host = make_ns("host")
    state = tmp_path / "state"
    pool6 = "fd7a:1:2:3::/64"
    c = pyln.Controller(state, host_namespace=host)
    net = c.new_network(
        "bridge", "n", enable_ipv6=True, ipam_v4=[{"pool": POOL}], ipam_v6=[{"pool": pool6}]
    )
    ep = net.create_endpoint("e")
    _, (v6,) = net.ipam_info()
    far = ipaddress.ip_network(pool6).network_address + (1 << 40) + 7
    stray = [str(c.ipam.request_address(v6.pool_id)[0].ip) for _ in range(2)]
    stray.append(str(c.ipam.request_address(v6.pool_id, prefer=far)[0].ip))
    own = str(ep.info().iface.address_ipv6.ip)  # type: ignore[union-attr]
    c.close()
    c = pyln.Controller(state, host_namespace=host)
    try:
        bits = c.ipam.bitmask(v6.pool_id)
        base = ipaddress.ip_network(pool6).network_address
        allocated = {str(base + o) for o in restore.set_ordinals(bits) if o}  # 0: reserved
        assert v6.gateway is not None
        assert allocated == {own, str(v6.gateway.ip)}, stray
    finally:
        net = c.network_by_name("n")
        for e in net.endpoints():
            e.delete()
        net.delete()
        c.close()
