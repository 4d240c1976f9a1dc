"""Links inside a namespace: veth pairs, bridges, addresses, MAC and MTU, all over
netlink in the namespace passed in (never the process's own by accident).

A veth's peer is created directly inside the target namespace with its final name
(IFLA_NET_NS_FD in the same RTM_NEWLINK request). Moving a link afterwards costs
tens of milliseconds of RCU waits; creating it in place costs about one.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import re
import secrets
import socket
import struct
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from pyroute2.netlink import NLM_F_ACK  # type: ignore[import-untyped]
from pyroute2.netlink.exceptions import NetlinkError  # type: ignore[import-untyped]
from pyroute2.netlink.rtnl import RTM_NEWLINK  # type: ignore[import-untyped]

from pyln.errors import BadRequest, Forbidden, Internal, NotFound
from pyln.osl.namespace import Namespace
from pyln.osl.rtnl import LinkBrief, Rtnl, nla

log = logging.getLogger("pyln.osl")

IFNAMSIZ = 16
"""The kernel's interface name buffer, NUL included: names have at most 15 chars."""

IFF_UP = 0x1
IFA_F_NODAD = 0x02

IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class LinkError(Internal):
    """A link operation failed in the kernel."""


class LinkExists(LinkError, Forbidden):
    """A link of that name is already in the namespace."""


class LinkNotFound(LinkError, NotFound):
    """No link of that name in the namespace."""


class InvalidLinkConfig(LinkError, BadRequest):
    """A malformed name, MAC, MTU or address, or one the kernel refused as invalid."""


@dataclass(frozen=True)
class LinkInfo:
    """A snapshot of one link as the kernel reports it."""

    index: int
    name: str
    mac: str | None
    mtu: int
    up: bool
    master: str | None
    kind: str | None
    addresses: list[IPInterface] = field(default_factory=list)


# -- netlink access -----------------------------------------------------------------


@contextmanager
def ns_netlink(ns: Namespace) -> Iterator[Rtnl]:
    """The calling thread's rtnetlink client bound in `ns` (Namespace.netlink caches
    one per thread)."""
    yield ns.netlink()


def netlink_error(e: NetlinkError, what: str, *, exists: type[LinkError] = LinkExists) -> LinkError:
    """The typed error for a failed link request; `what` names the link and namespace."""
    code = e.code
    text = f"{what}: {os.strerror(code) if code else e} (errno {code})"
    if code == errno.EEXIST:
        return exists(text)
    if code == errno.ENODEV:
        return LinkNotFound(text)
    if code in (
        errno.EINVAL,
        errno.ERANGE,
        errno.EADDRNOTAVAIL,
        errno.EAFNOSUPPORT,
        errno.EOPNOTSUPP,
    ):
        return InvalidLinkConfig(text)
    return LinkError(text)


# -- validation -----------------------------------------------------------------------

_MAC = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")


def validate_name(name: str) -> str:
    """`name` if the kernel would accept it as an interface name (dev_valid_name)."""
    if (
        not isinstance(name, str)
        or not 0 < len(name) < IFNAMSIZ
        or name in (".", "..")
        or any(c == "/" or c == ":" or c.isspace() for c in name)
        or not name.isascii()
    ):
        raise InvalidLinkConfig(
            f"invalid interface name {name!r}: 1-15 ASCII chars, no '/', ':' or spaces"
        )
    return name


def validate_mac(mac: str) -> str:
    """`mac` normalised to lower case, if it is a unicast MAC address."""
    if not isinstance(mac, str) or not _MAC.match(mac):
        raise InvalidLinkConfig(
            f"invalid MAC address {mac!r}: expected six hex bytes xx:xx:xx:xx:xx:xx"
        )
    if int(mac[:2], 16) & 1:
        raise InvalidLinkConfig(f"invalid MAC address {mac!r}: multicast bit set")
    return mac.lower()


def _validate_mtu(mtu: int) -> int:
    if not isinstance(mtu, int) or isinstance(mtu, bool) or not 68 <= mtu <= 65535:
        raise InvalidLinkConfig(f"invalid MTU {mtu!r}: must be an integer in 68..65535")
    return mtu


def as_interface(a: IPInterface | str) -> IPInterface:
    """An address with prefix, from an ipaddress interface or a string "10.0.0.2/24"."""
    if isinstance(a, ipaddress.IPv4Interface | ipaddress.IPv6Interface):
        return a
    try:
        return ipaddress.ip_interface(a)
    except ValueError as e:
        raise InvalidLinkConfig(f"invalid interface address {a!r}: {e}") from None


# -- lookups ----------------------------------------------------------------------------


def _get_link(ipr: Rtnl, name: str) -> LinkBrief | None:
    """Link `name`, or None. A direct RTM_GETLINK by name (pyroute2's
    get_links(ifname=...) dumps every link and filters, O(links)), read briefly."""
    return ipr.link_brief(name)


def index_of(ipr: Rtnl, ns: Namespace, name: str) -> int:
    """The ifindex of `name`, through an Rtnl already open in `ns`."""
    link = _get_link(ipr, name)
    if link is None:
        raise LinkNotFound(f"no link {name!r} in namespace {ns.path}")
    return link.index


def link_index(ns: Namespace, name: str) -> int:
    """The ifindex of link `name` in `ns` (LinkNotFound if absent)."""
    with ns_netlink(ns) as ipr:
        return index_of(ipr, ns, name)


def link_kind(ns: Namespace, name: str) -> str | None:
    """The kind of link `name` in `ns` ("bridge", "veth", ...), or None if there is no
    such link (or it has no kind)."""
    with ns_netlink(ns) as ipr:
        link = _get_link(ipr, name)
        return None if link is None else link.kind


def link_exists(ns: Namespace, name: str) -> bool:
    """Whether a link called `name` is in `ns`."""
    with ns_netlink(ns) as ipr:
        return _get_link(ipr, validate_name(name)) is not None


def link_names(ns: Namespace) -> set[str]:
    """The names of every link in `ns`."""
    with ns_netlink(ns) as ipr:
        return {link.name for link in ipr.link_briefs() if link.name is not None}


def _addresses(ipr: Rtnl, index: int) -> list[IPInterface]:
    out: list[IPInterface] = []
    for a in ipr.get_addr(index=index):
        addr = a.get("IFA_LOCAL") or a.get("IFA_ADDRESS")
        if addr is not None:
            out.append(ipaddress.ip_interface(f"{addr}/{a['prefixlen']}"))
    return out


def link_info(ns: Namespace, name: str) -> LinkInfo:
    """What the kernel knows of link `name` in `ns`: index, MAC, MTU, state, master,
    kind and every address (link-local ones included)."""
    with ns_netlink(ns) as ipr:
        link = _get_link(ipr, validate_name(name))
        if link is None:
            raise LinkNotFound(f"no link {name!r} in namespace {ns.path}")
        master: str | None = None
        if link.master:
            up = ipr.link_brief(index=link.master)
            master = up.name if up is not None else None  # None: released meanwhile
        return LinkInfo(
            index=link.index,
            name=link.name or name,
            mac=link.mac,
            mtu=int(link.mtu or 0),
            up=bool(link.flags & IFF_UP),
            master=master,
            kind=link.kind,
            addresses=_addresses(ipr, link.index),
        )


# -- configuration ----------------------------------------------------------------------


def _add_address(ipr: Rtnl, ns: Namespace, name: str, index: int, a: IPInterface) -> None:
    """Adds (or refreshes) one address. IPv4 gets its broadcast address as `ip addr add
    ... brd +` would; IPv6 skips duplicate address detection, as libnetwork does, so
    the address is usable at once."""
    kw: dict[str, Any] = {
        "index": index,
        "address": str(a.ip),
        "prefixlen": a.network.prefixlen,
    }
    if a.version == 4:
        if a.network.prefixlen < 31:
            kw["broadcast"] = str(a.network.broadcast_address)
    else:
        kw["flags"] = IFA_F_NODAD
    try:
        ipr.addr("replace", **kw)
    except NetlinkError as e:
        raise netlink_error(e, f"adding address {a} to {name!r} in namespace {ns.path}") from None


def _configure(
    ipr: Rtnl,
    ns: Namespace,
    name: str,
    index: int,
    addresses: Sequence[IPInterface],
    mac: str | None,
    mtu: int | None,
    up: bool,
) -> None:
    for a in addresses:
        _add_address(ipr, ns, name, index, a)
    kw: dict[str, Any] = {"index": index, "state": "up" if up else "down"}
    if mac is not None:
        kw["address"] = mac
    if mtu is not None:
        kw["mtu"] = mtu
    try:
        ipr.link("set", **kw)
    except NetlinkError as e:
        raise netlink_error(
            e, f"setting mac={mac} mtu={mtu} up={up} on {name!r} in namespace {ns.path}"
        ) from None


def configure_interface(
    ns: Namespace,
    name: str,
    *,
    addresses: Sequence[IPInterface | str] = (),
    mac: str | None = None,
    mtu: int | None = None,
    up: bool = True,
    index: int | None = None,
) -> int:
    """Gives link `name` in `ns` its addresses (added if missing), MAC and MTU, and
    brings it up (or down with `up=False`). Returns its ifindex. A caller that knows
    the ifindex passes it and saves a lookup."""
    validate_name(name)
    addrs = [as_interface(a) for a in addresses]
    mac = validate_mac(mac) if mac is not None else None
    mtu = _validate_mtu(mtu) if mtu is not None else None
    with ns_netlink(ns) as ipr:
        if index is None:
            index = index_of(ipr, ns, name)
        _configure(ipr, ns, name, index, addrs, mac, mtu, up)
        return index


# struct ipv4_devconf's index of route_localnet (include/uapi/linux/ip.h).
IPV4_DEVCONF_ROUTE_LOCALNET = 26
_IFLA_IFNAME = 3
_IFLA_AF_SPEC = 26
_IFLA_INET_CONF = 1
_NLA_F_NESTED = 0x8000


def set_ipv4_devconf(ns: Namespace, name: str, key: int, value: int) -> None:
    """Sets one IPv4 per-device setting of link `name` (as writing
    /proc/sys/net/ipv4/conf/<name>/<setting> does), in one netlink request: no thread
    has to enter `ns` to write its /proc. pyroute2 can only decode these settings,
    so the request is packed here. LinkNotFound if there is no such link."""
    validate_name(name)
    conf = nla(_IFLA_INET_CONF | _NLA_F_NESTED, nla(key, struct.pack("=I", value)))
    spec = nla(_IFLA_AF_SPEC | _NLA_F_NESTED, nla(socket.AF_INET | _NLA_F_NESTED, conf))
    body = struct.pack("=BxHiII", 0, 0, 0, 0, 0) + nla(_IFLA_IFNAME, name.encode() + b"\0")
    with ns_netlink(ns) as ipr:
        try:
            ipr.raw(RTM_NEWLINK, NLM_F_ACK, body + spec)
        except NetlinkError as e:
            what = f"setting IPv4 setting {key} of {name!r} in namespace {ns.path}"
            raise netlink_error(e, what) from None


def create_bridge(
    ns: Namespace,
    name: str,
    *,
    mtu: int | None = None,
    mac: str | None = None,
    addresses: Sequence[IPInterface | str] = (),
    up: bool = True,
) -> int:
    """A bridge `name` in `ns`, configured and (by default) up; returns its ifindex.
    An existing bridge of that name is adopted and given the addresses, MAC and MTU;
    an existing link of another kind is LinkExists. A bridge this call created is
    removed again if configuring it fails. Without `mac`, a new bridge gets a random
    one: otherwise it would take the lowest MAC of its ports, changing as they come
    and go (libnetwork's bridge driver fixes it for the same reason)."""
    validate_name(name)
    addrs = [as_interface(a) for a in addresses]
    mac = validate_mac(mac) if mac is not None else None
    mtu = _validate_mtu(mtu) if mtu is not None else None
    with ns_netlink(ns) as ipr:
        created = False
        link = _get_link(ipr, name)
        if link is None:
            kw: dict[str, Any] = {
                "ifname": name,
                "kind": "bridge",
                "address": mac or generate_random_mac(),
            }
            if mtu is not None:
                kw["mtu"] = mtu
            try:
                ipr.link("add", **kw)
                created = True
            except NetlinkError as e:
                if e.code != errno.EEXIST:
                    raise netlink_error(
                        e, f"creating bridge {name!r} in namespace {ns.path}"
                    ) from None
            link = _get_link(ipr, name)  # ours, or one created concurrently
            if link is None:
                raise LinkError(f"bridge {name!r} in namespace {ns.path} vanished after creation")
        kind = link.kind
        if kind != "bridge":
            raise LinkExists(
                f"link {name!r} in namespace {ns.path} exists and is a "
                f"{kind or 'device'}, not a bridge"
            )
        index = link.index
        try:
            _configure(ipr, ns, name, index, addrs, mac, mtu, up)
        except BaseException:
            if created:
                _delete(ipr, name)
            raise
        return index


def create_veth(
    host: Namespace,
    host_name: str,
    peer_ns: Namespace,
    peer_name: str,
    *,
    mtu: int | None = None,
    peer_mac: str | None = None,
    master: str | int | None = None,
) -> tuple[int, int]:
    """A veth pair: `host_name` in `host` (up, enslaved to bridge `master` if given)
    and `peer_name` created directly inside `peer_ns` (left down for the sandbox to
    configure). One RTM_NEWLINK does it all, so a failure leaves nothing behind.
    Returns (host ifindex, peer ifindex)."""
    validate_name(host_name)
    validate_name(peer_name)
    peer_mac = validate_mac(peer_mac) if peer_mac is not None else None
    mtu = _validate_mtu(mtu) if mtu is not None else None
    what = (
        f"creating veth {host_name!r} in namespace {host.path} "
        f"with peer {peer_name!r} in namespace {peer_ns.path}"
    )
    with ns_netlink(host) as ipr:
        kw: dict[str, Any] = {"ifname": host_name, "kind": "veth", "state": "up"}
        if isinstance(master, int):
            kw["master"] = master  # the bridge's ifindex, known to the caller
        elif master is not None:
            kw["master"] = index_of(ipr, host, validate_name(master))
        if mtu is not None:
            kw["mtu"] = mtu
        fd = peer_ns.fd()
        try:
            peer: dict[str, Any] = {"ifname": peer_name, "net_ns_fd": fd}
            if mtu is not None:
                peer["mtu"] = mtu
            if peer_mac is not None:
                peer["address"] = peer_mac
            kw["peer"] = peer
            ipr.link("add", **kw)
        except NetlinkError as e:
            if e.code == errno.EEXIST:
                taken = []
                if _get_link(ipr, host_name) is not None:
                    taken.append(f"{host_name!r} in {host.path}")
                if link_exists(peer_ns, peer_name):
                    taken.append(f"{peer_name!r} in {peer_ns.path}")
                if taken:
                    what += f" (already there: {', '.join(taken)})"
            raise netlink_error(e, what) from None
        finally:
            os.close(fd)
        try:
            link = _get_link(ipr, host_name)
            peer_index = link.peer if link is not None else None
            if link is None or peer_index is None:
                raise LinkError(f"{what}: the new link is not visible")
            return link.index, peer_index
        except BaseException:
            _delete(ipr, host_name)
            raise


def move_link(src: Namespace, name: str, dst: Namespace, new_name: str) -> int:
    """Moves link `name` of `src` into `dst` as `new_name`, down, in one netlink
    request. Returns its ifindex in `dst`. Raises LinkNotFound if `src` has no such
    link and LinkExists if `dst` already has a link called `new_name`; on any failure
    the link is back in `src` under `name` (the kernel may have moved it under its
    old name before the rename failed: it is then moved back)."""
    validate_name(name)
    validate_name(new_name)
    fd = dst.fd()
    err: LinkError | None = None
    try:
        with ns_netlink(src) as ipr:
            index = index_of(ipr, src, name)
            try:
                ipr.link("set", index=index, state="down")
                # The kernel moves the link, under `new_name` if its own name is taken
                # in `dst`, then renames it to `new_name`.
                ipr.link("set", index=index, net_ns_fd=fd, ifname=new_name)
            except NetlinkError as e:
                err = netlink_error(
                    e, f"moving link {name!r} from {src.path} into {dst.path} as {new_name!r}"
                )
    finally:
        os.close(fd)
    if err is not None:
        _return_link(src, name, dst)
        raise err
    return link_index(dst, new_name)


def _return_link(src: Namespace, name: str, dst: Namespace) -> None:
    """Moves link `name` from `dst` back to `src` if a failed move left it there."""
    if link_exists(src, name) or not link_exists(dst, name):
        return
    fd = src.fd()
    try:
        with ns_netlink(dst) as ipr:
            ipr.link("set", index=index_of(ipr, dst, name), net_ns_fd=fd)
    except (NetlinkError, LinkError) as e:
        log.error("link %r is stranded in namespace %s: %s", name, dst.path, e)
    finally:
        os.close(fd)


def _delete(ipr: Rtnl, name: str) -> bool:
    try:
        ipr.link("del", ifname=name)
    except NetlinkError as e:
        if e.code == errno.ENODEV:
            return False
        raise
    return True


def delete_link(ns: Namespace, name: str) -> bool:
    """Deletes link `name` from `ns` (a veth takes its peer with it). False if there
    was no such link."""
    validate_name(name)
    with ns_netlink(ns) as ipr:
        try:
            return _delete(ipr, name)
        except NetlinkError as e:
            raise netlink_error(e, f"deleting link {name!r} in namespace {ns.path}") from None


# -- names and MACs (libnetwork netutils) -------------------------------------------------


def generate_mac_from_ip(ip: ipaddress.IPv4Address | str) -> str:
    """libnetwork's GenerateMACFromIP: 02:42 then the four IPv4 bytes, a locally
    administered unicast MAC that is stable for the address."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError as e:
        raise InvalidLinkConfig(f"invalid IP address {ip!r}: {e}") from None
    if addr.version != 4:
        raise InvalidLinkConfig(f"a MAC can only be derived from an IPv4 address, not {addr}")
    return ":".join(f"{b:02x}" for b in b"\x02\x42" + addr.packed)


def generate_random_mac() -> str:
    """A random locally administered unicast MAC (02:42 and four random bytes, as
    libnetwork's GenerateRandomMAC)."""
    return ":".join(f"{b:02x}" for b in b"\x02\x42" + secrets.token_bytes(4))


def generate_iface_name(prefix: str = "veth", length: int = 7) -> str:
    """`prefix` followed by `length` random hex digits (libnetwork's GenerateIfaceName).
    The result must fit the kernel's 15 characters."""
    if not isinstance(length, int) or length < 1 or len(prefix) + length > IFNAMSIZ - 1:
        raise InvalidLinkConfig(
            f"interface name {prefix!r} + {length} random chars would not fit {IFNAMSIZ - 1} chars"
        )
    return validate_name(prefix + secrets.token_hex((length + 1) // 2)[:length])
