"""What a controller does when it opens a state directory: load the records, finish
or roll back what a crash left half done, re-create or adopt kernel objects, and
collect what nothing refers to any more (addresses, namespaces)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from pyln import errors
from pyln.controller import EP, NET, SBX
from pyln.join import _gateway_changed, undo_join
from pyln.osl import Namespace, is_namespace_mount

if TYPE_CHECKING:
    from pyln.bitseq import Bitseq
    from pyln.controller import Controller


def restore(ctrl: Controller) -> None:
    for prefix, table in ((NET, ctrl._networks), (EP, ctrl._endpoints), (SBX, ctrl._sandboxes)):
        for entry in ctrl.store.list(prefix):
            table[entry.value["id"]] = entry.value
    _restore_sandboxes(ctrl)
    _restore_networks(ctrl)
    _restore_endpoints(ctrl)
    _collect_addresses(ctrl)
    _collect_namespaces(ctrl)
    for drv in list(ctrl._drivers.values()):
        drv.restore_done()


def _restore_sandboxes(ctrl: Controller) -> None:
    for sid, rec in list(ctrl._sandboxes.items()):
        if rec["state"] in ("creating", "deleting"):
            for ep in ctrl._endpoints.values():
                if ep["sandbox"] == sid:
                    ep.update(
                        sandbox=None,
                        iface_name=None,
                        iface_index=None,
                        gateway=None,
                        gateway_ipv6=None,
                    )
                    ctrl._save_endpoint(ep)
            ctrl._remove_sandbox_files(rec)
            ctrl._forget(SBX, ctrl._sandboxes, sid)
        elif not rec["config"]["use_host_namespace"] and not is_namespace_mount(Path(rec["key"])):
            # The namespace is gone (a reboot): make a new one; joins are redone below.
            ctrl._ns_cache[sid] = Namespace.create(rec["key"])
            for ep in ctrl._endpoints.values():
                if ep["sandbox"] == sid and ep["state"] == "ready":
                    ep["state"] = "rejoin"


def _restore_networks(ctrl: Controller) -> None:
    for nid, rec in list(ctrl._networks.items()):
        if rec["state"] == "creating":
            for eid, ep in list(ctrl._endpoints.items()):
                if ep["network"] == nid:
                    ctrl._forget(EP, ctrl._endpoints, eid)
            ctrl._rollback_network(rec)
        elif rec["state"] == "deleting":
            ctrl._rollback_network(rec)  # same steps: driver delete, release pools, forget
        else:
            ctrl.driver(rec["type"]).create_network(
                nid, ctrl._driver_options(rec), *ctrl._ipam_data(rec)
            )


def _restore_endpoints(ctrl: Controller) -> None:
    from pyln.drivers.api import InterfaceInfo

    for eid, rec in list(ctrl._endpoints.items()):
        net = ctrl._networks.get(rec["network"])
        if net is None:
            ctrl._forget(EP, ctrl._endpoints, eid)
            continue
        drv = ctrl.driver(net["type"])
        if rec["state"] == "creating" or rec["state"] == "deleting":
            ctrl._rollback_endpoint(rec)
            continue
        iface = InterfaceInfo(
            rec["mac_address"],
            ipaddress.IPv4Interface(rec["address"]) if rec["address"] else None,
            ipaddress.IPv6Interface(rec["address_ipv6"]) if rec["address_ipv6"] else None,
        )
        sid = rec["sandbox"]
        sbx = ctrl._sandbox_info(sid, rec["iface_name"]) if sid in ctrl._sandboxes else None
        connected = drv.restore_endpoint(rec["network"], eid, iface, rec, sbx)
        if rec["state"] == "ready" and rec["sandbox"] and not connected:
            rec["state"] = "rejoin"  # the link is gone: join again
        if rec["state"] in ("joining", "leaving", "rejoin"):
            sid = rec["sandbox"]
            redo = rec["state"] == "rejoin"
            undo_join(ctrl, eid)
            if redo and sid in ctrl._sandboxes:
                ctrl._join(eid, sid, {"priority": rec["priority"]})
    for sid in ctrl._sandboxes:
        gw = ctrl._gateway_endpoint(sid)
        if gw is not None:
            _gateway_changed(ctrl, sid, None)


def _collect_addresses(ctrl: Controller) -> None:
    """Releases addresses and pools that no record refers to: what a crash between
    an IPAM call and the record update left allocated."""
    used: dict[str, set[str]] = {}
    for rec in ctrl._networks.values():
        for d in rec["ipam_v4"] + rec["ipam_v6"]:
            keep = used.setdefault(d["pool_id"], set())
            for a in [d["gateway"], *d["aux_addresses"].values()]:
                if a:
                    keep.add(str(ipaddress.ip_interface(a).ip))
    for ep in ctrl._endpoints.values():
        net = ctrl._networks[ep["network"]]
        for key in ("address", "address_ipv6"):
            if not ep[key]:
                continue
            ip = ipaddress.ip_interface(ep[key]).ip
            for d in net["ipam_v4"] + net["ipam_v6"]:
                if ip in ipaddress.ip_network(d["pool"]):
                    used.setdefault(d["pool_id"], set()).add(str(ip))
    masters_in_use = set()
    for pool_id in used:
        masters_in_use.add("/".join(pool_id.split("/")[:3]))
    pools = {p.pool_id: p for p in ctrl.ipam.pools()}
    for info in pools.values():
        if info.pool_id not in used and info.pool_id not in masters_in_use:
            for _ in range(info.refs):
                try:
                    ctrl.ipam.release_pool(info.pool_id)
                except errors.PylnError:
                    break
    for pool_id, keep in used.items():
        found = pools.get(pool_id)
        if found is None:
            continue
        bits = ctrl.ipam.bitmask(pool_id)
        base = int(found.pool.network_address)
        end = found.pool.num_addresses - (1 if found.pool.version == 4 else 0)
        stale = [
            addr
            for o in set_ordinals(bits)
            if 0 < o < end and (addr := str(ipaddress.ip_address(base + o))) not in keep
        ]
        for addr in stale:
            ctrl.ipam.release_address(pool_id, addr)


def set_ordinals(bits: Bitseq) -> Iterator[int]:
    """The set bits of `bits`, ascending, found run by run: the cost is the runs and
    the set bits, not the length (an IPv6 /64 pool has 2^64 ordinals)."""
    first = 0
    for block, count in bits.runs():
        if block:
            # Ordinal 0 of a block is its most significant bit (libnetwork's layout).
            offsets = [31 - i for i in range(31, -1, -1) if block >> i & 1]
            for b in range(first, first + count):
                for j in offsets:
                    yield b * 32 + j
        first += count


def _collect_namespaces(ctrl: Controller) -> None:
    """Removes namespace files under the state directory that no sandbox owns."""
    netns_dir = ctrl.state_dir / "netns"
    if not netns_dir.is_dir():
        return
    known = {Path(r["key"]) for r in ctrl._sandboxes.values()}
    for path in netns_dir.iterdir():
        if path in known:
            continue
        if is_namespace_mount(path):
            Namespace.open(path).delete()
        else:
            path.unlink(missing_ok=True)
