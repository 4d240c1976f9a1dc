"""A sandbox's /etc/hosts, with libnetwork's etchosts behaviour: a main record for
the container, the default localhost/IPv6 entries, then extra records; records are
added, removed and re-addressed as endpoints join and leave.

Files are rewritten in place (truncate and write), never replaced by rename: the
file is bind-mounted into containers, and a rename would leave them the old inode.
Each path has its own lock, so concurrent changes to one file do not lose updates.
"""

from __future__ import annotations

import errno
import os
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from pyln.errors import Internal, NotFound, PylnError

StrPath = str | os.PathLike[str]


class EtcHostsError(PylnError):
    """Reading or writing a hosts file failed."""


class HostsFileNotFound(EtcHostsError, NotFound):
    """The hosts file to change does not exist."""


class HostsFileIOError(EtcHostsError, Internal):
    """The hosts file could not be read or written."""


@dataclass(frozen=True)
class Record:
    """One line of /etc/hosts: `ip` then the names in `hosts` (space separated)."""

    hosts: str
    ip: str

    def line(self) -> str:
        """The record as written to the file: IP, a tab, the names."""
        return f"{self.ip}\t{self.hosts}\n"


DEFAULT_CONTENT: tuple[Record, ...] = (
    Record("localhost", "127.0.0.1"),
    Record("localhost ip6-localhost ip6-loopback", "::1"),
    Record("ip6-localnet", "fe00::0"),
    Record("ip6-mcastprefix", "ff00::0"),
    Record("ip6-allnodes", "ff02::1"),
    Record("ip6-allrouters", "ff02::2"),
)

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def _lock(path: StrPath) -> threading.Lock:
    key = os.path.abspath(os.fspath(path))
    with _locks_guard:
        lock = _locks.get(key)
        if lock is None:
            lock = _locks[key] = threading.Lock()
        return lock


def drop(path: StrPath) -> None:
    """Forgets the lock of `path` (when its sandbox is gone)."""
    with _locks_guard:
        _locks.pop(os.path.abspath(os.fspath(path)), None)


def _error(e: OSError, what: str, path: StrPath) -> EtcHostsError:
    text = f"{what} {os.fspath(path)}: {e.strerror or e}"
    if e.errno == errno.ENOENT:
        return HostsFileNotFound(text)
    return HostsFileIOError(text)


def _read(path: StrPath) -> str:
    try:
        with open(path, encoding="utf-8", newline="") as f:
            return f.read()
    except OSError as e:
        raise _error(e, "reading hosts file", path) from None


def _write(path: StrPath, content: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        with open(fd, "w", encoding="utf-8", newline="") as f:
            f.write(content)
    except OSError as e:
        raise _error(e, "writing hosts file", path) from None


def build(
    path: StrPath,
    ip: str,
    hostname: str,
    domainname: str,
    extra: Sequence[Record] = (),
) -> None:
    """Writes a new hosts file: the container's own record (only if `ip` is given;
    the FQDN first, then the bare host name), the defaults, then `extra`."""
    lines: list[str] = []
    if ip:
        fqdn = f"{hostname}.{domainname}" if domainname else hostname
        short = fqdn.split(".", 1)[0]
        names = f"{fqdn} {short}" if "." in fqdn else fqdn
        lines.append(Record(names, ip).line())
    lines.extend(r.line() for r in DEFAULT_CONTENT)
    lines.extend(r.line() for r in extra)
    with _lock(path):
        _write(path, "".join(lines))


def add(path: StrPath, records: Sequence[Record]) -> None:
    """Appends `records` to an existing hosts file."""
    if not records:
        return
    with _lock(path):
        content = _read(path)
        _write(path, content + "".join(r.line() for r in records))


def delete(path: StrPath, records: Sequence[Record]) -> None:
    """Removes every line whose names are exactly a record's `hosts` (the IP is not
    compared, as in libnetwork). Empty lines go too; comments stay."""
    if not records:
        return
    suffixes = tuple("\t" + r.hosts for r in records)
    with _lock(path):
        kept: list[str] = []
        for line in _read(path).split("\n"):
            line = line.removesuffix("\r")
            if not line:
                continue
            if line.startswith("#") or not line.endswith(suffixes):
                kept.append(line + "\n")
        _write(path, "".join(kept))


def update(path: StrPath, ip: str, hostname: str) -> None:
    """Gives every record whose first name is `hostname` (or starts with
    `hostname.`) the address `ip`. Names that merely start with `hostname` are left."""
    pattern = re.compile(r"(\S*)(\t" + re.escape(hostname) + r")([\t\n\f\r ]|\.)", re.ASCII)
    with _lock(path):
        content = _read(path)
        _write(path, pattern.sub(lambda m: ip + m.group(2) + m.group(3), content))
