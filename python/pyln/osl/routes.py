"""Routes of a namespace's main table: default gateways and static routes, over
netlink in the namespace passed in."""

from __future__ import annotations

import errno
import ipaddress
import socket
from dataclasses import dataclass
from typing import Any

from pyroute2.netlink.exceptions import NetlinkError  # type: ignore[import-untyped]

from pyln.errors import BadRequest, Forbidden, Internal, NotFound
from pyln.osl.interfaces import IPAddress, LinkNotFound, index_of, ns_netlink, validate_name
from pyln.osl.namespace import Namespace
from pyln.osl.rtnl import Rtnl

RT_TABLE_MAIN = 254
RTN_UNICAST = 1

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class RouteError(Internal):
    """A route operation failed in the kernel."""


class RouteExists(RouteError, Forbidden):
    """A different route to that destination is already there."""


class InvalidRoute(RouteError, BadRequest):
    """A malformed route: mixed families, bad prefix, or a gateway not reachable."""


class RouteDeviceNotFound(RouteError, NotFound):
    """The route names a device the namespace does not have."""


@dataclass(frozen=True)
class Route:
    """One route of the main table; `dev` is the output device's name."""

    destination: IPNetwork
    gateway: IPAddress | None = None
    dev: str | None = None


def _family(version: int) -> int:
    return socket.AF_INET if version == 4 else socket.AF_INET6


def _network(destination: IPNetwork | str) -> IPNetwork:
    try:
        return ipaddress.ip_network(destination)
    except ValueError as e:
        raise InvalidRoute(f"invalid route destination {destination!r}: {e}") from None


def _gateway(gateway: IPAddress | str | None, net: IPNetwork) -> IPAddress | None:
    if gateway is None:
        return None
    try:
        gw = ipaddress.ip_address(gateway)
    except ValueError as e:
        raise InvalidRoute(f"invalid gateway {gateway!r}: {e}") from None
    if gw.version != net.version:
        raise InvalidRoute(f"gateway {gw} is not of the family of destination {net}")
    return gw


def _oif(ipr: Rtnl, ns: Namespace, dev: str | None) -> int | None:
    if dev is None:
        return None
    try:
        return index_of(ipr, ns, validate_name(dev))
    except LinkNotFound:
        raise RouteDeviceNotFound(f"no link {dev!r} in namespace {ns.path}") from None


def _route_error(e: NetlinkError, what: str) -> RouteError:
    text = f"{what}: {e.args[1] if len(e.args) > 1 else e} (errno {e.code})"
    if e.code == errno.EEXIST:
        return RouteExists(text)
    if e.code in (errno.ENETUNREACH, errno.EINVAL, errno.EHOSTUNREACH):
        return InvalidRoute(text)
    if e.code == errno.ENODEV:
        return RouteDeviceNotFound(text)
    return RouteError(text)


def _request(net: IPNetwork, gw: IPAddress | None, oif: int | None) -> dict[str, Any]:
    kw: dict[str, Any] = {
        "family": _family(net.version),
        "dst": str(net.network_address),
        "dst_len": net.prefixlen,
        "table": RT_TABLE_MAIN,
    }
    if gw is not None:
        kw["gateway"] = str(gw)
    if oif is not None:
        kw["oif"] = oif
    return kw


def _dump(ipr: Rtnl, family: int) -> list[tuple[Route, dict[str, Any]]]:
    """The unicast routes of the main table, each with its raw attributes."""
    names = {link.index: link.name for link in ipr.link_briefs()}
    out: list[tuple[Route, dict[str, Any]]] = []
    for r in ipr.route("dump", family=family, table=RT_TABLE_MAIN):
        if r["type"] != RTN_UNICAST or r.get("RTA_TABLE", r["table"]) != RT_TABLE_MAIN:
            continue
        zero = "0.0.0.0" if family == socket.AF_INET else "::"
        dst = ipaddress.ip_network(f"{r.get('RTA_DST') or zero}/{r['dst_len']}")
        gw = r.get("RTA_GATEWAY")
        oif = r.get("RTA_OIF")
        route = Route(
            destination=dst,
            gateway=ipaddress.ip_address(gw) if gw is not None else None,
            dev=names.get(oif) if oif is not None else None,
        )
        raw = {"oif": oif, "priority": r.get("RTA_PRIORITY")}
        out.append((route, raw))
    return out


def routes(ns: Namespace, family: int) -> list[Route]:
    """The unicast routes of `ns`'s main table for `family` (AF_INET or AF_INET6)."""
    if family not in (socket.AF_INET, socket.AF_INET6):
        raise InvalidRoute(f"family must be AF_INET or AF_INET6, not {family!r}")
    with ns_netlink(ns) as ipr:
        return [r for r, _ in _dump(ipr, family)]


def _matches(r: Route, net: IPNetwork, gw: IPAddress | None, dev: str | None) -> bool:
    return r.destination == net and r.gateway == gw and (dev is None or r.dev == dev)


def add_route(
    ns: Namespace,
    destination: IPNetwork | str,
    *,
    gateway: IPAddress | str | None = None,
    dev: str | None = None,
) -> None:
    """Adds a route to `destination` via `gateway` and/or out of `dev`. Adding the same
    route again is a no-op; a different route to the same destination is RouteExists."""
    net = _network(destination)
    gw = _gateway(gateway, net)
    if gw is None and dev is None:
        raise InvalidRoute(f"route to {net} needs a gateway or a device")
    what = f"adding route to {net} via {gw} dev {dev} in namespace {ns.path}"
    with ns_netlink(ns) as ipr:
        oif = _oif(ipr, ns, dev)
        try:
            ipr.route("add", **_request(net, gw, oif))
        except NetlinkError as e:
            if e.code == errno.EEXIST and any(
                _matches(r, net, gw, dev) for r, _ in _dump(ipr, _family(net.version))
            ):
                return
            raise _route_error(e, what) from None


def remove_route(
    ns: Namespace,
    destination: IPNetwork | str,
    *,
    gateway: IPAddress | str | None = None,
    dev: str | None = None,
) -> bool:
    """Removes the route to `destination` (matching `gateway` and `dev` when given).
    False if there was none."""
    net = _network(destination)
    gw = _gateway(gateway, net)
    with ns_netlink(ns) as ipr:
        try:
            oif = _oif(ipr, ns, dev)
        except RouteDeviceNotFound:
            return False
        try:
            ipr.route("del", **_request(net, gw, oif))
        except NetlinkError as e:
            if e.code in (errno.ESRCH, errno.ENOENT):
                return False
            raise _route_error(e, f"removing route to {net} in namespace {ns.path}") from None
        return True


def set_default_gateway(
    ns: Namespace,
    gateway: IPAddress | str,
    dev: str | None = None,
    *,
    index: int | None = None,
    exclusive: bool = True,
) -> None:
    """Makes `gateway` (out of `dev`, if given) the only default route of its family in
    `ns`. The new route replaces the old in place, so there is no moment without a
    default; other defaults of the family (other metrics) are removed after, unless
    the caller knows there are none (`exclusive=False` skips that dump). `index` is
    the ifindex of `dev`, when the caller knows it."""
    try:
        gw = ipaddress.ip_address(gateway)
    except ValueError as e:
        raise InvalidRoute(f"invalid gateway {gateway!r}: {e}") from None
    net = ipaddress.ip_network("0.0.0.0/0" if gw.version == 4 else "::/0")
    what = f"setting default gateway {gw} dev {dev} in namespace {ns.path}"
    with ns_netlink(ns) as ipr:
        oif = index if index is not None else _oif(ipr, ns, dev)
        try:
            ipr.route("replace", **_request(net, gw, oif))
        except NetlinkError as e:
            raise _route_error(e, what) from None
        if not exclusive:
            return
        # The kernel's metric for the route just set: 0 for IPv4, 1024 for IPv6.
        ours = (None, 0) if gw.version == 4 else (1024,)
        kept = False
        for r, raw in _dump(ipr, _family(gw.version)):
            if r.destination != net:
                continue
            if not kept and _matches(r, net, gw, dev) and raw["priority"] in ours:
                kept = True
                continue
            req = _request(net, r.gateway, raw["oif"])
            if raw["priority"] is not None:
                req["priority"] = raw["priority"]
            try:
                ipr.route("del", **req)
            except NetlinkError as e:
                if e.code not in (errno.ESRCH, errno.ENOENT):
                    raise _route_error(e, f"{what}: removing old default via {r.gateway}") from None


def default_gateway(ns: Namespace, family: int) -> Route | None:
    """The default route of `family` in `ns`, or None."""
    return next((r for r in routes(ns, family) if r.destination.prefixlen == 0), None)
