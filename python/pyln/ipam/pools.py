"""Predefined address pools (libnetwork's ipamutils): the networks handed out when
a pool is requested without naming one, in a fixed order."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pyln.ipam.errors import InvalidPool
from pyln.ipam.subnet import Network, parse_network

# (base, size): base split into networks of prefix length `size`.
LOCAL_SCOPE_DEFAULTS: tuple[tuple[str, int], ...] = (
    ("172.17.0.0/16", 16),
    ("172.18.0.0/16", 16),
    ("172.19.0.0/16", 16),
    ("172.20.0.0/14", 16),
    ("172.24.0.0/14", 16),
    ("172.28.0.0/14", 16),
    ("192.168.0.0/16", 20),
)
GLOBAL_SCOPE_DEFAULTS: tuple[tuple[str, int], ...] = (("10.0.0.0/8", 24),)


@dataclass(frozen=True)
class _Split:
    start: int  # first address of the first network
    step: int  # addresses per network
    count: int
    prefixlen: int
    version: int


class PredefinedPools:
    """An ordered list of candidate networks, indexed without materialising it
    (the global default alone is 65,536 networks)."""

    def __init__(self, splits: Iterable[tuple[str, int]]) -> None:
        self._splits: list[_Split] = []
        for base, size in splits:
            nw = parse_network(base, "default address pool", InvalidPool)
            if not isinstance(size, int) or not nw.prefixlen <= size <= nw.max_prefixlen:
                raise InvalidPool(
                    f"default address pool {base}: size /{size} must be between "
                    f"/{nw.prefixlen} and /{nw.max_prefixlen}"
                )
            self._splits.append(
                _Split(
                    int(nw.network_address),
                    1 << (nw.max_prefixlen - size),
                    1 << (size - nw.prefixlen),
                    size,
                    nw.version,
                )
            )
        self._len = sum(s.count for s in self._splits)

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, i: int) -> Network:
        if i < 0:
            raise IndexError(i)
        for s in self._splits:
            if i < s.count:
                return ipaddress.ip_network((s.start + i * s.step, s.prefixlen))
            i -= s.count
        raise IndexError(i)

    @classmethod
    def of(
        cls, splits: Sequence[tuple[str, int]] | None, default: Sequence[tuple[str, int]]
    ) -> PredefinedPools:
        """The configured pools, or the defaults when none are configured."""
        return cls(default if splits is None else splits)


def as_list(pools: PredefinedPools) -> list[Network]:
    """Every candidate, for tests and small lists."""
    return [pools[i] for i in range(len(pools))]
