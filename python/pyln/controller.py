"""The controller (libnetwork.New): owns the state directory, the store, IPAM, the
drivers, and every network, endpoint and sandbox.

Every change is recorded in the store before it is visible, with a state that says
what was under way ("creating", "joining", "leaving", "deleting", "ready"). A new
controller on the same state directory finishes or rolls back what a crash left
half done (see restore.py), so a kill -9 at any point leaks no address, port,
namespace or link.
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
import secrets
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pyln import errors, netlabel
from pyln.drivers.api import (
    Driver,
    DriverContext,
    InterfaceInfo,
    IPAMData,
    SandboxInfo,
    UnknownDriver,
)
from pyln.endpoint import Endpoint
from pyln.ipam import GATEWAY, LOCAL_DEFAULT, REQUEST_ADDRESS_TYPE, Allocator
from pyln.network import IpamConf, IpamInfo, Network
from pyln.osl import Namespace, interfaces
from pyln.sandbox import Sandbox, SandboxConfig, validate_config, write_hosts, write_resolv_conf
from pyln.store import SQLiteStore, Store
from pyln.types import PortBinding, TransportPort

DEFAULT_STATE_DIR = Path("/var/lib/pyln")
# How long a new controller waits for the state directory lock before StateDirInUse.
LOCK_WAIT = 1.0
NET, EP, SBX = "pyln/network/", "pyln/endpoint/", "pyln/sandbox/"
# Networks of these drivers get no IPAM pools (libnetwork's hasSpecialDriver).
SPECIAL_DRIVERS = ("null", "host")
_NAME_MAX = 255


def _new_id() -> str:
    """A random 64-hex-digit id, as libnetwork's stringid.GenerateRandomID."""
    return secrets.token_hex(32)


def _check_name(name: object, what: str) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > _NAME_MAX:
        raise errors.InvalidName(f"invalid {what} name {name!r}")
    if any(c in name for c in "/\0\n"):
        raise errors.InvalidName(
            f"invalid {what} name {name!r}: '/', NUL and newline are not allowed"
        )
    return name


class Controller:
    """libnetwork's NetworkController, for one state directory.

    drivers: per-network-type configuration, e.g. {"bridge": {"firewall": "iptables"}}.
    host_namespace: where bridges, rules and proxies live (default: this process's).
    """

    def __init__(
        self,
        state_dir: str | os.PathLike[str] = DEFAULT_STATE_DIR,
        drivers: Mapping[str, Mapping[str, Any]] | None = None,
        *,
        default_address_pools: Sequence[tuple[str, int]] | None = None,
        host_namespace: Namespace | None = None,
        store: Store | None = None,
    ) -> None:
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._lockfile = open(self.state_dir / "controller.lock", "a+")
        # A controller killed a moment ago may still be exiting (a thread finishing a
        # netlink call that waits on the kernel); give it a short while.
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            try:
                fcntl.flock(self._lockfile, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    self._lockfile.close()
                    raise errors.StateDirInUse(
                        f"state directory {self.state_dir} is in use by another controller"
                    ) from None
                time.sleep(0.02)
        self._lock = threading.RLock()
        self.host_ns = host_namespace or Namespace.current()
        self.store: Store = store or SQLiteStore(self.state_dir)
        self.ipam = Allocator(self.store, None, local_pools=default_address_pools)
        self._networks: dict[str, dict[str, Any]] = {}
        self._endpoints: dict[str, dict[str, Any]] = {}
        self._sandboxes: dict[str, dict[str, Any]] = {}
        self._ns_cache: dict[str, Namespace] = {}
        self._driver_config = {k: dict(v) for k, v in (drivers or {}).items()}
        self._drivers: dict[str, Driver] = {}
        self._closed = False
        from pyln.restore import restore

        restore(self)

    # -- drivers --------------------------------------------------------------------

    def driver(self, network_type: str) -> Driver:
        """The driver for a network type, created on first use."""
        drv = self._drivers.get(network_type)
        if drv is None:
            from pyln.drivers import BUILTIN

            cls = BUILTIN.get(network_type)
            if cls is None:
                raise UnknownDriver(
                    f"no network driver {network_type!r}: available: {', '.join(sorted(BUILTIN))}"
                )
            ctx = DriverContext(
                self.host_ns,
                self.store,
                self.state_dir,
                self._driver_config.get(network_type, {}),
            )
            drv = cls(ctx)
            self._drivers[network_type] = drv
        return drv

    # -- records ----------------------------------------------------------------------

    def _put(self, prefix: str, rec: dict[str, Any]) -> None:
        self.store.put(prefix + rec["id"], rec)

    def _save_network(self, rec: dict[str, Any]) -> None:
        self._networks[rec["id"]] = rec
        self._put(NET, rec)

    def _save_endpoint(self, rec: dict[str, Any]) -> None:
        self._endpoints[rec["id"]] = rec
        self._put(EP, rec)

    def _save_sandbox(self, rec: dict[str, Any]) -> None:
        self._sandboxes[rec["id"]] = rec
        self._put(SBX, rec)

    def _forget(self, prefix: str, table: dict[str, dict[str, Any]], oid: str) -> None:
        self.store.delete(prefix + oid)
        table.pop(oid, None)

    # -- networks ---------------------------------------------------------------------

    def new_network(
        self,
        network_type: str,
        name: str,
        *,
        id: str | None = None,
        ipam_v4: Sequence[IpamConf | dict[str, Any]] = (),
        ipam_v6: Sequence[IpamConf | dict[str, Any]] = (),
        enable_ipv6: bool = False,
        internal: bool = False,
        labels: Mapping[str, str] | None = None,
        driver_options: Mapping[str, Any] | None = None,
    ) -> Network:
        """Creates a network (libnetwork's NewNetwork) with libnetwork's options."""
        with self._lock:
            self._check_open()
            _check_name(name, "network")
            if any(r["name"] == name for r in self._networks.values()):
                raise errors.NetworkNameExists(f"network with name {name!r} already exists")
            nid = id or _new_id()
            if nid in self._networks:
                raise errors.Forbidden(f"network with id {nid} already exists")
            driver = self.driver(network_type)
            v4 = [IpamConf.of(c) for c in ipam_v4]
            v6 = [IpamConf.of(c) for c in ipam_v6]
            if v6 and not enable_ipv6:
                raise errors.BadRequest("IPv6 pools given but enable_ipv6 is False")
            for c in v4:
                c.validate(v6=False)
            for c in v6:
                c.validate(v6=True)
            rec: dict[str, Any] = {
                "id": nid,
                "name": name,
                "type": network_type,
                "internal": bool(internal),
                "enable_ipv6": bool(enable_ipv6),
                "labels": dict(labels or {}),
                "driver_options": {k: v for k, v in (driver_options or {}).items()},
                "ipam_conf_v4": [c.to_dict() for c in v4],
                "ipam_conf_v6": [c.to_dict() for c in v6],
                "ipam_v4": [],
                "ipam_v6": [],
                "state": "creating",
            }
            self._save_network(rec)
            try:
                if network_type not in SPECIAL_DRIVERS:
                    rec["ipam_v4"] = [
                        i.to_dict() for i in self._allocate_pools(v4 or [IpamConf()], False)
                    ]
                    self._save_network(rec)
                    if enable_ipv6:
                        if not v6:
                            raise errors.BadRequest(
                                f"network {name!r}: IPv6 enabled but no IPv6 pool given "
                                "(there are no predefined IPv6 pools)"
                            )
                        rec["ipam_v6"] = [i.to_dict() for i in self._allocate_pools(v6, True)]
                        self._save_network(rec)
                driver.create_network(nid, self._driver_options(rec), *self._ipam_data(rec))
            except BaseException:
                self._rollback_network(rec)
                raise
            rec["state"] = "ready"
            self._save_network(rec)
            return Network(self, nid)

    def _allocate_pools(self, confs: list[IpamConf], v6: bool) -> list[IpamInfo]:
        out: list[IpamInfo] = []
        try:
            for c in confs:
                pool_id, pool, _ = self.ipam.request_pool(LOCAL_DEFAULT, c.pool, c.sub_pool, v6=v6)
                info = IpamInfo(pool_id, pool, None, {})
                out.append(info)
                info.gateway = self.ipam.request_address(
                    pool_id, c.gateway or None, {REQUEST_ADDRESS_TYPE: GATEWAY}
                )[0]
                for key, addr in c.aux_addresses.items():
                    info.aux_addresses[key] = self.ipam.request_address(pool_id, addr)[0]
        except BaseException:
            for info in out:
                self.ipam.release_pool(info.pool_id)
            raise
        return out

    @staticmethod
    def _driver_options(rec: dict[str, Any]) -> dict[str, Any]:
        """What a driver's create_network gets: the network's driver options plus the
        generic ones (internal, IPv6)."""
        options = dict(rec["driver_options"])
        options[netlabel.INTERNAL] = rec["internal"]
        options[netlabel.ENABLE_IPV6] = rec["enable_ipv6"]
        return options

    @staticmethod
    def _ipam_data(rec: dict[str, Any]) -> tuple[list[IPAMData], list[IPAMData]]:
        def conv(infos: list[dict[str, Any]]) -> list[IPAMData]:
            out = []
            for d in infos:
                i = IpamInfo.from_dict(d)
                out.append(IPAMData(LOCAL_DEFAULT, i.pool, i.gateway, dict(i.aux_addresses)))
            return out

        return conv(rec["ipam_v4"]), conv(rec["ipam_v6"])

    def _release_network_ipam(self, rec: dict[str, Any]) -> None:
        for d in rec["ipam_v4"] + rec["ipam_v6"]:
            try:
                self.ipam.release_pool(d["pool_id"])
            except errors.PylnError:
                pass  # already gone: restore may run this twice
        rec["ipam_v4"], rec["ipam_v6"] = [], []

    def _rollback_network(self, rec: dict[str, Any]) -> None:
        """Undoes a network creation that failed or was interrupted."""
        try:
            self.driver(rec["type"]).delete_network(rec["id"])
        except errors.PylnError:
            pass
        self._release_network_ipam(rec)
        self._forget(NET, self._networks, rec["id"])

    def _delete_network(self, nid: str) -> None:
        with self._lock:
            self._check_open()
            rec = Network(self, nid)._rec
            eps = [e["name"] for e in self._endpoints.values() if e["network"] == nid]
            if eps:
                raise errors.ActiveEndpoints(
                    f"network {rec['name']!r} has active endpoints: {', '.join(sorted(eps))}"
                )
            rec["state"] = "deleting"
            self._save_network(rec)
            self.driver(rec["type"]).delete_network(nid)
            self._release_network_ipam(rec)
            self._forget(NET, self._networks, nid)

    def networks(self) -> list[Network]:
        with self._lock:
            return [Network(self, nid) for nid in self._networks]

    def network_by_name(self, name: str) -> Network:
        with self._lock:
            for nid, rec in self._networks.items():
                if rec["name"] == name:
                    return Network(self, nid)
        raise errors.NetworkNotFound(f"no network named {name!r}")

    def network_by_id(self, nid: str) -> Network:
        with self._lock:
            if nid in self._networks:
                return Network(self, nid)
        raise errors.NetworkNotFound(f"no network with id {nid!r}")

    # -- endpoints --------------------------------------------------------------------

    def _create_endpoint(self, nid: str, name: str, options: dict[str, Any]) -> Endpoint:
        known = {
            "mac_address", "ip", "ip6", "port_bindings", "exposed_ports",
            "dns_servers", "driver_options", "id",
        }  # fmt: skip
        unknown = set(options) - known
        if unknown:
            raise errors.BadRequest(f"unknown endpoint options {sorted(unknown)}")
        with self._lock:
            self._check_open()
            net = Network(self, nid)._rec
            _check_name(name, "endpoint")
            if any(e["name"] == name and e["network"] == nid for e in self._endpoints.values()):
                raise errors.EndpointExists(
                    f"network {net['name']!r} already has an endpoint named {name!r}"
                )
            bindings = [PortBinding.of(b) for b in options.get("port_bindings") or ()]
            exposed = [TransportPort.of(p) for p in options.get("exposed_ports") or ()]
            mac = options.get("mac_address")
            if mac is not None:
                mac = interfaces.validate_mac(str(mac))
            for server in options.get("dns_servers") or ():
                ipaddress.ip_address(server)
            eid = options.get("id") or _new_id()
            rec: dict[str, Any] = {
                "id": eid,
                "name": name,
                "network": nid,
                "address": None,
                "address_ipv6": None,
                "mac_address": mac,
                "port_bindings": [b.to_dict() for b in bindings],
                "exposed_ports": [str(p) for p in exposed],
                "dns_servers": list(options.get("dns_servers") or ()),
                "driver_options": dict(options.get("driver_options") or {}),
                "sandbox": None,
                "gateway": None,
                "gateway_ipv6": None,
                "iface_name": None,
                "iface_index": None,
                "moved_from": None,
                "priority": 0,
                "join_seq": 0,
                "state": "creating",
            }
            self._save_endpoint(rec)
            try:
                self._allocate_endpoint_addresses(net, rec, options)
                iface = InterfaceInfo(
                    rec["mac_address"],
                    ipaddress.IPv4Interface(rec["address"]) if rec["address"] else None,
                    ipaddress.IPv6Interface(rec["address_ipv6"]) if rec["address_ipv6"] else None,
                )
                drv_opts = dict(rec["driver_options"])
                drv_opts[netlabel.PORT_MAP] = bindings
                drv_opts[netlabel.EXPOSED_PORTS] = exposed
                self.driver(net["type"]).create_endpoint(nid, eid, iface, drv_opts)
                rec["mac_address"] = iface.mac_address
            except BaseException:
                self._rollback_endpoint(rec)
                raise
            rec["state"] = "ready"
            self._save_endpoint(rec)
            return Endpoint(self, nid, eid)

    def _allocate_endpoint_addresses(
        self, net: dict[str, Any], rec: dict[str, Any], options: dict[str, Any]
    ) -> None:
        if net["type"] in SPECIAL_DRIVERS:
            return
        for family, key, pref_key in ((4, "address", "ip"), (6, "address_ipv6", "ip6")):
            pools = net["ipam_v4"] if family == 4 else net["ipam_v6"]
            prefer = options.get(pref_key)
            if not pools:
                if prefer:
                    raise errors.BadRequest(f"preferred address {prefer} but no IPv{family} pool")
                continue
            last: Exception | None = None
            for d in pools:
                try:
                    addr = self.ipam.request_address(d["pool_id"], prefer)[0]
                except (errors.NoService, errors.BadRequest) as e:
                    last = e
                    continue
                rec[key] = str(addr)
                self._save_endpoint(rec)
                break
            else:
                assert last is not None
                raise last

    def _release_endpoint_addresses(self, rec: dict[str, Any]) -> None:
        net = self._networks.get(rec["network"])
        if net is None:
            return
        for key, pools in (("address", net["ipam_v4"]), ("address_ipv6", net["ipam_v6"])):
            if not rec[key]:
                continue
            addr = ipaddress.ip_interface(rec[key])
            for d in pools:
                if addr.ip in ipaddress.ip_network(d["pool"]):
                    try:
                        self.ipam.release_address(d["pool_id"], addr.ip)
                    except errors.PylnError:
                        pass
                    break
            rec[key] = None

    def _rollback_endpoint(self, rec: dict[str, Any]) -> None:
        net = self._networks.get(rec["network"])
        if net is not None:
            try:
                self.driver(net["type"]).delete_endpoint(rec["network"], rec["id"])
            except errors.PylnError:
                pass
        self._release_endpoint_addresses(rec)
        self._forget(EP, self._endpoints, rec["id"])

    def _delete_endpoint(self, eid: str, force: bool) -> None:
        with self._lock:
            self._check_open()
            rec = Endpoint(self, "", eid)._rec
            if rec["sandbox"]:
                if not force:
                    raise errors.ActiveContainer(
                        f"endpoint {rec['name']!r} is still joined to sandbox "
                        f"{rec['sandbox'][:12]}: leave it first"
                    )
                self._leave(eid, rec["sandbox"])
            rec["state"] = "deleting"
            self._save_endpoint(rec)
            net = self._networks[rec["network"]]
            self.driver(net["type"]).delete_endpoint(rec["network"], eid)
            self._release_endpoint_addresses(rec)
            self._forget(EP, self._endpoints, eid)

    def _network_endpoints(self, nid: str) -> list[Endpoint]:
        with self._lock:
            if nid not in self._networks:
                raise errors.NetworkNotFound(f"network {nid} does not exist (deleted?)")
            return [
                Endpoint(self, nid, e["id"])
                for e in self._endpoints.values()
                if e["network"] == nid
            ]

    def _driver_info(self, eid: str) -> dict[str, Any]:
        with self._lock:
            rec = Endpoint(self, "", eid)._rec
            net = self._networks[rec["network"]]
            info = dict(self.driver(net["type"]).endpoint_oper_info(rec["network"], eid))
            if rec["mac_address"]:
                info.setdefault(netlabel.MAC_ADDRESS, rec["mac_address"])
            return info

    # -- sandboxes --------------------------------------------------------------------

    def new_sandbox(
        self,
        container_id: str,
        *,
        hostname: str = "",
        domainname: str = "",
        extra_hosts: Sequence[tuple[str, str]] = (),
        dns: Sequence[str] = (),
        dns_search: Sequence[str] = (),
        dns_options: Sequence[str] = (),
        use_host_namespace: bool = False,
    ) -> Sandbox:
        """Creates a sandbox for a container (libnetwork's NewSandbox)."""
        with self._lock:
            self._check_open()
            _check_name(container_id, "container id")
            for r in self._sandboxes.values():
                if r["container_id"] == container_id:
                    raise errors.Forbidden(
                        f"container {container_id!r} already has sandbox {r['id'][:12]}"
                    )
            config = SandboxConfig(
                hostname, domainname, [(h[0], h[1]) for h in extra_hosts],
                list(dns), list(dns_search), list(dns_options), use_host_namespace,
            )  # fmt: skip
            validate_config(config)
            sid = _new_id()
            files = self.state_dir / "containers" / sid
            key = (
                str(self.host_ns.path)
                if use_host_namespace
                else str(self.state_dir / "netns" / sid[:12])
            )
            rec: dict[str, Any] = {
                "id": sid,
                "container_id": container_id,
                "key": key,
                "config": config.to_dict(),
                "hosts_path": str(files / "hosts"),
                "resolv_conf_path": str(files / "resolv.conf"),
                "seq": 0,
                "state": "creating",
            }
            self._save_sandbox(rec)
            try:
                if not use_host_namespace:
                    self._ns_cache[sid] = Namespace.create(key)
                files.mkdir(parents=True, exist_ok=True)
                write_hosts(Path(rec["hosts_path"]), config, [])
                write_resolv_conf(Path(rec["resolv_conf_path"]), config, ipv6=False)
            except BaseException:
                self._remove_sandbox_files(rec)
                self._forget(SBX, self._sandboxes, sid)
                raise
            rec["state"] = "ready"
            self._save_sandbox(rec)
            return Sandbox(self, sid)

    def _sandbox_ns(self, sid: str) -> Namespace:
        rec = Sandbox(self, sid)._rec
        if rec["config"]["use_host_namespace"]:
            return self.host_ns
        ns = self._ns_cache.get(sid)
        if ns is None:
            ns = Namespace.open(rec["key"])
            self._ns_cache[sid] = ns
        return ns

    def _remove_sandbox_files(self, rec: dict[str, Any]) -> None:
        ns = self._ns_cache.pop(rec["id"], None)
        if not rec["config"]["use_host_namespace"]:
            if ns is None:
                try:
                    ns = Namespace.open(rec["key"])
                except errors.NotFound:
                    ns = None
            if ns is not None:
                ns.delete()
            Path(rec["key"]).unlink(missing_ok=True)
        files = Path(rec["hosts_path"]).parent
        for f in ("hosts", "resolv.conf"):
            (files / f).unlink(missing_ok=True)
        if files.exists():
            files.rmdir()

    def _delete_sandbox(self, sid: str) -> None:
        with self._lock:
            self._check_open()
            rec = Sandbox(self, sid)._rec
            for ep in self._sandbox_endpoints(sid):
                self._leave(ep.id, sid)
            rec["state"] = "deleting"
            self._save_sandbox(rec)
            self._remove_sandbox_files(rec)
            self._forget(SBX, self._sandboxes, sid)

    def sandboxes(self) -> list[Sandbox]:
        with self._lock:
            return [Sandbox(self, sid) for sid in self._sandboxes]

    def sandbox_by_id(self, sid: str) -> Sandbox:
        with self._lock:
            if sid in self._sandboxes:
                return Sandbox(self, sid)
        raise errors.SandboxNotFound(f"no sandbox with id {sid!r}")

    def _sandbox_endpoints(self, sid: str) -> list[Endpoint]:
        """Endpoints joined to the sandbox, in libnetwork's order: higher priority
        first, then by network name."""
        eps = [e for e in self._endpoints.values() if e["sandbox"] == sid]
        eps.sort(key=lambda e: (-e["priority"], self._networks[e["network"]]["name"]))
        return [Endpoint(self, e["network"], e["id"]) for e in eps]

    def _gateway_endpoint(self, sid: str) -> Endpoint | None:
        """The first joined endpoint whose network gives a gateway (not internal, not
        null/host): the sandbox's default route and published ports go through it."""
        for ep in self._sandbox_endpoints(sid):
            rec = self._endpoints[ep.id]
            net = self._networks[rec["network"]]
            if net["type"] in SPECIAL_DRIVERS or net["internal"]:
                continue
            if rec["gateway"] or rec["gateway_ipv6"]:
                return ep
        return None

    # -- join and leave -----------------------------------------------------------------

    def _join(self, eid: str, sid: str, options: dict[str, Any]) -> None:
        from pyln.join import join

        with self._lock:
            self._check_open()
            join(self, eid, sid, options)

    def _leave(self, eid: str, sid: str) -> None:
        from pyln.join import leave

        with self._lock:
            self._check_open()
            leave(self, eid, sid)

    def _sandbox_info(self, sid: str, iface_name: str) -> SandboxInfo:
        rec = self._sandboxes[sid]
        return SandboxInfo(
            sid,
            rec["key"],
            self._sandbox_ns(sid),
            iface_name,
            bool(rec["config"]["use_host_namespace"]),
        )

    # -- life cycle ---------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise errors.Forbidden("the controller is closed")

    def close(self) -> None:
        """Releases the controller's resources; networks, sandboxes and kernel objects
        stay (a new controller on the same state directory adopts them)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for drv in self._drivers.values():
                drv.close()
            for ns in self._ns_cache.values():
                ns.close()
            self.store.close()
            fcntl.flock(self._lockfile, fcntl.LOCK_UN)
            self._lockfile.close()

    def __enter__(self) -> Controller:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
