"""Networks (libnetwork's network.go): a named set of endpoints that can talk to
each other, served by one driver and addressed from IPAM pools."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pyln import errors
from pyln.ipam.subnet import Interface, parse_address, parse_network
from pyln.ipam.subnet import Network as IPNetwork

if TYPE_CHECKING:
    from pyln.controller import Controller
    from pyln.endpoint import Endpoint


@dataclass
class IpamConf:
    """One IPAM request of a network (libnetwork's IpamConf): a pool (empty: the next
    predefined one), an optional sub-pool to allocate from, a gateway and auxiliary
    addresses to reserve (name -> address)."""

    pool: str = ""
    sub_pool: str = ""
    gateway: str = ""
    aux_addresses: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, value: object) -> IpamConf:
        if isinstance(value, IpamConf):
            return value
        if isinstance(value, dict):
            unknown = set(value) - {"pool", "sub_pool", "gateway", "aux_addresses"}
            if unknown:
                raise errors.BadRequest(f"unknown IPAM config keys {sorted(unknown)}")
            return cls(
                str(value.get("pool", "") or ""),
                str(value.get("sub_pool", "") or ""),
                str(value.get("gateway", "") or ""),
                {str(k): str(v) for k, v in (value.get("aux_addresses") or {}).items()},
            )
        raise errors.BadRequest(f"invalid IPAM config {value!r}: expected IpamConf or dict")

    def validate(self, v6: bool) -> None:
        """Checks what can be checked before IPAM is asked (libnetwork's IpamConf.Validate)."""
        if self.sub_pool and not self.pool:
            raise errors.BadRequest(f"IPAM config: sub-pool {self.sub_pool} without a pool")
        fam = 6 if v6 else 4
        nw = parse_network(self.pool, "pool", errors.BadRequest) if self.pool else None
        if nw is not None and nw.version != fam:
            raise errors.BadRequest(f"IPAM config: pool {nw} is not IPv{fam}")
        for what, addr in [("gateway", self.gateway), *self.aux_addresses.items()]:
            if not addr:
                continue
            ip = parse_address(addr)
            if nw is None:
                raise errors.BadRequest(f"IPAM config: {what} {addr} given without a pool")
            if ip not in nw:
                raise errors.BadRequest(f"IPAM config: {what} {addr} is not in pool {nw}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "pool": self.pool,
            "sub_pool": self.sub_pool,
            "gateway": self.gateway,
            "aux_addresses": dict(self.aux_addresses),
        }


@dataclass
class IpamInfo:
    """What IPAM gave a network for one IpamConf: pool id, pool, gateway, aux addresses."""

    pool_id: str
    pool: IPNetwork
    gateway: Interface | None
    aux_addresses: dict[str, Interface]

    def to_dict(self) -> dict[str, Any]:
        return {
            "pool_id": self.pool_id,
            "pool": str(self.pool),
            "gateway": str(self.gateway) if self.gateway else None,
            "aux_addresses": {k: str(v) for k, v in self.aux_addresses.items()},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> IpamInfo:
        return cls(
            d["pool_id"],
            ipaddress.ip_network(d["pool"]),
            ipaddress.ip_interface(d["gateway"]) if d["gateway"] else None,
            {k: ipaddress.ip_interface(v) for k, v in d["aux_addresses"].items()},
        )


class Network:
    """A handle on a network of a controller (libnetwork's Network)."""

    def __init__(self, ctrl: Controller, nid: str) -> None:
        self._ctrl = ctrl
        self.id = nid

    def __repr__(self) -> str:
        return f"Network({self.name!r}, {self.type}, {self.id[:12]})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Network) and other.id == self.id and other._ctrl is self._ctrl

    def __hash__(self) -> int:
        return hash(self.id)

    @property
    def _rec(self) -> dict[str, Any]:
        rec = self._ctrl._networks.get(self.id)
        if rec is None:
            raise errors.NetworkNotFound(f"network {self.id} does not exist (deleted?)")
        return rec

    @property
    def name(self) -> str:
        return str(self._rec["name"])

    @property
    def type(self) -> str:
        return str(self._rec["type"])

    @property
    def internal(self) -> bool:
        return bool(self._rec["internal"])

    @property
    def ipv6_enabled(self) -> bool:
        return bool(self._rec["enable_ipv6"])

    @property
    def labels(self) -> dict[str, str]:
        return dict(self._rec["labels"])

    @property
    def driver_options(self) -> dict[str, str]:
        return dict(self._rec["driver_options"])

    def ipam_info(self) -> tuple[list[IpamInfo], list[IpamInfo]]:
        """The IPv4 and IPv6 pools, gateways and auxiliary addresses of the network."""
        rec = self._rec
        return (
            [IpamInfo.from_dict(d) for d in rec["ipam_v4"]],
            [IpamInfo.from_dict(d) for d in rec["ipam_v6"]],
        )

    def create_endpoint(self, name: str, **options: Any) -> Endpoint:
        """Creates an endpoint (libnetwork's CreateEndpoint). Options: mac_address,
        ip / ip6 (preferred addresses), port_bindings, exposed_ports, dns_servers,
        driver_options."""
        return self._ctrl._create_endpoint(self.id, name, options)

    def endpoints(self) -> list[Endpoint]:
        return self._ctrl._network_endpoints(self.id)

    def endpoint_by_name(self, name: str) -> Endpoint:
        for ep in self.endpoints():
            if ep.name == name:
                return ep
        raise errors.EndpointNotFound(f"network {self.name!r} has no endpoint {name!r}")

    def endpoint_by_id(self, eid: str) -> Endpoint:
        for ep in self.endpoints():
            if ep.id == eid:
                return ep
        raise errors.EndpointNotFound(f"network {self.name!r} has no endpoint with id {eid!r}")

    def delete(self) -> None:
        """Deletes the network; it must have no endpoints (ActiveEndpoints)."""
        self._ctrl._delete_network(self.id)
