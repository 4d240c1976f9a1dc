"""The null driver: endpoints with no connectivity (the sandbox keeps only lo)."""

from __future__ import annotations

from typing import Any

from pyln.drivers.api import Driver, InterfaceInfo, IPAMData, JoinInfo, SandboxInfo


class NullDriver(Driver):
    type = "null"

    def create_network(
        self, nid: str, options: dict[str, Any], ipv4: list[IPAMData], ipv6: list[IPAMData]
    ) -> None:
        pass

    def delete_network(self, nid: str) -> None:
        pass

    def create_endpoint(
        self, nid: str, eid: str, iface: InterfaceInfo, options: dict[str, Any]
    ) -> None:
        pass

    def delete_endpoint(self, nid: str, eid: str) -> None:
        pass

    def join(
        self, nid: str, eid: str, sandbox: SandboxInfo, jinfo: JoinInfo, options: dict[str, Any]
    ) -> None:
        pass

    def leave(self, nid: str, eid: str) -> None:
        pass
