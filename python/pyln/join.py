"""Joining an endpoint to a sandbox and leaving it (libnetwork's sbJoin/sbLeave):
the driver connects the interface, the sandbox gets addresses and routes, the
sandbox's gateway endpoint carries the default route and the published ports."""

from __future__ import annotations

import ipaddress
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyln import errors
from pyln.drivers.api import DriverError, JoinInfo
from pyln.sandbox import SandboxConfig, write_hosts

if TYPE_CHECKING:
    from pyln.controller import Controller

log = logging.getLogger("pyln")


def _iface_name(ctrl: Controller, sid: str) -> str:
    """The lowest ethN that no endpoint of the sandbox has and no link in it carries (a
    left endpoint's link may still be waiting to be deleted)."""
    used = {e["iface_name"] for e in ctrl._endpoints.values() if e["sandbox"] == sid}
    if not ctrl._sandboxes[sid]["config"]["use_host_namespace"]:
        from pyln.osl import interfaces

        used |= interfaces.link_names(ctrl._sandbox_ns(sid))
    n = 0
    while f"eth{n}" in used:
        n += 1
    return f"eth{n}"


def _rewrite_hosts(ctrl: Controller, sid: str) -> None:
    sbx = ctrl._sandboxes[sid]
    own = []
    for ep in ctrl._sandbox_endpoints(sid):
        rec = ctrl._endpoints[ep.id]
        for key in ("address", "address_ipv6"):
            if rec[key]:
                own.append(str(ipaddress.ip_interface(rec[key]).ip))
    write_hosts(Path(sbx["hosts_path"]), SandboxConfig.from_dict(sbx["config"]), own)


def _set_default_route(ctrl: Controller, sid: str, eid: str, replacing: bool) -> None:
    """Points the sandbox's default routes at the endpoint's gateways. Only when another
    gateway endpoint is still attached (`replacing`) can other defaults exist."""
    from pyln.osl import routes

    rec = ctrl._endpoints[eid]
    if ctrl._sandboxes[sid]["config"]["use_host_namespace"]:
        return
    ns = ctrl._sandbox_ns(sid)
    for key in ("gateway", "gateway_ipv6"):
        if rec[key]:
            routes.set_default_gateway(
                ns,
                ipaddress.ip_address(rec[key]),
                rec["iface_name"],
                index=rec.get("iface_index"),
                exclusive=replacing,
            )


def _gateway_changed(ctrl: Controller, sid: str, old_gw: str | None) -> None:
    """Moves the default route and the published ports to the new gateway endpoint."""
    new = ctrl._gateway_endpoint(sid)
    new_id = new.id if new else None
    if new_id == old_gw:
        return
    if old_gw is not None and old_gw in ctrl._endpoints and ctrl._endpoints[old_gw]["sandbox"]:
        old = ctrl._endpoints[old_gw]
        ctrl.driver(ctrl._networks[old["network"]]["type"]).revoke_external_connectivity(
            old["network"], old_gw
        )
    if new_id is not None:
        rec = ctrl._endpoints[new_id]
        replacing = (
            old_gw is not None
            and old_gw in ctrl._endpoints
            and bool(ctrl._endpoints[old_gw]["sandbox"])
        )
        _set_default_route(ctrl, sid, new_id, replacing)
        ctrl.driver(ctrl._networks[rec["network"]]["type"]).program_external_connectivity(
            rec["network"], new_id, {}
        )


def join(ctrl: Controller, eid: str, sid: str, options: dict[str, Any]) -> None:
    rec = ctrl._endpoints.get(eid)
    if rec is None:
        raise errors.EndpointNotFound(f"endpoint {eid} does not exist (deleted?)")
    sbx = ctrl._sandboxes.get(sid)
    if sbx is None:
        raise errors.SandboxNotFound(f"sandbox {sid} does not exist (deleted?)")
    if rec["sandbox"]:
        raise errors.AlreadyJoined(
            f"endpoint {rec['name']!r} is already joined to sandbox {rec['sandbox'][:12]}"
        )
    if rec["state"] != "ready":
        raise errors.Forbidden(f"endpoint {rec['name']!r} is {rec['state']}")
    unknown = set(options) - {"priority"}
    if unknown:
        raise errors.BadRequest(f"unknown join options {sorted(unknown)}")
    net = ctrl._networks[rec["network"]]
    host_sbx = bool(sbx["config"]["use_host_namespace"])
    if (net["type"] == "host") != host_sbx and net["type"] != "null":
        raise errors.Forbidden(
            f"endpoint {rec['name']!r} of {net['type']} network {net['name']!r} cannot join "
            f"{'the host namespace sandbox' if host_sbx else 'a sandbox with its own namespace'}"
        )
    old_gw = ctrl._gateway_endpoint(sid)
    sbx["seq"] += 1
    rec.update(
        sandbox=sid,
        priority=int(options.get("priority", 0)),
        iface_name=_iface_name(ctrl, sid),
        join_seq=sbx["seq"],
        state="joining",
    )
    ctrl._save_sandbox(sbx)
    ctrl._save_endpoint(rec)
    drv = ctrl.driver(net["type"])
    try:
        jinfo = JoinInfo()
        drv.join(rec["network"], eid, ctrl._sandbox_info(sid, rec["iface_name"]), jinfo, options)
        configure_joined(ctrl, eid, jinfo)
        _rewrite_hosts(ctrl, sid)
        rec["state"] = "ready"
        ctrl._save_endpoint(rec)
        _gateway_changed(ctrl, sid, old_gw.id if old_gw else None)
    except BaseException:
        undo_join(ctrl, eid)
        raise


def configure_joined(ctrl: Controller, eid: str, jinfo: JoinInfo) -> None:
    """Gives the interface the driver made its addresses and routes in the sandbox."""
    from pyln.osl import interfaces, routes

    rec = ctrl._endpoints[eid]
    sid = rec["sandbox"]
    rec["gateway"] = str(jinfo.gateway) if jinfo.gateway else None
    rec["gateway_ipv6"] = str(jinfo.gateway_ipv6) if jinfo.gateway_ipv6 else None
    if jinfo.move is not None and jinfo.created is not None:
        raise DriverError(
            f"driver {ctrl._networks[rec['network']]['type']!r} both created a link and"
            " asked for one to be moved in"
        )
    if jinfo.created is None and jinfo.move is None:
        return
    ns = ctrl._sandbox_ns(sid)
    mac = None
    index: int | None
    if jinfo.move is not None:
        if ctrl._sandboxes[sid]["config"]["use_host_namespace"]:
            raise errors.Forbidden("a link cannot be moved into the host namespace sandbox")
        # Recorded before the move, so that a crash in between is undone on restore
        # (undo_join moves the link back under this name).
        rec["moved_from"] = jinfo.move
        ctrl._save_endpoint(rec)
        index = interfaces.move_link(ctrl.host_ns, jinfo.move, ns, rec["iface_name"])
        mac = rec.get("mac_address") or None
    else:
        assert jinfo.created is not None
        rec["iface_name"] = jinfo.created
        index = jinfo.created_index
    addrs = [ipaddress.ip_interface(rec[k]) for k in ("address", "address_ipv6") if rec[k]]
    rec["iface_index"] = interfaces.configure_interface(
        ns, rec["iface_name"], addresses=addrs, mac=mac, up=True, index=index
    )
    for r in jinfo.static_routes:
        routes.add_route(ns, r.destination, gateway=r.next_hop, dev=rec["iface_name"])


def _move_back(ctrl: Controller, rec: dict[str, Any]) -> None:
    """Returns a link moved in at join to the host namespace under its own name (as
    libnetwork's osl does on interface removal); a no-op if it is not in the sandbox
    (never moved, or already back)."""
    from pyln.osl import interfaces

    src = rec.get("moved_from")
    sid = rec["sandbox"]
    if not src:
        return
    if sid in ctrl._sandboxes and rec["iface_name"]:
        ns = ctrl._sandbox_ns(sid)
        try:
            if interfaces.link_exists(ns, rec["iface_name"]):
                interfaces.move_link(ns, rec["iface_name"], ctrl.host_ns, src)
        except errors.PylnError as e:
            # As libnetwork: the link stays in the sandbox (and goes with it); the
            # leave goes on rather than leave the endpoint stuck half left.
            log.warning("cannot move link %s back to the host as %s: %s", rec["iface_name"], src, e)
    rec["moved_from"] = None
    ctrl._save_endpoint(rec)


def undo_join(ctrl: Controller, eid: str) -> None:
    """Rolls back a join that failed or was interrupted."""
    rec = ctrl._endpoints[eid]
    net = ctrl._networks[rec["network"]]
    _move_back(ctrl, rec)
    try:
        ctrl.driver(net["type"]).leave(rec["network"], eid)
    except errors.PylnError:
        pass
    _detached(ctrl, rec)


def _detached(ctrl: Controller, rec: dict[str, Any]) -> None:
    """Records that the endpoint is in no sandbox any more and updates that sandbox's
    /etc/hosts."""
    sid = rec["sandbox"]
    rec.update(
        sandbox=None,
        gateway=None,
        gateway_ipv6=None,
        iface_name=None,
        iface_index=None,
        state="ready",
    )
    ctrl._save_endpoint(rec)
    if sid in ctrl._sandboxes:
        _rewrite_hosts(ctrl, sid)


def leave(ctrl: Controller, eid: str, sid: str) -> None:
    rec = ctrl._endpoints.get(eid)
    if rec is None:
        raise errors.EndpointNotFound(f"endpoint {eid} does not exist (deleted?)")
    if sid not in ctrl._sandboxes:
        raise errors.SandboxNotFound(f"sandbox {sid} does not exist (deleted?)")
    if rec["sandbox"] != sid:
        raise errors.NotJoined(f"endpoint {rec['name']!r} is not joined to sandbox {sid[:12]}")
    gw = ctrl._gateway_endpoint(sid)
    was_gw = gw is not None and gw.id == eid
    rec["state"] = "leaving"
    ctrl._save_endpoint(rec)
    drv = ctrl.driver(ctrl._networks[rec["network"]]["type"])
    if was_gw:
        drv.revoke_external_connectivity(rec["network"], eid)
    _move_back(ctrl, rec)
    drv.leave(rec["network"], eid)
    _detached(ctrl, rec)
    if was_gw:
        _gateway_changed(ctrl, sid, None)
