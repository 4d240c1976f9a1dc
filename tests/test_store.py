"""The datastore contract on the SQLite local store."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pyln.errors import BadRequest
from pyln.store import (
    ANY,
    Check,
    Delete,
    DeletePrefix,
    InvalidStoreData,
    KeyExists,
    KeyModified,
    KeyNotFound,
    Put,
    SQLiteStore,
    StoreError,
)

from conftest import run_python


def test_put_get_list_delete(store: SQLiteStore) -> None:
    i1 = store.put("net/a", {"name": "a"})
    i2 = store.put(("net", "b"), [1, 2])
    store.put("netx", "outside the folder")
    assert i2 > i1
    assert store.get("net/a").value == {"name": "a"}
    assert store.get(["net", "b"]).index == i2
    assert [e.key for e in store.list("net/")] == ["net/a", "net/b"]
    assert [e.key for e in store.list("net/", start_after="net/a")] == ["net/b"]
    store.delete("net/a")
    with pytest.raises(KeyNotFound, match="net/a"):
        store.get("net/a")
    store.delete("net/a")  # absent is fine for a plain delete
    assert store.scope == "local"


def test_put_atomic_compare_and_swap(store: SQLiteStore) -> None:
    i1 = store.put_atomic("obj", {"v": 1}, None)
    with pytest.raises(KeyExists):
        store.put_atomic("obj", {"v": 2}, None)
    i2 = store.put_atomic("obj", {"v": 2}, i1)
    with pytest.raises(KeyModified, match="obj"):
        store.put_atomic("obj", {"v": 3}, i1)
    assert store.get("obj") == ("obj", {"v": 2}, i2)
    with pytest.raises(KeyNotFound):
        store.put_atomic("missing", 1, 5)


def test_delete_atomic(store: SQLiteStore) -> None:
    i1 = store.put("obj", 1)
    store.put("obj", 2)
    with pytest.raises(KeyModified):
        store.delete_atomic("obj", i1)
    assert store.get("obj").value == 2
    store.delete_atomic("obj", store.get("obj").index)
    with pytest.raises(KeyNotFound):
        store.delete_atomic("obj", i1)


def test_index_never_reused_after_delete(store: SQLiteStore) -> None:
    """A deleted and re-created object must not match a stale index (no ABA)."""
    old = store.put_atomic("obj", "first", None)
    store.delete_atomic("obj", old)
    new = store.put_atomic("obj", "second", None)
    assert new != old
    with pytest.raises(KeyModified):
        store.put_atomic("obj", "third", old)


def test_commit_is_all_or_nothing(store: SQLiteStore) -> None:
    store.put("a", 1)
    guard = store.put("guard", 0)
    store.put("log/1", "x")
    store.put("log/2", "y")
    with pytest.raises(KeyModified):
        store.commit([Put("a", 2), DeletePrefix("log/"), Check("guard", guard + 100)])
    assert store.get("a").value == 1
    assert len(store.list("log/")) == 2
    idx = store.commit([Put("a", 3), DeletePrefix("log/", "log/1"), Check("guard", guard)])
    assert store.get("a") == ("a", 3, idx[0])
    assert [e.key for e in store.list("log/")] == ["log/2"]
    store.commit([Delete("a", ANY), Check("b", None)])
    with pytest.raises(KeyNotFound):
        store.get("a")


def test_append_is_guarded(store: SQLiteStore) -> None:
    g = store.put("snap", "s")
    store.append("j/0001", [1, 2], "snap", g)
    with pytest.raises(KeyExists):
        store.append("j/0001", [9, 9], "snap", g)
    store.put("snap", "compacted")
    with pytest.raises(KeyModified):
        store.append("j/0002", [1, 3], "snap", g)
    assert [e.value for e in store.list("j/")] == [[1, 2]]


def test_reopen_sees_everything(store_path: Path) -> None:
    with SQLiteStore(store_path) as s:
        idx = s.put("k", {"deep": [1, {"x": None}]})
    with SQLiteStore(store_path) as s:
        assert s.get("k") == ("k", {"deep": [1, {"x": None}]}, idx)
        assert s.path == store_path / "local-kv.db"


@pytest.mark.parametrize("key", ["", "/abs", "a//b", ("a", ""), ("a", 1)])
def test_bad_keys_are_refused(store: SQLiteStore, key: object) -> None:
    with pytest.raises(BadRequest, match="key"):
        store.put(key, 1)  # type: ignore[arg-type]


def test_bad_values_store_nothing(store: SQLiteStore) -> None:
    with pytest.raises(BadRequest, match="JSON"):
        store.put("k", {"x": object()})
    with pytest.raises(BadRequest, match="JSON"):
        store.put("k", float("nan"))
    with pytest.raises(KeyNotFound):
        store.get("k")


def test_corrupt_value_is_a_typed_error(store: SQLiteStore) -> None:
    store.put("k", 1)
    raw = sqlite3.connect(store.path)
    raw.execute("UPDATE kv SET value = '{not json' WHERE key = 'k'")
    raw.commit()
    raw.close()
    with pytest.raises(InvalidStoreData, match="'k'"):
        store.get("k")


def test_not_a_database(tmp_path: Path) -> None:
    bad = tmp_path / "junk.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match=r"junk\.db"):
        SQLiteStore(bad)
    with pytest.raises(BadRequest, match="scope"):
        SQLiteStore(tmp_path / "x.db", scope="galactic")


INCREMENT = """
import sys
from pyln.store import SQLiteStore, KeyModified, KeyNotFound
s = SQLiteStore(sys.argv[1])
done = 0
while done < int(sys.argv[2]):
    try:
        e = s.get("counter")
        s.put_atomic("counter", e.value + 1, e.index)
        done += 1
    except KeyModified:
        continue
"""


def test_two_processes_share_one_file(store_path: Path) -> None:
    """Concurrent compare-and-swap increments from two processes lose none."""
    with SQLiteStore(store_path) as s:
        s.put("counter", 0)
    procs = [
        subprocess.Popen([sys.executable, "-c", INCREMENT, str(store_path), "300"])
        for _ in range(2)
    ]
    for p in procs:
        assert p.wait(timeout=120) == 0
    with SQLiteStore(store_path) as s:
        assert s.get("counter").value == 600
        (ok,) = s._db.execute("PRAGMA integrity_check").fetchone()
        assert ok == "ok"


WRITER = """
import sys
from pyln.store import SQLiteStore, Put
s = SQLiteStore(sys.argv[1])
i = 0
while True:
    s.commit([Put(f"batch/{i:08d}/a", i), Put(f"batch/{i:08d}/b", i)])
    print(i, flush=True)
    i += 1
"""


def test_kill_9_leaves_whole_transactions(store_path: Path) -> None:
    """After a kill -9 mid-stream the file opens, is intact, and holds only whole
    transactions, including every one the writer reported."""
    p = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(store_path)], stdout=subprocess.PIPE, text=True
    )
    assert p.stdout is not None
    reported = -1
    deadline = time.monotonic() + 60
    while reported < 200 and time.monotonic() < deadline:
        reported = int(p.stdout.readline())
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    p.stdout.close()
    with SQLiteStore(store_path) as s:
        (ok,) = s._db.execute("PRAGMA integrity_check").fetchone()
        assert ok == "ok"
        entries = s.list("batch/")
        assert len(entries) % 2 == 0
        assert len(entries) // 2 >= reported + 1
        values = {e.key: e.value for e in entries}
        for i in range(len(entries) // 2):
            assert values[f"batch/{i:08d}/a"] == values[f"batch/{i:08d}/b"] == i


def test_run_python_helper_works() -> None:
    r = run_python("import pyln; print(pyln.__version__)")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "0.1.0"
