"""The nftables backend: one `inet pyln` table; per-network chains reached through
verdict maps keyed by bridge name and source subnet; port mappings are elements of
DNAT maps, so the 200th mapping costs what the first does. Every change is one
libnftables JSON transaction run in a thread inside the namespace. What the table
holds is read back once and then kept, for as long as the kernel's ruleset generation
shows that no one else changed it."""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pyln.firewall._exec import InNamespace, NftError, NftGeneration, nft_json, nft_list
from pyln.firewall.api import (
    Firewall,
    IPNetwork,
    NetworkRules,
    PortMapping,
    check_network_id,
)
from pyln.firewall.errors import FirewallConflict, FirewallError, NetworkNotInstalled
from pyln.osl import Namespace

FAMILY = "inet"
TABLE = "pyln"
PREFIX = "nw-"

Json = dict[str, Any]


def _obj(**kw: Any) -> Json:
    return {"family": FAMILY, "table": TABLE, **kw}


def _meta(key: str) -> Json:
    return {"meta": {"key": key}}


def _match(left: Json, right: Any, op: str = "==") -> Json:
    return {"match": {"op": op, "left": left, "right": right}}


def _payload(proto: str, fld: str) -> Json:
    return {"payload": {"protocol": proto, "field": fld}}


def _prefix(net: IPNetwork) -> Json:
    return {"prefix": {"addr": str(net.network_address), "len": net.prefixlen}}


def _jump(chain: str) -> Json:
    return {"jump": {"target": chain}}


def _rule(chain: str, *expr: Json) -> Json:
    return {"add": {"rule": _obj(chain=chain, expr=list(expr))}}


def _elements(name: str, elems: list[Any], op: str = "add") -> Json:
    return {op: {"element": _obj(name=name, elem=elems)}}


def _ip(version: int) -> str:
    return "ip" if version == 4 else "ip6"


def chain_names(network_id: str) -> tuple[str, str, str]:
    """The network's chains: traffic to its bridge, from its bridge, NAT on the way out."""
    base = PREFIX + network_id
    return base + "-out", base + "-in", base + "-post"


def ports_set(network_id: str, version: int) -> str:
    """The set of host keys (address . proto . port) a network has published."""
    return f"{PREFIX}{network_id}-ports{version}"


def _hostports(m: PortMapping, op: str) -> list[Json]:
    """Commands adding (or deleting) a mapping's elements of the DNAT address and port maps."""
    if m.any_host:
        name, key = f"hostports{m.version}_any", {"concat": [m.proto, m.host_port]}
    else:
        name, key = f"hostports{m.version}", {"concat": [str(m.host_ip), m.proto, m.host_port]}
    if op == "delete":
        return [_elements(name + "_addr", [key], op), _elements(name + "_port", [key], op)]
    return [
        _elements(name + "_addr", [[key, str(m.container_ip)]], op),
        _elements(name + "_port", [[key, m.container_port]], op),
    ]


def _hostports_key_delete(version: int, key: Any) -> list[Json]:
    """Commands deleting the DNAT elements of an owner-set key (address . proto . port)."""
    ip, proto, port = key["concat"]
    if ipaddress.ip_address(ip).is_unspecified:
        name, k = f"hostports{version}_any", {"concat": [proto, port]}
    else:
        name, k = f"hostports{version}", key
    return [_elements(name + "_addr", [k], "delete"), _elements(name + "_port", [k], "delete")]


def _owner_key(m: PortMapping) -> Json:
    return {"concat": [str(m.host_ip), m.proto, m.host_port]}


def _skeleton(chains: Sequence[str] = ()) -> list[Json]:
    """The table, its global sets and maps and its base chains with their rules (safe to
    send again: objects are added idempotently and base chains are refilled). `chains`
    are added first: nft 1.0.6 fails (ENOENT) to add an interval-map element jumping to a
    chain that the same transaction declared after the map."""
    cmds: list[Json] = [{"add": {"table": {"family": FAMILY, "name": TABLE}}}]
    cmds += [{"add": {"chain": _obj(name=name)}} for name in chains]

    def add(kind: str, name: str, **kw: Any) -> None:
        cmds.append({"add": {kind: _obj(name=name, **kw)}})

    add("set", "bridges", type="ifname")  # every pyln bridge: isolation between networks
    add("set", "nohairpin", type="ifname")  # bridges whose own traffic is not DNATed
    add("map", "fwd_out", type="ifname", map="verdict")  # oifname -> jump nw-<id>-out
    add("map", "fwd_in", type="ifname", map="verdict")  # iifname -> jump nw-<id>-in
    for v, addr in ((4, "ipv4_addr"), (6, "ipv6_addr")):
        add("map", f"post{v}", type=addr, map="verdict", flags=["interval"])  # saddr -> post
        # DNAT target address and port, keyed by host address . proto . port (or, for
        # 0.0.0.0 / ::, by proto . port). Two maps of one key each, since nft 1.0.6's
        # JSON cannot declare a map with concatenated data.
        for suffix, key in (
            ("", [addr, "inet_proto", "inet_service"]),
            ("_any", ["inet_proto", "inet_service"]),
        ):
            add("map", f"hostports{v}{suffix}_addr", type=key, map=addr)
            add("map", f"hostports{v}{suffix}_port", type=key, map="inet_service")
    base = {
        "forward": ("filter", "forward", 0),
        "prerouting": ("nat", "prerouting", -100),
        "output": ("nat", "output", -100),
        "postrouting": ("nat", "postrouting", 100),
    }
    for name, (typ, hook, prio) in base.items():
        add("chain", name, type=typ, hook=hook, prio=prio, policy="accept")
    add("chain", "hostports")
    for name in (*base, "hostports"):
        cmds.append({"flush": {"chain": _obj(name=name)}})

    cmds.append(_rule("forward", {"vmap": {"key": _meta("oifname"), "data": "@fwd_out"}}))
    cmds.append(_rule("forward", {"vmap": {"key": _meta("iifname"), "data": "@fwd_in"}}))
    local = _match({"fib": {"result": "type", "flags": ["daddr"]}}, "local")
    cmds.append(_rule("prerouting", local, _jump("hostports")))
    cmds.append(_rule("output", local, _jump("hostports")))
    cmds.append(_rule("hostports", _match(_meta("iifname"), "@nohairpin"), {"return": None}))
    for v in (4, 6):
        nfproto = _match(_meta("nfproto"), "ipv4" if v == 4 else "ipv6")
        l4 = [_meta("l4proto"), _payload("th", "dport")]
        keyed: tuple[tuple[str, list[Json]], ...] = (
            (f"hostports{v}", [_payload(_ip(v), "daddr"), *l4]),
            (f"hostports{v}_any", l4),
        )
        # IPv6 has no route_localnet: a packet from ::1 cannot be sent off the host, so
        # [::1]:port is left to the userland proxy (as Docker does) instead of DNAT.
        skip_lo = [_match(_payload("ip6", "daddr"), "::1", "!=")] if v == 6 else []
        for name, lookup in keyed:
            dnat = {
                "family": _ip(v),
                "addr": {"map": {"key": {"concat": lookup}, "data": f"@{name}_addr"}},
                "port": {"map": {"key": {"concat": lookup}, "data": f"@{name}_port"}},
            }
            cmds.append(_rule("hostports", nfproto, *skip_lo, {"dnat": dnat}))
    # 127.0.0.1:port from the host itself: the reply must come back to a routable source.
    loopback = ipaddress.ip_network("127.0.0.0/8")
    cmds.append(
        _rule(
            "postrouting",
            _match(_meta("oifname"), "@bridges"),
            _match(_payload("ip", "saddr"), _prefix(loopback)),
            {"masquerade": None},
        )
    )
    for v in (4, 6):
        vmap = {"vmap": {"key": _payload(_ip(v), "saddr"), "data": f"@post{v}"}}
        cmds.append(_rule("postrouting", vmap))
    return cmds


@dataclass
class _Net:
    """A network as read back from the kernel."""

    bridge: str | None = None
    prefixes: dict[int, list[Any]] = field(default_factory=lambda: {4: [], 6: []})
    ports: dict[int, list[Any]] = field(default_factory=lambda: {4: [], 6: []})


@dataclass
class _State:
    """The parts of the table that tie networks to their bridges, subnets and ports."""

    exists: bool = False
    nets: dict[str, _Net] = field(default_factory=dict)
    bridge_owner: dict[str, str] = field(default_factory=dict)
    nohairpin: set[str] = field(default_factory=set)


def _elem_key(e: Any) -> Any:
    """An element's key, without the {"elem": {"val": ...}} wrapper comments add."""
    if isinstance(e, dict) and "elem" in e:
        return e["elem"]["val"]
    return e


def _read_state(ns: InNamespace) -> _State:
    items = nft_list(ns, f"list table {FAMILY} {TABLE}")
    st = _State(exists=items is not None)
    suffix_out, suffix_post = "-out", "-post"
    for item in items or []:
        obj = item.get("map") or item.get("set")
        if obj is None:
            chain = item.get("chain")
            name = chain["name"] if chain else ""
            if name.startswith(PREFIX) and name.endswith(suffix_out):
                st.nets.setdefault(name[len(PREFIX) : -len(suffix_out)], _Net())
            continue
        name = obj["name"]
        elems = obj.get("elem", [])
        if name == "fwd_out":
            for key, verdict in elems:
                target = verdict["jump"]["target"]
                nid = target[len(PREFIX) : -len(suffix_out)]
                st.nets.setdefault(nid, _Net()).bridge = key
                st.bridge_owner[key] = nid
        elif name in ("post4", "post6"):
            for key, verdict in elems:
                nid = verdict["jump"]["target"][len(PREFIX) : -len(suffix_post)]
                st.nets.setdefault(nid, _Net()).prefixes[int(name[-1])].append(_elem_key(key))
        elif name == "nohairpin":
            st.nohairpin = {_elem_key(e) for e in elems}
        elif name.startswith(PREFIX) and name[-7:] in ("-ports4", "-ports6"):
            nid = name[len(PREFIX) : -7]
            st.nets.setdefault(nid, _Net()).ports[int(name[-1])] = [_elem_key(e) for e in elems]
    return st


class NftablesFirewall(Firewall):
    """Bridge network rules in the `inet pyln` nftables table of a namespace."""

    backend = "nftables"

    def __init__(self, ns: Namespace) -> None:
        super().__init__(ns)
        self._lock = threading.Lock()
        self._gen: NftGeneration | None = None
        self._closed = False
        # (ruleset generation, the table's state at that generation); under _lock.
        self._cache: tuple[int, _State] | None = None

    # -- the table's state ----------------------------------------------------------

    def _generation(self) -> int | None:
        """The ruleset generation, or None if it cannot be read (then nothing is kept)."""
        if self._closed:
            return None  # nothing is opened in the namespace again
        try:
            if self._gen is None:
                self._gen = NftGeneration(self.ns)
            return self._gen.read()
        except (OSError, FirewallError):
            if self._gen is not None:  # a socket out of step: open a new one next time
                self._gen.close()
                self._gen = None
            return None

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._gen is not None:
                self._gen.close()
                self._gen = None
            self._cache = None
        super().close()

    def _state(self) -> tuple[_State, int | None]:
        """The table's state and the generation it belongs to: the kept copy if no
        transaction was committed since, else read from the kernel."""
        gen = self._generation()
        if gen is not None and self._cache is not None and self._cache[0] == gen:
            return self._cache[1], gen
        self._cache = None
        st = _read_state(self.runner)
        if gen is not None and self._generation() == gen:  # nobody changed it meanwhile
            self._cache = (gen, st)
            return st, gen
        return st, None

    def _committed(self, st: _State, gen: int | None) -> None:
        """Keeps `st` (already updated with our transaction) as the state after it. It
        is right only if ours was the one transaction since `gen`: were there others,
        the generation is past gen + 1 and the next _state() reads the table again.
        Only for transactions that change something: the kernel does not count an
        empty one, and the copy would then pass for the state after the next change."""
        if gen is None:
            self._cache = None
            return
        nxt = (gen + 1) & 0xFFFFFFFF or 1  # the kernel skips 0 when it wraps
        self._cache = (nxt, st)

    # -- networks -----------------------------------------------------------------

    def setup_network(self, rules: NetworkRules) -> None:
        self._enable_forwarding(rules)
        nid, br = rules.network_id, rules.bridge
        with self._lock:
            st, gen = self._state()
            owner = st.bridge_owner.get(br)
            if owner is not None and owner != nid:
                raise FirewallConflict(f"bridge {br} already belongs to network {owner}")
            out, inn, post = chain_names(nid)
            if st.exists:
                # The skeleton went in whole with the table (one transaction). Sending it
                # again would flush and refill the base chains, and deleting rules is what
                # makes an nftables transaction slow (~15 ms): only add our chains.
                cmds = [{"add": {"chain": _obj(name=name)}} for name in (out, inn, post)]
            else:
                cmds = _skeleton((out, inn, post))
            old = st.nets.get(nid)
            if old is not None:
                cmds += self._unlink(old, keep_bridge=old.bridge == br, st=st)
            for name in (out, inn, post):
                cmds.append({"flush": {"chain": _obj(name=name)}})
            for v, addr in ((4, "ipv4_addr"), (6, "ipv6_addr")):
                cmds.append(
                    {
                        "add": {
                            "set": _obj(
                                name=ports_set(nid, v), type=[addr, "inet_proto", "inet_service"]
                            )
                        }
                    }
                )
            cmds += self._network_rules(rules)
            cmds.append(_elements("bridges", [br]))
            cmds.append(_elements("fwd_out", [[br, _jump(out)]]))
            cmds.append(_elements("fwd_in", [[br, _jump(inn)]]))
            for v in (4, 6):
                nets = rules.family_subnets(v)
                if nets:
                    cmds.append(_elements(f"post{v}", [[_prefix(n), _jump(post)] for n in nets]))
            if not rules.hairpin:
                cmds.append(_elements("nohairpin", [br]))
            self._cache = None  # unless the transaction succeeds
            nft_json(self.runner, cmds, f"setting up network {nid}")
            st.exists = True
            net = _Net(bridge=br)
            for v in (4, 6):
                net.prefixes[v] = [_prefix(n) for n in rules.family_subnets(v)]
            if old is not None:
                net.ports = old.ports  # the network's port sets were kept
                if old.bridge is not None:
                    st.nohairpin.discard(old.bridge)
                    if old.bridge != br and st.bridge_owner.get(old.bridge) == nid:
                        del st.bridge_owner[old.bridge]
            st.nets[nid] = net
            st.bridge_owner[br] = nid
            if not rules.hairpin:
                st.nohairpin.add(br)
            self._committed(st, gen)

    def _network_rules(self, rules: NetworkRules) -> list[Json]:
        """The network's own chains: who may enter the bridge, leave it, and NAT."""
        br = rules.bridge
        out, inn, post = chain_names(rules.network_id)
        iif, oif = _meta("iifname"), _meta("oifname")
        cmds: list[Json] = []
        # Traffic routed (or, with br_netfilter, bridged) into the bridge.
        if rules.internal:
            cmds.append(_rule(out, _match(iif, br, "!="), {"drop": None}))
        cmds.append(_rule(out, _match(iif, br, "!="), _match(iif, "@bridges"), {"drop": None}))
        established = _match({"ct": {"key": "state"}}, ["established", "related"], "in")
        cmds.append(_rule(out, established, {"accept": None}))
        cmds.append(_rule(out, _match({"ct": {"key": "status"}}, "dnat", "in"), {"accept": None}))
        cmds.append(_rule(out, _match(iif, br), {"accept" if rules.icc else "drop": None}))
        cmds.append(_rule(out, {"drop": None}))
        # Traffic from the bridge to a non-pyln interface (pyln bridges are handled above).
        cmds.append(_rule(inn, {"drop" if rules.internal else "accept": None}))
        # Source NAT, reached by source subnet.
        if rules.hairpin:
            dnat = _match({"ct": {"key": "status"}}, "dnat", "in")
            cmds.append(_rule(post, _match(oif, br), dnat, {"masquerade": None}))
        if rules.masquerade and not rules.internal:
            cmds.append(_rule(post, _match(oif, br, "!="), {"masquerade": None}))
        return cmds

    def _unlink(self, net: _Net, *, keep_bridge: bool, st: _State) -> list[Json]:
        """Commands removing a network's map and set elements (not its chains)."""
        cmds: list[Json] = []
        for v in (4, 6):
            if net.prefixes[v]:
                cmds.append(_elements(f"post{v}", list(net.prefixes[v]), "delete"))
        if net.bridge is not None and not keep_bridge:
            for name in ("fwd_out", "fwd_in", "bridges"):
                cmds.append(_elements(name, [net.bridge], "delete"))
        if net.bridge is not None and net.bridge in st.nohairpin:
            cmds.append(_elements("nohairpin", [net.bridge], "delete"))
        return cmds

    def remove_network(self, network_id: str) -> None:
        check_network_id(network_id)
        with self._lock:
            st, gen = self._state()
            net = st.nets.get(network_id)
            if net is None:
                return
            cmds = self._unlink(net, keep_bridge=False, st=st)
            for v in (4, 6):
                for key in net.ports[v]:
                    cmds += _hostports_key_delete(v, key)
            for name in chain_names(network_id):
                cmds.append({"delete": {"chain": _obj(name=name)}})
            for v in (4, 6):
                cmds.append({"delete": {"set": _obj(name=ports_set(network_id, v))}})
            self._cache = None  # unless the transaction succeeds
            nft_json(self.runner, cmds, f"removing network {network_id}")
            del st.nets[network_id]
            if net.bridge is not None:
                st.nohairpin.discard(net.bridge)
                if st.bridge_owner.get(net.bridge) == network_id:
                    del st.bridge_owner[net.bridge]
            self._committed(st, gen)

    # -- port mappings ------------------------------------------------------------

    def add_port_mappings(self, network_id: str, mappings: Sequence[PortMapping]) -> None:
        check_network_id(network_id)
        if not mappings:
            return
        cmds: list[Json] = []
        for m in mappings:
            # The owner set exists only while the network is set up: a missing network
            # fails the whole transaction.
            cmds.append(_elements(ports_set(network_id, m.version), [_owner_key(m)]))
            cmds += _hostports(m, "add")
        try:
            with self._lock:  # not between a remove_network's read and its commit
                nft_json(self.runner, cmds, f"adding port mappings to network {network_id}")
        except NftError as e:
            if "No such file or directory" in e.stderr:
                raise NetworkNotInstalled(
                    f"network {network_id} has no rules installed: {e.stderr.strip()}"
                ) from e
            if "File exists" in e.stderr or "Device or resource busy" in e.stderr:
                raise FirewallConflict(f"a host port is already mapped: {e.stderr.strip()}") from e
            raise

    def remove_port_mappings(self, network_id: str, mappings: Sequence[PortMapping]) -> None:
        check_network_id(network_id)
        if not mappings:
            return
        cmds: list[Json] = []
        for m in mappings:
            # add-then-delete in one transaction: deleting what is absent is not an error.
            owner = ports_set(network_id, m.version)
            cmds.append(_elements(owner, [_owner_key(m)]))
            cmds.append(_elements(owner, [_owner_key(m)], "delete"))
            cmds += _hostports(m, "add")
            cmds += _hostports(m, "delete")
        try:
            with self._lock:
                nft_json(self.runner, cmds, f"removing port mappings of network {network_id}")
        except NftError as e:
            if "No such file or directory" in e.stderr:
                return  # the network (and so its mappings) is gone
            raise

    # -- whole table --------------------------------------------------------------

    def networks(self) -> list[str]:
        with self._lock:
            return sorted(self._state()[0].nets)

    def flush(self) -> None:
        with self._lock:
            table = {"family": FAMILY, "name": TABLE}
            self._cache = None
            nft_json(
                self.runner, [{"add": {"table": table}}, {"delete": {"table": table}}], "flush"
            )
