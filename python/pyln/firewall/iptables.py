"""The iptables backend: libnetwork's chain layout (DOCKER, DOCKER-ISOLATION-STAGE-1/2,
DOCKER-USER and the NAT rules of Docker 20.10 without the userland proxy), with each
network's port mappings in its own chains DOCKER-N-<tag> (filter and nat), two rules per
mapping. Every change is one `iptables-restore --noflush` input per family; rules that
belong to a network carry the comment `pyln:<network id>`, which is how they are found
again after a restart."""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from pyln.firewall._exec import InNamespace, run_in_ns, tool
from pyln.firewall.api import Firewall, NetworkRules, PortMapping, check_network_id
from pyln.firewall.errors import (
    FirewallConflict,
    FirewallError,
    InvalidFirewallRequest,
    NetworkNotInstalled,
)
from pyln.osl import Namespace

DOCKER = "DOCKER"
USER = "DOCKER-USER"
STAGE1 = "DOCKER-ISOLATION-STAGE-1"
STAGE2 = "DOCKER-ISOLATION-STAGE-2"
COMMENT = "pyln:"
_COMMENT_RE = re.compile(r"--comment \"?pyln:([A-Za-z0-9_.-]+)\"?")


def tag(network_id: str) -> str:
    """A short, stable name part for a network (chain names are limited to 28 chars)."""
    return hashlib.sha256(network_id.encode()).hexdigest()[:12]


def net_chain(network_id: str) -> str:
    """The network's own chain (in filter: mapping accepts; in nat: mapping DNATs)."""
    return f"DOCKER-N-{tag(network_id)}"


def _host(addr: str, version: int) -> str:
    return f"{addr}/{32 if version == 4 else 128}"


@dataclass
class _Table:
    """One table of an iptables-save dump: its chains and rules, in order."""

    chains: set[str] = field(default_factory=set)
    rules: dict[str, list[str]] = field(default_factory=dict)  # chain -> "-A ..." lines

    def lines(self, chain: str) -> list[str]:
        return self.rules.get(chain, [])


def _parse_save(text: str) -> dict[str, _Table]:
    tables: dict[str, _Table] = {}
    cur: _Table | None = None
    for line in text.splitlines():
        if line.startswith("*"):
            cur = tables.setdefault(line[1:].strip(), _Table())
        elif cur is None:
            continue
        elif line.startswith(":"):
            cur.chains.add(line[1:].split()[0])
        elif line.startswith("-A "):
            cur.rules.setdefault(line.split()[1], []).append(line)
    return tables


class _Family:
    """The iptables tools of one IP version."""

    def __init__(self, version: int) -> None:
        self.version = version
        prefix = "iptables" if version == 4 else "ip6tables"
        self.save = prefix + "-save"
        self.restore = prefix + "-restore"

    def read(self, ns: InNamespace) -> dict[str, _Table]:
        return _parse_save(run_in_ns(ns, [tool(self.save)]))

    def apply(self, ns: InNamespace, tables: dict[str, list[str]], what: str) -> None:
        """Applies per-table command lines as one atomic restore (--noflush)."""
        body: list[str] = []
        for table, lines in tables.items():
            if lines:
                body += [f"*{table}", *lines, "COMMIT"]
        if not body:
            return
        try:
            run_in_ns(ns, [tool(self.restore), "-w", "10", "--noflush"], "\n".join(body) + "\n")
        except FirewallError as e:
            raise FirewallError(f"{self.restore}: {what}: {e}") from e


def _network_rules(rules: NetworkRules, version: int) -> dict[str, list[tuple[str, int, str]]]:
    """The network's rules in shared chains, per table: (chain, insert position or 0 to
    append, rule body), in Docker 20.10's form plus the pyln comment."""
    br = rules.bridge
    c = f'-m comment --comment "{COMMENT}{rules.network_id}"'  # as iptables-save prints it
    subnets = [str(s) for s in rules.family_subnets(version)]
    f: list[tuple[str, int, str]] = []
    n: list[tuple[str, int, str]] = []
    # FORWARD, after the DOCKER-USER and DOCKER-ISOLATION-STAGE-1 jumps (positions 1, 2).
    fwd = [
        f"-o {br} {c} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        f"-o {br} {c} -j {DOCKER}",
        f"-i {br} ! -o {br} {c} -j ACCEPT",
        f"-i {br} -o {br} {c} -j {'ACCEPT' if rules.icc else 'DROP'}",
        # pyln: nothing else enters the bridge (Docker gets this from FORWARD policy DROP).
        f"-o {br} {c} -j DROP",
    ]
    f += [("FORWARD", 3 + i, r) for i, r in enumerate(fwd)]
    f.append((DOCKER, 0, f"-o {br} {c} -j {net_chain(rules.network_id)}"))
    iso: list[str] = []
    if rules.internal:
        if len(subnets) > 1:
            raise InvalidFirewallRequest(
                f"network {rules.network_id}: the iptables backend supports one IPv{version} "
                "subnet on an internal network"
            )
        iso += [f"! -d {subnets[0]} -i {br} {c} -j DROP", f"! -s {subnets[0]} -o {br} {c} -j DROP"]
    iso.append(f"-i {br} ! -o {br} {c} -j {STAGE2}")
    f += [(STAGE1, 1 + i, r) for i, r in enumerate(iso)]
    f.append((STAGE2, 1, f"-o {br} {c} -j DROP"))
    # nat
    post: list[str] = []
    if rules.masquerade and not rules.internal:
        post += [f"-s {s} ! -o {br} {c} -j MASQUERADE" for s in subnets]
    if version == 4:
        post.append(f"-o {br} -m addrtype --src-type LOCAL {c} -j MASQUERADE")
    if rules.hairpin:
        post += [f"-s {s} -o {br} {c} -m conntrack --ctstate DNAT -j MASQUERADE" for s in subnets]
    n += [("POSTROUTING", 1 + i, r) for i, r in enumerate(post)]
    if not rules.hairpin:
        n.append((DOCKER, 1, f"-i {br} {c} -j RETURN"))
    n.append((DOCKER, 0, f"{c} -j {net_chain(rules.network_id)}"))
    return {"filter": f, "nat": n}


def _mapping_rules(network_id: str, bridge: str, hairpin: bool, m: PortMapping) -> dict[str, str]:
    """A mapping's two rules, as bodies for the network's chain in filter and nat."""
    cip, v = str(m.container_ip), m.version
    not_br = "" if hairpin else f"! -i {bridge} "
    dst = "" if m.any_host else f"-d {_host(str(m.host_ip), v)} "
    to = f"{cip}:{m.container_port}" if v == 4 else f"[{cip}]:{m.container_port}"
    p = f"-p {m.proto} -m {m.proto}"
    return {
        "nat": f"{dst}{not_br}{p} --dport {m.host_port} -j DNAT --to-destination {to}",
        "filter": f"-d {_host(cip, v)} {not_br}-o {bridge} {p} --dport {m.container_port}"
        " -j ACCEPT",
    }


_DNAT_RE = re.compile(r"^-A (\S+) (?:-d (\S+?)/\d+ )?.*?-p (\w+) .*?--dport (\d+) -j DNAT")

# (proto, host port) -> [(host address or None for any, network chain)]
_PortIndex = dict[tuple[str, int], list[tuple[str | None, str]]]


def _port_index(nat: _Table) -> _PortIndex:
    """The host ports mapped by pyln's network chains, from a nat table dump."""
    index: _PortIndex = {}
    for chain, lines in nat.rules.items():
        if not chain.startswith("DOCKER-N-"):
            continue
        for ln in lines:
            mt = _DNAT_RE.match(ln)
            if mt:
                key = (mt.group(3), int(mt.group(4)))
                index.setdefault(key, []).append((mt.group(2), chain))
    return index


def _clashes(index: _PortIndex, m: PortMapping) -> list[tuple[str | None, str]]:
    """Mappings already installed that take the same host address and port."""
    host = None if m.any_host else str(m.host_ip)
    return [
        (h, c)
        for h, c in index.get((m.proto, m.host_port), [])
        if h is None or host is None or h == host
    ]


def _comment_id(line: str) -> str | None:
    mt = _COMMENT_RE.search(line)
    return mt.group(1) if mt else None


class IptablesFirewall(Firewall):
    """Bridge network rules in the iptables (and ip6tables) of a namespace."""

    backend = "iptables"

    def __init__(self, ns: Namespace) -> None:
        super().__init__(ns)
        self._lock = threading.Lock()
        self._families = {4: _Family(4), 6: _Family(6)}
        # (network id, IP version) -> (bridge, hairpin), so adding a mapping is one
        # restore call; dropped whenever this object changes or removes the network.
        self._info_cache: dict[tuple[str, int], tuple[str, bool]] = {}
        # Per IP version, the host ports mapped (read from the kernel once, then kept
        # up to date by this object), so a clashing mapping is refused as nftables'
        # map refuses a duplicate key.
        self._ports: dict[int, _PortIndex] = {}
        # Per IP version, what this object knows is installed: network id -> bridge,
        # and whether the shared chains and jumps are all there. With it, setting up a
        # new network is one restore call and no read (this object is the only writer
        # while it holds the state directory). Dropped on any error, re-read on use.
        self._known: dict[int, tuple[dict[str, str], bool]] = {}

    # -- reading --------------------------------------------------------------------

    def _network_info(self, tables: dict[str, _Table], network_id: str) -> tuple[str, bool] | None:
        """(bridge, hairpin) of an installed network, from its jump rule in filter DOCKER."""
        chain = net_chain(network_id)
        filt = tables.get("filter", _Table())
        for line in filt.lines(DOCKER):
            if line.endswith(f"-j {chain}") and _comment_id(line) == network_id:
                bridge = line.split("-o ", 1)[1].split()[0]
                nohairpin = any(
                    _comment_id(x) == network_id and x.endswith("-j RETURN")
                    for x in tables.get("nat", _Table()).lines(DOCKER)
                )
                return bridge, not nohairpin
        return None

    def _versions_installed(
        self, network_id: str, skip: frozenset[int] = frozenset()
    ) -> dict[int, dict[str, _Table]]:
        """Per IP version, the dump of each family where the network has rules (families
        in `skip` are known to have none and are not read)."""
        out: dict[int, dict[str, _Table]] = {}
        for v, fam in self._families.items():
            if v in skip:
                continue
            tables = fam.read(self.runner)
            if self._network_info(tables, network_id) is not None:
                out[v] = tables
        return out

    def networks(self) -> list[str]:
        ids: set[str] = set()
        for fam in self._families.values():
            for table in fam.read(self.runner).values():
                for line in table.lines(DOCKER):
                    nid = _comment_id(line)
                    if nid is not None and "-j DOCKER-N-" in line:
                        ids.add(nid)
        return sorted(ids)

    # -- networks ---------------------------------------------------------------------

    def setup_network(self, rules: NetworkRules) -> None:
        self._enable_forwarding(rules)
        nid = rules.network_id
        with self._lock:
            for v in self._families:
                self._info_cache.pop((nid, v), None)
            try:
                for v, fam in self._families.items():
                    nets, skeleton = self._known_state(v)
                    for other, br in nets.items():
                        if other != nid and br == rules.bridge:
                            raise FirewallConflict(
                                f"bridge {rules.bridge} already belongs to network {other}"
                            )
                    if not rules.family_subnets(v):
                        if nid in nets:
                            tables = fam.read(self.runner)
                            fam.apply(self.runner, self._removal(tables, nid), f"removing {nid}")
                            nets.pop(nid, None)
                        continue
                    if nid not in nets and skeleton:
                        # A new network on a complete skeleton: its chain and rules only.
                        chain = net_chain(nid)
                        cmds: dict[str, list[str]] = {
                            "filter": [f":{chain} - [0:0]"],
                            "nat": [f":{chain} - [0:0]"],
                        }
                        for tname, want in _network_rules(rules, v).items():
                            for ch, pos, body in want:
                                cmds[tname].append(
                                    f"-I {ch} {pos} {body}" if pos else f"-A {ch} {body}"
                                )
                        fam.apply(self.runner, cmds, f"setting up network {nid}")
                    else:
                        tables = fam.read(self.runner)
                        self._index_ports(v, tables)
                        fam.apply(
                            self.runner, self._setup(tables, rules, v), f"setting up network {nid}"
                        )
                        self._known[v] = (nets, True)
                    nets[nid] = rules.bridge
                    # What a port mapping needs, known without reading it back.
                    self._info_cache[(nid, v)] = (rules.bridge, rules.hairpin)
            except FirewallError:
                self._known.clear()
                raise

    def _known_state(self, v: int) -> tuple[dict[str, str], bool]:
        """(network id -> bridge, skeleton complete) of family `v`, read once."""
        if v not in self._known:
            tables = self._families[v].read(self.runner)
            self._index_ports(v, tables)
            nets: dict[str, str] = {}
            for line in tables.get("filter", _Table()).lines(DOCKER):
                nid = _comment_id(line)
                if nid is not None and "-j DOCKER-N-" in line and "-o " in line:
                    nets[nid] = line.split("-o ", 1)[1].split()[0]
            filt, nat = tables.get("filter", _Table()), tables.get("nat", _Table())
            skeleton = (
                {DOCKER, USER, STAGE1, STAGE2} <= filt.chains
                and DOCKER in nat.chains
                and not self._ensure_forward_jumps(filt)
                and all(
                    any(ln.endswith(f"--dst-type LOCAL -j {DOCKER}") for ln in nat.lines(hook))
                    for hook in ("PREROUTING", "OUTPUT")
                )
            )
            self._known[v] = (nets, skeleton)
        return self._known[v]

    def _setup(
        self, tables: dict[str, _Table], rules: NetworkRules, v: int
    ) -> dict[str, list[str]]:
        nid = rules.network_id
        want = _network_rules(rules, v)
        out: dict[str, list[str]] = {"filter": [], "nat": []}
        for tname, t in (
            ("filter", tables.get("filter", _Table())),
            ("nat", tables.get("nat", _Table())),
        ):
            cmds = out[tname]
            shared = [DOCKER, USER, STAGE1, STAGE2] if tname == "filter" else [DOCKER]
            for chain in shared:
                if chain not in t.chains:
                    cmds.append(f":{chain} - [0:0]")
                    if chain != DOCKER:
                        cmds.append(f"-A {chain} -j RETURN")
            chain = net_chain(nid)
            if chain not in t.chains:
                cmds.append(f":{chain} - [0:0]")
            if tname == "filter":
                cmds += self._ensure_forward_jumps(t)
            else:
                for hook in ("PREROUTING", "OUTPUT"):
                    # IPv6 has no route_localnet: [::1]:port is left to the userland
                    # proxy, as Docker does (iptables-save prints the rule this way).
                    lo = "! -d ::1/128 " if v == 6 and hook == "OUTPUT" else ""
                    jump = f"-A {hook} {lo}-m addrtype --dst-type LOCAL -j {DOCKER}"
                    if jump not in t.lines(hook):
                        cmds.append(jump)
            have = [ln for lines in t.rules.values() for ln in lines if _comment_id(ln) == nid]
            wanted = [f"-A {ch} {body}" for ch, _, body in want[tname]]
            if sorted(have) == sorted(wanted):
                continue
            cmds += ["-D" + ln[2:] for ln in have]
            for ch, pos, body in want[tname]:
                cmds.append(f"-I {ch} {pos} {body}" if pos else f"-A {ch} {body}")
        return out

    @staticmethod
    def _ensure_forward_jumps(t: _Table) -> list[str]:
        """FORWARD starts with -j DOCKER-USER, -j DOCKER-ISOLATION-STAGE-1 (as Docker's
        ensureJumpRule leaves it); network rules are inserted after them."""
        fwd = t.lines("FORWARD")
        head = [f"-A FORWARD -j {USER}", f"-A FORWARD -j {STAGE1}"]
        if fwd[:2] == head:
            return []
        cmds = ["-D" + ln[2:] for ln in fwd if ln in head]
        return [*cmds, f"-I FORWARD 1 -j {STAGE1}", f"-I FORWARD 1 -j {USER}"]

    @staticmethod
    def _removal(tables: dict[str, _Table], network_id: str) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        chain = net_chain(network_id)
        for tname in ("filter", "nat"):
            t = tables.get(tname, _Table())
            cmds = [
                "-D" + ln[2:]
                for lines in t.rules.values()
                for ln in lines
                if _comment_id(ln) == network_id
            ]
            if chain in t.chains:
                cmds += [f"-F {chain}", f"-X {chain}"]
            out[tname] = cmds
        return out

    def remove_network(self, network_id: str) -> None:
        check_network_id(network_id)
        with self._lock:
            # Families whose known state says the network has no rules there (an IPv4
            # network's IPv6 side): nothing to read or remove.
            skip = frozenset(v for v, (nets, _) in self._known.items() if network_id not in nets)
            chain = net_chain(network_id)
            for v in self._families:
                self._info_cache.pop((network_id, v), None)
                index = self._ports.get(v)
                if index is not None:  # the network's mappings go with its chain
                    for key, held in list(index.items()):
                        index[key] = [(h, c) for h, c in held if c != chain]
                if v in self._known:
                    self._known[v][0].pop(network_id, None)
            try:
                for v, tables in self._versions_installed(network_id, skip).items():
                    self._families[v].apply(
                        self.runner,
                        self._removal(tables, network_id),
                        f"removing network {network_id}",
                    )
            except FirewallError:
                self._known.clear()
                self._ports.clear()
                raise
                # Chains left by a half-done setup (no jump rule yet) are not found by
                # _versions_installed; they hold no traffic and are removed by flush().

    # -- port mappings ------------------------------------------------------------------

    def _by_version(self, mappings: Iterable[PortMapping]) -> dict[int, list[PortMapping]]:
        out: dict[int, list[PortMapping]] = {}
        for m in mappings:
            out.setdefault(m.version, []).append(m)
        return out

    def add_port_mappings(self, network_id: str, mappings: Sequence[PortMapping]) -> None:
        check_network_id(network_id)
        if not mappings:
            return
        chain = net_chain(network_id)
        with self._lock:
            for v, ms in self._by_version(mappings).items():
                fam = self._families[v]
                info = self._cached_info(network_id, v)
                if info is None:
                    raise NetworkNotInstalled(
                        f"network {network_id} has no IPv{v} rules installed ({fam.save})"
                    )
                bridge, hairpin = info
                index = self._port_index(v)
                staged: _PortIndex = {k: list(x) for k, x in index.items()}
                cmds: dict[str, list[str]] = {"filter": [], "nat": []}
                for m in ms:
                    clash = _clashes(staged, m)
                    if clash:
                        raise FirewallConflict(
                            f"{m.proto} port {m.host_port} on {m.host_ip} is already mapped"
                            f" ({', '.join(h or 'any address' for h, _ in clash)})"
                        )
                    host = None if m.any_host else str(m.host_ip)
                    staged.setdefault((m.proto, m.host_port), []).append((host, chain))
                    for tname, body in _mapping_rules(network_id, bridge, hairpin, m).items():
                        cmds[tname].append(f"-A {chain} {body}")
                try:
                    fam.apply(self.runner, cmds, f"adding port mappings to {network_id}")
                except FirewallError:
                    self._info_cache.pop((network_id, v), None)
                    self._ports.pop(v, None)
                    raise
                self._ports[v] = staged

    def _index_ports(self, v: int, tables: dict[str, _Table]) -> None:
        """Builds family `v`'s port index from a dump read anyway, if it has none."""
        if v not in self._ports:
            self._ports[v] = _port_index(tables.get("nat", _Table()))

    def _port_index(self, v: int) -> _PortIndex:
        if v not in self._ports:
            self._ports[v] = _port_index(self._families[v].read(self.runner).get("nat", _Table()))
        return self._ports[v]

    def _cached_info(self, network_id: str, v: int) -> tuple[str, bool] | None:
        """The network's (bridge, hairpin), read from the kernel once per object: adding
        a mapping is then one restore call, whatever the number of rules installed."""
        key = (network_id, v)
        if key not in self._info_cache:
            info = self._network_info(self._families[v].read(self.runner), network_id)
            if info is None:
                return None
            self._info_cache[key] = info
        return self._info_cache[key]

    def remove_port_mappings(self, network_id: str, mappings: Sequence[PortMapping]) -> None:
        check_network_id(network_id)
        if not mappings:
            return
        chain = net_chain(network_id)
        with self._lock:
            for v, ms in self._by_version(mappings).items():
                fam = self._families[v]
                tables = fam.read(self.runner)
                info = self._network_info(tables, network_id)
                if info is None:
                    continue
                bridge, hairpin = info
                cmds: dict[str, list[str]] = {"filter": [], "nat": []}
                for m in ms:
                    for tname, body in _mapping_rules(network_id, bridge, hairpin, m).items():
                        line = f"-A {chain} {body}"
                        n = tables.get(tname, _Table()).lines(chain).count(line)
                        cmds[tname] += ["-D" + line[2:]] * n  # every copy (adds append)
                try:
                    fam.apply(self.runner, cmds, f"removing port mappings of {network_id}")
                except FirewallError:
                    self._ports.pop(v, None)  # unknown state: re-read on next use
                    raise
                held_ports = self._ports.get(v)
                if held_ports is not None:
                    for m in ms:
                        host = None if m.any_host else str(m.host_ip)
                        held = held_ports.get((m.proto, m.host_port), [])
                        while (host, chain) in held:
                            held.remove((host, chain))

    # -- everything -------------------------------------------------------------------------

    def flush(self) -> None:
        with self._lock:
            self._info_cache.clear()
            self._ports.clear()
            self._known.clear()
            for fam in self._families.values():
                tables = fam.read(self.runner)
                out: dict[str, list[str]] = {}
                for tname in ("filter", "nat"):
                    t = tables.get(tname, _Table())
                    mine = {c for c in t.chains if c.startswith("DOCKER")}
                    cmds = [
                        "-D" + ln[2:]
                        for ch, lines in t.rules.items()
                        if ch not in mine
                        for ln in lines
                        if any(f"-j {c}" == ln[ln.rfind("-j ") :] for c in mine)
                        or _comment_id(ln) is not None
                    ]
                    for c in sorted(mine):
                        cmds.append(f"-F {c}")
                    for c in sorted(mine):
                        cmds.append(f"-X {c}")
                    out[tname] = cmds
                fam.apply(self.runner, out, "flush")
