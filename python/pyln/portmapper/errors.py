"""Port publishing errors, placed in the error families of pyln.errors so callers
can catch by kind (bad request, forbidden, ...) as with every other component."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyln.errors import BadRequest, Forbidden, NoService, NotFound, PylnError, Timeout, Unavailable

if TYPE_CHECKING:
    from pyln.portmapper.manager import Forward


class PortMapperError(PylnError):
    """Marker base for every error of pyln.portmapper."""


# -- allocator ----------------------------------------------------------------------


class UnknownProtocol(PortMapperError, BadRequest, ValueError):
    """A protocol other than tcp, udp or sctp."""


class InvalidPortRange(PortMapperError, BadRequest, ValueError):
    """A port outside 1-65535, or a range with a zero, inverted or out-of-range bound."""


class InvalidHostIP(PortMapperError, BadRequest, ValueError):
    """A host address that is not an IPv4 or IPv6 address."""


class PortAlreadyAllocated(PortMapperError, Forbidden):
    """The port is taken on that address (or on the wildcard address of its family)."""

    def __init__(self, ip: str, proto: str, port: int, holder: str | None = None) -> None:
        self.ip = ip
        self.proto = proto
        self.port = port
        self.holder = holder if holder is not None else ip
        via = "" if self.holder == ip else f" (held on {self.holder})"
        super().__init__(
            f"Bind for {_hostport(ip, port)}/{proto} failed: port is already allocated{via}"
        )


class AllPortsAllocated(PortMapperError, NoService):
    """Every port of the range is taken for that address and protocol."""


# -- proxy --------------------------------------------------------------------------


class ProxyError(PortMapperError, Unavailable):
    """The userland proxy process is not running or not answering."""


class ProxyTimeout(ProxyError, Timeout):
    """The proxy did not start, answer or stop within its deadline."""


class ProxyBindError(PortMapperError, Forbidden):
    """The proxy could not bind the host address (in use, not local, ...)."""

    def __init__(self, proto: str, host_ip: str, host_port: int, reason: str) -> None:
        self.proto = proto
        self.host_ip = host_ip
        self.host_port = host_port
        self.reason = reason
        super().__init__(f"cannot bind {proto} {_hostport(host_ip, host_port)}: {reason}")


class ProxyBadRequest(PortMapperError, BadRequest, ValueError):
    """The proxy refused a malformed forward."""


class ForwardNotFound(PortMapperError, NotFound):
    """No forward on that protocol, host address and port."""


class ForwardsLost(ProxyError):
    """After a restart of the proxy, some forwards could not be added again."""

    def __init__(self, failures: list[tuple[Forward, str]]) -> None:
        self.failures = failures
        listed = "; ".join(f"{fwd}: {why}" for fwd, why in failures)
        super().__init__(f"{len(failures)} forward(s) lost when the proxy restarted: {listed}")


def _hostport(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
