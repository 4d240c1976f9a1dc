"""Endpoints (libnetwork's endpoint.go): a network interface of a network, which
joins at most one sandbox at a time."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pyln import errors

if TYPE_CHECKING:
    from pyln.controller import Controller
    from pyln.network import Network
    from pyln.sandbox import Sandbox


@dataclass(frozen=True)
class InterfaceView:
    """The endpoint's interface as a user sees it."""

    address: ipaddress.IPv4Interface | None
    address_ipv6: ipaddress.IPv6Interface | None
    mac_address: str | None


@dataclass(frozen=True)
class EndpointInfo:
    """libnetwork's EndpointInfo: interface, gateways and the sandbox it joined."""

    iface: InterfaceView
    gateway: ipaddress.IPv4Address | None
    gateway_ipv6: ipaddress.IPv6Address | None
    sandbox_key: str | None


class Endpoint:
    """A handle on an endpoint of a controller (libnetwork's Endpoint)."""

    def __init__(self, ctrl: Controller, nid: str, eid: str) -> None:
        self._ctrl = ctrl
        self.network_id = nid
        self.id = eid

    def __repr__(self) -> str:
        return f"Endpoint({self.name!r}, {self.id[:12]})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Endpoint) and other.id == self.id and other._ctrl is self._ctrl

    def __hash__(self) -> int:
        return hash(self.id)

    @property
    def _rec(self) -> dict[str, Any]:
        rec = self._ctrl._endpoints.get(self.id)
        if rec is None:
            raise errors.EndpointNotFound(f"endpoint {self.id} does not exist (deleted?)")
        return rec

    @property
    def name(self) -> str:
        return str(self._rec["name"])

    def network(self) -> Network:
        from pyln.network import Network

        return Network(self._ctrl, self.network_id)

    def sandbox(self) -> Sandbox | None:
        """The sandbox this endpoint joined, if any."""
        from pyln.sandbox import Sandbox

        sid = self._rec["sandbox"]
        return Sandbox(self._ctrl, sid) if sid else None

    def join(self, sandbox: Sandbox, **options: Any) -> None:
        """Connects the endpoint to the sandbox (libnetwork's Join). Option: priority
        (higher wins the default gateway)."""
        self._ctrl._join(self.id, sandbox.id, options)

    def leave(self, sandbox: Sandbox) -> None:
        """Disconnects the endpoint from the sandbox."""
        self._ctrl._leave(self.id, sandbox.id)

    def delete(self, force: bool = False) -> None:
        """Deletes the endpoint; it must have left its sandbox unless `force`."""
        self._ctrl._delete_endpoint(self.id, force)

    def info(self) -> EndpointInfo:
        rec = self._rec
        v4 = ipaddress.IPv4Interface(rec["address"]) if rec["address"] else None
        v6 = ipaddress.IPv6Interface(rec["address_ipv6"]) if rec["address_ipv6"] else None
        gw4 = gw6 = None
        key = None
        if rec["sandbox"]:
            key = self._ctrl._sandboxes[rec["sandbox"]]["key"]
            gw4 = ipaddress.IPv4Address(rec["gateway"]) if rec["gateway"] else None
            gw6 = ipaddress.IPv6Address(rec["gateway_ipv6"]) if rec["gateway_ipv6"] else None
        return EndpointInfo(InterfaceView(v4, v6, rec["mac_address"]), gw4, gw6, key)

    def driver_info(self) -> dict[str, Any]:
        """The driver's operational data (MAC address, port bindings, ...) keyed by
        netlabel names, as libnetwork's DriverInfo."""
        return self._ctrl._driver_info(self.id)
