"""Option and label names, as libnetwork's netlabel package defines them, so that
callers used to libnetwork (and Docker) pass the same strings."""

from typing import Final

PREFIX: Final = "com.docker.network"
DRIVER_PREFIX: Final = PREFIX + ".driver"
DRIVER_PRIVATE_PREFIX: Final = DRIVER_PREFIX + ".private"
GENERIC_DATA: Final = PREFIX + ".generic"
PORT_MAP: Final = PREFIX + ".portmap"
MAC_ADDRESS: Final = PREFIX + ".endpoint.macaddress"
EXPOSED_PORTS: Final = PREFIX + ".endpoint.exposedports"
DNS_SERVERS: Final = PREFIX + ".endpoint.dnsservers"
ENABLE_IPV6: Final = PREFIX + ".enable_ipv6"
DRIVER_MTU: Final = DRIVER_PREFIX + ".mtu"
GATEWAY: Final = PREFIX + ".gateway"
INTERNAL: Final = PREFIX + ".internal"
HOST_IPV4: Final = PREFIX + ".host_ipv4"

# Bridge driver options (libnetwork drivers/bridge).
BRIDGE_NAME: Final = PREFIX + ".bridge.name"
BRIDGE_ENABLE_IP_MASQUERADE: Final = PREFIX + ".bridge.enable_ip_masquerade"
BRIDGE_ENABLE_ICC: Final = PREFIX + ".bridge.enable_icc"
BRIDGE_HOST_BINDING_IPV4: Final = PREFIX + ".bridge.host_binding_ipv4"
BRIDGE_DEFAULT_BRIDGE: Final = PREFIX + ".bridge.default_bridge"


def key_value(label: str) -> tuple[str, str]:
    """Splits "key=value" (a label without "=" has an empty value)."""
    key, _, value = label.partition("=")
    return key.strip(), value.strip()
