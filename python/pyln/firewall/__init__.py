"""Firewall rules for bridge networks (NAT, isolation, published ports) behind one
interface with nftables and iptables backends."""

from pyln.firewall.api import BACKENDS, Firewall, NetworkRules, PortMapping, new_firewall
from pyln.firewall.errors import (
    BackendUnavailable,
    FirewallConflict,
    FirewallError,
    InvalidFirewallRequest,
    NetworkNotInstalled,
    UnknownBackend,
)

__all__ = [
    "BACKENDS",
    "BackendUnavailable",
    "Firewall",
    "FirewallConflict",
    "FirewallError",
    "InvalidFirewallRequest",
    "NetworkNotInstalled",
    "NetworkRules",
    "PortMapping",
    "UnknownBackend",
    "new_firewall",
]
