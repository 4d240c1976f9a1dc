"""Test topologies for the firewall tests, built with pyroute2 in throwaway namespaces:
a "host" namespace with bridges, container namespaces on veths, and an "outside"
namespace standing for the world. Only 10.220.0.0/16 addresses are used."""

from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from pyln.osl import Namespace

UPLINK_IP = "10.220.200.1"  # the host's address towards the outside
OUTSIDE_IP = "10.220.200.2"


def add_bridge(host: Namespace, name: str, cidr: str) -> None:
    """A bridge in `host` with `cidr` (the gateway address and prefix) on it, up."""
    ipr = host.netlink()
    ipr.link("add", ifname=name, kind="bridge")
    idx = ipr.link_lookup(ifname=name)[0]
    ip, plen = cidr.split("/")
    ipr.addr("add", index=idx, address=ip, prefixlen=int(plen))
    ipr.link("set", index=idx, state="up")


def add_veth(
    host: Namespace, host_if: str, peer: Namespace, cidr: str, gateway: str | None
) -> None:
    """A veth pair: `host_if` in `host` (up), eth0 in `peer` with `cidr` and, with
    `gateway`, a default route through it."""
    fd = peer.fd()
    try:
        host.netlink().link(
            "add", ifname=host_if, kind="veth", peer={"ifname": "eth0", "net_ns_fd": fd}
        )
    finally:
        os.close(fd)
    ipr = host.netlink()
    ipr.link("set", index=ipr.link_lookup(ifname=host_if)[0], state="up")
    pr = peer.netlink()
    idx = pr.link_lookup(ifname="eth0")[0]
    ip, plen = cidr.split("/")
    pr.addr("add", index=idx, address=ip, prefixlen=int(plen))
    pr.link("set", index=idx, state="up")
    if gateway is not None:
        pr.route("add", dst="0.0.0.0/0", gateway=gateway)


@dataclass
class Topology:
    """host (bridges), outside (the world, at OUTSIDE_IP) and containers by name."""

    host: Namespace
    outside: Namespace
    make_ns: Callable[[str], Namespace]
    containers: dict[str, Namespace] = field(default_factory=dict)
    ips: dict[str, str] = field(default_factory=dict)

    def bridge(self, name: str, cidr: str) -> None:
        add_bridge(self.host, name, cidr)

    def container(self, name: str, bridge: str, cidr: str) -> Namespace:
        """A container namespace on `bridge`, default route via the bridge's first address."""
        ns = self.make_ns(name)
        net = ipaddress.ip_interface(cidr).network
        gw = str(next(net.hosts()))
        host_if = f"v{name}"[:15]
        add_veth(self.host, host_if, ns, cidr, gw)
        ipr = self.host.netlink()
        idx = ipr.link_lookup(ifname=host_if)[0]
        ipr.link("set", index=idx, master=ipr.link_lookup(ifname=bridge)[0])
        # Hairpin mode on the port, as libnetwork's bridge driver sets it without the
        # userland proxy: with br_netfilter a DNAT back to the sender is bridged out of
        # the port it came in on.
        ipr.brport("set", index=idx, mode=1)
        self.containers[name] = ns
        self.ips[name] = cidr.split("/")[0]
        return ns


def make_topology(make_ns: Callable[[str], Namespace]) -> Topology:
    """host <-> outside over a veth (10.220.200.0/24); the outside has no route to any
    container subnet, so only masqueraded traffic gets answers."""
    host = make_ns("host")
    outside = make_ns("outside")
    add_veth(host, "uplink", outside, f"{OUTSIDE_IP}/24", None)
    # add_veth put the host end up without an address: give it the uplink address.
    ipr = host.netlink()
    ipr.addr("add", index=ipr.link_lookup(ifname="uplink")[0], address=UPLINK_IP, prefixlen=24)
    return Topology(host=host, outside=outside, make_ns=make_ns)


class Server:
    """A TCP listener in a namespace; `peer()` is the source address of the last client."""

    def __init__(self, ns: Namespace, ip: str = "0.0.0.0", port: int = 0) -> None:
        self.sock = ns.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((ip, port))
        self.sock.listen(16)
        self.port: int = self.sock.getsockname()[1]
        self.peers: list[str] = []
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                conn, addr = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.peers.append(addr[0])
            try:
                conn.sendall(b"pong")
            finally:
                conn.close()

    def close(self) -> None:
        self._stop = True
        self._thread.join()
        self.sock.close()


def connect(ns: Namespace, ip: str, port: int, timeout: float = 3.0) -> bool:
    """Whether a TCP connection from `ns` to ip:port gets the server's greeting within
    `timeout` (a deadline, not a sleep: a refused or answered connection returns at once)."""
    s = ns.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect((ip, port))
        return s.recv(4) == b"pong"
    except OSError:
        return False
    finally:
        s.close()


def in_ns(ns: Namespace, *argv: str) -> str:
    """Output of a tool (nft, iptables-save) run inside `ns`."""
    proc = subprocess.run(
        ["nsenter", f"--net={ns.path}", "--", *argv],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return proc.stdout
