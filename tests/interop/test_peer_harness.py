"""The harness itself: building and caching the Go peer, failing (never skipping) when
the build fails, waiting with deadlines, stopping, and the session's leak check."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import PeerFactory
from .memberlist_peer import (
    PEER_INPUTS,
    PEER_SRC,
    MemberlistPeer,
    PeerBuildError,
    PeerError,
    build_peer,
)
from conftest import REPO, _kernel_objects


def _copy_sources(dst: Path) -> Path:
    dst.mkdir()
    for name in ("build.sh", *PEER_INPUTS):
        shutil.copy2(PEER_SRC / name, dst / name)
    return dst


def test_build_reuses_the_cached_binary_until_main_go_changes(
    tmp_path: Path, memberlist_peer_binary: Path
) -> None:
    src, cache = _copy_sources(tmp_path / "src"), tmp_path / "cache"
    # A cached binary newer than main.go is used as it is: no build.sh run at all.
    cache.mkdir()
    binary = cache / "memberlist-peer"
    shutil.copy2(memberlist_peer_binary, binary)
    newer = (src / "main.go").stat().st_mtime + 1
    os.utime(binary, (newer, newer))
    t = time.monotonic()
    assert build_peer(src, cache) == binary
    assert time.monotonic() - t < 0.5
    assert binary.stat().st_mtime == newer

    # main.go changed since: rebuilt.
    later = newer + 10
    os.utime(src / "main.go", (later, later))
    assert build_peer(src, cache) == binary
    assert binary.stat().st_mtime != newer
    assert os.access(binary, os.X_OK)
    assert sorted(p.name for p in cache.iterdir()) == [".lock", "memberlist-peer"]


def test_build_failure_carries_build_sh_message(tmp_path: Path) -> None:
    src = _copy_sources(tmp_path / "src")
    main = src / "main.go"
    main.write_text(main.read_text() + "\nfunc broken( {\n")
    with pytest.raises(PeerBuildError) as err:
        build_peer(src, tmp_path / "cache")
    msg = str(err.value)
    assert "main.go:" in msg  # the compiler's own message
    assert "build.sh: ERROR: go build failed" in msg
    assert not (tmp_path / "cache" / "memberlist-peer").exists()


def test_a_failed_build_fails_the_interop_tests(tmp_path: Path) -> None:
    """Without a peer, a test that needs one fails with the build's message."""
    env = {
        **os.environ,
        "PYLN_MEMBERLIST_PEER_SRC": str(tmp_path / "nowhere"),
        "PYLN_MEMBERLIST_PEER_CACHE": str(tmp_path / "cache"),
    }
    test = "tests/interop/test_peer_cluster.py::test_three_peers_join_and_all_see_three_alive"
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert "memberlist peer sources not found" in out and "1 error" in out, out
    assert "skipped" not in out, out


def test_wait_for_times_out_listing_the_last_events(memberlist_peer_factory: PeerFactory) -> None:
    a = memberlist_peer_factory("a", config="local")
    t = time.monotonic()
    with pytest.raises(TimeoutError) as err:
        a.wait_event("join", node="nobody", timeout=0.3)
    assert 0.3 <= time.monotonic() - t < 2
    msg = str(err.value)
    assert "no join node='nobody' event within 0.3 s" in msg
    assert '"event": "start"' in msg


def test_wait_fails_at_once_when_the_peer_exits(memberlist_peer_factory: PeerFactory) -> None:
    a = memberlist_peer_factory("a", config="local", exit_after=0.2)
    t = time.monotonic()
    with pytest.raises(PeerError, match="exit status 0"):
        a.wait_event("join", node="nobody", timeout=30)
    assert time.monotonic() - t < 5
    assert a.events("left")[0]["reason"] == "exit-after"


def test_a_peer_that_cannot_start_reports_why(memberlist_peer_factory: PeerFactory) -> None:
    a = memberlist_peer_factory("a", config="local")
    with pytest.raises(PeerError) as err:
        memberlist_peer_factory("b", config="local", port=a.port)
    msg = str(err.value)
    assert "exit status 2" in msg and "before start event" in msg
    assert "cannot start memberlist" in msg and "address already in use" in msg


def test_stop_kills_a_peer_that_does_not_leave(memberlist_peer_factory: PeerFactory) -> None:
    a = memberlist_peer_factory("a", config="local")
    os.kill(a.pid, signal.SIGSTOP)  # SIGTERM stays pending: no "left" ever comes
    t = time.monotonic()
    assert a.stop(timeout=0.5) is None
    assert time.monotonic() - t < 3
    assert a.returncode == -signal.SIGKILL


def test_context_manager_and_kill(memberlist_peer_binary: Path) -> None:
    with MemberlistPeer(memberlist_peer_binary, "a", config="local") as a:
        with MemberlistPeer(memberlist_peer_binary, "b", config="local", join=[a]) as b:
            b.wait_members({"a", "b"})
            b.kill()
            assert b.returncode == -signal.SIGKILL and not b.events("left")
        assert a.running
    assert a.returncode == 0 and a.events("left")


def test_leak_check_lists_leftover_peers(memberlist_peer_binary: Path) -> None:
    a = MemberlistPeer(memberlist_peer_binary, "leaky", config="local")
    try:
        leftovers = [o for o in _kernel_objects() if o.startswith(f"process:{a.pid}:")]
        assert len(leftovers) == 1 and "memberlist-peer" in leftovers[0]
    finally:
        a.kill()
    assert not [o for o in _kernel_objects() if o.startswith(f"process:{a.pid}:")]
