"""The sandbox's operating-system layer: network namespaces, interfaces, routes,
neighbours, /etc/hosts and /etc/resolv.conf, all through netlink (pyroute2)."""

from pyln.osl.namespace import (
    Namespace,
    NamespaceError,
    NamespaceExists,
    NamespaceNotFound,
    is_namespace_mount,
)

__all__ = [
    "Namespace",
    "NamespaceError",
    "NamespaceExists",
    "NamespaceNotFound",
    "is_namespace_mount",
]
