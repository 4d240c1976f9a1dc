"""A real hashicorp/memberlist 0.2.2 node as a subprocess, for interoperability tests.

The peer is ../shared/peers/memberlist-peer (see its README.md): a small Go program
that prints every event as one JSON line on stdout. `build_peer` builds it once into
a cache folder of the repo (git ignores .cache/); `MemberlistPeer` starts one node,
reads its events in a background thread and waits for conditions with deadlines.

Peers bind and advertise 127.0.0.1 only.
"""

from __future__ import annotations

import atexit
import base64
import collections
import fcntl
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parents[2]
# The peer's sources: ../shared next to the repo (CI checks it out there too).
PEER_SRC = Path(
    os.environ.get("PYLN_MEMBERLIST_PEER_SRC", REPO.parent / "shared/peers/memberlist-peer")
)
# Where the binary is cached between runs (git ignores /.cache/).
PEER_CACHE = Path(os.environ.get("PYLN_MEMBERLIST_PEER_CACHE", REPO / ".cache/memberlist-peer"))
BINARY_NAME = "memberlist-peer"
# Sources whose change makes the cached binary stale.
PEER_INPUTS = ("main.go",)

BIND = "127.0.0.1"
# Every peer started here carries OWNER_ENV=<pid of the starting process>, so the
# session's leak check (tests/conftest.py) finds its own leftovers and not those of
# another test run on the same machine.
OWNER_ENV = "PYLN_TEST_OWNER"
DEFAULT_TIMEOUT = 10.0

Event = dict[str, Any]
T = TypeVar("T")

# Member states in "members" events.
ALIVE, SUSPECT, DEAD, LEFT = 0, 1, 2, 3


class PeerBuildError(RuntimeError):
    """build.sh failed; the message holds its output (ending with `build.sh: ERROR: ...`)."""


class PeerError(RuntimeError):
    """The peer could not start, or exited while a condition was awaited."""


def build_peer(src: Path = PEER_SRC, cache: Path = PEER_CACHE, *, timeout: float = 1800) -> Path:
    """Returns the peer binary in `cache`, running `src/build.sh` first if the binary
    is missing or older than main.go. Safe to call from several processes at once
    (a file lock serialises builds). Raises PeerBuildError with build.sh's output."""
    script = src / "build.sh"
    if not script.is_file():
        raise PeerBuildError(
            f"memberlist peer sources not found: {script} is missing "
            f"(the repo expects ../shared/peers/memberlist-peer next to it)"
        )
    cache.mkdir(parents=True, exist_ok=True)
    binary = cache / BINARY_NAME
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _up_to_date(binary, src):
            return binary
        # Build next to the cache and rename, so that a peer still running from the
        # old binary is never overwritten in place.
        tmp = cache / f".build-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            try:
                r = subprocess.run(
                    [str(script), str(tmp)],
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    text=True,
                    timeout=timeout,
                    check=False,
                )
            except subprocess.TimeoutExpired as e:
                raise PeerBuildError(f"{script} {tmp}: no result after {timeout:.0f} s") from e
            built = tmp / BINARY_NAME
            if r.returncode != 0 or not built.is_file():
                out = "\n".join(s.strip() for s in (r.stdout, r.stderr) if s.strip())
                raise PeerBuildError(
                    f"building the memberlist peer failed ({script} exited with status "
                    f"{r.returncode}):\n{out or '(no output)'}"
                )
            os.replace(built, binary)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return binary


def _up_to_date(binary: Path, src: Path) -> bool:
    try:
        built = binary.stat().st_mtime
    except FileNotFoundError:
        return False
    return all(built >= (src / name).stat().st_mtime for name in PEER_INPUTS)


def go_duration(d: float | str) -> str:
    """Seconds (or a Go duration string, passed through) as a Go duration flag."""
    if isinstance(d, str):
        return d
    return f"{round(d * 1000)}ms"


# Processes not yet reaped, killed at interpreter exit whatever happened.
_live: set[subprocess.Popen[bytes]] = set()
_live_lock = threading.Lock()


@atexit.register
def _kill_leftovers() -> None:
    with _live_lock:
        procs = list(_live)
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


class MemberlistPeer:
    """One Go memberlist node on 127.0.0.1. Starts on construction and returns once
    the peer printed its "start" event (`addr` then holds the bound address)."""

    def __init__(
        self,
        binary: Path,
        name: str,
        *,
        port: int = 0,
        join: Sequence[str | MemberlistPeer] = (),
        secret: bytes | str | None = None,
        config: str = "lan",
        broadcast_every: float | str | None = None,
        join_retry: float | str | None = None,
        leave_timeout: float | str | None = None,
        exit_after: float | str | None = None,
        quiet: bool = True,
        start_timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        """`join`: seeds as "host:port" (or "name/host:port") or peers; `secret`: the raw
        key (16, 24 or 32 bytes) or its base64; `config`: "lan" or "local"; durations in
        seconds or as Go strings; `quiet=False` keeps memberlist's log (the last lines
        are shown in errors)."""
        if config not in ("lan", "local"):
            raise ValueError(f"config must be 'lan' or 'local', not {config!r}")
        self.name = name
        self.config = config
        args = [str(binary), "-name", name, "-bind", BIND, "-port", str(port), "-config", config]
        if isinstance(join, str):
            join = [join]
        seeds = [s.addr if isinstance(s, MemberlistPeer) else s for s in join]
        if seeds:
            args += ["-join", ",".join(seeds)]
        if secret is not None:
            key = base64.b64encode(secret).decode() if isinstance(secret, bytes) else secret
            args += ["-secret", key]
        for flag, value in (
            ("-broadcast-every", broadcast_every),
            ("-join-retry", join_retry),
            ("-leave-timeout", leave_timeout),
            ("-exit-after", exit_after),
        ):
            if value is not None:
                args += [flag, go_duration(value)]
        if quiet:
            args.append("-quiet")
        self.args = args

        self._cond = threading.Condition(threading.RLock())
        self._events: list[Event] = []
        self._stderr: collections.deque[str] = collections.deque(maxlen=50)
        self._stderr_lock = threading.Lock()  # not _cond: read while _cond is held
        self._eof = False
        env = {**os.environ, OWNER_ENV: str(os.getpid())}
        self._proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # a ^C at the terminal is for pytest, not for peers
            env=env,
        )
        with _live_lock:
            _live.add(self._proc)
        self._readers = [
            threading.Thread(target=self._read_stdout, name=f"peer-{name}-out", daemon=True),
            threading.Thread(target=self._read_stderr, name=f"peer-{name}-err", daemon=True),
        ]
        for t in self._readers:
            t.start()
        try:
            start = self.wait_event("start", timeout=start_timeout)
        except BaseException:
            self.kill()
            raise
        self.addr: str = start["addr"]
        self.port: int = int(self.addr.rsplit(":", 1)[1])
        self.encrypted: bool = bool(start.get("encrypted"))
        self.protocol: int = int(start.get("protocol", 0))

    # -- reading -----------------------------------------------------------------

    def _read_stdout(self) -> None:
        assert self._proc.stdout is not None
        for raw in self._proc.stdout:
            line = raw.decode(errors="replace").strip()
            if not line:
                continue
            try:
                ev = json.loads(line)
            except ValueError:
                ev = None
            if not isinstance(ev, dict):
                ev = {"event": "_unparsed", "line": line}
            with self._cond:
                self._events.append(ev)
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def _read_stderr(self) -> None:
        assert self._proc.stderr is not None
        for raw in self._proc.stderr:
            with self._stderr_lock:
                self._stderr.append(raw.decode(errors="replace").rstrip())

    # -- waiting -----------------------------------------------------------------

    def _await(self, check: Callable[[], T | None], timeout: float, what: str) -> T:
        """Re-evaluates `check` (under the lock) whenever an event arrives, until it
        returns something other than None or the deadline passes."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                result = check()
                if result is not None:
                    return result
                if self._eof:
                    # stdout closed: the peer is exiting. Reap it for the exit status,
                    # and let the stderr reader catch up for the message.
                    try:
                        self._proc.wait(5)
                    except subprocess.TimeoutExpired:
                        pass
                    self._readers[1].join(timeout=2)
                    raise PeerError(
                        f"{self.name}: closed its output (exit status "
                        f"{self._proc.returncode}) before {what}\n{self._history()}"
                    )
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"{self.name}: no {what} within {timeout:.1f} s\n{self._history()}"
                    )
                self._cond.wait(remaining)

    def _history(self, n: int = 15) -> str:
        with self._cond:
            tail = self._events[-n:]
            lines = [f"last {len(tail)} of {len(self._events)} events of {self.name}:"]
            lines += [f"  {json.dumps(ev, sort_keys=True)}" for ev in tail]
        with self._stderr_lock:
            if self._stderr:
                lines.append(f"last stderr lines of {self.name}:")
                lines += [f"  {s}" for s in self._stderr]
        return "\n".join(lines)

    def mark(self) -> int:
        """The number of events so far: pass it as `since` to wait only for later ones."""
        with self._cond:
            return len(self._events)

    def wait_for(
        self,
        predicate: Callable[[Event], bool],
        timeout: float = DEFAULT_TIMEOUT,
        *,
        since: int = 0,
        what: str = "matching event",
    ) -> Event:
        """The first event (from index `since`) for which `predicate` is true, waiting up
        to `timeout` s. Raises TimeoutError listing the last events, or PeerError if the
        peer exits first."""
        pos = since

        def check() -> Event | None:
            nonlocal pos
            while pos < len(self._events):
                ev = self._events[pos]
                pos += 1
                if predicate(ev):
                    return ev
            return None

        return self._await(check, timeout, what)

    def wait_event(
        self, kind: str, timeout: float = DEFAULT_TIMEOUT, *, since: int = 0, **fields: Any
    ) -> Event:
        """The first event of that kind (from index `since`) whose fields equal `fields`."""

        def match(ev: Event) -> bool:
            return ev.get("event") == kind and all(ev.get(k) == v for k, v in fields.items())

        what = kind + "".join(f" {k}={v!r}" for k, v in fields.items()) + " event"
        return self.wait_for(match, timeout, since=since, what=what)

    def wait_members(self, names: Iterable[str], timeout: float = DEFAULT_TIMEOUT) -> Event:
        """Waits until the latest "members" snapshot (printed every second) has exactly
        `names` alive (state 0); returns that snapshot."""
        want = set(names)

        def check() -> Event | None:
            snap = self._latest("members")
            if snap is not None and _alive(snap) == want:
                return snap
            return None

        return self._await(check, timeout, f"members snapshot with alive == {sorted(want)}")

    # -- what the peer saw ---------------------------------------------------------

    def _latest(self, kind: str) -> Event | None:
        with self._cond:
            for ev in reversed(self._events):
                if ev.get("event") == kind:
                    return ev
        return None

    def events(self, kind: str | None = None) -> list[Event]:
        """A copy of the events so far (of one kind if given)."""
        with self._cond:
            return [ev for ev in self._events if kind is None or ev.get("event") == kind]

    def members(self) -> list[dict[str, Any]]:
        """The latest membership snapshot: [{"name", "addr", "state"}, ...], or []."""
        snap = self._latest("members")
        return list(snap["members"]) if snap else []

    def alive(self) -> set[str]:
        """Names alive (state 0) in the latest membership snapshot."""
        snap = self._latest("members")
        return _alive(snap) if snap else set()

    def user_msgs(self) -> list[bytes]:
        """Payloads of the user messages received (NotifyMsg), decoded from hex."""
        return [bytes.fromhex(ev["from_bytes"]) for ev in self.events("user_msg")]

    def broadcasts(self) -> list[str]:
        """The user broadcasts this peer queued ("<name>:<seq>")."""
        return [ev["msg"] for ev in self.events("broadcast")]

    def remote_states(self) -> list[Any]:
        """The `data` of each push/pull MergeRemoteState: the remote's JSON (parsed), a hex
        string if it was not JSON, or None if empty. events("remote_state") has the join flag."""
        return [ev.get("data") for ev in self.events("remote_state")]

    # -- process -----------------------------------------------------------------

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def returncode(self) -> int | None:
        return self._proc.poll()

    @property
    def running(self) -> bool:
        return self._proc.poll() is None

    def terminate(self) -> None:
        """Sends SIGTERM (graceful leave) without waiting."""
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = DEFAULT_TIMEOUT) -> Event | None:
        """Graceful exit: SIGTERM, wait for "left", then for the process. Falls back to
        SIGKILL if either takes longer than `timeout`. Returns the "left" event (None if
        the peer had to be killed or was already gone without printing it)."""
        deadline = time.monotonic() + timeout
        self.terminate()
        left: Event | None = None
        try:
            left = self.wait_event("left", timeout=timeout)
            self._proc.wait(max(0.1, deadline - time.monotonic()))
        except (TimeoutError, PeerError, subprocess.TimeoutExpired):
            self.kill()
        self._reap()
        return left

    def kill(self) -> None:
        """SIGKILL (a crash, as other nodes see it) and reap."""
        if self._proc.poll() is None:
            self._proc.kill()
        self._reap()

    def _reap(self) -> None:
        self._proc.wait()
        for t in self._readers:
            t.join(timeout=5)
        with _live_lock:
            _live.discard(self._proc)

    def __enter__(self) -> MemberlistPeer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else f"exited {self.returncode}"
        return f"<MemberlistPeer {self.name} {getattr(self, 'addr', '?')} pid={self.pid} {state}>"


def _alive(snapshot: Event) -> set[str]:
    return {m["name"] for m in snapshot.get("members", []) if m.get("state") == ALIVE}


def stop_all(peers: Iterable[MemberlistPeer], timeout: float = DEFAULT_TIMEOUT) -> None:
    """Stops peers one after the other, the last started first. Each Leave is then
    acknowledged by nodes still running and returns within a few gossip rounds; stopped
    all at once, every Leave would wait for its -leave-timeout (2 s) instead."""
    for p in reversed(list(peers)):
        p.stop(timeout)
