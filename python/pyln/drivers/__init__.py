"""Network drivers behind the driverapi contract (drivers/api.py), and the registry
the controller finds them in (libnetwork's drvregistry)."""

from __future__ import annotations

from pyln.drivers.api import Driver, DriverError
from pyln.drivers.bridge import BridgeDriver
from pyln.drivers.host import HostDriver
from pyln.drivers.null import NullDriver

BUILTIN: dict[str, type[Driver]] = {"null": NullDriver, "host": HostDriver, "bridge": BridgeDriver}


def register(network_type: str, cls: type[Driver]) -> None:
    """Makes `cls` the driver of `network_type` (a driver of a built-in or already
    registered type is refused). Controllers look drivers up on first use, so it
    applies to controllers already open too; a controller opening a state directory
    with networks of a type no driver is registered for raises UnknownDriver."""
    if not network_type or not isinstance(network_type, str):
        raise DriverError(f"a network type must be a non-empty string, not {network_type!r}")
    if not (isinstance(cls, type) and issubclass(cls, Driver)):
        raise DriverError(f"{cls!r} does not implement pyln.drivers.api.Driver")
    if network_type in BUILTIN:
        raise DriverError(f"network type {network_type!r} already has a driver")
    BUILTIN[network_type] = cls


def unregister(network_type: str) -> None:
    """Removes a driver added with register (built-in drivers stay)."""
    if network_type in ("null", "host", "bridge"):
        raise DriverError(f"the built-in {network_type!r} driver cannot be removed")
    BUILTIN.pop(network_type, None)


__all__ = ["BUILTIN", "Driver", "register", "unregister"]
