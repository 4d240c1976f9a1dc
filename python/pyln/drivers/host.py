"""The host driver: endpoints share the host's network namespace (the sandbox must
be created with use_host_namespace=True)."""

from __future__ import annotations

from pyln.drivers.null import NullDriver


class HostDriver(NullDriver):
    type = "host"
