"""Names of libnetwork's ipamapi contract: address spaces and request options."""

from typing import Final

LOCAL_DEFAULT: Final = "LocalDefault"
"""Address space of local-scope networks (stored in the local store)."""
GLOBAL_DEFAULT: Final = "GlobalDefault"
"""Address space of global-scope networks (stored in the global store)."""
DEFAULT_IPAM: Final = "default"

REQUEST_ADDRESS_TYPE: Final = "RequestAddressType"
"""Option key naming what an address is for; with GATEWAY it asks for a gateway."""
GATEWAY: Final = "com.docker.network.gateway"
ALLOC_SERIAL: Final = "com.docker.network.ipam.serial"
"""Option: "true" hands out addresses serially, not the lowest free one."""
