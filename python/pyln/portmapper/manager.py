"""Runs the userland proxy process (pyln.portmapper.proxy) for one network namespace
and keeps its forwards.

The manager binds every published port itself and passes the socket to the proxy
(SCM_RIGHTS), keeping its own copy. So publishing a port never waits for the process
to start (the kernel queues connections and datagrams until the proxy serves them),
a bind conflict is reported at once, and when the process dies no port is lost:
the next call, or `ensure()`, starts a new one with the same sockets."""

from __future__ import annotations

import builtins
import contextlib
import functools
import ipaddress
import json
import logging
import os
import queue
import resource
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from pyln.osl.namespace import NamespaceWorker
from pyln.portmapper.allocator import check_protocol, parse_host_ip
from pyln.portmapper.errors import (
    ForwardNotFound,
    ForwardsLost,
    ProxyBadRequest,
    ProxyBindError,
    ProxyError,
    ProxyTimeout,
)
from pyln.portmapper.proxy import LISTEN_BACKLOG, socket_kind

if TYPE_CHECKING:
    from pyln.osl import Namespace

log = logging.getLogger("pyln.portmapper")

#: The proxy program; also runnable as `python -m pyln.portmapper.proxy`.
PROXY_SCRIPT = Path(__file__).with_name("proxy.py")
#: Longest unix socket path bind/connect take (sun_path is 108 bytes with the NUL).
_SUN_PATH_MAX = 107
#: Delays between retries of a failed background start (s): doubling up to the max.
RETRY_MIN = 0.5
RETRY_MAX = 30.0


@dataclass(frozen=True)
class Forward:
    """A published port as the proxy serves it."""

    proto: str
    host_ip: str
    host_port: int
    backend_ip: str
    backend_port: int

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.proto, self.host_ip, self.host_port)

    def __str__(self) -> str:
        return (
            f"{self.proto} {_hostport(self.host_ip, self.host_port)}"
            f" -> {_hostport(self.backend_ip, self.backend_port)}"
        )


def _hostport(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


_nofile_raised = False


def _raise_nofile_limit() -> None:
    """Lifts the soft open-files limit to the hard one, once per process (as Go's
    runtime does for dockerd): the manager holds one socket per published port."""
    global _nofile_raised
    if _nofile_raised:
        return
    _nofile_raised = True
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (OSError, ValueError) as e:
            log.debug("cannot raise the open-files limit: %s", e)


def _check_port(name: str, port: int, *, allow_zero: bool) -> int:
    low = 0 if allow_zero else 1
    if not isinstance(port, int) or isinstance(port, bool) or not low <= port <= 65535:
        raise ProxyBadRequest(f"{name} {port!r} is not a port in {low}-65535")
    return port


class ProxyManager:
    """The proxy process of namespace `ns`; its control socket and log are in
    `run_dir`. Thread-safe: calls are serialised. The process is started in the
    background on demand (the first `add`, or `prestart`); `list`, `stats`, `ensure`
    and `stop` wait for that start, `add` and `remove` do not. While no process
    serves them (starting, or a start that failed and is retried with a growing
    delay), published ports are bound and connections to them wait in the kernel."""

    def __init__(
        self,
        ns: Namespace,
        run_dir: Path,
        *,
        udp_timeout: float = 90.0,
        start_timeout: float = 10.0,
        request_timeout: float = 10.0,
        stop_timeout: float = 5.0,
    ) -> None:
        self.ns = ns
        # Published ports are bound in the namespace from one long-lived thread there
        # (a fresh thread per port costs ~0.3-2 ms).
        self._in_ns = NamespaceWorker(ns)
        self.run_dir = Path(run_dir)
        self.control_path = self.run_dir / "proxy.sock"
        self.log_path = self.run_dir / "proxy.log"
        self.udp_timeout = udp_timeout
        self.start_timeout = start_timeout
        self.request_timeout = request_timeout
        self.stop_timeout = stop_timeout
        #: How many times a dead or hung proxy was replaced.
        self.restarts = 0
        #: Forwards dropped because a restarted proxy could not bind them again.
        self.lost: list[tuple[Forward, str]] = []
        self._proc: subprocess.Popen[bytes] | None = None
        self._conn: socket.socket | None = None
        self._rbuf = b""
        self._forwards: dict[tuple[str, str, int], Forward] = {}
        #: The bound host socket of each forward; the proxy holds a copy of each.
        self._socks: dict[tuple[str, str, int], socket.socket] = {}
        self._lock = threading.RLock()
        #: A background start is under way (and `_start_done` is clear until it ends).
        self._starting = False
        self._start_done = threading.Event()
        self._start_done.set()
        #: Bumped by stop(): a background start of an older generation is void.
        self._gen = 0
        #: A pending retry of a failed background start, and the delay of the next.
        self._retry: threading.Timer | None = None
        self._retry_delay = RETRY_MIN
        # The proxy asks for SIGTERM when the *thread* that spawned it exits, so every
        # spawn happens in one long-lived thread: callers (and prestart) may come and go.
        self._keeper: threading.Thread | None = None
        self._jobs: queue.Queue[tuple[Any, queue.Queue[BaseException | None]] | None] = (
            queue.Queue()
        )

    def __repr__(self) -> str:
        return f"ProxyManager({self.ns!r}, pid={self.pid})"

    def __enter__(self) -> ProxyManager:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- lifecycle ------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """The proxy's pid while it runs (None before start, after stop or a crash)."""
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                return None
            return self._proc.pid

    def start(self) -> None:
        """Starts the proxy if it is not running and waits until it serves its control
        socket (or raises ProxyError / ProxyTimeout with the tail of its log)."""
        with self._settled():
            if self._proc is not None and self._proc.poll() is None:
                return
            self._spawn()
            self._restore()

    def prestart(self) -> None:
        """Starts the proxy in the background. Errors are only logged: the next call
        that needs an answer from the proxy starts it again (and reports them)."""
        with self._lock:
            if not self._starting and (self._proc is None or self._proc.poll() is not None):
                self._start_in_background()

    def _start_in_background(self) -> None:
        """Replaces a dead or missing process without waiting for the new one (under
        the lock). The new process adopts every forward known by then."""
        self._drop_process()
        self._starting = True
        self._start_done.clear()
        try:
            self._submit(functools.partial(self._start_job, self._gen))
        except BaseException:
            self._starting = False
            self._start_done.set()
            raise

    def _start_job(self, gen: int) -> None:
        """Runs in the keeper thread: launches the process without the lock (callers
        that do not need it go on), then hands it every forward. A start that fails
        is retried with a growing delay while there are forwards to serve."""
        proc: subprocess.Popen[bytes] | None = None
        try:
            proc = self._launch()
        except Exception as e:  # ProxyError, or an OSError (fds, the run directory)
            log.warning("proxy start failed: %s", e)
        with self._lock:
            try:
                if gen != self._gen:  # stopped meanwhile
                    if proc is not None:
                        self._terminate_quietly(proc, signal.SIGKILL)
                    return
                if proc is None:
                    self._retry_later(gen)
                    return
                self._proc = proc
                try:
                    self._restore()
                    self._retry_delay = RETRY_MIN
                except ForwardsLost as e:
                    log.error("%s", e)
                except ProxyError as e:
                    log.warning("the new proxy failed (%s); restarting it later", e)
                    self._disconnect()
                    self._proc = None
                    self._terminate_quietly(proc, signal.SIGKILL)
                    self._retry_later(gen)
            finally:
                if gen == self._gen:
                    self._starting = False
                    self._start_done.set()

    def _retry_later(self, gen: int) -> None:
        """Schedules another background start (under the lock), if forwards wait."""
        if not self._forwards or self._retry is not None:
            return
        delay, self._retry_delay = self._retry_delay, min(2 * self._retry_delay, RETRY_MAX)

        def fire() -> None:
            with self._lock:
                self._retry = None
                alive = self._proc is not None and self._proc.poll() is None
                if gen == self._gen and not self._starting and not alive and self._forwards:
                    try:
                        self._start_in_background()
                    except ProxyError as e:
                        log.warning("proxy restart failed: %s", e)

        self._retry = threading.Timer(delay, fire)
        self._retry.daemon = True
        self._retry.start()

    def _terminate_quietly(self, proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
        """_terminate, with a process that will not die logged instead of raised."""
        try:
            self._terminate(proc, sig=sig)
        except ProxyError as e:
            log.error("%s", e)

    @property
    def _start_wait(self) -> float:
        """How long a background start may take: launch, restore, and a kill."""
        return self.start_timeout + self.request_timeout + self.stop_timeout

    @contextlib.contextmanager
    def _settled(self) -> Iterator[None]:
        """Holds the lock with no background start under way."""
        wait = self._start_wait
        while True:
            if not self._start_done.wait(wait):
                raise ProxyTimeout(f"the proxy's start did not end within {wait:g} s")
            self._lock.acquire()
            if not self._starting:
                break
            self._lock.release()
        try:
            yield
        finally:
            self._lock.release()

    def _submit(self, job: Any) -> queue.Queue[BaseException | None]:
        """Queues `job` for the keeper thread (started if needed). Each keeper has its
        own queue, so a stop and a new keeper never share one."""
        done: queue.Queue[BaseException | None] = queue.Queue(maxsize=1)
        with self._lock:
            if self._keeper is None or not self._keeper.is_alive():
                self._jobs = queue.Queue()
                self._keeper = threading.Thread(
                    target=self._keep, args=(self._jobs,), name="pyln-proxy-keeper", daemon=True
                )
                self._keeper.start()
            self._jobs.put((job, done))
        return done

    @staticmethod
    def _keep(jobs: queue.Queue[tuple[Any, queue.Queue[BaseException | None]] | None]) -> None:
        while True:
            item = jobs.get()
            if item is None:
                return
            job, done = item
            try:
                job()
                done.put(None)
            except BaseException as e:  # handed to the waiting caller
                done.put(e)

    def ensure(self) -> bool:
        """Makes sure a responsive proxy runs with every known forward; returns True if
        it had to be (re)started. A hung proxy is killed. Raises ForwardsLost if some
        forwards could not be bound again (the others are restored)."""
        with self._settled():
            if self._proc is not None and self._proc.poll() is None:
                try:
                    self._request({"op": "ping"})
                    return False
                except ProxyError as e:
                    log.warning("proxy pid %s is not answering (%s); restarting", self._proc.pid, e)
            self._restart()
            return True

    def stop(self) -> None:
        """Stops the proxy (SIGTERM, then SIGKILL after `stop_timeout`), reaps it and
        forgets its forwards (their ports are closed). Idempotent. A start still under
        way after the usual wait is abandoned: its process is killed when it ends."""
        wait = self._start_wait
        if not self._start_done.wait(wait):
            log.warning("the proxy's start did not end within %g s; stopping anyway", wait)
        with self._lock:
            self._gen += 1
            self._starting = False
            self._start_done.set()
            if self._retry is not None:
                self._retry.cancel()
                self._retry = None
            self._retry_delay = RETRY_MIN
            self._disconnect()
            proc, self._proc = self._proc, None
            self._forwards.clear()
            for sock in self._socks.values():
                sock.close()
            self._socks.clear()
            if proc is not None:
                self._terminate_quietly(proc)
            self.control_path.unlink(missing_ok=True)
            keeper, self._keeper = self._keeper, None
            if keeper is not None:
                self._jobs.put(None)  # under the lock: this keeper's own queue
        if keeper is not None and keeper.is_alive() and keeper is not threading.current_thread():
            keeper.join(timeout=self.stop_timeout)
        self._in_ns.close()

    # -- forwards -------------------------------------------------------------------

    def add(
        self, proto: str, host_ip: str, host_port: int, backend_ip: str, backend_port: int
    ) -> int:
        """Forwards `host_ip:host_port` to `backend_ip:backend_port`; returns the host
        port (the one the kernel chose when `host_port` is 0). The port is bound here,
        at once; the proxy serves it as soon as it runs. Raises ProxyBindError when the
        host address cannot be bound. Adding the same forward twice is a no-op."""
        proto = self._proto(proto)
        host = str(parse_host_ip(host_ip))
        backend = str(parse_host_ip(backend_ip))
        if ipaddress.ip_address(backend).is_unspecified:
            raise ProxyBadRequest(f"backend address {backend} is not a host")
        _check_port("host_port", host_port, allow_zero=True)
        _check_port("backend_port", backend_port, allow_zero=False)
        fwd = Forward(proto, host, host_port, backend, backend_port)
        with self._lock:
            old = self._forwards.get(fwd.key) if host_port else None
            if old is not None:
                if old == fwd:
                    return host_port
                raise ProxyBindError(
                    proto, host, host_port,
                    f"already forwarded to {_hostport(old.backend_ip, old.backend_port)}",
                )  # fmt: skip
            sock = self._bind(fwd)
            fwd = Forward(proto, host, int(sock.getsockname()[1]), backend, backend_port)
            self._forwards[fwd.key] = fwd
            self._socks[fwd.key] = sock
            if self._starting:
                return fwd.host_port  # the process being started adopts it
            try:
                if self._proc is None or self._proc.poll() is not None:
                    self._start_in_background()
                    return fwd.host_port
                try:
                    reply = self._request(self._add_msg(fwd, "adopt"), sock.fileno())
                except ProxyError as e:
                    log.warning("proxy pid %s failed (%s); restarting it", self._proc.pid, e)
                    self._start_in_background()
                    return fwd.host_port
            except BaseException:
                del self._forwards[fwd.key]
                self._socks.pop(fwd.key).close()
                raise
            if not reply.get("ok"):
                del self._forwards[fwd.key]
                self._socks.pop(fwd.key).close()
                self._raise(reply, fwd)
            return fwd.host_port

    def remove(self, proto: str, host_ip: str, host_port: int) -> None:
        """Stops forwarding `host_ip:host_port`: the port is closed and its connections
        are dropped. Raises ForwardNotFound if there is no such forward."""
        proto = self._proto(proto)
        host = str(parse_host_ip(host_ip))
        _check_port("host_port", host_port, allow_zero=False)
        key = (proto, host, host_port)
        msg = {"op": "remove", "proto": proto, "host_ip": host, "host_port": host_port}
        with self._lock:
            fwd = self._forwards.pop(key, None)
            sock = self._socks.pop(key, None)
            if sock is not None:
                sock.close()
            if fwd is None:
                raise ForwardNotFound(f"no forward on {proto} {_hostport(host, host_port)}")
            if self._starting:
                # The start job hands over forwards and ends the start under this lock:
                # the new process never sees this one.
                return
            if self._proc is None or self._proc.poll() is not None:
                self._start_in_background()  # the dead process held nothing
                return
            try:
                reply = self._request(msg)
            except ProxyError as e:
                # A hung process may still hold the port: replace it.
                log.warning("proxy pid %s failed (%s); restarting it", self._proc.pid, e)
                self._start_in_background()
                return
            if not reply.get("ok") and reply.get("kind") != "not_found":
                self._raise(reply, None)

    def list(self) -> list[Forward]:
        """The forwards the proxy serves now, sorted."""
        with self._settled():
            reply = self._call({"op": "list"})
            self._raise(reply, None)
            return sorted((Forward(**f) for f in reply["forwards"]), key=lambda f: f.key)

    def stats(self) -> dict[str, int]:
        """The proxy's counters: pid, forwards, open TCP connections, live UDP flows."""
        with self._settled():
            reply = self._call({"op": "ping"})
            self._raise(reply, None)
            return {k: int(v) for k, v in reply.items() if k != "ok"}

    def known(self) -> builtins.list[Forward]:
        """The forwards this manager will restore after a crash, sorted."""
        with self._lock:
            return sorted(self._forwards.values(), key=lambda f: f.key)

    # -- internals ------------------------------------------------------------------

    @staticmethod
    def _proto(proto: str) -> str:
        check_protocol(proto)
        return proto

    def _bind(self, fwd: Forward) -> socket.socket:
        """The host socket of `fwd`, bound (and listening, for streams) in the proxy's
        namespace; failures are ProxyBindErrors."""
        _raise_nofile_limit()
        family = socket.AF_INET6 if ":" in fwd.host_ip else socket.AF_INET
        kind, number = socket_kind(fwd.proto)
        try:
            sock = self._in_ns.run(socket.socket, family, kind | socket.SOCK_CLOEXEC, number)
        except OSError as e:
            reason = f"cannot open a {fwd.proto} socket: {e.strerror or e}"
            raise ProxyBindError(fwd.proto, fwd.host_ip, fwd.host_port, reason) from None
        try:
            if kind == socket.SOCK_STREAM:
                # As Go's net.Listen: restarting over TIME_WAIT connections works, two
                # listeners on one port are still refused.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((fwd.host_ip, fwd.host_port))
            if kind == socket.SOCK_STREAM:
                sock.listen(LISTEN_BACKLOG)
        except OSError as e:
            sock.close()
            reason = e.strerror or str(e)
            raise ProxyBindError(fwd.proto, fwd.host_ip, fwd.host_port, reason) from None
        return sock

    @staticmethod
    def _add_msg(fwd: Forward, op: str = "adopt") -> dict[str, Any]:
        return {
            "op": op,
            "proto": fwd.proto,
            "host_ip": fwd.host_ip,
            "host_port": fwd.host_port,
            "backend_ip": fwd.backend_ip,
            "backend_port": fwd.backend_port,
        }

    @staticmethod
    def _raise(reply: dict[str, Any], fwd: Forward | None) -> None:
        """Raises the typed error for a failed reply."""
        if reply.get("ok") is True:
            return
        kind, error = reply.get("kind"), str(reply.get("error", "unknown error"))
        if kind == "bind" and fwd is not None:
            raise ProxyBindError(fwd.proto, fwd.host_ip, fwd.host_port, error)
        if kind == "bad_request":
            raise ProxyBadRequest(error)
        if kind == "not_found":
            raise ForwardNotFound(error)
        raise ProxyError(f"proxy failed ({kind}): {error}")

    def _call(self, msg: dict[str, Any]) -> dict[str, Any]:
        """Sends `msg` (no descriptor), restarting a dead proxy first, and once more if
        the process turns out dead during the call."""
        if self._proc is None or self._proc.poll() is not None:
            self._restart_quietly()
        try:
            return self._request(msg)
        except ProxyTimeout:
            raise
        except ProxyError as e:
            log.warning("proxy connection failed (%s); restarting it", e)
        self._restart_quietly()
        return self._request(msg)

    def _restart_quietly(self) -> None:
        """Restarts the proxy; forwards it cannot restore are logged and kept in
        `self.lost` instead of failing the caller's unrelated request."""
        try:
            self._restart()
        except ForwardsLost as e:
            log.error("%s", e)

    def _drop_process(self) -> None:
        """Kills and reaps the current process, if any, counting it as a restart."""
        self._disconnect()
        proc, self._proc = self._proc, None
        if proc is not None:
            self.restarts += 1
            self._terminate(proc, sig=signal.SIGKILL)

    def _restart(self) -> None:
        self._drop_process()
        self._spawn()
        self._restore()

    def _restore(self) -> None:
        """Hands every known forward's socket to a fresh proxy."""
        failures: list[tuple[Forward, str]] = []
        for fwd in list(self._forwards.values()):
            reply = self._request(self._add_msg(fwd), self._socks[fwd.key].fileno())
            if not reply.get("ok"):
                del self._forwards[fwd.key]
                self._socks.pop(fwd.key).close()
                failures.append((fwd, str(reply.get("error"))))
        if failures:
            self.lost.extend(failures)
            raise ForwardsLost(list(failures))

    def _spawn(self) -> None:
        """Starts the process (in the keeper thread) and waits until it is ready."""
        if threading.current_thread() is self._keeper:
            self._spawn_now()
            return
        err = self._submit(self._spawn_now).get()
        if err is not None:
            raise err

    def _spawn_now(self) -> None:
        self._proc = self._launch()

    def _launch(self) -> subprocess.Popen[bytes]:
        """Starts the process and waits for its "ready" line on a pipe (no polling).
        Failures are ProxyErrors (ProxyTimeout when it does not get ready in time)."""
        try:
            return self._launch_process()
        except OSError as e:
            raise ProxyError(f"cannot start the proxy: {e}") from e

    def _launch_process(self) -> subprocess.Popen[bytes]:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.control_path.unlink(missing_ok=True)
        # proxy.py uses the standard library only. Run as a file in isolated mode, it
        # does not import the pyln package (pyroute2 and all): about half the RSS.
        # Without site (-S) the interpreter starts in half the time (~60 ms less).
        cmd = [
            sys.executable,
            "-I",
            "-S",
            str(PROXY_SCRIPT),
            "--netns",
            str(self.ns.path),
            "--control",
            str(self.control_path),
            "--udp-timeout",
            repr(self.udp_timeout),
            "--parent-pid",
            str(os.getpid()),
        ]
        rfd, wfd = os.pipe2(os.O_CLOEXEC)
        try:
            with open(self.log_path, "ab") as logf:
                proc = subprocess.Popen(
                    [*cmd, "--ready-fd", str(wfd)],
                    stdin=subprocess.DEVNULL,
                    stdout=logf,
                    stderr=logf,
                    pass_fds=(wfd,),
                )
            os.close(wfd)
            wfd = -1
            ready = self._read_ready(rfd, time.monotonic() + self.start_timeout)
        finally:
            os.close(rfd)
            if wfd >= 0:
                os.close(wfd)
        if ready is None:
            self._terminate(proc, sig=signal.SIGKILL)
            raise ProxyTimeout(
                f"proxy did not start within {self.start_timeout:g} s{self._log_tail()}"
            )
        if not ready:
            try:
                rc = proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                self._terminate(proc, sig=signal.SIGKILL)
                rc = proc.returncode
            raise ProxyError(f"proxy exited at start (status {rc}){self._log_tail()}")
        log.info("proxy for %s started, pid %d", self.ns.path, proc.pid)
        return proc

    @staticmethod
    def _read_ready(fd: int, deadline: float) -> bool | None:
        """True on "ready", False on EOF (the process died), None at the deadline."""
        buf = b""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            readable, _, _ = select.select([fd], [], [], left)
            if not readable:
                continue
            chunk = os.read(fd, 64)
            if not chunk:
                return False
            buf += chunk
            if b"\n" in buf:
                return buf.startswith(b"ready")

    def _terminate(self, proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
        """Signals `proc` and reaps it, escalating to SIGKILL after `stop_timeout`."""
        if proc.poll() is None:
            try:
                proc.send_signal(sig)
                proc.wait(self.stop_timeout)
                return
            except subprocess.TimeoutExpired:
                log.warning("proxy pid %d ignored signal %d; killing it", proc.pid, sig)
            proc.kill()
            try:
                proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                raise ProxyTimeout(f"proxy pid {proc.pid} did not die after SIGKILL") from None

    def _log_tail(self, lines: int = 10) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return ""
        return (": " + " | ".join(text)) if text else ""

    def _connect(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        sock.settimeout(self.request_timeout)
        path = str(self.control_path)
        try:
            if len(os.fsencode(path)) <= _SUN_PATH_MAX:
                sock.connect(path)
            else:  # too long for sun_path: reach it through an fd on its directory
                dfd = os.open(self.control_path.parent, os.O_PATH | os.O_DIRECTORY)
                try:
                    sock.connect(f"/proc/self/fd/{dfd}/{self.control_path.name}")
                finally:
                    os.close(dfd)
        except OSError as e:
            sock.close()
            raise ProxyError(f"cannot connect to the proxy at {path}: {e}") from None
        return sock

    def _disconnect(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self._rbuf = b""

    def _request(self, msg: dict[str, Any], fd: int | None = None) -> dict[str, Any]:
        """One request/reply on the control connection (opened on demand); `fd` is
        passed with the request (SCM_RIGHTS)."""
        if self._conn is None:
            self._conn = self._connect()
        conn = self._conn
        try:
            data = json.dumps(msg).encode() + b"\n"
            if fd is None:
                conn.sendall(data)
            else:
                sent = socket.send_fds(conn, [data], [fd])
                conn.sendall(data[sent:])
            while b"\n" not in self._rbuf:
                chunk = conn.recv(65536)
                if not chunk:
                    raise ProxyError("the proxy closed the control connection")
                self._rbuf += chunk
        except TimeoutError:
            self._disconnect()
            raise ProxyTimeout(
                f"no answer from the proxy within {self.request_timeout:g} s"
            ) from None
        except OSError as e:
            self._disconnect()
            raise ProxyError(f"control connection failed: {e}") from None
        except ProxyError:
            self._disconnect()
            raise
        line, _, self._rbuf = self._rbuf.partition(b"\n")
        try:
            reply = json.loads(line)
        except ValueError:
            self._disconnect()
            raise ProxyError(f"garbled reply from the proxy: {line[:200]!r}") from None
        if not isinstance(reply, dict):
            raise ProxyError(f"garbled reply from the proxy: {line[:200]!r}")
        return reply
