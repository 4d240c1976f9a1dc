"""IPAM errors, named after libnetwork's ipamapi errors and placed in the error
families of pyln.errors (the family is libnetwork's; PoolNotFound is also NotFound)."""

from pyln.errors import BadRequest, Forbidden, NoService, NotFound


class IpamError(Exception):
    """Marker base for every IPAM error."""


class InvalidAddressSpace(IpamError, BadRequest):
    """Unknown or empty address space."""


class InvalidPool(IpamError, BadRequest):
    """Malformed pool or pool id, or a pool IPAM cannot serve."""


class InvalidSubPool(IpamError, BadRequest):
    """Malformed sub-pool, or one outside its pool."""


class InvalidRequest(IpamError, BadRequest):
    """A request that makes no sense (no address, a reserved address, ...)."""


class PoolNotFound(IpamError, BadRequest, NotFound):
    """No pool with that id."""


class PoolOverlap(IpamError, Forbidden):
    """The pool overlaps one already in the address space."""


class NoAvailablePool(IpamError, NoService, NotFound):
    """No predefined pool is free."""


class NoAvailableIPs(IpamError, NoService):
    """The pool (or sub-pool) has no free address."""


class IPAlreadyAllocated(IpamError, Forbidden):
    """The preferred address is taken."""


class IPOutOfRange(IpamError, BadRequest):
    """The address is not in the pool."""


class BadPool(IpamError, BadRequest):
    """The address space does not hold that pool (release of an unknown pool)."""
