"""Static neighbour (ARP/NDP) entries on a link in a namespace, as the overlay driver
programs them for remote containers, over netlink in the namespace passed in."""

from __future__ import annotations

import errno
import ipaddress

from pyroute2.netlink.exceptions import NetlinkError  # type: ignore[import-untyped]

from pyln.errors import BadRequest, Internal
from pyln.osl.interfaces import IPAddress, index_of, ns_netlink, validate_mac, validate_name
from pyln.osl.namespace import Namespace

NUD_INCOMPLETE = 0x01
NUD_FAILED = 0x20
NUD_NOARP = 0x40
NUD_PERMANENT = 0x80


class NeighborError(Internal):
    """A neighbour operation failed in the kernel."""


class InvalidNeighbor(NeighborError, BadRequest):
    """A malformed IP or MAC address for a neighbour entry."""


def _ip(ip: IPAddress | str) -> IPAddress:
    try:
        return ipaddress.ip_address(ip)
    except ValueError as e:
        raise InvalidNeighbor(f"invalid neighbour IP {ip!r}: {e}") from None


def add_neighbor(ns: Namespace, ip: IPAddress | str, mac: str, dev: str) -> None:
    """A permanent entry `ip` -> `mac` on link `dev` of `ns`; an existing entry for
    `ip` is replaced, so adding twice is a no-op."""
    addr = _ip(ip)
    try:
        lladdr = validate_mac(mac)
    except BadRequest as e:
        raise InvalidNeighbor(str(e)) from None
    validate_name(dev)
    with ns_netlink(ns) as ipr:
        index = index_of(ipr, ns, dev)
        try:
            ipr.neigh("replace", dst=str(addr), lladdr=lladdr, ifindex=index, state=NUD_PERMANENT)
        except NetlinkError as e:
            raise NeighborError(
                f"adding neighbour {addr} -> {lladdr} on {dev!r} in namespace {ns.path}: {e}"
            ) from None


def delete_neighbor(ns: Namespace, ip: IPAddress | str, dev: str) -> bool:
    """Removes the entry for `ip` on `dev`; False if there was none."""
    addr = _ip(ip)
    validate_name(dev)
    with ns_netlink(ns) as ipr:
        index = index_of(ipr, ns, dev)
        try:
            ipr.neigh("del", dst=str(addr), ifindex=index)
        except NetlinkError as e:
            if e.code in (errno.ENOENT, errno.ESRCH):
                return False
            raise NeighborError(
                f"deleting neighbour {addr} on {dev!r} in namespace {ns.path}: {e}"
            ) from None
        return True


def neighbors(ns: Namespace, dev: str) -> list[tuple[IPAddress, str]]:
    """The resolved neighbours on `dev` (both families) as (IP, MAC): entries without a
    MAC, failed or incomplete ones, and NOARP multicast mappings are left out."""
    validate_name(dev)
    with ns_netlink(ns) as ipr:
        index = index_of(ipr, ns, dev)
        out: list[tuple[IPAddress, str]] = []
        for n in ipr.neigh("dump", ifindex=index):
            dst, lladdr = n.get("NDA_DST"), n.get("NDA_LLADDR")
            if n["ifindex"] != index or dst is None or lladdr is None:
                continue
            if n["state"] & (NUD_INCOMPLETE | NUD_FAILED | NUD_NOARP):
                continue
            out.append((ipaddress.ip_address(dst), str(lladdr)))
        return out
