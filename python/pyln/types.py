"""Value types shared by the controller and the drivers (libnetwork's types package):
transport ports and port bindings."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Literal

from pyln.errors import BadRequest

Protocol = Literal["tcp", "udp", "sctp"]
PROTOCOLS: tuple[str, ...] = ("tcp", "udp", "sctp")
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
ANY_IPV4 = ipaddress.IPv4Address("0.0.0.0")


def parse_protocol(proto: object) -> Protocol:
    """A protocol name, lower-cased; anything else is a BadRequest."""
    p = str(proto).lower()
    if p not in PROTOCOLS:
        raise BadRequest(f"unknown protocol {proto!r}: expected one of {', '.join(PROTOCOLS)}")
    return p  # type: ignore[return-value]


def parse_port(port: object, what: str = "port", allow_zero: bool = False) -> int:
    if isinstance(port, bool) or not isinstance(port, int):
        raise BadRequest(f"{what} {port!r} is not an integer")
    if not (0 if allow_zero else 1) <= port <= 65535:
        raise BadRequest(f"{what} {port} is out of range 1-65535")
    return port


@dataclass(frozen=True)
class TransportPort:
    """A container port and its protocol (an exposed port)."""

    proto: Protocol
    port: int

    @classmethod
    def of(cls, value: object) -> TransportPort:
        """From a TransportPort, "80/tcp", "53/udp" or (port, proto)."""
        if isinstance(value, TransportPort):
            return value
        if isinstance(value, str):
            port, _, proto = value.partition("/")
            try:
                return cls(parse_protocol(proto or "tcp"), parse_port(int(port)))
            except ValueError as e:
                raise BadRequest(f"invalid port {value!r}") from e
        if isinstance(value, tuple) and len(value) == 2:
            return cls(parse_protocol(value[1]), parse_port(value[0]))
        raise BadRequest(f"invalid exposed port {value!r}: expected '80/tcp' or (80, 'tcp')")

    def __str__(self) -> str:
        return f"{self.port}/{self.proto}"


@dataclass(frozen=True)
class PortBinding:
    """A published port: host_ip:host_port (0 = any free port, then the one chosen)
    to the container's port. host_port_end > host_port asks for a port in a range."""

    proto: Protocol
    port: int
    host_ip: Address = ANY_IPV4
    host_port: int = 0
    host_port_end: int = 0

    @classmethod
    def of(cls, value: object) -> PortBinding:
        """From a PortBinding or a dict with proto, port, host_ip, host_port(, host_port_end)."""
        if isinstance(value, PortBinding):
            return value
        if not isinstance(value, dict):
            raise BadRequest(f"invalid port binding {value!r}: expected a PortBinding or a dict")
        try:
            host_ip = ipaddress.ip_address(value.get("host_ip") or "0.0.0.0")
        except ValueError as e:
            raise BadRequest(f"invalid host_ip in port binding {value!r}: {e}") from e
        b = cls(
            parse_protocol(value.get("proto", "tcp")),
            parse_port(value.get("port"), "container port"),
            host_ip,
            parse_port(value.get("host_port", 0), "host port", allow_zero=True),
            parse_port(value.get("host_port_end", 0), "host port range end", allow_zero=True),
        )
        if b.host_port_end and b.host_port_end < b.host_port:
            raise BadRequest(f"port binding {value!r}: host port range ends before it starts")
        return b

    def to_dict(self) -> dict[str, object]:
        return {
            "proto": self.proto,
            "port": self.port,
            "host_ip": str(self.host_ip),
            "host_port": self.host_port,
            "host_port_end": self.host_port_end,
        }
