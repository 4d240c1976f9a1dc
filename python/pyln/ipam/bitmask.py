"""A pool's address bitmask kept durable as a snapshot plus a journal.

libnetwork rewrote the whole serialized bitmask on every allocation, so the cost
of one allocation grew with the pool's fragmentation. Here an allocation appends
one small journal record, guarded by the snapshot's index so that writers in
other processes (and compaction) are detected; the snapshot is rewritten only
every `compact_every` records, at least four times its run count, so the store
cost per allocation stays O(1) amortised. The snapshot holds libnetwork's
bitseq bytes.

Layout under `base` (e.g. "ipam/LocalDefault/bits/172.17.0.0/16"):
  base/snap             {"bytes": hex bitseq, "seq": N, "cursor": serial cursor}
  base/log/<seq hex16>  [op, ordinal], seq = N+1, N+2, ...
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from pyln._core import Bitseq
from pyln.errors import InvalidStoreData, KeyExists, KeyModified, KeyNotFound
from pyln.store.base import Delete, DeletePrefix, Op, Put, Store

T = TypeVar("T")

# Journal operations; OP_NONE: the change left the bitmask as it was.
OP_NONE, OP_UNSET, OP_SET_ANY, OP_SET = -1, 0, 1, 2
# Compact when the journal since the snapshot holds this many records, and at least
# COMPACT_RUN_FACTOR times the bitmask's run count (so rewriting it stays O(1) amortised).
MIN_COMPACT_EVERY = 4096
COMPACT_RUN_FACTOR = 4
MAX_ATTEMPTS = 1000


def _log_key(base: str, seq: int) -> str:
    return f"{base}/log/{seq:016x}"


class JournaledBitmask:
    """A Bitseq mirrored to a store (or only in memory when `store` is None)."""

    __slots__ = ("base", "bits", "seq", "snap_index", "snap_seq", "store")

    def __init__(self, store: Store | None, base: str, bits: Bitseq) -> None:
        self.store = store
        self.base = base
        self.bits = bits
        self.seq = 0  # last journal record applied
        self.snap_seq = 0  # journal position the snapshot includes
        self.snap_index = 0

    # -- creation and loading -------------------------------------------------

    def snapshot_value(self) -> dict[str, object]:
        return {
            "bytes": self.bits.to_bytes().hex(),
            "seq": self.seq,
            "cursor": self.bits.serial_cursor,
        }

    def create_ops(self) -> list[Op]:
        """Store operations that create this (new) bitmask: commit them with the pool."""
        return [
            DeletePrefix(self.base + "/"),
            Put(self.base + "/snap", self.snapshot_value(), None),
        ]

    def destroy_ops(self) -> list[Op]:
        """Store operations that remove this bitmask and its journal."""
        return [Delete(self.base + "/snap"), DeletePrefix(self.base + "/")]

    def created(self, snap_index: int) -> None:
        """Records the snapshot index the store gave `create_ops`."""
        self.snap_index = snap_index

    @classmethod
    def load(cls, store: Store, base: str) -> JournaledBitmask:
        """Reads the snapshot and replays the journal after it."""
        m = cls(store, base, Bitseq(1))
        m.reload()
        return m

    def reload(self) -> None:
        """Re-reads the snapshot and journal, dropping the in-memory state."""
        assert self.store is not None
        snap = self.store.get(self.base + "/snap")
        v = snap.value
        try:
            bits = Bitseq.from_bytes(bytes.fromhex(v["bytes"]))
            bits.serial_cursor = int(v["cursor"])
            seq = int(v["seq"])
        except (KeyError, TypeError, ValueError) as e:
            raise InvalidStoreData(f"bitmask snapshot {self.base}/snap is malformed: {e}") from e
        self.bits, self.seq, self.snap_seq, self.snap_index = bits, seq, seq, snap.index
        self._replay_after(seq)

    def catch_up(self) -> None:
        """Applies what other writers journaled since this copy last looked."""
        assert self.store is not None
        snap = self.store.get(self.base + "/snap")
        if snap.index != self.snap_index:
            self.reload()
        else:
            self._replay_after(self.seq)

    def _replay_after(self, seq: int) -> None:
        assert self.store is not None
        records = self.store.list(self.base + "/log/", start_after=_log_key(self.base, seq))
        for rec in records:
            seq += 1
            if rec.key != _log_key(self.base, seq):
                raise InvalidStoreData(f"journal of {self.base} skips from {seq - 1} to {rec.key}")
            try:
                op, ordinal = rec.value
                if op == OP_UNSET:
                    self.bits.unset(ordinal)
                elif op in (OP_SET_ANY, OP_SET):
                    self.bits.set(ordinal)
                    if op == OP_SET_ANY:
                        self.bits.serial_cursor = (ordinal + 1) % (1 << 64)
                else:
                    raise ValueError(f"unknown operation {op!r}")
            except (TypeError, ValueError, IndexError) as e:
                raise InvalidStoreData(f"journal record {rec.key} is malformed: {e}") from e
        self.seq = seq

    # -- mutation ---------------------------------------------------------------

    def mutate(self, change: Callable[[Bitseq], tuple[int, int, T]]) -> T:
        """Runs `change` on the bitmask, which returns (op, ordinal, result), and makes
        it durable before returning `result`. If another writer got there first, the
        bitmask is brought up to date and `change` runs again on the new state. An
        error from `change` on a possibly stale copy is raised only after a refresh
        confirms it."""
        if self.store is None:
            return change(self.bits)[2]
        refreshed = False
        for _ in range(MAX_ATTEMPTS):
            try:
                op, ordinal, result = change(self.bits)
            except Exception:
                if refreshed:
                    raise
                self.catch_up()
                refreshed = True
                continue
            if op == OP_NONE:
                return result
            try:
                self.store.append(
                    _log_key(self.base, self.seq + 1),
                    [op, ordinal],
                    self.base + "/snap",
                    self.snap_index,
                )
            except (KeyExists, KeyModified):
                self.reload()  # raises KeyNotFound if the pool is gone
                refreshed = True
                continue
            except BaseException:
                # The change is in memory but not in the store: drop it.
                self.reload()
                raise
            self.seq += 1
            if self.seq - self.snap_seq >= max(
                MIN_COMPACT_EVERY, COMPACT_RUN_FACTOR * self.bits.run_count
            ):
                self._compact()
            return result
        raise KeyModified(f"bitmask {self.base}: gave up after {MAX_ATTEMPTS} conflicting writes")

    def _compact(self) -> None:
        """Folds the journal into a new snapshot (one transaction)."""
        assert self.store is not None
        ops: list[Op] = [
            Put(self.base + "/snap", self.snapshot_value(), self.snap_index),
            DeletePrefix(self.base + "/log/", _log_key(self.base, self.seq)),
        ]
        try:
            (self.snap_index,) = self.store.commit(ops)
            self.snap_seq = self.seq
        except (KeyModified, KeyNotFound):
            # Someone else compacted or removed the pool: the next write will reload.
            pass
