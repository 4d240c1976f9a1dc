"""The default IPAM driver (libnetwork's ipam.Allocator): pools in the LocalDefault
and GlobalDefault address spaces, sub-pools, addresses from per-pool bitmasks.

Every change is in the store before the call returns. Pool changes are guarded by
a per-space version object (compare-and-swap), address changes by the bitmask's
journal (see bitmask.py), so several allocators in several processes may share
one store; a loser of a race refreshes and tries again.
"""

from __future__ import annotations

import bisect
import ipaddress
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

from pyln._core import Bitseq
from pyln.errors import BitAlreadyAllocated, KeyExists, KeyModified, KeyNotFound, NoBitAvailable
from pyln.ipam.bitmask import OP_NONE, OP_SET, OP_SET_ANY, OP_UNSET, JournaledBitmask
from pyln.ipam.contract import (
    ALLOC_SERIAL,
    GATEWAY,
    GLOBAL_DEFAULT,
    LOCAL_DEFAULT,
    REQUEST_ADDRESS_TYPE,
)
from pyln.ipam.errors import (
    BadPool,
    InvalidAddressSpace,
    InvalidPool,
    InvalidRequest,
    InvalidSubPool,
    IPAlreadyAllocated,
    IPOutOfRange,
    NoAvailableIPs,
    NoAvailablePool,
    PoolNotFound,
    PoolOverlap,
)
from pyln.ipam.pools import GLOBAL_SCOPE_DEFAULTS, LOCAL_SCOPE_DEFAULTS, PredefinedPools
from pyln.ipam.subnet import (
    Interface,
    Network,
    SubnetKey,
    parse_address,
    parse_network,
    pool_size,
    sub_range,
)
from pyln.store.base import Delete, Op, Put, Store

MAX_ATTEMPTS = 1000


class _Pool:
    """A pool as the allocator keeps it. A sub-pool shares its master's bitmask and
    hands out only ordinals lo..hi; refs counts requests (a master also counts the
    sub-pools that hold it). The derived numbers are computed once: the allocation
    path reads them on every call."""

    __slots__ = (
        "base",
        "hi",
        "id",
        "iface",
        "key",
        "lo",
        "master_id",
        "network",
        "prefixlen",
        "refs",
        "size",
        "sub",
    )

    def __init__(self, key: SubnetKey, network: Network, sub: Network | None, refs: int) -> None:
        self.key = key
        self.network = network
        self.sub = sub
        self.refs = refs
        self.id = str(key)
        self.master_id = str(key.parent)
        self.base = int(network.network_address)
        self.size = network.num_addresses
        self.prefixlen = network.prefixlen
        self.iface: type[Interface] = (
            ipaddress.IPv4Interface if network.version == 4 else ipaddress.IPv6Interface
        )
        if sub is None:
            self.lo, self.hi = 0, self.size - 1
        else:
            self.lo = int(sub.network_address) - self.base
            self.hi = int(sub.broadcast_address) - self.base

    def with_refs(self, refs: int) -> _Pool:
        return _Pool(self.key, self.network, self.sub, refs)

    def reserved(self, ordinal: int) -> bool:
        """The network address (and for IPv4 the broadcast address) is never handed out."""
        return ordinal == 0 or (self.network.version == 4 and ordinal == self.size - 1)

    def to_value(self) -> dict[str, object]:
        return {
            "pool": str(self.network),
            "sub_pool": str(self.sub) if self.sub is not None else None,
            "refs": self.refs,
        }


class PoolInfo(NamedTuple):
    """What `Allocator.pools()` reports of a pool."""

    pool_id: str
    pool: Network
    sub_pool: Network | None
    refs: int
    free: int
    """Addresses still free in the master pool's bitmask."""


def _new_bits(nw: Network) -> Bitseq:
    size = pool_size(nw)
    bits = Bitseq(size)
    bits.set(0)
    if nw.version == 4 and size > 1:
        bits.set(size - 1)
    return bits


class _Space:
    """One address space: its pools and bitmasks, cached from its store."""

    def __init__(self, name: str, store: Store | None, predefined: PredefinedPools) -> None:
        self.name = name
        self.store = store
        self.predefined = predefined
        self.pools: dict[str, _Pool] = {}
        self.masks: dict[str, JournaledBitmask] = {}
        self.version = 0
        self.version_index: int | None = None
        # Sorted, disjoint (first, last) integer ranges of master pools, per IP version.
        self.ranges: dict[int, list[tuple[int, int]]] = {4: [], 6: []}
        self.hint: dict[int, int] = {4: 0, 6: 0}

    @property
    def version_key(self) -> str:
        return f"ipam/{self.name}/version"

    def pool_key(self, key: SubnetKey) -> str:
        tail = f"{key.subnet}/{key.child}" if key.child else key.subnet
        return f"ipam/{self.name}/pool/{tail}"

    def bits_base(self, key: SubnetKey) -> str:
        return f"ipam/{self.name}/bits/{key.subnet}"

    # -- cache ------------------------------------------------------------------

    def refresh(self) -> None:
        """Re-reads the pools if another allocator changed them."""
        if self.store is None:
            return
        try:
            e = self.store.get(self.version_key)
            index, version = e.index, int(e.value)
        except KeyNotFound:
            index, version = None, 0
        if index == self.version_index:
            return
        pools: dict[str, _Pool] = {}
        for entry in self.store.list(f"ipam/{self.name}/pool/"):
            v = entry.value
            nw = ipaddress.ip_network(v["pool"])
            sub = ipaddress.ip_network(v["sub_pool"]) if v["sub_pool"] else None
            key = SubnetKey(self.name, str(nw), str(sub) if sub else "")
            pools[str(key)] = _Pool(key, nw, sub, int(v["refs"]))
        self.pools = pools
        self.masks = {k: m for k, m in self.masks.items() if k in pools}
        self._rebuild_ranges()
        self.version, self.version_index = version, index

    def _rebuild_ranges(self) -> None:
        self.ranges = {4: [], 6: []}
        for p in self.pools.values():
            if p.sub is None:
                self.ranges[p.network.version].append(_span(p.network))
        for r in self.ranges.values():
            r.sort()
        self.hint = {4: 0, 6: 0}

    def overlaps(self, nw: Network) -> bool:
        ranges = self.ranges[nw.version]
        first, last = _span(nw)
        i = bisect.bisect_right(ranges, (last, 1 << 128))
        return i > 0 and ranges[i - 1][1] >= first

    def next_predefined(self, version: int) -> Network:
        pre = self.predefined
        for i in range(self.hint[version], len(pre)):
            cand = pre[i]
            if cand.version == version and not self.overlaps(cand):
                self.hint[version] = i
                return cand
        raise NoAvailablePool(
            f"no available, non-overlapping IPv{version} pool among the predefined pools "
            f"of address space {self.name}"
        )

    def mask(self, pool: _Pool) -> JournaledBitmask:
        m = self.masks.get(pool.master_id)
        if m is None:
            assert self.store is not None, "in-memory pools always have their bitmask"
            m = JournaledBitmask.load(self.store, self.bits_base(pool.key))
            self.masks[pool.master_id] = m
        return m

    # -- changes ----------------------------------------------------------------

    def commit(
        self,
        changes: Mapping[str, _Pool | None],
        new_mask: tuple[str, JournaledBitmask] | None = None,
    ) -> None:
        """Stores pool changes (None: removed) with the bitmask of a new master pool
        (its id and bitmask) and removes the bitmasks of removed masters, then applies
        it all to the cache. Raises KeyModified if another allocator won."""
        removed_masks = [self.masks[k] for k, p in changes.items() if p is None and k in self.masks]
        if self.store is not None:
            ops: list[Op] = [Put(self.version_key, self.version + 1, self.version_index)]
            for pid, p in changes.items():
                if p is None:
                    old = self.pools[pid]
                    ops.append(Delete(self.pool_key(old.key)))
                else:
                    ops.append(Put(self.pool_key(p.key), p.to_value()))
            for m in removed_masks:
                ops += m.destroy_ops()
            if new_mask is not None:
                ops += new_mask[1].create_ops()
            indexes = self.store.commit(ops)
            self.version_index = indexes[0]
            if new_mask is not None:
                new_mask[1].created(indexes[-1])
        self.version += 1
        for pid, p in changes.items():
            if p is None:
                old = self.pools.pop(pid)
                if old.sub is None:
                    self.ranges[old.network.version].remove(_span(old.network))
                    self.hint[old.network.version] = 0
                    self.masks.pop(pid, None)
            else:
                if pid not in self.pools and p.sub is None:
                    bisect.insort(self.ranges[p.network.version], _span(p.network))
                self.pools[pid] = p
        if new_mask is not None:
            self.masks[new_mask[0]] = new_mask[1]

    def add(self, key: SubnetKey, nw: Network, sub: Network | None) -> None:
        changes: dict[str, _Pool | None] = {}
        new_mask: tuple[str, JournaledBitmask] | None = None
        existing = self.pools.get(str(key))
        if existing is not None:
            changes[existing.id] = existing.with_refs(existing.refs + 1)
            if existing.sub is not None:
                parent = self.pools[str(key.parent)]
                changes[parent.id] = parent.with_refs(parent.refs + 1)
        else:
            if sub is not None:
                changes[str(key)] = _Pool(key, nw, sub, 1)
            master = self.pools.get(str(key.parent))
            if master is not None:
                changes[master.id] = master.with_refs(master.refs + 1)
            else:
                if self.overlaps(nw):
                    raise PoolOverlap(
                        f"pool {nw} overlaps with another pool in address space {self.name}"
                    )
                changes[str(key.parent)] = _Pool(key.parent, nw, None, 1)
                mask = JournaledBitmask(self.store, self.bits_base(key), _new_bits(nw))
                new_mask = (str(key.parent), mask)
        self.commit(changes, new_mask)

    def remove(self, pool: _Pool) -> None:
        if pool.sub is None and pool.refs == 1:
            subs = sorted(p.id for p in self.pools.values() if p.master_id == pool.id != p.id)
            if subs:
                # Only reachable by releasing a master more often than it was requested:
                # the sub-pools hold references on it. Removing it would orphan them.
                raise InvalidRequest(
                    f"pool {pool.id!r} is still used by sub-pools {', '.join(subs)}: "
                    f"release those first"
                )
        changes: dict[str, _Pool | None] = {}
        chain = [pool] if pool.sub is None else [pool, self.pools[str(pool.key.parent)]]
        for p in chain:
            changes[p.id] = p.with_refs(p.refs - 1) if p.refs > 1 else None
        self.commit(changes)


def _span(nw: Network) -> tuple[int, int]:
    return int(nw.network_address), int(nw.broadcast_address)


class Allocator:
    """libnetwork's default IPAM. Either store may be None: that address space is
    then kept in memory only."""

    def __init__(
        self,
        local_store: Store | None = None,
        global_store: Store | None = None,
        *,
        local_pools: Sequence[tuple[str, int]] | None = None,
        global_pools: Sequence[tuple[str, int]] | None = None,
    ) -> None:
        self._lock = threading.RLock()
        self._spaces = {
            LOCAL_DEFAULT: _Space(
                LOCAL_DEFAULT, local_store, PredefinedPools.of(local_pools, LOCAL_SCOPE_DEFAULTS)
            ),
            GLOBAL_DEFAULT: _Space(
                GLOBAL_DEFAULT,
                global_store,
                PredefinedPools.of(global_pools, GLOBAL_SCOPE_DEFAULTS),
            ),
        }
        for space in self._spaces.values():
            space.refresh()

    def get_default_address_spaces(self) -> tuple[str, str]:
        """The local and global default address spaces."""
        return LOCAL_DEFAULT, GLOBAL_DEFAULT

    def _space(self, name: object) -> _Space:
        space = self._spaces.get(name) if isinstance(name, str) else None
        if space is None:
            raise InvalidAddressSpace(
                f"invalid address space {name!r}: expected {LOCAL_DEFAULT!r} or {GLOBAL_DEFAULT!r}"
            )
        return space

    # -- pools ------------------------------------------------------------------

    def request_pool(
        self,
        address_space: str,
        pool: str | Network = "",
        sub_pool: str | Network = "",
        options: Mapping[str, str] | None = None,
        v6: bool = False,
    ) -> tuple[str, Network, dict[str, str]]:
        """Reserves `pool` (or the next free predefined pool when empty), optionally
        restricted to `sub_pool`. Requesting the same pool again counts a reference and
        returns the same id."""
        space = self._space(address_space)
        if not pool and sub_pool:
            raise InvalidSubPool(f"sub-pool {sub_pool!r} given without a pool")
        nw: Network | None = None
        sub: Network | None = None
        if pool:
            # As in libnetwork, an explicit pool's own family wins over `v6`, which
            # only chooses the family of a predefined pool.
            nw = parse_network(pool, "pool", InvalidPool)
            pool_size(nw)
            if sub_pool:
                sub = sub_range(nw, sub_pool)[0]
        with self._lock:
            for _ in range(MAX_ATTEMPTS):
                space.refresh()
                network = nw if nw is not None else space.next_predefined(6 if v6 else 4)
                key = SubnetKey(space.name, str(network), str(sub) if sub is not None else "")
                try:
                    space.add(key, network, sub)
                except (KeyModified, KeyExists):
                    continue
                return str(key), network, {}
        raise KeyModified(f"request_pool gave up after {MAX_ATTEMPTS} conflicting writes")

    def release_pool(self, pool_id: str) -> None:
        """Drops one reference to the pool; the last one frees it and its addresses."""
        key = SubnetKey.parse(pool_id)
        space = self._space(key.space)
        with self._lock:
            for _ in range(MAX_ATTEMPTS):
                space.refresh()
                p = space.pools.get(str(key))
                if p is None:
                    raise BadPool(f"address space {space.name} has no pool {pool_id!r}")
                try:
                    space.remove(p)
                except (KeyModified, KeyExists):
                    continue
                return
        raise KeyModified(f"release_pool gave up after {MAX_ATTEMPTS} conflicting writes")

    def pools(self, address_space: str | None = None) -> list[PoolInfo]:
        """The pools reserved now, in the given address space or in both."""
        names = [address_space] if address_space is not None else list(self._spaces)
        out = []
        with self._lock:
            for name in names:
                space = self._space(name)
                space.refresh()
                for p in sorted(space.pools.values(), key=lambda p: p.id):
                    m = space.mask(p)
                    if m.store is not None:
                        m.catch_up()
                    out.append(PoolInfo(p.id, p.network, p.sub, p.refs, m.bits.unselected))
        return out

    # -- addresses ----------------------------------------------------------------

    def _pool(self, pool_id: str) -> tuple[_Space, _Pool]:
        # Fast path: a pool id this allocator has seen, straight from the cache.
        space = self._spaces.get(pool_id.partition("/")[0]) if isinstance(pool_id, str) else None
        if space is not None:
            p = space.pools.get(pool_id)
            if p is not None:
                return space, p
        key = SubnetKey.parse(pool_id)
        space = self._spaces.get(key.space)
        if space is None:
            raise PoolNotFound(f"no pool {pool_id!r}: unknown address space {key.space!r}")
        space.refresh()
        found = space.pools.get(str(key))
        if found is None:
            raise PoolNotFound(f"cannot find address pool for pool id {pool_id!r}")
        return space, found

    def _mask(self, space: _Space, p: _Pool) -> JournaledBitmask:
        try:
            return space.mask(p)
        except KeyNotFound:
            space.refresh()
            raise PoolNotFound(f"pool {p.id!r} was released") from None

    def request_address(
        self,
        pool_id: str,
        prefer: str | ipaddress.IPv4Address | ipaddress.IPv6Address | Interface | None = None,
        options: Mapping[str, str] | None = None,
    ) -> tuple[Interface, dict[str, str]]:
        """Allocates an address of the pool (`prefer` if given): the lowest free one, or
        with option ALLOC_SERIAL="true" the next after the last handed out. A gateway
        request (REQUEST_ADDRESS_TYPE=GATEWAY) always takes the lowest free one."""
        with self._lock:
            space, p = self._pool(pool_id)
            serial = False
            if options:
                serial = options.get(ALLOC_SERIAL) == "true" and (
                    options.get(REQUEST_ADDRESS_TYPE) != GATEWAY
                )
            change: Callable[[Bitseq], tuple[int, int, int]]
            if prefer is None:
                lo, hi = p.lo, p.hi

                def change(b: Bitseq) -> tuple[int, int, int]:
                    o = b.set_any_in_range(lo, hi, serial)
                    return OP_SET_ANY, o, o
            else:
                addr = parse_address(prefer)
                if addr.version != p.network.version or addr not in p.network:
                    raise IPOutOfRange(f"requested address {addr} is not in pool {p.network}")
                wanted = int(addr) - p.base

                def change(b: Bitseq) -> tuple[int, int, int]:
                    b.set(wanted)
                    return OP_SET, wanted, wanted

            try:
                ordinal = self._mask(space, p).mutate(change)
            except NoBitAvailable:
                where = f"range {p.sub} of pool {p.network}" if p.sub else f"pool {p.network}"
                raise NoAvailableIPs(f"no available addresses in {where}") from None
            except BitAlreadyAllocated:
                raise IPAlreadyAllocated(
                    f"address {ipaddress.ip_address(p.base + wanted)} is already in use"
                ) from None
            except KeyNotFound:
                space.refresh()
                raise PoolNotFound(f"pool {pool_id!r} was released") from None
            return p.iface((p.base + ordinal, p.prefixlen)), {}

    def release_address(self, pool_id: str, address: object) -> None:
        """Frees an address of the pool (a no-op if it is not allocated)."""
        with self._lock:
            space, p = self._pool(pool_id)
            if address is None:
                raise InvalidRequest(f"release_address on {pool_id!r}: no address given")
            addr = parse_address(address)
            if addr.version != p.network.version or addr not in p.network:
                raise IPOutOfRange(f"address {addr} is not in pool {p.network}")
            ordinal = int(addr) - p.base
            if p.reserved(ordinal):
                raise InvalidRequest(
                    f"address {addr} is reserved in pool {p.network} and is never allocated"
                )

            def change(b: Bitseq) -> tuple[int, int, None]:
                return (OP_UNSET if b.unset(ordinal) else OP_NONE), ordinal, None

            try:
                self._mask(space, p).mutate(change)
            except KeyNotFound:
                space.refresh()
                raise PoolNotFound(f"pool {pool_id!r} was released") from None

    def in_use(self, pool_id: str, address: object) -> bool:
        """Whether `address` is allocated (or reserved) in the pool, as the store has it."""
        with self._lock:
            space, p = self._pool(pool_id)
            addr = parse_address(address)
            if addr.version != p.network.version or addr not in p.network:
                raise IPOutOfRange(f"address {addr} is not in pool {p.network}")
            m = self._mask(space, p)
            if m.store is not None:
                m.catch_up()
            return m.bits.is_set(int(addr) - p.base)

    def bitmask(self, pool_id: str) -> Bitseq:
        """A copy of the pool's (master's) address bitmask, as the store has it."""
        with self._lock:
            space, p = self._pool(pool_id)
            m = self._mask(space, p)
            if m.store is not None:
                m.catch_up()
            return m.bits.copy()


__all__ = ["Allocator", "PoolInfo"]
