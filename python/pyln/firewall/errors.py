"""Typed firewall errors, in pyln's error families, so callers catch them by kind."""

from __future__ import annotations

from pyln.errors import BadRequest, Forbidden, Internal, NotFound, Unimplemented


class FirewallError(Internal):
    """The backend refused or failed an operation; the message holds its stderr."""


class UnknownBackend(BadRequest):
    """`new_firewall` got a backend name it does not know (the message lists the choices)."""


class InvalidFirewallRequest(BadRequest, ValueError):
    """A network or port mapping that cannot be expressed as rules (bad name, mixed family)."""


class NetworkNotInstalled(FirewallError, NotFound):
    """Port mappings were given for a network that has no rules installed."""


class FirewallConflict(FirewallError, Forbidden):
    """The request clashes with rules already installed (a bridge or host port in use)."""


class BackendUnavailable(FirewallError, Unimplemented):
    """The backend's tool or library, or a kernel feature it needs, is missing."""
