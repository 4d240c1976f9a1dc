"""The firewall contract the bridge driver codes against: per-network rules (NAT,
isolation, inter-container policy) and port mappings, with one implementation per
backend (nftables, iptables), as netavark has."""

from __future__ import annotations

import ipaddress
import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyln.firewall.errors import InvalidFirewallRequest, UnknownBackend
from pyln.osl import interfaces
from pyln.osl.interfaces import LinkNotFound
from pyln.osl.namespace import NamespaceWorker

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from pyln.osl import Namespace

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

PROTOCOLS = ("tcp", "udp", "sctp")
BACKENDS = ("nftables", "iptables")

# Network ids go into object names and comments: keep them to a safe alphabet.
_NETWORK_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
# Linux interface names: 1-15 bytes, no '/', whitespace, ':' or quotes.
_IFNAME = re.compile(r"[A-Za-z0-9_.@+-]{1,15}")


def check_network_id(network_id: str) -> str:
    """`network_id` if it is 1-128 characters of [A-Za-z0-9_.-] (starting alphanumeric)."""
    if not isinstance(network_id, str) or not _NETWORK_ID.fullmatch(network_id):
        raise InvalidFirewallRequest(
            f"network id {network_id!r}: want 1-128 characters of A-Z a-z 0-9 _ . -"
        )
    return network_id


@dataclass(frozen=True)
class NetworkRules:
    """What a bridge network needs from the firewall; one object per network."""

    network_id: str
    bridge: str
    subnets: tuple[IPNetwork, ...]
    masquerade: bool = True  # outbound NAT for traffic leaving the bridge for elsewhere
    icc: bool = True  # inter-container communication on the same bridge
    internal: bool = False  # no traffic to or from outside the network's subnets
    hairpin: bool = True  # containers reach published ports of their own network via the host

    def __post_init__(self) -> None:
        check_network_id(self.network_id)
        if not isinstance(self.bridge, str) or not _IFNAME.fullmatch(self.bridge):
            raise InvalidFirewallRequest(f"bridge name {self.bridge!r} is not a valid ifname")
        if not self.subnets:
            raise InvalidFirewallRequest(f"network {self.network_id}: no subnets")
        subnets = tuple(ipaddress.ip_network(s) for s in self.subnets)
        object.__setattr__(self, "subnets", subnets)

    def family_subnets(self, version: int) -> tuple[IPNetwork, ...]:
        """The subnets of IP version 4 or 6."""
        return tuple(s for s in self.subnets if s.version == version)


@dataclass(frozen=True)
class PortMapping:
    """A published port: traffic to host_ip:host_port goes to container_ip:container_port.
    host_ip 0.0.0.0 (or ::) means every local address of that family."""

    proto: str
    host_ip: IPAddress
    host_port: int
    container_ip: IPAddress
    container_port: int

    def __post_init__(self) -> None:
        if self.proto not in PROTOCOLS:
            raise InvalidFirewallRequest(f"protocol {self.proto!r}: want one of {PROTOCOLS}")
        host_ip = ipaddress.ip_address(self.host_ip)
        container_ip = ipaddress.ip_address(self.container_ip)
        if host_ip.version != container_ip.version:
            raise InvalidFirewallRequest(
                f"{host_ip} -> {container_ip}: host and container addresses of different families"
            )
        if container_ip.is_unspecified:
            raise InvalidFirewallRequest(f"container address {container_ip} is unspecified")
        for what, port in (("host", self.host_port), ("container", self.container_port)):
            if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
                raise InvalidFirewallRequest(f"{what} port {port!r}: want 1-65535")
        object.__setattr__(self, "host_ip", host_ip)
        object.__setattr__(self, "container_ip", container_ip)

    @property
    def version(self) -> int:
        """4 or 6."""
        return self.container_ip.version

    @property
    def any_host(self) -> bool:
        """Whether the mapping listens on every local address (0.0.0.0 / ::)."""
        return self.host_ip.is_unspecified


class Firewall(ABC):
    """Rules for bridge networks inside one network namespace (the controller's "host").
    Every method is one atomic change in the kernel; state is read back from the kernel,
    so a new object on the same namespace sees what an earlier one installed."""

    backend: str

    def __init__(self, ns: Namespace) -> None:
        self.ns = ns
        # Calls into the namespace (libnftables, the iptables tools, /proc) go through
        # one thread that entered it once, unless the caller is there already.
        self.runner = NamespaceWorker(ns)
        # The namespace-wide switches already turned on by this object (IPv4, IPv6):
        # like libnetwork, set once, not on every network create.
        self._forwarding: set[int] = set()

    @abstractmethod
    def setup_network(self, rules: NetworkRules) -> None:
        """Installs (or updates to `rules`) a network's rules, isolated from every other
        pyln bridge network. Idempotent; keeps the network's port mappings."""

    @abstractmethod
    def remove_network(self, network_id: str) -> None:
        """Removes a network's rules and its port mappings. Idempotent."""

    @abstractmethod
    def add_port_mappings(self, network_id: str, mappings: Sequence[PortMapping]) -> None:
        """Publishes ports of a network's containers (DNAT, forward accept, hairpin and
        loopback masquerade)."""

    @abstractmethod
    def remove_port_mappings(self, network_id: str, mappings: Sequence[PortMapping]) -> None:
        """Unpublishes ports; mappings not installed are ignored."""

    @abstractmethod
    def networks(self) -> list[str]:
        """Ids of the networks with rules installed, read from the kernel (sorted)."""

    @abstractmethod
    def flush(self) -> None:
        """Removes everything pyln installed with this backend."""

    def close(self) -> None:
        """Releases what the backend holds open (its thread and sockets in the
        namespace); the rules stay. The firewall is not used afterwards."""
        self.runner.close()

    # -- shared helpers ---------------------------------------------------------

    def _enable_forwarding(self, rules: NetworkRules) -> None:
        """IP forwarding and br_netfilter for bridged traffic (icc=False and hairpin
        replies need it), once per firewall and IP family, in one call into the
        namespace; and route_localnet on the bridge (127.0.0.1:port reaches
        containers) by netlink, which needs no thread in the namespace."""
        versions = {4} | ({6} if rules.family_subnets(6) else set())
        todo = sorted(versions - self._forwarding)

        def body() -> None:
            for v in todo:
                _write("/proc/sys/net/ipv4/ip_forward" if v == 4 else _V6_FORWARDING, "1")
                name = "iptables" if v == 4 else "ip6tables"
                try:
                    _write(f"/proc/sys/net/bridge/bridge-nf-call-{name}", "1")
                except OSError:
                    pass  # no br_netfilter: only icc=False is affected (tests skip it)

        if todo:
            self.runner.run(body)
            self._forwarding.update(todo)
        try:
            interfaces.set_ipv4_devconf(
                self.ns, rules.bridge, interfaces.IPV4_DEVCONF_ROUTE_LOCALNET, 1
            )
        except LinkNotFound:
            pass  # no such bridge (yet): nothing to route
        except interfaces.LinkError as e:
            # Only 127.0.0.1:port access depends on it; the rules still go in.
            log.warning("route_localnet on %s: %s", rules.bridge, e)


_V6_FORWARDING = "/proc/sys/net/ipv6/conf/all/forwarding"


def _write(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def new_firewall(ns: Namespace, backend: str = "nftables") -> Firewall:
    """A firewall of the named backend working inside `ns`."""
    if backend == "nftables":
        from pyln.firewall.nftables import NftablesFirewall

        return NftablesFirewall(ns)
    if backend == "iptables":
        from pyln.firewall.iptables import IptablesFirewall

        return IptablesFirewall(ns)
    raise UnknownBackend(
        f"unknown firewall backend {backend!r}: choose one of {', '.join(BACKENDS)}"
    )
