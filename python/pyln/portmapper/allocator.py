"""Host port allocation for published ports, after libnetwork's portallocator: one
table per (host address, protocol), dynamic ports handed out round robin from a range.

Unlike libnetwork, a port held on the wildcard address of a family (0.0.0.0 or ::)
conflicts with the same port on any specific address of that family, and the other
way round, because the kernel refuses those binds too. IPv4 and IPv6 tables stay
apart (the proxy binds IPv6 sockets with IPV6_V6ONLY). IPv4-mapped IPv6 addresses
count as IPv4.
"""

from __future__ import annotations

import ipaddress
import threading
from collections import Counter
from pathlib import Path

from pyln.portmapper.errors import (
    AllPortsAllocated,
    InvalidHostIP,
    InvalidPortRange,
    PortAlreadyAllocated,
    UnknownProtocol,
)

PROTOCOLS = ("tcp", "udp", "sctp")
#: libnetwork's fallback when the kernel's ephemeral range cannot be read.
DEFAULT_RANGE = (49153, 65535)
EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
MAX_PORT = 65535

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
HostIP = str | IPAddress | None

_WILDCARD = {4: "0.0.0.0", 6: "::"}


def ephemeral_range(path: Path = EPHEMERAL_RANGE_FILE) -> tuple[int, int]:
    """The kernel's ephemeral port range, or libnetwork's 49153-65535 if the file is
    missing or does not hold two ports in order."""
    try:
        fields = path.read_text().split()
        begin, end = int(fields[0]), int(fields[1])
    except (OSError, ValueError, IndexError):
        return DEFAULT_RANGE
    if len(fields) != 2 or not 0 < begin <= end <= MAX_PORT:
        return DEFAULT_RANGE
    return begin, end


def parse_host_ip(ip: HostIP) -> IPAddress:
    """`ip` as an address object; None means 0.0.0.0 (libnetwork's nil IP)."""
    if ip is None:
        return ipaddress.IPv4Address("0.0.0.0")
    if isinstance(ip, ipaddress.IPv4Address | ipaddress.IPv6Address):
        addr: IPAddress = ip
    else:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            raise InvalidHostIP(f"invalid host address {ip!r}") from None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def check_protocol(proto: str) -> str:
    """`proto` if pyln can publish it, else UnknownProtocol."""
    if proto not in PROTOCOLS:
        raise UnknownProtocol(
            f"unknown protocol {proto!r} (expected one of {', '.join(PROTOCOLS)})"
        )
    return proto


class PortAllocator:
    """Thread-safe host port tables. `begin`-`end` is the default dynamic range
    (the kernel's ephemeral range when both are None)."""

    def __init__(self, begin: int | None = None, end: int | None = None) -> None:
        if begin is None and end is None:
            begin, end = ephemeral_range()
        if begin is None or end is None or not 0 < begin <= end <= MAX_PORT:
            raise InvalidPortRange(f"invalid default port range: {begin}-{end}")
        self.begin = begin
        self.end = end
        self._lock = threading.Lock()
        # (address, proto) -> ports held on exactly that address
        self._used: dict[tuple[str, str], set[int]] = {}
        # (IP version, proto) -> port -> how many specific addresses hold it
        self._specific: dict[tuple[int, str], Counter[int]] = {}
        # (address, proto, begin, end) -> last port handed out from that range
        self._last: dict[tuple[str, str, int, int], int] = {}

    def __repr__(self) -> str:
        return f"PortAllocator({self.begin}, {self.end})"

    # -- public API -----------------------------------------------------------------

    def request_port(self, ip: HostIP, proto: str, port: int = 0) -> int:
        """Takes `port` on `ip` (any port, also outside the range), or with 0 the next
        free port of the default range."""
        return self.request_port_in_range(ip, proto, port, port)

    def request_port_in_range(self, ip: HostIP, proto: str, start: int, end: int) -> int:
        """Takes the next free port in `start`-`end` (0-0: the default range), round
        robin from the last one this range handed out; `start == end > 0` takes
        exactly that port."""
        check_protocol(proto)
        addr = parse_host_ip(ip)
        with self._lock:
            if start > 0 and start == end:
                if start > MAX_PORT:
                    raise InvalidPortRange(f"invalid port {start}: not in 1-{MAX_PORT}")
                holder = self._holder(addr, proto, start)
                if holder is not None:
                    raise PortAlreadyAllocated(str(addr), proto, start, holder)
                self._take(addr, proto, start)
                return start
            return self._find(addr, proto, *self._range(start, end))

    def release_port(self, ip: HostIP, proto: str, port: int) -> None:
        """Frees `port` on exactly `ip`; releasing a port that is not held does nothing,
        as in libnetwork."""
        check_protocol(proto)
        addr = parse_host_ip(ip)
        key = (str(addr), proto)
        with self._lock:
            used = self._used.get(key)
            if used is None or port not in used:
                return
            used.remove(port)
            if not used:
                del self._used[key]
            if not addr.is_unspecified:
                counts = self._specific[(addr.version, proto)]
                counts[port] -= 1
                if counts[port] <= 0:
                    del counts[port]

    def release_all(self) -> None:
        """Frees every port of every address and restarts every range's round robin."""
        with self._lock:
            self._used.clear()
            self._specific.clear()
            self._last.clear()

    def in_use(self, ip: HostIP, proto: str, port: int) -> bool:
        """Whether a request for exactly `port` on `ip` would conflict."""
        check_protocol(proto)
        addr = parse_host_ip(ip)
        with self._lock:
            return self._holder(addr, proto, port) is not None

    # -- internals (the lock is held) -----------------------------------------------

    def _range(self, start: int, end: int) -> tuple[int, int]:
        if start == 0 and end == 0:
            return self.begin, self.end
        if start <= 0 or end <= 0 or end <= start or end > MAX_PORT:
            raise InvalidPortRange(f"invalid port range: {start}-{end}")
        return start, end

    def _holder(self, addr: IPAddress, proto: str, port: int) -> str | None:
        """The address whose hold on `port` conflicts with `addr`, or None."""
        ip = str(addr)
        used = self._used.get((ip, proto))
        if used is not None and port in used:
            return ip
        if addr.is_unspecified:
            if self._specific.get((addr.version, proto), Counter())[port] > 0:
                for (other, p), ports in self._used.items():
                    if (
                        p == proto
                        and port in ports
                        and ipaddress.ip_address(other).version == (addr.version)
                    ):
                        return other
            return None
        wildcard = _WILDCARD[addr.version]
        wild = self._used.get((wildcard, proto))
        if wild is not None and port in wild:
            return wildcard
        return None

    def _take(self, addr: IPAddress, proto: str, port: int) -> None:
        self._used.setdefault((str(addr), proto), set()).add(port)
        if not addr.is_unspecified:
            self._specific.setdefault((addr.version, proto), Counter())[port] += 1

    def _find(self, addr: IPAddress, proto: str, begin: int, end: int) -> int:
        key = (str(addr), proto, begin, end)
        port = self._last.get(key, end)
        for _ in range(end - begin + 1):
            port = begin if port >= end else port + 1
            if self._holder(addr, proto, port) is None:
                self._take(addr, proto, port)
                self._last[key] = port
                return port
        raise AllPortsAllocated(f"all ports are allocated: {proto} {begin}-{end} on {addr}")
