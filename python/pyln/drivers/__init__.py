"""Network drivers behind the driverapi contract (drivers/api.py)."""

from __future__ import annotations

from pyln.drivers.api import Driver
from pyln.drivers.host import HostDriver
from pyln.drivers.null import NullDriver

BUILTIN: dict[str, type[Driver]] = {"null": NullDriver, "host": HostDriver}

try:  # the bridge driver needs the kernel-side modules
    from pyln.drivers.bridge import BridgeDriver

    BUILTIN["bridge"] = BridgeDriver
except ImportError:  # pragma: no cover - while the bridge driver is being written
    pass

__all__ = ["BUILTIN", "Driver"]
