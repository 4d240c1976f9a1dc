"""IP address management: libnetwork's default IPAM driver and the ipamapi names.

from pyln.ipam import Allocator
a = Allocator(local_store, global_store)   # either may be None: in memory
pool_id, pool, meta = a.request_pool("LocalDefault")
address, meta = a.request_address(pool_id)
"""

from pyln.ipam.allocator import Allocator, PoolInfo
from pyln.ipam.contract import (
    ALLOC_SERIAL,
    DEFAULT_IPAM,
    GATEWAY,
    GLOBAL_DEFAULT,
    LOCAL_DEFAULT,
    REQUEST_ADDRESS_TYPE,
)
from pyln.ipam.errors import (
    BadPool,
    InvalidAddressSpace,
    InvalidPool,
    InvalidRequest,
    InvalidSubPool,
    IPAlreadyAllocated,
    IpamError,
    IPOutOfRange,
    NoAvailableIPs,
    NoAvailablePool,
    PoolNotFound,
    PoolOverlap,
)
from pyln.ipam.pools import GLOBAL_SCOPE_DEFAULTS, LOCAL_SCOPE_DEFAULTS
from pyln.ipam.subnet import SubnetKey

__all__ = [
    "ALLOC_SERIAL",
    "DEFAULT_IPAM",
    "GATEWAY",
    "GLOBAL_DEFAULT",
    "GLOBAL_SCOPE_DEFAULTS",
    "LOCAL_DEFAULT",
    "LOCAL_SCOPE_DEFAULTS",
    "REQUEST_ADDRESS_TYPE",
    "Allocator",
    "BadPool",
    "IPAlreadyAllocated",
    "IPOutOfRange",
    "InvalidAddressSpace",
    "InvalidPool",
    "InvalidRequest",
    "InvalidSubPool",
    "IpamError",
    "NoAvailableIPs",
    "NoAvailablePool",
    "PoolInfo",
    "PoolNotFound",
    "PoolOverlap",
    "SubnetKey",
]
