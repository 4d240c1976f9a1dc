"""The bridge driver (libnetwork's drivers/bridge): a Linux bridge per network in
the controller's host namespace, a veth pair per joined endpoint, outbound NAT,
isolation between bridge networks, ICC and internal networks, and published ports
(DNAT rules, plus one userland proxy process for all ports).

The container side of the veth is created directly inside the sandbox's namespace
at join time (no ~27 ms move). Host-side veth names derive from the endpoint id
("veth" + 11 hex digits), so a restarted controller knows which links are its own.
"""

from __future__ import annotations

import ipaddress
import logging
import queue
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from pyln import errors, netlabel
from pyln.drivers.api import (
    Capability,
    Driver,
    DriverContext,
    DriverError,
    InterfaceInfo,
    IPAMData,
    JoinInfo,
    SandboxInfo,
)
from pyln.firewall import NetworkRules, PortMapping, new_firewall
from pyln.osl import Namespace, interfaces
from pyln.portmapper import PortAllocator, ProxyManager
from pyln.store import Store
from pyln.types import PortBinding

DEFAULT_MTU = 1500
DEFAULT_BRIDGE_NAME = "pyln0"
"""The default bridge network's bridge (libnetwork's docker0)."""
IFNAMSIZ = 15
STORE_PREFIX = "bridge/endpoint/"
PENDING_PREFIX = "bridge/pending-delete/"
# bridge/network/<nid> -> bridge name, written before the driver creates a bridge, so
# that a bridge of a network a crash left unrecorded is found and removed again.
BRIDGE_PREFIX = "bridge/network/"

log = logging.getLogger(__name__)


def _bool(value: Any, what: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise DriverError(f"bridge option {what}: {value!r} is not a boolean")


def host_veth_name(eid: str) -> str:
    """The host-side veth of an endpoint."""
    return "veth" + eid[:11]


def parked_name(index: int) -> str:
    """The name a detached link gets while it waits to be deleted: unique while the
    link exists, and never the name of a live endpoint's link."""
    return f"gone{index:x}"


class LinkReaper:
    """Deletes links in a background thread. Deleting a veth waits ~20 ms on kernel
    RCU grace periods; the caller has already detached it. Each pending deletion is in
    the store first, so a crash leaves none behind (restore() finishes them)."""

    def __init__(self, ns: Namespace, store: Store | None) -> None:
        self.ns = ns
        self.store = store
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def record(self, name: str) -> None:
        """Notes in the store that `name` is to be deleted (before it is renamed to it)."""
        if self.store is not None:
            self.store.put(PENDING_PREFIX + name, True)

    def submit(self, name: str) -> None:
        """Queues the deletion of `name` (recorded first)."""
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="pyln-reaper", daemon=True)
                self._thread.start()
        self._queue.put(name)

    def _run(self) -> None:
        try:
            while True:
                name = self._queue.get()
                try:
                    if name is None:
                        return
                    self._delete(name)
                finally:
                    self._queue.task_done()
        finally:
            self.ns.release()

    def _delete(self, name: str) -> None:
        try:
            interfaces.delete_link(self.ns, name)
        except errors.PylnError as e:
            log.warning("could not delete link %s: %s", name, e)
            return
        if self.store is not None:
            self.store.delete(PENDING_PREFIX + name)

    def restore(self) -> None:
        """Finishes deletions a previous controller recorded but did not complete."""
        if self.store is None:
            return
        for entry in self.store.list(PENDING_PREFIX):
            self._delete(entry.key.removeprefix(PENDING_PREFIX))

    def drain(self) -> None:
        """Waits until every submitted deletion is done."""
        self._queue.join()

    def close(self) -> None:
        self.drain()
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                self._queue.put(None)
                self._thread.join(timeout=10)
            self._thread = None


@dataclass
class BridgeNetwork:
    nid: str
    bridge: str
    mtu: int
    masquerade: bool
    icc: bool
    internal: bool
    host_binding_ip: ipaddress.IPv4Address | ipaddress.IPv6Address
    gateway_v4: ipaddress.IPv4Interface | None
    gateway_v6: ipaddress.IPv6Interface | None
    subnets: tuple[Any, ...]
    bridge_index: int = 0
    default: bool = False


@dataclass
class BridgeEndpoint:
    nid: str
    eid: str
    mac: str
    address: ipaddress.IPv4Interface | None
    address_v6: ipaddress.IPv6Interface | None
    bindings: list[PortBinding]
    mapped: list[PortMapping] = field(default_factory=list)
    joined: bool = False
    sandbox_ns: Namespace | None = None
    iface: str | None = None


class BridgeDriver(Driver):
    """Driver config keys: "firewall" ("nftables" or "iptables"), "userland_proxy"
    (bool, default True)."""

    type = "bridge"
    capability = Capability("local", "local")

    def __init__(self, ctx: DriverContext) -> None:
        super().__init__(ctx)
        unknown = set(ctx.config) - {"firewall", "userland_proxy"}
        if unknown:
            raise DriverError(f"unknown bridge driver options {sorted(unknown)}")
        self.firewall = new_firewall(
            ctx.host_namespace, str(ctx.config.get("firewall", "nftables"))
        )
        self.userland_proxy = _bool(ctx.config.get("userland_proxy", True), "userland_proxy")
        self.ports = PortAllocator()
        self.proxy = ProxyManager(ctx.host_namespace, ctx.state_dir / "run")
        self.networks: dict[str, BridgeNetwork] = {}
        self.endpoints: dict[str, BridgeEndpoint] = {}
        self._lock = threading.RLock()
        self.reaper = LinkReaper(ctx.host_namespace, ctx.store)
        self.reaper.restore()
        # Removing a network's rules costs ~18 ms of kernel time per nftables
        # transaction; once its bridge is parked no traffic reaches them, so they go in
        # the background. The firewall's own lock orders this before any later change.
        self._fw_worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pyln-fw")
        # Background removals of deleted networks' rules, with their subnets: a new
        # network on one of those subnets waits for its removal first.
        self._fw_pending: list[tuple[Future[None], tuple[Any, ...]]] = []

    # -- networks -------------------------------------------------------------------

    def create_network(
        self, nid: str, options: dict[str, Any], ipv4: list[IPAMData], ipv6: list[IPAMData]
    ) -> None:
        known = {
            netlabel.BRIDGE_NAME, netlabel.BRIDGE_ENABLE_IP_MASQUERADE, netlabel.BRIDGE_ENABLE_ICC,
            netlabel.BRIDGE_HOST_BINDING_IPV4, netlabel.DRIVER_MTU, netlabel.INTERNAL,
            netlabel.ENABLE_IPV6, netlabel.BRIDGE_DEFAULT_BRIDGE,
        }  # fmt: skip
        unknown = set(options) - known
        if unknown:
            raise DriverError(f"unknown bridge network options {sorted(unknown)}")
        if not ipv4:
            raise DriverError("a bridge network needs an IPv4 pool")
        default = _bool(options.get(netlabel.BRIDGE_DEFAULT_BRIDGE, False), "default_bridge")
        fallback = DEFAULT_BRIDGE_NAME if default else f"br-{nid[:12]}"
        name = str(options.get(netlabel.BRIDGE_NAME) or fallback)
        if len(name) > IFNAMSIZ:
            raise DriverError(f"bridge name {name!r} is longer than {IFNAMSIZ} characters")
        try:
            mtu = int(options.get(netlabel.DRIVER_MTU) or DEFAULT_MTU)
        except ValueError as e:
            raise DriverError(f"bridge MTU {options.get(netlabel.DRIVER_MTU)!r}: {e}") from e
        if not 68 <= mtu <= 65535:
            raise DriverError(f"bridge MTU {mtu} is out of range 68-65535")
        try:
            binding = ipaddress.ip_address(
                str(options.get(netlabel.BRIDGE_HOST_BINDING_IPV4) or "0.0.0.0")
            )
        except ValueError as e:
            raise DriverError(f"host binding address: {e}") from e
        with self._lock:
            for other in self.networks.values():
                if default and other.default and other.nid != nid:
                    raise DriverError(f"network {other.nid[:12]} is already the default bridge")
                if other.bridge == name and other.nid != nid:
                    raise DriverError(
                        f"bridge {name!r} is already used by network {other.nid[:12]}"
                    )
            gw4 = ipv4[0].gateway
            gw6 = ipv6[0].gateway if ipv6 else None
            net = BridgeNetwork(
                nid,
                name,
                mtu,
                _bool(options.get(netlabel.BRIDGE_ENABLE_IP_MASQUERADE, True), "masquerade"),
                _bool(options.get(netlabel.BRIDGE_ENABLE_ICC, True), "icc"),
                _bool(options.get(netlabel.INTERNAL, False), "internal"),
                binding,
                gw4 if isinstance(gw4, ipaddress.IPv4Interface) else None,
                gw6 if isinstance(gw6, ipaddress.IPv6Interface) else None,
                tuple(d.pool for d in ipv4 + ipv6),
                default=default,
            )
            addresses = [a for a in (net.gateway_v4, net.gateway_v6) if a is not None]
            self._record_bridge(nid, name)
            net.bridge_index = interfaces.create_bridge(
                self.ctx.host_namespace, name, mtu=mtu, addresses=addresses
            )
            if ipv6:
                self.ctx.host_namespace.sysctl(f"net.ipv6.conf.{name}.disable_ipv6", "0")
            for fut, old in self._fw_pending:
                if not fut.done() and any(a.overlaps(b) for a in old for b in net.subnets):
                    fut.exception()  # wait; a failure was logged by whoever waits in close
            self.firewall.setup_network(
                NetworkRules(
                    nid, name, net.subnets,
                    masquerade=net.masquerade, icc=net.icc, internal=net.internal,
                )
            )  # fmt: skip
            # The proxy process is not started here: a published port never waits for
            # it (its socket is bound here and adopted later), and starting a Python
            # process in the background (~40 ms of CPU) slowed down every container
            # set up meanwhile, published port or not.
            self.networks[nid] = net

    def _record_bridge(self, nid: str, name: str) -> None:
        """Notes, before creating it, that `name` is the bridge of `nid`, unless the
        link already exists (a bridge the user made, or ours being adopted)."""
        store = self.ctx.store
        if store is None:
            return
        try:
            interfaces.link_index(self.ctx.host_namespace, name)
        except errors.NotFound:
            store.put(BRIDGE_PREFIX + nid, name)

    def _recorded_bridge(self, nid: str) -> str | None:
        store = self.ctx.store
        if store is None:
            return None
        try:
            return str(store.get(BRIDGE_PREFIX + nid).value)
        except errors.NotFound:
            return None

    def _forget_bridge(self, nid: str) -> None:
        if self.ctx.store is not None:
            self.ctx.store.delete(BRIDGE_PREFIX + nid)

    def _collect_bridge(self, nid: str) -> None:
        """Removes the bridge this driver created for `nid`, which no network has."""
        name = self._recorded_bridge(nid)
        if name is not None and interfaces.link_kind(self.ctx.host_namespace, name) == "bridge":
            self._park(self.ctx.host_namespace, name)
        self._forget_bridge(nid)

    def delete_network(self, nid: str) -> None:
        with self._lock:
            net = self.networks.pop(nid, None)
            if net is not None:
                # Unregistering a bridge waits ~50 ms on RCU: park it and reap it later.
                self._park(self.ctx.host_namespace, net.bridge)
                self._forget_bridge(nid)
            else:
                # A network a crash left half made or half deleted (restore's rollback).
                self._collect_bridge(nid)
            # A crash before this finishes leaves rules of a network no record has:
            # restore_done() removes those.
            self._fw_pending = [(f, n) for f, n in self._fw_pending if not f.done()]
            subnets = net.subnets if net is not None else ()
            self._fw_pending.append(
                (self._fw_worker.submit(self.firewall.remove_network, nid), subnets)
            )

    def restore_done(self) -> None:
        """Removes firewall rules and bridges of networks that no longer exist (a crash
        during a network create or delete)."""
        with self._lock:
            for nid in self.firewall.networks():
                if nid not in self.networks:
                    self.firewall.remove_network(nid)
            if self.ctx.store is not None:
                for entry in self.ctx.store.list(BRIDGE_PREFIX):
                    nid = entry.key.removeprefix(BRIDGE_PREFIX)
                    if nid not in self.networks:
                        self._collect_bridge(nid)

    def _park(self, ns: Namespace, name: str) -> bool:
        """Takes link `name` down, renames it to a name no live link can have (recorded
        in the store first) and queues its deletion. False if there is no such link."""
        try:
            index = interfaces.link_index(ns, name)
        except errors.NotFound:
            return False
        parked = parked_name(index)
        self.reaper.record(parked)
        ipr = ns.netlink()
        ipr.link("set", index=index, state="down", master=0)
        ipr.link("set", index=index, ifname=parked)  # a rename needs the link down
        self.reaper.submit(parked)
        return True

    def _network(self, nid: str) -> BridgeNetwork:
        net = self.networks.get(nid)
        if net is None:
            raise errors.NetworkNotFound(f"bridge driver has no network {nid[:12]}")
        return net

    # -- endpoints --------------------------------------------------------------------

    def create_endpoint(
        self, nid: str, eid: str, iface: InterfaceInfo, options: dict[str, Any]
    ) -> None:
        with self._lock:
            self._network(nid)
            if iface.address is None:
                raise DriverError("a bridge endpoint needs an IPv4 address")
            if iface.mac_address is None:
                iface.mac_address = interfaces.generate_mac_from_ip(iface.address.ip)
            bindings = [PortBinding.of(b) for b in options.get(netlabel.PORT_MAP) or ()]
            self.endpoints[eid] = BridgeEndpoint(
                nid, eid, iface.mac_address, iface.address, iface.address_ipv6, bindings
            )

    def restore_endpoint(
        self,
        nid: str,
        eid: str,
        iface: InterfaceInfo,
        rec: dict[str, Any],
        sandbox: SandboxInfo | None,
    ) -> bool:
        with self._lock:
            if nid not in self.networks:
                return not rec["sandbox"]
            ep = BridgeEndpoint(
                nid,
                eid,
                iface.mac_address or "",
                iface.address,
                iface.address_ipv6,
                [PortBinding.of(b) for b in rec["port_bindings"]],
            )
            self.endpoints[eid] = ep
            ep.joined = sandbox is not None and interfaces.link_exists(
                self.ctx.host_namespace, host_veth_name(eid)
            )
            if ep.joined and sandbox is not None:
                ep.sandbox_ns, ep.iface = sandbox.namespace, sandbox.iface_name
            if self.ctx.store is not None and ep.joined:
                try:
                    saved = self.ctx.store.get(STORE_PREFIX + eid).value
                except errors.KeyNotFound:
                    saved = []
                if saved:
                    # Take the same host ports again before anyone else can. The rules
                    # may still be installed; remove first so iptables gets no duplicates.
                    mappings = [_mapping_from(d) for d in saved]
                    self.firewall.remove_port_mappings(nid, mappings)
                    self._publish(ep, mappings)
            return ep.joined or not rec["sandbox"]

    def delete_endpoint(self, nid: str, eid: str) -> None:
        with self._lock:
            ep = self.endpoints.pop(eid, None)
            if ep is not None and ep.mapped:
                self._unpublish(ep)
            if self.ctx.store is not None:
                self.ctx.store.delete(STORE_PREFIX + eid)

    def endpoint_oper_info(self, nid: str, eid: str) -> dict[str, Any]:
        with self._lock:
            ep = self.endpoints.get(eid)
            if ep is None:
                raise errors.EndpointNotFound(f"bridge driver has no endpoint {eid[:12]}")
            return {
                netlabel.MAC_ADDRESS: ep.mac,
                netlabel.PORT_MAP: [
                    {
                        "proto": m.proto,
                        "port": m.container_port,
                        "host_ip": str(m.host_ip),
                        "host_port": m.host_port,
                    }
                    for m in ep.mapped
                ],
            }

    # -- join and leave -------------------------------------------------------------------

    def join(
        self, nid: str, eid: str, sandbox: SandboxInfo, jinfo: JoinInfo, options: dict[str, Any]
    ) -> None:
        with self._lock:
            net = self._network(nid)
            ep = self.endpoints.get(eid)
            if ep is None:
                raise errors.EndpointNotFound(f"bridge driver has no endpoint {eid[:12]}")
            if sandbox.host_namespace:
                raise DriverError("a bridge endpoint cannot join the host namespace")

            def create() -> tuple[int, int]:
                return interfaces.create_veth(
                    self.ctx.host_namespace,
                    host_veth_name(eid),
                    sandbox.namespace,
                    sandbox.iface_name,
                    mtu=net.mtu,
                    peer_mac=ep.mac,
                    master=net.bridge_index,
                )

            try:
                host_index, peer_index = create()
            except interfaces.LinkExists:
                if not interfaces.link_exists(self.ctx.host_namespace, host_veth_name(eid)):
                    raise
                # Left over from a crash between create and record: replace it.
                interfaces.delete_link(self.ctx.host_namespace, host_veth_name(eid))
                host_index, peer_index = create()
            # Hairpin on the bridge port: with bridge-nf-call on, a container's packets to
            # its own published port come back out of the port they entered by.
            self.ctx.host_namespace.netlink().brport("set", index=host_index, mode=1)
            ep.joined = True
            ep.sandbox_ns = sandbox.namespace
            ep.iface = sandbox.iface_name
            jinfo.created = sandbox.iface_name
            jinfo.created_index = peer_index
            if not net.internal:
                jinfo.gateway = net.gateway_v4.ip if net.gateway_v4 else None
                if ep.address_v6 is not None and net.gateway_v6 is not None:
                    jinfo.gateway_ipv6 = net.gateway_v6.ip

    def leave(self, nid: str, eid: str) -> None:
        with self._lock:
            ep = self.endpoints.get(eid)
            if ep is not None and ep.mapped:
                self._unpublish(ep)
            self._detach(eid, ep)
            if ep is not None:
                ep.joined = False
                ep.sandbox_ns = ep.iface = None

    def _detach(self, eid: str, ep: BridgeEndpoint | None) -> None:
        """Cuts the endpoint off at once (host end down and off the bridge, container end
        down and renamed so its name is free) and deletes the pair in the background:
        deleting the host end takes the container end with it."""
        if not self._park(self.ctx.host_namespace, host_veth_name(eid)):
            return
        if ep is not None and ep.sandbox_ns is not None and ep.iface is not None:
            try:
                idx = interfaces.link_index(ep.sandbox_ns, ep.iface)
                inner = ep.sandbox_ns.netlink()
                inner.link("set", index=idx, state="down")
                inner.link("set", index=idx, ifname=parked_name(idx))
            except Exception as e:  # the sandbox may be gone already
                log.debug("parking %s in its sandbox: %s", ep.iface, e)

    # -- published ports ----------------------------------------------------------------

    def program_external_connectivity(self, nid: str, eid: str, options: dict[str, Any]) -> None:
        with self._lock:
            net = self._network(nid)
            ep = self.endpoints.get(eid)
            if ep is None or ep.mapped or not ep.bindings or net.internal:
                return
            mappings: list[PortMapping] = []
            try:
                for b in ep.bindings:
                    container: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None
                    if b.host_ip.version == 4 and ep.address:
                        container = ep.address.ip
                    if b.host_ip.version == 6:
                        container = ep.address_v6.ip if ep.address_v6 else None
                    if container is None:
                        continue
                    host_ip = b.host_ip
                    if host_ip.is_unspecified and b.host_ip.version == net.host_binding_ip.version:
                        host_ip = net.host_binding_ip
                    if b.host_port_end:
                        port = self.ports.request_port_in_range(
                            host_ip, b.proto, b.host_port, b.host_port_end
                        )
                    else:
                        port = self.ports.request_port(host_ip, b.proto, b.host_port)
                    mappings.append(PortMapping(b.proto, host_ip, port, container, b.port))
            except BaseException:
                for m in mappings:
                    self.ports.release_port(m.host_ip, m.proto, m.host_port)
                raise
            self._publish(ep, mappings, reserved=True)

    def _publish(
        self, ep: BridgeEndpoint, mappings: list[PortMapping], reserved: bool = False
    ) -> None:
        """Installs the mappings (rules, proxy) and records them; all or nothing."""
        done: list[PortMapping] = []
        try:
            if not reserved:
                for m in mappings:
                    self.ports.request_port(m.host_ip, m.proto, m.host_port)
            self.firewall.add_port_mappings(ep.nid, mappings)
            if self.userland_proxy:
                for m in mappings:
                    self.proxy.add(
                        m.proto, str(m.host_ip), m.host_port, str(m.container_ip), m.container_port
                    )
                    done.append(m)
        except BaseException:
            for m in done:
                self.proxy.remove(m.proto, str(m.host_ip), m.host_port)
            self.firewall.remove_port_mappings(ep.nid, mappings)
            for m in mappings:
                self.ports.release_port(m.host_ip, m.proto, m.host_port)
            raise
        ep.mapped = mappings
        if self.ctx.store is not None:
            self.ctx.store.put(STORE_PREFIX + ep.eid, [_mapping_to(m) for m in mappings])

    def revoke_external_connectivity(self, nid: str, eid: str) -> None:
        with self._lock:
            ep = self.endpoints.get(eid)
            if ep is not None and ep.mapped:
                self._unpublish(ep)

    def _unpublish(self, ep: BridgeEndpoint) -> None:
        mappings, ep.mapped = ep.mapped, []
        if self.userland_proxy:
            for m in mappings:
                try:
                    self.proxy.remove(m.proto, str(m.host_ip), m.host_port)
                except errors.PylnError:
                    pass  # a restarted proxy may not have it
        self.firewall.remove_port_mappings(ep.nid, mappings)
        for m in mappings:
            self.ports.release_port(m.host_ip, m.proto, m.host_port)
        if self.ctx.store is not None:
            self.ctx.store.delete(STORE_PREFIX + ep.eid)

    def drain(self) -> None:
        """Waits for the background work of deletes done so far: links being deleted
        and networks' rules being removed (failures are logged, as in close)."""
        with self._lock:
            pending = list(self._fw_pending)
        for f, _ in pending:
            if f.exception() is not None:
                log.warning("removing network rules failed: %s", f.exception())
        self.reaper.drain()

    def close(self) -> None:
        self._fw_worker.shutdown(wait=True)
        for f, _ in self._fw_pending:
            if f.exception() is not None:
                log.warning("removing network rules failed: %s", f.exception())
        try:
            self.reaper.close()
            self.proxy.stop()
        finally:
            self.firewall.close()


def _mapping_to(m: PortMapping) -> dict[str, Any]:
    return {
        "proto": m.proto,
        "host_ip": str(m.host_ip),
        "host_port": m.host_port,
        "container_ip": str(m.container_ip),
        "container_port": m.container_port,
    }


def _mapping_from(d: dict[str, Any]) -> PortMapping:
    return PortMapping(
        d["proto"],
        ipaddress.ip_address(d["host_ip"]),
        int(d["host_port"]),
        ipaddress.ip_address(d["container_ip"]),
        int(d["container_port"]),
    )
