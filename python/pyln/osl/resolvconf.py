"""A sandbox's /etc/resolv.conf, with libnetwork's resolvconf behaviour: parse the
host's file, drop nameservers a container cannot reach (its own loopback, and IPv6
ones when it has no IPv6), fall back to public resolvers, and write the result.

The patterns are libnetwork's, with Go's (RE2) meaning of `\\s` spelt out, so the
same input parses the same way. Files are rewritten in place (bind mounts).
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
from collections.abc import Sequence

from pyln.errors import Internal, NotFound, PylnError

StrPath = str | os.PathLike[str]

# libnetwork types.IP, types.IPv4, types.IPv6
IP = 0
IPV4 = 1
IPV6 = 2

DEFAULT_IPV4_DNS = ("nameserver 8.8.8.8", "nameserver 8.8.4.4")
DEFAULT_IPV6_DNS = ("nameserver 2001:4860:4860::8888", "nameserver 2001:4860:4860::8844")

_S = r"[\t\n\f\r ]"  # RE2's \s
_NS = r"[^\t\n\f\r ]"  # RE2's \S
_IPV4_BLOCK = r"(25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)"
_IPV4 = r"(" + _IPV4_BLOCK + r"\.){3}" + _IPV4_BLOCK
# A superset of IPv6 (as libnetwork's): enough to tell v6 nameservers from v4.
_IPV6 = r"([0-9A-Fa-f]{0,4}:){2,7}([0-9A-Fa-f]{0,4})"
IP_LOCALHOST = r"((127\.([0-9]{1,3}\.){2}[0-9]{1,3})|(::1)$)"

_localhost_ns = re.compile(r"(?m)^nameserver" + _S + "+" + IP_LOCALHOST + _S + r"*\n*")
_ipv6_ns = re.compile(r"(?m)^nameserver" + _S + "+" + _IPV6 + _S + r"*\n*")
_ns_any = re.compile(
    r"^" + _S + r"*nameserver" + _S + r"*((" + _IPV4 + r")|(" + _IPV6 + r"))" + _S + r"*\Z"
)
_ns_v6 = re.compile(r"^" + _S + r"*nameserver" + _S + r"*((" + _IPV6 + r"))" + _S + r"*\Z")
_ns_v4 = re.compile(r"^" + _S + r"*nameserver" + _S + r"*((" + _IPV4 + r"))" + _S + r"*\Z")
_search = re.compile(r"^" + _S + r"*search" + _S + r"*((" + _NS + r"+" + _S + r"*)*)\Z")
_options = re.compile(r"^" + _S + r"*options" + _S + r"*((" + _NS + r"+" + _S + r"*)*)\Z")


class ResolvConfError(PylnError):
    """Reading or writing a resolv.conf failed."""


class ResolvConfNotFound(ResolvConfError, NotFound):
    """The resolv.conf to read does not exist."""


class ResolvConfIOError(ResolvConfError, Internal):
    """The resolv.conf could not be read or written."""


def is_localhost(ip: str) -> bool:
    """Whether `ip` is a loopback nameserver address (127.0.0.0/8 or ::1). Unlike
    libnetwork's unanchored pattern, "fd00::1" (which merely ends in "::1") is not."""
    try:
        addr = ipaddress.ip_address(ip.strip())
    except ValueError:
        return False
    return addr.is_loopback


def _lines(content: str) -> list[str]:
    """The lines of `content` with comments ("#" to the end of line) cut off."""
    return [line.split("#", 1)[0] for line in content.split("\n")]


def get_nameservers(content: str, kind: int = IP) -> list[str]:
    """The nameserver addresses in `content`, in order: all (IP), IPV4 or IPV6 only."""
    pattern = {IP: _ns_any, IPV4: _ns_v4, IPV6: _ns_v6}.get(kind)
    if pattern is None:
        raise ValueError(f"kind must be IP, IPV4 or IPV6, not {kind!r}")
    out: list[str] = []
    for line in _lines(content):
        m = pattern.search(line)
        if m:
            out.append(m.group(1))
    return out


def get_nameservers_as_cidr(content: str) -> list[str]:
    """The nameservers as host prefixes: "1.2.3.4/32", "2001:db8::1/128"."""
    return [f"{ns}/{128 if ':' in ns else 32}" for ns in get_nameservers(content)]


def get_search_domains(content: str) -> list[str]:
    """The search domains; with several "search" lines, the last one wins."""
    domains: list[str] = []
    for line in _lines(content):
        m = _search.search(line)
        if m:
            domains = m.group(1).split()
    return domains


def get_options(content: str) -> list[str]:
    """The resolver options; with several "options" lines, the last one wins."""
    options: list[str] = []
    for line in _lines(content):
        m = _options.search(line)
        if m:
            options = m.group(1).split()
    return options


def filter_resolv_dns(content: str, ipv6_enabled: bool) -> str:
    """`content` without localhost nameservers (127.0.0.0/8, ::1) and, without IPv6,
    without IPv6 ones. If no nameserver is left, libnetwork's defaults (Google public
    DNS; IPv6 ones too with IPv6) are appended."""
    cleaned = _localhost_ns.sub("", content)
    if not ipv6_enabled:
        cleaned = _ipv6_ns.sub("", cleaned)
    if not get_nameservers(cleaned):
        dns = list(DEFAULT_IPV4_DNS)
        if ipv6_enabled:
            dns += DEFAULT_IPV6_DNS
        cleaned += "\n" + "\n".join(dns)
    return cleaned


def content_hash(content: str) -> str:
    """The hash libnetwork records to notice later edits by the user: "sha256:<hex>"."""
    return "sha256:" + hashlib.sha256(content.encode()).hexdigest()


def read(path: StrPath = "/etc/resolv.conf") -> str:
    """The text of a resolv.conf (the host's by default); only reads."""
    try:
        with open(path, encoding="utf-8", newline="") as f:
            return f.read()
    except OSError as e:
        cls = ResolvConfNotFound if isinstance(e, FileNotFoundError) else ResolvConfIOError
        raise cls(f"reading {os.fspath(path)}: {e.strerror or e}") from None


def render(dns: Sequence[str], search: Sequence[str], options: Sequence[str]) -> str:
    """The file `build` writes: a "search" line (unless the list is just "."), one
    "nameserver" line each, then an "options" line (unless empty)."""
    out = ""
    search_text = " ".join(search)
    if search and search_text.strip(" ") != ".":
        out += f"search {search_text}\n"
    for ns in dns:
        out += f"nameserver {ns}\n"
    options_text = " ".join(options)
    if options and options_text.strip(" "):
        out += f"options {options_text}\n"
    return out


def build(path: StrPath, dns: Sequence[str], search: Sequence[str], options: Sequence[str]) -> None:
    """Writes a resolv.conf with these nameservers, search domains and options (in
    place, mode 0644)."""
    content = render(dns, search, options)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        with open(fd, "w", encoding="utf-8", newline="") as f:
            f.write(content)
    except OSError as e:
        cls = ResolvConfNotFound if isinstance(e, FileNotFoundError) else ResolvConfIOError
        raise cls(f"writing {os.fspath(path)}: {e.strerror or e}") from None
