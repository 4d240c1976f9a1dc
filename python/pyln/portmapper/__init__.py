"""Port publishing: host port allocation (allocator.py) and the userland proxy, one
process per namespace for all published ports (proxy.py, run by manager.py)."""

from pyln.portmapper.allocator import DEFAULT_RANGE, PROTOCOLS, PortAllocator, ephemeral_range
from pyln.portmapper.errors import (
    AllPortsAllocated,
    ForwardNotFound,
    ForwardsLost,
    InvalidHostIP,
    InvalidPortRange,
    PortAlreadyAllocated,
    PortMapperError,
    ProxyBadRequest,
    ProxyBindError,
    ProxyError,
    ProxyTimeout,
    UnknownProtocol,
)
from pyln.portmapper.manager import Forward, ProxyManager

__all__ = [
    "DEFAULT_RANGE",
    "PROTOCOLS",
    "AllPortsAllocated",
    "Forward",
    "ForwardNotFound",
    "ForwardsLost",
    "InvalidHostIP",
    "InvalidPortRange",
    "PortAllocator",
    "PortAlreadyAllocated",
    "PortMapperError",
    "ProxyBadRequest",
    "ProxyBindError",
    "ProxyError",
    "ProxyManager",
    "ProxyTimeout",
    "UnknownProtocol",
    "ephemeral_range",
]
