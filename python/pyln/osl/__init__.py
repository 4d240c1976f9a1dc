"""The sandbox's operating-system layer: network namespaces, interfaces, routes,
neighbours, /etc/hosts and /etc/resolv.conf, all through netlink (pyroute2).

The submodules `routes` and `neighbors` are exported as modules (callers write
`routes.add_route(...)`); their same-named functions are reached through them.
"""

from pyln.osl import etchosts, interfaces, neighbors, resolvconf, routes
from pyln.osl.interfaces import (
    InvalidLinkConfig,
    LinkError,
    LinkExists,
    LinkInfo,
    LinkNotFound,
    configure_interface,
    create_bridge,
    create_veth,
    delete_link,
    generate_iface_name,
    generate_mac_from_ip,
    generate_random_mac,
    link_exists,
    link_index,
    link_info,
)
from pyln.osl.namespace import (
    Namespace,
    NamespaceError,
    NamespaceExists,
    NamespaceNotFound,
    NamespaceWorker,
    is_namespace_mount,
)
from pyln.osl.neighbors import (
    InvalidNeighbor,
    NeighborError,
    add_neighbor,
    delete_neighbor,
)
from pyln.osl.routes import (
    InvalidRoute,
    Route,
    RouteDeviceNotFound,
    RouteError,
    RouteExists,
    add_route,
    default_gateway,
    remove_route,
    set_default_gateway,
)

__all__ = [
    "InvalidLinkConfig",
    "InvalidNeighbor",
    "InvalidRoute",
    "LinkError",
    "LinkExists",
    "LinkInfo",
    "LinkNotFound",
    "Namespace",
    "NamespaceError",
    "NamespaceExists",
    "NamespaceNotFound",
    "NamespaceWorker",
    "NeighborError",
    "Route",
    "RouteDeviceNotFound",
    "RouteError",
    "RouteExists",
    "add_neighbor",
    "add_route",
    "configure_interface",
    "create_bridge",
    "create_veth",
    "default_gateway",
    "delete_link",
    "delete_neighbor",
    "etchosts",
    "generate_iface_name",
    "generate_mac_from_ip",
    "generate_random_mac",
    "interfaces",
    "is_namespace_mount",
    "link_exists",
    "link_index",
    "link_info",
    "neighbors",
    "remove_route",
    "resolvconf",
    "routes",
    "set_default_gateway",
]
