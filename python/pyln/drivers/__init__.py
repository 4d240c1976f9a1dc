"""Network drivers behind the driverapi contract (drivers/api.py)."""

from __future__ import annotations

from pyln.drivers.api import Driver
from pyln.drivers.bridge import BridgeDriver
from pyln.drivers.host import HostDriver
from pyln.drivers.null import NullDriver

BUILTIN: dict[str, type[Driver]] = {"null": NullDriver, "host": HostDriver, "bridge": BridgeDriver}

__all__ = ["BUILTIN", "Driver"]
