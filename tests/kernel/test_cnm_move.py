"""Drivers that hand over a host link (JoinInfo.move), as libnetwork's macvlan, ipvlan
and overlay drivers do: the sandbox moves the link in under its ethN name and gives
it the endpoint's address and MAC; leaving moves it back under its own name. The
driver here, registered through pyln.drivers.register, makes a veth pair in the host
namespace at join (as libnetwork's bridge driver once did) and deletes it at leave."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

import pyln
from pyln import drivers, errors
from pyln.drivers.api import (
    DriverError,
    InterfaceInfo,
    JoinInfo,
    SandboxInfo,
    StaticRoute,
)
from pyln.drivers.null import NullDriver
from pyln.osl import Namespace, interfaces

from .test_cnm import cleanup


class MoverDriver(NullDriver):
    """Makes a veth pair `mv-<eid>` / `mp-<eid>` in the host namespace at join and asks
    for `mv-<eid>` to be moved in; at leave, notes whether it came back, then deletes
    the pair."""

    type = "mover"
    came_back: ClassVar[dict[str, bool]] = {}
    bad_route = False

    @staticmethod
    def link(eid: str) -> str:
        return f"mv-{eid[:8]}"

    def create_endpoint(
        self, nid: str, eid: str, iface: InterfaceInfo, options: dict[str, Any]
    ) -> None:
        if iface.mac_address is None:
            iface.mac_address = "02:42:0a:0b:0c:0d"

    def join(
        self, nid: str, eid: str, sandbox: SandboxInfo, jinfo: JoinInfo, options: dict[str, Any]
    ) -> None:
        self.ctx.host_namespace.netlink().link(
            "add", ifname=self.link(eid), kind="veth", peer=f"mp-{eid[:8]}"
        )
        jinfo.move = self.link(eid)
        if MoverDriver.bad_route:  # a next hop no interface reaches: the join fails late
            dest = ipaddress.ip_network("192.0.2.0/24")
            jinfo.static_routes.append(StaticRoute(dest, ipaddress.ip_address("198.51.100.1")))

    def leave(self, nid: str, eid: str) -> None:
        host = self.ctx.host_namespace
        MoverDriver.came_back[eid] = interfaces.link_exists(host, self.link(eid))
        interfaces.delete_link(host, self.link(eid))


@pytest.fixture
def ctrl(tmp_path: Path, make_ns: Callable[[str], Namespace]) -> Iterator[pyln.Controller]:
    drivers.register("mover", MoverDriver)
    MoverDriver.came_back.clear()
    MoverDriver.bad_route = False
    c = pyln.Controller(state_dir=tmp_path / "state", host_namespace=make_ns("host"))
    try:
        yield c
    finally:
        cleanup(c)
        drivers.unregister("mover")


def test_register_refuses_taken_types_and_non_drivers() -> None:
    with pytest.raises(DriverError, match="already has a driver"):
        drivers.register("bridge", MoverDriver)
    with pytest.raises(DriverError, match="does not implement"):
        drivers.register("thing", dict)  # type: ignore[arg-type]
    with pytest.raises(DriverError, match="cannot be removed"):
        drivers.unregister("null")


def test_moved_link_becomes_eth0_and_goes_back_on_leave(ctrl: pyln.Controller) -> None:
    net = ctrl.new_network("mover", "m1", ipam_v4=[{"pool": "10.231.0.0/24"}])
    sbx = ctrl.new_sandbox("c1")
    ep = net.create_endpoint("e1")
    ep.join(sbx)
    host, inside = ctrl.host_ns, Namespace.open(sbx.key)
    try:
        name = MoverDriver.link(ep.id)
        assert not interfaces.link_exists(host, name)
        info = interfaces.link_info(inside, "eth0")
        assert info.kind == "veth"
        assert info.mac == "02:42:0a:0b:0c:0d"
        assert info.up
        assert ipaddress.ip_interface(ep.info().iface.address) in info.addresses
        ep.leave(sbx)
        assert MoverDriver.came_back[ep.id] is True
        assert not interfaces.link_exists(inside, "eth0")
        assert not interfaces.link_exists(host, name)  # the driver deleted it
        # Joined again and the sandbox deleted: the link still goes back first.
        ep.join(sbx)
        sbx.delete()
        assert MoverDriver.came_back[ep.id] is True
    finally:
        inside.close()


def test_a_join_failing_after_the_move_moves_the_link_back(ctrl: pyln.Controller) -> None:
    net = ctrl.new_network("mover", "m1", ipam_v4=[{"pool": "10.231.0.0/24"}])
    sbx = ctrl.new_sandbox("c1")
    ep = net.create_endpoint("e1")
    MoverDriver.bad_route = True
    with pytest.raises(errors.PylnError):
        ep.join(sbx)
    assert MoverDriver.came_back[ep.id] is True  # back in the host before the driver's leave
    inside = Namespace.open(sbx.key)
    try:
        assert not interfaces.link_exists(inside, "eth0")
    finally:
        inside.close()
    assert ep.info().sandbox_key is None
    MoverDriver.bad_route = False
    ep.join(sbx)  # and the endpoint joins fine afterwards
    assert ep.info().sandbox_key == sbx.key


def test_a_link_that_cannot_go_back_does_not_block_the_leave(ctrl: pyln.Controller) -> None:
    """Its name was taken in the host meanwhile: as libnetwork, the leave goes on and
    the link stays in the sandbox (it goes with the sandbox)."""
    net = ctrl.new_network("mover", "m1", ipam_v4=[{"pool": "10.231.0.0/24"}])
    sbx = ctrl.new_sandbox("c1")
    ep = net.create_endpoint("e1")
    ep.join(sbx)
    name = MoverDriver.link(ep.id)
    ctrl.host_ns.netlink().link("add", ifname=name, kind="veth", peer="squatter0")
    ep.leave(sbx)  # no error
    assert MoverDriver.came_back[ep.id] is True  # the squatter, which the driver deleted
    assert ep.info().sandbox_key is None
    inside = Namespace.open(sbx.key)
    try:
        assert interfaces.link_exists(inside, "eth0")  # stayed in the sandbox
    finally:
        inside.close()
    sbx.delete()


def test_restore_moves_the_link_back_after_a_crash_during_leave(
    ctrl: pyln.Controller, tmp_path: Path
) -> None:
    net = ctrl.new_network("mover", "m1", ipam_v4=[{"pool": "10.231.0.0/24"}])
    sbx = ctrl.new_sandbox("c1")
    ep = net.create_endpoint("e1")
    ep.join(sbx)
    host = ctrl.host_ns
    # What a kill -9 in the middle of leave leaves: the record says "leaving".
    rec = ctrl._endpoints[ep.id]
    rec["state"] = "leaving"
    ctrl._save_endpoint(rec)
    ctrl.close()
    again = pyln.Controller(state_dir=tmp_path / "state", host_namespace=host)
    try:
        assert MoverDriver.came_back[ep.id] is True
        assert again.network_by_name("m1").endpoint_by_name("e1").info().sandbox_key is None
        inside = Namespace.open(sbx.key)
        try:
            assert not interfaces.link_exists(inside, "eth0")
        finally:
            inside.close()
        assert not interfaces.link_exists(host, MoverDriver.link(ep.id))
    finally:
        cleanup(again)
