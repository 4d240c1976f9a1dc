"""The datastore contract, in the manner of libnetwork's datastore: JSON objects
under key paths, each with an index that changes on every write, so writers can
compare-and-swap. Local scope is SQLite (the embedded default); global scope
(etcd) implements the same interface."""

from __future__ import annotations

import builtins
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

from pyln.errors import BadRequest

LOCAL: Final = "local"
GLOBAL: Final = "global"
SCOPES: Final = (LOCAL, GLOBAL)

Key = str | Sequence[str]


class Entry(NamedTuple):
    """An object read from the store: its key, decoded JSON value and index."""

    key: str
    value: Any
    index: int  # type: ignore[assignment]  # the store's word; shadows tuple.index


class _Any:
    """Marker: an operation that does not compare the object's index."""

    def __repr__(self) -> str:
        return "ANY"


ANY: Final = _Any()
"""Index wildcard for `Put` and `Delete`: no compare."""


@dataclass(frozen=True)
class Put:
    """Write `value` under `key`. index: ANY (no compare), None (must not exist), or
    the index the object must still have."""

    key: str
    value: Any
    index: int | _Any | None = ANY


@dataclass(frozen=True)
class Delete:
    """Remove `key`. index: ANY (absent is fine) or the index it must still have."""

    key: str
    index: int | _Any = ANY


@dataclass(frozen=True)
class DeletePrefix:
    """Remove every object whose key starts with `prefix` and sorts at or before `upto`
    (None: all of them). Journal compaction uses the bound."""

    prefix: str
    upto: str | None = None


@dataclass(frozen=True)
class Check:
    """Abort the transaction unless `key` has `index` (None: unless it is absent)."""

    key: str
    index: int | None


Op = Put | Delete | DeletePrefix | Check


def make_key(key: Key) -> str:
    """Joins key parts with '/' and refuses empty keys or parts."""
    if type(key) is str and key and key[0] != "/" and "//" not in key:
        return key
    if isinstance(key, str):
        parts = [key]
    else:
        parts = list(key)
        if not all(isinstance(p, str) for p in parts):
            raise BadRequest(f"store key parts must be strings: {key!r}")
    text = "/".join(parts)
    if not text or any(p == "" for p in parts) or text.startswith("/") or "//" in text:
        raise BadRequest(f"invalid store key {key!r}: empty path component")
    return text


class Store(ABC):
    """A key-value object store with per-object indexes for atomic updates."""

    scope: str

    @abstractmethod
    def get(self, key: Key) -> Entry:
        """The object under `key`; raises KeyNotFound."""

    @abstractmethod
    def list(self, prefix: Key, start_after: str | None = None) -> builtins.list[Entry]:
        """Every object whose key starts with `prefix` (a plain string prefix: end it
        with '/' to list a folder), in key order; only keys after `start_after` if given."""

    @abstractmethod
    def commit(self, ops: Iterable[Op]) -> builtins.list[int]:
        """Applies all of `ops` atomically, or none: raises KeyExists, KeyModified or
        KeyNotFound naming the first comparison that failed. Returns the new index of
        each Put, in order."""

    @abstractmethod
    def append(self, key: Key, value: Any, guard_key: Key, guard_index: int) -> None:
        """Creates an immutable journal record under `key` if `key` is absent and
        `guard_key` still has `guard_index`: one cheap write, the hot path of durable
        allocators. Raises KeyExists or KeyModified. Records carry index 0: they are
        never compared, only listed and deleted by prefix."""

    @abstractmethod
    def close(self) -> None:
        """Releases the store's resources."""

    def put(self, key: Key, value: Any) -> int:
        """Writes `value` unconditionally; returns the new index."""
        return self.commit([Put(make_key(key), value)])[0]

    def put_atomic(self, key: Key, value: Any, index: int | None) -> int:
        """Writes `value` if the object still has `index` (None: if it does not exist
        yet); raises KeyModified, KeyExists or KeyNotFound otherwise."""
        return self.commit([Put(make_key(key), value, index)])[0]

    def delete(self, key: Key) -> None:
        """Removes `key` if present."""
        self.commit([Delete(make_key(key))])

    def delete_atomic(self, key: Key, index: int) -> None:
        """Removes `key` if it still has `index`; raises KeyModified or KeyNotFound."""
        self.commit([Delete(make_key(key), index)])

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
