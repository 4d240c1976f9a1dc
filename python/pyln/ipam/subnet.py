"""Pool ids (libnetwork's SubnetKey) and address parsing for IPAM."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from pyln.ipam.errors import InvalidPool, InvalidRequest, InvalidSubPool

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Interface = ipaddress.IPv4Interface | ipaddress.IPv6Interface

MAX_POOL_ADDRESSES = 1 << 64


@dataclass(frozen=True)
class SubnetKey:
    """Identifies a pool: address space, subnet, and for a sub-pool its range.
    Its string form "Space/subnet[/child]" is the pool id handed to callers."""

    space: str
    subnet: str
    child: str = ""

    def __str__(self) -> str:
        base = f"{self.space}/{self.subnet}"
        return f"{base}/{self.child}" if self.child else base

    @property
    def parent(self) -> SubnetKey:
        """The master pool of a sub-pool (itself for a master)."""
        return SubnetKey(self.space, self.subnet)

    @classmethod
    def parse(cls, pool_id: object) -> SubnetKey:
        """Reads a pool id; raises InvalidPool naming what is wrong."""
        if not isinstance(pool_id, str) or not pool_id:
            raise InvalidPool(f"invalid pool id {pool_id!r}: expected 'Space/subnet[/range]'")
        parts = pool_id.split("/")
        if len(parts) not in (3, 5) or not all(parts):
            raise InvalidPool(f"invalid pool id {pool_id!r}: expected 'Space/subnet[/range]'")
        child = "/".join(parts[3:5]) if len(parts) == 5 else ""
        return cls(parts[0], "/".join(parts[1:3]), child)


def parse_network(text: object, what: str, err: type[Exception]) -> Network:
    """A network from "addr/len" (host bits are masked off, as Go's ParseCIDR does)."""
    if isinstance(text, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return text
    if isinstance(text, ipaddress.IPv4Interface | ipaddress.IPv6Interface):
        return text.network
    if not isinstance(text, str) or "/" not in text:
        raise err(f"invalid {what} {text!r}: expected an address with a prefix length (CIDR)")
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError as e:
        raise err(f"invalid {what} {text!r}: {e}") from e


def pool_size(nw: Network) -> int:
    """Number of addresses the pool's bitmask covers; refuses pools above 2^64."""
    size = nw.num_addresses
    if size > MAX_POOL_ADDRESSES:
        raise InvalidPool(
            f"pool {nw} has 2^{nw.max_prefixlen - nw.prefixlen} addresses: "
            f"pools are limited to 2^64 addresses (an IPv6 /64)"
        )
    return size


def sub_range(pool: Network, sub_pool: object) -> tuple[Network, int, int]:
    """The sub-pool network and its first and last ordinals inside `pool`."""
    sub = parse_network(sub_pool, "sub-pool", InvalidSubPool)
    if sub.version != pool.version or not sub.subnet_of(pool):  # type: ignore[arg-type]
        raise InvalidSubPool(f"sub-pool {sub} is not inside pool {pool}")
    base = int(pool.network_address)
    return sub, int(sub.network_address) - base, int(sub.broadcast_address) - base


def parse_address(value: object) -> Address:
    """An address from a string ("10.0.0.2" or "10.0.0.2/24") or an ipaddress object."""
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return value
    if isinstance(value, ipaddress.IPv4Interface | ipaddress.IPv6Interface):
        return value.ip
    if isinstance(value, str):
        try:
            return ipaddress.ip_interface(value).ip
        except ValueError as e:
            raise InvalidRequest(f"invalid address {value!r}: {e}") from e
    raise InvalidRequest(f"invalid address {value!r}: expected a string or an ipaddress object")
