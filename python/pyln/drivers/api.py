"""The network driver contract (libnetwork's driverapi). The controller talks to
every driver through this interface and never knows which one it has.

One departure from libnetwork: a driver creates the container side of an endpoint's
interface directly inside the sandbox's namespace at join time (`JoinInfo.created`),
because moving a link into a namespace afterwards costs ~27 ms of kernel RCU waits.
Drivers that cannot do that name a host-side link for the sandbox to move instead.
"""

from __future__ import annotations

import ipaddress
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pyln.errors import BadRequest, Forbidden, NotFound
from pyln.ipam.subnet import Interface, Network

if TYPE_CHECKING:
    from pyln.osl import Namespace
    from pyln.store import Store

Scope = Literal["local", "global", "swarm"]


class DriverError(BadRequest):
    """A driver refused a request (bad option, unsupported feature)."""


class UnknownDriver(NotFound):
    """No driver is registered under that network type."""


class ActiveEndpointsError(Forbidden):
    """The network still has endpoints."""


@dataclass(frozen=True)
class Capability:
    """Where a driver's state lives (data scope) and how far its networks reach."""

    data_scope: Scope = "local"
    connectivity_scope: Scope = "local"


@dataclass
class IPAMData:
    """One pool given to a network: its address space, pool, gateway and auxiliary
    addresses (name -> address), as libnetwork's driverapi.IPAMData."""

    address_space: str
    pool: Network
    gateway: Interface | None = None
    aux_addresses: dict[str, Interface] = field(default_factory=dict)


@dataclass
class InterfaceInfo:
    """The endpoint's interface as the controller allocated it; a driver may set the
    MAC address (and addresses, if IPAM gave none)."""

    mac_address: str | None = None
    address: ipaddress.IPv4Interface | None = None
    address_ipv6: ipaddress.IPv6Interface | None = None


@dataclass(frozen=True)
class SandboxInfo:
    """What a driver needs to know of the sandbox an endpoint joins."""

    id: str
    key: str
    namespace: Namespace
    iface_name: str = "eth0"
    """Name the container side of the endpoint's interface gets (eth0, eth1, ...)."""
    host_namespace: bool = False


@dataclass
class StaticRoute:
    destination: Network
    next_hop: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None


@dataclass
class JoinInfo:
    """What a driver reports on join: the interface it made (or the link to move), the
    gateways to route through and extra routes."""

    created: str | None = None
    """Name of the interface the driver created inside the sandbox namespace."""
    created_index: int | None = None
    """Its ifindex in the sandbox namespace, if the driver knows it."""
    move: str | None = None
    """Name of a host-namespace link the sandbox must move in instead."""
    gateway: ipaddress.IPv4Address | None = None
    gateway_ipv6: ipaddress.IPv6Address | None = None
    static_routes: list[StaticRoute] = field(default_factory=list)
    disable_gateway_service: bool = False


@dataclass
class DriverContext:
    """What the controller hands each driver: where to act and where to keep state."""

    host_namespace: Namespace
    store: Store | None
    state_dir: Path
    config: dict[str, Any] = field(default_factory=dict)
    """Per-driver configuration from `Controller(drivers={type: {...}})`."""


class Driver(ABC):
    """A network driver (bridge, null, host, ...)."""

    type: str = ""
    capability = Capability()

    def __init__(self, ctx: DriverContext) -> None:
        self.ctx = ctx

    @abstractmethod
    def create_network(
        self,
        nid: str,
        options: dict[str, Any],
        ipv4: list[IPAMData],
        ipv6: list[IPAMData],
    ) -> None:
        """Sets up the network (idempotent: called again on restore)."""

    @abstractmethod
    def delete_network(self, nid: str) -> None:
        """Removes the network's kernel objects and state."""

    @abstractmethod
    def create_endpoint(
        self, nid: str, eid: str, iface: InterfaceInfo, options: dict[str, Any]
    ) -> None:
        """Prepares an endpoint (kernel work may wait until join)."""

    @abstractmethod
    def delete_endpoint(self, nid: str, eid: str) -> None:
        """Forgets an endpoint that has left its sandbox."""

    def restore_endpoint(
        self,
        nid: str,
        eid: str,
        iface: InterfaceInfo,
        rec: dict[str, Any],
        sandbox: SandboxInfo | None,
    ) -> bool:
        """Re-learns an endpoint when a controller opens its state directory; `rec` is
        the controller's record (read only: port_bindings, ...), `sandbox` the sandbox
        it is recorded as joined to. Returns False if it is recorded as joined but its
        connection is gone (the controller then joins it again)."""
        return True

    def restore_done(self) -> None:  # noqa: B027 (optional hook)
        """Called once the controller has restored every network and endpoint, so the
        driver can collect what belongs to none of them."""

    def endpoint_oper_info(self, nid: str, eid: str) -> dict[str, Any]:
        """Operational data about an endpoint (MAC, port bindings, ...)."""
        return {}

    @abstractmethod
    def join(
        self,
        nid: str,
        eid: str,
        sandbox: SandboxInfo,
        jinfo: JoinInfo,
        options: dict[str, Any],
    ) -> None:
        """Connects the endpoint to the sandbox."""

    @abstractmethod
    def leave(self, nid: str, eid: str) -> None:
        """Disconnects the endpoint from its sandbox."""

    def program_external_connectivity(self, nid: str, eid: str, options: dict[str, Any]) -> None:  # noqa: B027 (optional hook)
        """Publishes the endpoint's ports (gateway endpoint of its sandbox only)."""

    def revoke_external_connectivity(self, nid: str, eid: str) -> None:  # noqa: B027 (optional hook)
        """Withdraws what program_external_connectivity set up."""

    def close(self) -> None:  # noqa: B027 (optional hook)
        """Releases the driver's resources (not its kernel objects: they persist)."""
