"""Sandboxes: a container's network stack, a network namespace mounted under the
state directory with its own /etc/hosts and /etc/resolv.conf (libnetwork's
sandbox.go, sandbox_dns_unix.go)."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyln import errors
from pyln.osl import Namespace

if TYPE_CHECKING:
    from pyln.controller import Controller
    from pyln.endpoint import Endpoint

HOST_RESOLV_CONF = Path("/etc/resolv.conf")


@dataclass
class SandboxConfig:
    """How a sandbox is set up; kept in its store record."""

    hostname: str = ""
    domainname: str = ""
    extra_hosts: list[tuple[str, str]] = field(default_factory=list)
    """(name, address) pairs added to /etc/hosts."""
    dns: list[str] = field(default_factory=list)
    dns_search: list[str] = field(default_factory=list)
    dns_options: list[str] = field(default_factory=list)
    use_host_namespace: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "hostname": self.hostname,
            "domainname": self.domainname,
            "extra_hosts": [list(h) for h in self.extra_hosts],
            "dns": self.dns,
            "dns_search": self.dns_search,
            "dns_options": self.dns_options,
            "use_host_namespace": self.use_host_namespace,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SandboxConfig:
        return cls(
            d["hostname"],
            d["domainname"],
            [(h[0], h[1]) for h in d["extra_hosts"]],
            list(d["dns"]),
            list(d["dns_search"]),
            list(d["dns_options"]),
            bool(d["use_host_namespace"]),
        )


def validate_config(config: SandboxConfig) -> None:
    """Refuses malformed host entries and DNS servers before anything is created."""
    for name, addr in config.extra_hosts:
        if not name or any(c.isspace() for c in name):
            raise errors.BadRequest(f"invalid extra host name {name!r}")
        try:
            ipaddress.ip_address(addr)
        except ValueError as e:
            raise errors.BadRequest(f"invalid address {addr!r} for extra host {name!r}") from e
    for server in config.dns:
        try:
            ipaddress.ip_address(server)
        except ValueError as e:
            raise errors.BadRequest(f"invalid DNS server {server!r}") from e


class Sandbox:
    """A handle on a sandbox of a controller (libnetwork's Sandbox)."""

    def __init__(self, ctrl: Controller, sid: str) -> None:
        self._ctrl = ctrl
        self.id = sid

    def __repr__(self) -> str:
        return f"Sandbox({self.id[:12]}, container={self.container_id!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sandbox) and other.id == self.id and other._ctrl is self._ctrl

    def __hash__(self) -> int:
        return hash(self.id)

    @property
    def _rec(self) -> dict[str, Any]:
        rec = self._ctrl._sandboxes.get(self.id)
        if rec is None:
            raise errors.SandboxNotFound(f"sandbox {self.id} does not exist (deleted?)")
        return rec

    @property
    def container_id(self) -> str:
        return str(self._rec["container_id"])

    @property
    def key(self) -> str:
        """The path of the sandbox's network namespace."""
        return str(self._rec["key"])

    @property
    def config(self) -> SandboxConfig:
        return SandboxConfig.from_dict(self._rec["config"])

    @property
    def hosts_path(self) -> Path:
        return Path(self._rec["hosts_path"])

    @property
    def resolv_conf_path(self) -> Path:
        return Path(self._rec["resolv_conf_path"])

    def namespace(self) -> Namespace:
        """The sandbox's network namespace."""
        return self._ctrl._sandbox_ns(self.id)

    def endpoints(self) -> list[Endpoint]:
        """The endpoints joined to this sandbox, in gateway-preference order."""
        return self._ctrl._sandbox_endpoints(self.id)

    def gateway_endpoint(self) -> Endpoint | None:
        """The endpoint whose network gives the sandbox its default route."""
        return self._ctrl._gateway_endpoint(self.id)

    def delete(self) -> None:
        """Leaves every joined endpoint and removes the sandbox."""
        self._ctrl._delete_sandbox(self.id)


def write_hosts(path: Path, config: SandboxConfig, own: Sequence[str]) -> None:
    """/etc/hosts: localhost entries, the container's own addresses with its name,
    and the extra hosts (libnetwork etchosts.Build)."""
    from pyln.osl import etchosts

    fqdn = config.hostname
    if config.hostname and config.domainname:
        fqdn = f"{config.hostname}.{config.domainname}"
    extra = [etchosts.Record(name, addr) for name, addr in config.extra_hosts]
    ip = own[0] if own else ""
    etchosts.build(path, ip, config.hostname, config.domainname, extra)
    if fqdn and len(own) > 1:
        etchosts.add(path, [etchosts.Record(f"{fqdn} {config.hostname}", a) for a in own[1:]])


def write_resolv_conf(path: Path, config: SandboxConfig, ipv6: bool) -> None:
    """/etc/resolv.conf: the configured servers, search domains and options, or the
    host's file without localhost nameservers (libnetwork's setupDNS)."""
    from pyln.osl import resolvconf

    host = HOST_RESOLV_CONF.read_text() if HOST_RESOLV_CONF.exists() else ""
    if config.dns or config.dns_search or config.dns_options:
        dns = config.dns or resolvconf.get_nameservers(resolvconf.filter_resolv_dns(host, ipv6))
        search = config.dns_search or resolvconf.get_search_domains(host)
        options = config.dns_options or resolvconf.get_options(host)
        resolvconf.build(path, dns, search, options)
    else:
        path.write_text(resolvconf.filter_resolv_dns(host, ipv6))
