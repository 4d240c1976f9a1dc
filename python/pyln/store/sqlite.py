"""Local-scope datastore in one SQLite file (WAL mode): the embedded default.

Every committed write survives a kill -9 of the writer (WAL, synchronous=NORMAL);
several processes may share the file, SQLite's locks serialise their writes."""

from __future__ import annotations

import builtins
import json
import os
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pyln.errors import (
    BadRequest,
    InvalidStoreData,
    KeyExists,
    KeyModified,
    KeyNotFound,
    StoreError,
)
from pyln.store.base import (
    ANY,
    LOCAL,
    SCOPES,
    Check,
    Delete,
    DeletePrefix,
    Entry,
    Key,
    Op,
    Put,
    Store,
    make_key,
)

DB_FILE = "local-kv.db"
_SCHEMA_VERSION = 1
# Keys sort bytewise; this code point sorts after any character a key may hold.
_PREFIX_END = "\U0010ffff"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    idx   INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT OR IGNORE INTO meta(name, value) VALUES ('rev', 0), ('schema', 1);
"""

_APPEND = (
    "INSERT INTO kv(key, value, idx) SELECT ?, ?, 0 WHERE (SELECT idx FROM kv WHERE key = ?) = ?"
)


_dumps = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


def _encode(key: str, value: Any) -> str:
    try:
        return _dumps(value)
    except (TypeError, ValueError) as e:
        raise BadRequest(f"value for store key {key!r} is not JSON-serialisable: {e}") from e


def _decode(key: str, text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as e:
        raise InvalidStoreData(f"store key {key!r} holds a value that is not JSON: {e}") from e


class SQLiteStore(Store):
    """A datastore in one SQLite file; `path` may name the file or a state directory."""

    def __init__(self, path: str | os.PathLike[str], scope: str = LOCAL) -> None:
        if scope not in SCOPES:
            raise BadRequest(f"unknown store scope {scope!r}: expected one of {SCOPES}")
        p = Path(path)
        if p.is_dir():
            p = p / DB_FILE
        p.parent.mkdir(parents=True, exist_ok=True)
        self.scope = scope
        self.path = p
        self._lock = threading.RLock()
        try:
            self._db = sqlite3.connect(
                str(p), isolation_level=None, check_same_thread=False, timeout=60.0
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            (version,) = self._db.execute("SELECT value FROM meta WHERE name='schema'").fetchone()
        except sqlite3.DatabaseError as e:
            raise StoreError(f"cannot open SQLite store {p}: {e}") from e
        if version != _SCHEMA_VERSION:
            raise StoreError(f"SQLite store {p} has schema {version}, expected {_SCHEMA_VERSION}")

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r}, scope={self.scope!r})"

    def get(self, key: Key) -> Entry:
        k = make_key(key)
        with self._lock:
            row = self._db.execute("SELECT value, idx FROM kv WHERE key = ?", (k,)).fetchone()
        if row is None:
            raise KeyNotFound(f"no object under key {k!r}")
        return Entry(k, _decode(k, row[0]), row[1])

    def list(self, prefix: Key, start_after: str | None = None) -> builtins.list[Entry]:
        p = make_key(prefix)
        lo, op = (p, ">=") if start_after is None or start_after < p else (start_after, ">")
        with self._lock:
            rows = self._db.execute(
                f"SELECT key, value, idx FROM kv WHERE key {op} ? AND key < ? ORDER BY key",
                (lo, p + _PREFIX_END),
            ).fetchall()
        return [Entry(k, _decode(k, v), i) for k, v, i in rows]

    def append(self, key: Key, value: Any, guard_key: Key, guard_index: int) -> None:
        k = make_key(key)
        text = _encode(k, value)
        g = make_key(guard_key)
        with self._lock:
            try:
                cur = self._db.execute(_APPEND, (k, text, g, guard_index))
            except sqlite3.IntegrityError as e:
                raise KeyExists(f"journal record {k!r} already exists") from e
        if cur.rowcount != 1:
            raise KeyModified(f"{g!r} is no longer at index {guard_index}: append of {k!r} refused")

    def commit(self, ops: Iterable[Op]) -> builtins.list[int]:
        ops = list(ops)
        encoded = [_encode(op.key, op.value) if isinstance(op, Put) else None for op in ops]
        out: builtins.list[int] = []
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                rev: int | None = None
                for op, text in zip(ops, encoded, strict=True):
                    if isinstance(op, DeletePrefix):
                        hi = op.upto if op.upto is not None else op.prefix + _PREFIX_END
                        cmp = "<=" if op.upto is not None else "<"
                        db.execute(
                            f"DELETE FROM kv WHERE key >= ? AND key {cmp} ?", (op.prefix, hi)
                        )
                        continue
                    row = db.execute("SELECT idx FROM kv WHERE key = ?", (op.key,)).fetchone()
                    current = None if row is None else row[0]
                    want = op.index
                    if want is not ANY and want != current:
                        raise _mismatch(op.key, want, current)
                    if isinstance(op, Put):
                        if rev is None:
                            (rev,) = db.execute(
                                "UPDATE meta SET value = value + 1 WHERE name = 'rev' "
                                "RETURNING value"
                            ).fetchone()
                        db.execute(
                            "INSERT INTO kv(key, value, idx) VALUES (?, ?, ?) "
                            "ON CONFLICT(key) DO UPDATE SET value = excluded.value, "
                            "idx = excluded.idx",
                            (op.key, text, rev),
                        )
                        out.append(rev)
                    elif isinstance(op, Delete):
                        db.execute("DELETE FROM kv WHERE key = ?", (op.key,))
                    elif not isinstance(op, Check):
                        raise BadRequest(f"unknown store operation {op!r}")
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return out

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _mismatch(key: str, want: int | object | None, current: int | None) -> StoreError:
    if want is None:
        return KeyExists(f"key {key!r} already exists (index {current})")
    if current is None:
        return KeyNotFound(f"no object under key {key!r} (expected index {want})")
    return KeyModified(f"key {key!r} changed: index {current}, expected {want}")
