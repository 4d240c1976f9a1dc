"""pyln against real container-networking peers, per container, on one bridge network.

Peers (Debian packages, installed with apt-get when missing), each run as its own
process per container, the way their users run them:
  - netavark (podman's network tool): `netavark --config DIR setup|teardown NETNS`
    with the network options JSON on stdin;
  - CNI: the `bridge` plugin with `host-local` IPAM, and for published ports
    `portmap` chained after it (ADD bridge then portmap with prevResult; DEL in
    reverse order), driven here as libcni drives a conflist.

pyln runs in this process, as the library it is. Every tool gets its own throwaway
"host" network namespace (bridges, rules, sysctls and pyln's userland proxy land
there, never in the machine's namespace); the peers are started inside it with
`nsenter --net=<host ns> <binary>` (argv lists, no shell). Container namespaces are
made beforehand, outside the timed region, for every tool (for pyln: the sandboxes).
No traffic is sent. Everything made is deleted at the end, and the machine's links,
namespaces and rulesets are compared before and after.

Measured per container (median and p90, milliseconds), for N containers on one network:
  setup       pyln endpoint create + join | netavark setup | CNI bridge ADD
  teardown    pyln leave + delete         | netavark teardown | CNI bridge DEL
              (+ a pyln row that adds sandbox.delete())
  published   the same with one published tcp port (pyln port_bindings |
              netavark port_mappings | CNI bridge + portmap)
plus pyln's network create / delete against Docker's figures from the issue (quoted:
Docker cannot run here safely).

Run as root; about 4 minutes on 2 cores:
    .venv/bin/python benches/cnm_bench.py
Options: --quick (N = 1, 5; a smoke run), --sizes, --reps1, --backends, --pyln-from head
(benchmark the committed pyln, not the work tree), --no-profile. The table is printed
and written to /tmp/cnm_bench_table.md; the cProfile listing to /tmp/cnm_bench_profile.txt.
"""

from __future__ import annotations

import argparse
import cProfile
import ctypes
import functools
import io
import ipaddress
import json
import os
import platform
import pstats
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import pyln
    from pyln.osl import Namespace

REPO = Path(__file__).resolve().parent.parent
NSENTER = "/usr/bin/nsenter"
NETAVARK = "/usr/lib/podman/netavark"
CNI_DIR = Path("/usr/lib/cni")
PACKAGES = ("netavark", "containernetworking-plugins", "iptables", "nftables", "util-linux")
PEER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Docker's figures quoted in the issue (docker CLI against a running dockerd).
DOCKER_NETWORK_CREATE_MS = 79.0
DOCKER_NETWORK_RM_MS = 177.0
TARGET_RATIO = 0.25
TARGET_FLAT = 1.25
TARGET_NET_CREATE_MS = 10.0
TARGET_NET_DELETE_MS = 20.0
CONTAINER_PORT = 80
HOST_PORT_BASE = 20000
MS = 1000.0


class BenchError(Exception):
    """A tool failed or the environment is not fit for the benchmark."""


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- environment ------------------------------------------------------------------------


def ensure_packages() -> None:
    """Installs the peers' Debian packages with apt-get when dpkg says they are missing."""
    missing = [
        p
        for p in PACKAGES
        if subprocess.run(["dpkg", "-s", p], capture_output=True).returncode != 0
    ]
    if not missing:
        return
    log(f"installing Debian packages: {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing]
    if subprocess.run(cmd, env=env).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, check=True)
        subprocess.run(cmd, env=env, check=True)


def package_version(name: str) -> str:
    r = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Version}", name], capture_output=True, text=True
    )
    return r.stdout.strip() or "?"


def tool_versions() -> dict[str, str]:
    def first_line(argv: list[str]) -> str:
        r = subprocess.run(argv, capture_output=True, text=True)
        return (r.stdout or r.stderr).strip().splitlines()[0] if r.returncode == 0 else "?"

    return {
        "netavark": f"{first_line([NETAVARK, '--version'])} "
        f"(Debian package netavark {package_version('netavark')})",
        "CNI plugins": "Debian package containernetworking-plugins "
        f"{package_version('containernetworking-plugins')} (bridge, host-local, portmap; "
        "CNI spec 1.0.0)",
        "iptables": first_line(["iptables", "--version"]),
        "nftables": first_line(["nft", "--version"]),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def machine_state() -> dict[str, str]:
    """What the machine's own namespace shows: links, named namespaces, rulesets."""

    def out(argv: list[str]) -> str:
        r = subprocess.run(argv, capture_output=True, text=True)
        lines = (r.stdout + r.stderr).splitlines()
        return "\n".join(ln for ln in lines if not ln.startswith("#"))  # iptables-save dates

    return {
        "ip link": out(["ip", "-o", "link", "show"]),
        "ip netns": out(["ip", "netns", "list"]),
        "nft ruleset": out(["nft", "list", "ruleset"]),
        "iptables-save": out(["iptables-save"]),
        "ip6tables-save": out(["ip6tables-save"]),
        "ip_forward": Path("/proc/sys/net/ipv4/ip_forward").read_text().strip(),
    }


def pyln_source(choice: str, root: Path) -> str:
    """Makes `import pyln` load the work tree (default) or the committed tree (HEAD,
    extracted under `root` with the built extension copied in). Returns a description."""
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    head = commit[:7]
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--", "python"],
        capture_output=True,
        text=True,
    ).stdout.split("\n")
    dirty = [d.strip() for d in dirty if d.strip()]
    if choice == "worktree":
        sys.path.insert(0, str(REPO / "python"))
        state = f"with uncommitted changes in {len(dirty)} file(s)" if dirty else "clean"
        return f"work tree at {head} ({state})"
    dest = root / "pyln-src"
    dest.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", commit, "python/pyln"], capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")
    for so in (REPO / "python" / "pyln").glob("_core*.so"):
        shutil.copy2(so, dest / "python" / "pyln" / so.name)
    sys.path.insert(0, str(dest / "python"))
    os.environ["PYTHONPATH"] = str(dest / "python")  # for pyln's proxy process
    return f"committed tree {head} (git archive; the built extension from the work tree)"


# -- workspace: every namespace, directory and process this run makes -----------------------

_libc = ctypes.CDLL(None, use_errno=True)
MNT_DETACH = 2


class Workspace:
    """A temp directory holding every namespace the run creates, and their cleanup."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="cnm-bench-"))
        self.namespaces: dict[Path, Namespace] = {}
        self.host_inodes: set[int] = set()
        self._subnet = 0

    def namespace(self, rel: str, *, host: bool = False) -> Namespace:
        from pyln.osl import Namespace

        ns = Namespace.create(self.root / rel)
        self.namespaces[ns.path] = ns
        if host:
            self.host_inodes.add(ns.inode)
        return ns

    def drop(self, ns: Namespace) -> None:
        self.namespaces.pop(ns.path, None)
        ns.delete()

    def next_subnet(self) -> ipaddress.IPv4Network:
        """A fresh /24 in 10.250.0.0/15, one per network (namespaces keep them apart
        anyway; distinct subnets make leftovers easy to attribute)."""
        net = ipaddress.IPv4Network(("10.250.0.0", 24))
        net = ipaddress.IPv4Network((int(net.network_address) + 256 * self._subnet, 24))
        self._subnet = (self._subnet + 1) % 512
        return net

    def _kill_strays(self) -> None:
        """Stops processes left inside our host namespaces (pyln's proxy if a controller
        was not closed, a peer binary after a timeout), by pid."""
        me = os.getpid()
        strays: list[int] = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == me:
                continue
            try:
                if os.stat(entry / "ns" / "net").st_ino in self.host_inodes:
                    strays.append(int(entry.name))
            except OSError:
                continue
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in strays:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            if sig == signal.SIGTERM and strays:
                time.sleep(0.5)

    def cleanup(self) -> None:
        self._kill_strays()
        for ns in list(self.namespaces.values()):
            try:
                ns.delete()
            except Exception as e:  # keep going: the sweep below unmounts it anyway
                log(f"deleting {ns.path}: {e}")
        self.namespaces.clear()
        # Anything still mounted under the workspace (e.g. sandboxes of a controller that
        # failed before deleting them) is unmounted before the directory goes.
        prefix = str(self.root) + "/"
        with open("/proc/self/mountinfo") as f:
            mounts = [line.split()[4] for line in f]
        for mp in sorted((m for m in mounts if m.startswith(prefix)), reverse=True):
            if _libc.umount2(os.fsencode(mp), MNT_DETACH) != 0:
                log(f"umount {mp}: errno {ctypes.get_errno()}")
        shutil.rmtree(self.root, ignore_errors=True)


# -- running a peer binary inside a host namespace ---------------------------------------------


def run_in(host: Namespace, argv: list[str], stdin: str, env: dict[str, str]) -> tuple[float, str]:
    """Runs `argv` inside `host` through nsenter; returns (milliseconds, stdout)."""
    full = [NSENTER, f"--net={host.path}", *argv]
    t0 = time.perf_counter()
    r = subprocess.run(full, input=stdin.encode(), capture_output=True, env=env, timeout=120)
    dt = (time.perf_counter() - t0) * MS
    if r.returncode != 0:
        raise BenchError(
            f"{' '.join(argv)} failed ({r.returncode}): {r.stderr.decode()[-800:]}"
            f"{r.stdout.decode()[-400:]}"
        )
    return dt, r.stdout.decode()


# -- the tools ---------------------------------------------------------------------------------

Timings = dict[str, float]


class Tool:
    """One tool's life cycle for one run of N containers on one fresh network."""

    name = ""
    kinds: tuple[bool, ...] = (False, True)  # which runs it takes part in: published or not

    def start(self, ws: Workspace, tag: str, n: int, published: bool) -> None:
        raise NotImplementedError

    def setup(self, i: int) -> Timings:
        """Connects container i; returns {"setup": ms, ...}."""
        raise NotImplementedError

    def teardown(self, i: int) -> Timings:
        """Disconnects container i; returns {"teardown": ms, ...}."""
        raise NotImplementedError

    def settle(self) -> None:
        """Waits for work the tool left running in the background after its teardowns."""

    def stop(self) -> None:
        raise NotImplementedError


class PylnTool(Tool):
    def __init__(self, backend: str, userland_proxy: bool = True) -> None:
        self.backend = backend
        self.userland_proxy = userland_proxy
        self.name = f"pyln {backend}" + ("" if userland_proxy else " no-proxy")
        # Without the proxy only the published-port runs differ from the default.
        self.kinds = (False, True) if userland_proxy else (True,)

    def start(self, ws: Workspace, tag: str, n: int, published: bool) -> None:
        import pyln

        self.ws = ws
        self.published = published
        self.host = ws.namespace(f"{tag}/host", host=True)
        self.ctrl = pyln.Controller(
            state_dir=ws.root / tag / "state",
            drivers={"bridge": {"firewall": self.backend, "userland_proxy": self.userland_proxy}},
            host_namespace=self.host,
        )
        self.net = self.ctrl.new_network(
            "bridge", "bench", ipam_v4=[{"pool": str(ws.next_subnet())}]
        )
        self.sandboxes = [self.ctrl.new_sandbox(f"c{i}") for i in range(n)]
        self.endpoints: dict[int, pyln.Endpoint] = {}

    def setup(self, i: int) -> Timings:
        opts: dict[str, Any] = {}
        if self.published:
            opts["port_bindings"] = [
                {"proto": "tcp", "port": CONTAINER_PORT, "host_port": HOST_PORT_BASE + i}
            ]
        t0 = time.perf_counter()
        ep = self.net.create_endpoint(f"ep{i}", **opts)
        t1 = time.perf_counter()
        ep.join(self.sandboxes[i])
        t2 = time.perf_counter()
        self.endpoints[i] = ep
        return {"setup": (t2 - t0) * MS, "create": (t1 - t0) * MS, "join": (t2 - t1) * MS}

    def teardown(self, i: int) -> Timings:
        ep, sbx = self.endpoints.pop(i), self.sandboxes[i]
        t0 = time.perf_counter()
        ep.leave(sbx)
        t1 = time.perf_counter()
        ep.delete()
        t2 = time.perf_counter()
        sbx.delete()
        t3 = time.perf_counter()
        return {
            "teardown": (t2 - t0) * MS,
            "teardown+sandbox": (t3 - t0) * MS,
            "leave": (t1 - t0) * MS,
            "delete": (t2 - t1) * MS,
            "sandbox delete": (t3 - t2) * MS,
        }

    def settle(self) -> None:
        # The bridge driver deletes veth pairs in a background thread after leave.
        reaper = getattr(self.ctrl.driver("bridge"), "reaper", None)
        if reaper is not None:
            reaper.drain()

    def stop(self) -> None:
        try:
            for ep in list(self.endpoints.values()):
                ep.delete(force=True)
            for sbx in self.ctrl.sandboxes():
                sbx.delete()
            self.net.delete()
        finally:
            self.ctrl.close()
            self.ws.drop(self.host)


class PeerTool(Tool):
    """Shared part of the peers: a host namespace and N container namespaces."""

    def start(self, ws: Workspace, tag: str, n: int, published: bool) -> None:
        self.ws = ws
        self.dir = ws.root / tag
        self.published = published
        self.subnet = ws.next_subnet()
        self.host = ws.namespace(f"{tag}/host", host=True)
        self.containers = [ws.namespace(f"{tag}/c{i}") for i in range(n)]

    def address(self, i: int) -> ipaddress.IPv4Address:
        return self.subnet.network_address + 2 + i

    def stop(self) -> None:
        # Deleting the host namespace takes its bridge, veths and rules with it.
        for ns in self.containers:
            self.ws.drop(ns)
        self.ws.drop(self.host)


class NetavarkTool(PeerTool):
    name = "netavark"
    env: ClassVar[dict[str, str]] = {
        "PATH": PEER_PATH,
        "NETAVARK_FW": "iptables",  # no firewalld probing over D-Bus
        "DBUS_SYSTEM_BUS_ADDRESS": "unix:path=/nonexistent",
    }

    def options(self, i: int) -> str:
        opts: dict[str, Any] = {
            "container_id": f"{i:064x}",
            "container_name": f"c{i}",
            "networks": {"bench": {"static_ips": [str(self.address(i))], "interface_name": "eth0"}},
            "network_info": {
                "bench": {
                    "name": "bench",
                    "id": "b" * 64,
                    "driver": "bridge",
                    "network_interface": "nvbr0",
                    "subnets": [
                        {
                            "subnet": str(self.subnet),
                            "gateway": str(self.subnet.network_address + 1),
                        }
                    ],
                    "ipv6_enabled": False,
                    "internal": False,
                    "dns_enabled": False,
                    "ipam_options": {"driver": "host-local"},
                }
            },
        }
        if self.published:
            opts["port_mappings"] = [
                {
                    "host_ip": "",
                    "container_port": CONTAINER_PORT,
                    "host_port": HOST_PORT_BASE + i,
                    "range": 1,
                    "protocol": "tcp",
                }
            ]
        return json.dumps(opts)

    def _run(self, cmd: str, i: int) -> float:
        argv = [NETAVARK, "--config", str(self.dir / "netavark"), cmd, str(self.containers[i].path)]
        return run_in(self.host, argv, self.options(i), self.env)[0]

    def setup(self, i: int) -> Timings:
        return {"setup": self._run("setup", i)}

    def teardown(self, i: int) -> Timings:
        return {"teardown": self._run("teardown", i)}


class CniTool(PeerTool):
    name = "CNI"

    def start(self, ws: Workspace, tag: str, n: int, published: bool) -> None:
        super().start(ws, tag, n, published)
        self.results: dict[int, dict[str, Any]] = {}
        self.net = {"cniVersion": "1.0.0", "name": "bench"}
        self.bridge = {
            **self.net,
            "type": "bridge",
            "bridge": "cni0",
            "isGateway": True,
            "ipMasq": True,
            "hairpinMode": True,
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": str(self.subnet)}]],
                "routes": [{"dst": "0.0.0.0/0"}],
                "dataDir": str(self.dir / "cni-ipam"),
            },
        }

    def portmap(self, i: int, prev: dict[str, Any]) -> dict[str, Any]:
        return {
            **self.net,
            "type": "portmap",
            "capabilities": {"portMappings": True},
            "runtimeConfig": {
                "portMappings": [
                    {
                        "hostPort": HOST_PORT_BASE + i,
                        "containerPort": CONTAINER_PORT,
                        "protocol": "tcp",
                    }
                ]
            },
            "prevResult": prev,
        }

    def _call(self, plugin: str, cmd: str, i: int, conf: dict[str, Any]) -> tuple[float, str]:
        env = {
            "PATH": PEER_PATH,
            "CNI_COMMAND": cmd,
            "CNI_CONTAINERID": f"{i:064x}",
            "CNI_NETNS": str(self.containers[i].path),
            "CNI_IFNAME": "eth0",
            "CNI_PATH": str(CNI_DIR),
        }
        return run_in(self.host, [str(CNI_DIR / plugin)], json.dumps(conf), env)

    def setup(self, i: int) -> Timings:
        t_bridge, out = self._call("bridge", "ADD", i, self.bridge)
        result = json.loads(out)
        t_portmap = 0.0
        if self.published:
            t_portmap, out = self._call("portmap", "ADD", i, self.portmap(i, result))
            result = json.loads(out)
        self.results[i] = result
        return {"setup": t_bridge + t_portmap}

    def teardown(self, i: int) -> Timings:
        prev = self.results.pop(i)
        t_portmap = 0.0
        if self.published:
            t_portmap, _ = self._call("portmap", "DEL", i, self.portmap(i, prev))
        t_bridge, _ = self._call("bridge", "DEL", i, {**self.bridge, "prevResult": prev})
        return {"teardown": t_bridge + t_portmap}


# -- the runs ----------------------------------------------------------------------------------


@dataclass
class Results:
    # (tool, published, N) -> metric -> samples in ms, in container order
    samples: dict[tuple[str, bool, int], dict[str, list[float]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list))
    )
    net_create: dict[str, list[float]] = field(default_factory=dict)
    net_delete: dict[str, list[float]] = field(default_factory=dict)
    net_create_churn: dict[str, list[float]] = field(default_factory=dict)
    net_first: dict[str, tuple[float, float]] = field(default_factory=dict)
    launch_overhead: float = 0.0

    def get(self, tool: str, published: bool, n: int, metric: str) -> list[float]:
        return self.samples.get((tool, published, n), {}).get(metric, [])


def run_cycle(ws: Workspace, tool: Tool, n: int, published: bool, rep: int, res: Results) -> None:
    tag = f"{tool.name.replace(' ', '-')}-{'pub' if published else 'plain'}-n{n}-r{rep}"
    store = res.samples[(tool.name, published, n)]
    tool.start(ws, tag, n, published)
    try:
        for i in range(n):
            for k, v in tool.setup(i).items():
                store[k].append(v)
        t0 = time.perf_counter()
        for i in range(n):
            for k, v in tool.teardown(i).items():
                store[k].append(v)
        tool.settle()
        store["teardown drained"].append((time.perf_counter() - t0) * MS / n)
    finally:
        tool.stop()


def drain_background(ctrl: pyln.Controller) -> None:
    """Waits for the bridge driver's background deletions (links, and the rules of
    deleted networks), if it has any."""
    drain = getattr(ctrl.driver("bridge"), "drain", None)
    if drain is not None:
        drain()
    else:  # a committed tree from before BridgeDriver.drain (--pyln-from head)
        reaper = getattr(ctrl.driver("bridge"), "reaper", None)
        if reaper is not None:
            reaper.drain()


def network_cycles(ws: Workspace, backend: str, count: int, res: Results) -> None:
    """pyln network create / delete on one controller after one warm-up cycle (the
    first create also initialises the bridge driver and its firewall): `count` cycles
    that wait, untimed, for the driver's background deletions before the next create
    (an idle controller), then `count` cycles back to back (network churn: a create
    then shares the kernel with the previous bridge's deletion)."""
    import pyln

    host = ws.namespace(f"netcycle-{backend}/host", host=True)
    ctrl = pyln.Controller(
        state_dir=ws.root / f"netcycle-{backend}" / "state",
        drivers={"bridge": {"firewall": backend}},
        host_namespace=host,
    )
    creates: list[float] = []
    deletes: list[float] = []
    churn: list[float] = []
    try:
        for i in range(2 * count + 1):
            idle = i <= count
            if idle:
                drain_background(ctrl)
            subnet = str(ws.next_subnet())
            t0 = time.perf_counter()
            net = ctrl.new_network("bridge", f"net{i}", ipam_v4=[{"pool": subnet}])
            t1 = time.perf_counter()
            net.delete()
            t2 = time.perf_counter()
            if idle:
                creates.append((t1 - t0) * MS)
                deletes.append((t2 - t1) * MS)
            else:
                churn.append((t1 - t0) * MS)
    finally:
        ctrl.close()
        ws.drop(host)
    res.net_first[backend] = (creates[0], deletes[0])
    res.net_create[backend] = creates[1:]
    res.net_delete[backend] = deletes[1:]
    res.net_create_churn[backend] = churn


def launch_overhead(ws: Workspace, count: int = 20) -> float:
    """Median cost of `nsenter --net=<host ns> /bin/true`, the launcher the peers pay."""
    host = ws.namespace("launch/host", host=True)
    try:
        return statistics.median(
            run_in(host, ["/bin/true"], "", {"PATH": PEER_PATH})[0] for _ in range(count)
        )
    finally:
        ws.drop(host)


# -- profile -----------------------------------------------------------------------------------


def _area(key: tuple[str, int, str]) -> str:
    """Groups a profiled function into the part of the stack it belongs to."""
    path, _, func = key
    if path == "~":  # a builtin: group by what it is
        if "sqlite3" in func:
            return "SQLite (store commits)"
        if "_thread" in func:
            return "waiting for namespace threads (setns + their netlink/nft work)"
        if "socket" in func:
            return "socket I/O (netlink to the kernel, proxy control)"
        if "fork_exec" in func or "waitpid" in func or "select" in func:
            return "subprocess (proxy / iptables)"
        if "posix." in func or "io." in func or "builtins.open" in func:
            return "file system calls"
        if "json" in func:
            return "JSON"
        return "other builtins"
    for needle, area in (
        ("pyroute2", "pyroute2 (netlink encode/decode)"),
        ("pyln/store", "pyln store"),
        ("pyln/ipam", "pyln ipam"),
        ("pyln/osl", "pyln osl"),
        ("pyln/firewall", "pyln firewall"),
        ("pyln/portmapper", "pyln portmapper"),
        ("pyln/drivers", "pyln bridge driver"),
        ("pyln/", "pyln controller / join"),
        ("json", "JSON"),
        ("subprocess", "subprocess (proxy / iptables)"),
        ("threading", "threading (namespace threads)"),
        ("ipaddress", "ipaddress"),
    ):
        if needle in path:
            return area
    return "other Python"


def profile_report(ws: Workspace, n: int) -> str:
    """cProfile (main thread) of pyln nftables: n setups, n teardowns, n published setups.
    Times are per container."""
    import pyln  # noqa: F401  (loads the package before profiling)

    out: list[str] = []
    for label, published, phase in (
        ("setup (endpoint create + join)", False, "setup"),
        ("teardown (leave + delete)", False, "teardown"),
        ("published-port setup (create + join, one tcp port)", True, "setup"),
    ):
        tool = PylnTool("nftables")
        tool.start(ws, f"profile-{phase}-{int(published)}", n, published)
        prof = cProfile.Profile()
        try:
            for i in range(n):
                if phase == "setup":
                    prof.enable()
                tool.setup(i)
                prof.disable()
            for i in range(n):
                if phase == "teardown":
                    prof.enable()
                # Only leave + delete: sandboxes are deleted in stop().
                ep, sbx = tool.endpoints.pop(i), tool.sandboxes[i]
                ep.leave(sbx)
                ep.delete()
                prof.disable()
        finally:
            tool.stop()
        st = pstats.Stats(prof)
        raw: dict[tuple[str, int, str], tuple[int, int, float, float, Any]] = st.stats  # type: ignore[attr-defined]
        total = sum(v[2] for v in raw.values())
        areas: dict[str, float] = defaultdict(float)
        for key, v in raw.items():
            areas[_area(key)] += v[2]
        out.append(f"### {label}: {total / n * MS:.2f} ms per container in the main thread")
        out.append("")
        out.append("self time by area (ms per container):")
        for area, t in sorted(areas.items(), key=lambda kv: -kv[1])[:10]:
            out.append(f"  {t / n * MS:7.3f}  {area}")
        out.append("")
        out.append("top functions by self time (ms per container, calls per container):")
        for key, v in sorted(raw.items(), key=lambda kv: -kv[1][2])[:12]:
            out.append(f"  {v[2] / n * MS:7.3f}  {v[1] / n:6.1f}  {_fmt_func(key)}")
        out.append("")
        out.append("top pyln functions by cumulative time (ms per container):")
        pyln_rows = [kv for kv in raw.items() if "/pyln/" in kv[0][0]]
        for key, v in sorted(pyln_rows, key=lambda kv: -kv[1][3])[:14]:
            out.append(f"  {v[3] / n * MS:7.3f}  {_fmt_func(key)}")
        out.append("")
    return "\n".join(out)


# Wall-clock phases of pyln's calls: each listed function is wrapped with a timer
# that charges its time to its label, minus the time of wrapped calls nested in it,
# so the phases add up (the rest is controller, driver and join logic in Python plus
# netlink calls made directly, such as the bridge port's hairpin flag).
PHASES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("store (SQLite commits and reads)", "pyln.store.sqlite:SQLiteStore",
     ("commit", "append", "get", "list")),
    ("IPAM (without its store writes)", "pyln.ipam.allocator:Allocator",
     ("request_address", "release_address", "request_pool", "release_pool")),
    ("veth pair create (into the sandbox)", "pyln.osl.interfaces", ("create_veth",)),
    ("bridge create", "pyln.osl.interfaces", ("create_bridge",)),
    ("link lookup by name", "pyln.osl.interfaces", ("index_of", "link_index", "link_exists")),
    ("link configure (addresses, up)", "pyln.osl.interfaces", ("configure_interface",)),
    ("link delete", "pyln.osl.interfaces", ("delete_link",)),
    ("routes (default gateway)", "pyln.osl.routes",
     ("set_default_gateway", "add_route", "remove_route")),
    ("firewall: nftables", "pyln.firewall.nftables:NftablesFirewall",
     ("setup_network", "remove_network", "add_port_mappings", "remove_port_mappings")),
    ("firewall: iptables", "pyln.firewall.iptables:IptablesFirewall",
     ("setup_network", "remove_network", "add_port_mappings", "remove_port_mappings")),
    ("userland proxy (start, add, remove)", "pyln.portmapper.manager:ProxyManager",
     ("start", "stop", "ensure", "add", "remove")),
    ("hosts / resolv.conf files", "pyln.sandbox", ("write_hosts", "write_resolv_conf")),
    ("netlink socket opened in a namespace", "pyln.osl.namespace:Namespace",
     ("new_netlink",)),
    ("namespace open / delete", "pyln.osl.namespace:Namespace", ("open", "delete")),
    ("sysctl", "pyln.osl.namespace:Namespace", ("sysctl",)),
)  # fmt: skip
REST = "rest: controller / driver / join logic, direct netlink calls"


class PhaseTimer:
    """Charges wall time to phases, per operation, exclusive of nested wrapped calls.
    Only calls made on the main thread are timed (pyln's API runs there; the work of
    its short namespace threads is inside the main-thread call that waits for it)."""

    def __init__(self) -> None:
        self.op = ""
        self.totals: dict[tuple[str, str], float] = defaultdict(float)
        self.walls: dict[str, list[float]] = defaultdict(list)
        self._stack: list[float] = []
        self._undo: list[tuple[object, str, object]] = []

    def _wrap(self, label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        timer = self
        main = threading.main_thread()

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if threading.current_thread() is not main:
                return fn(*args, **kwargs)
            timer._stack.append(0.0)
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                dt = time.perf_counter() - t0
                nested = timer._stack.pop()
                timer.totals[(timer.op, label)] += dt - nested
                if timer._stack:
                    timer._stack[-1] += dt

        return wrapper

    def install(self) -> None:
        import importlib

        for label, where, names in PHASES:
            mod_name, _, cls_name = where.partition(":")
            mod = importlib.import_module(mod_name)
            owner: Any = getattr(mod, cls_name) if cls_name else mod
            for name in names:
                orig = owner.__dict__.get(name) if cls_name else getattr(mod, name, None)
                if orig is None:
                    continue
                if isinstance(orig, classmethod):
                    wrapped: Any = classmethod(self._wrap(label, orig.__func__))
                else:
                    wrapped = self._wrap(label, orig)
                if cls_name:
                    self._undo.append((owner, name, orig))
                    setattr(owner, name, wrapped)
                    continue
                # A module function: replace every reference pyln modules hold to it.
                for m in list(sys.modules.values()):
                    if getattr(m, "__name__", "").startswith("pyln"):
                        for attr, val in list(vars(m).items()):
                            if val is orig:
                                self._undo.append((m, attr, orig))
                                setattr(m, attr, wrapped)

    def uninstall(self) -> None:
        for owner, name, orig in reversed(self._undo):
            setattr(owner, name, orig)
        self._undo.clear()

    @contextmanager
    def measure(self, op: str) -> Iterator[None]:
        self.op = op
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.walls[op].append(time.perf_counter() - t0)


def breakdown_report(ws: Workspace, n: int, backend: str) -> str:
    """Where pyln's wall time goes, per operation: n containers (plain, then with a
    published port) and 10 network create/delete cycles, one backend."""
    import pyln

    timer = PhaseTimer()
    timer.install()
    try:
        for published in (False, True):
            tool = PylnTool(backend)
            tool.start(ws, f"phases-{int(published)}", n, published)
            kind = "published " if published else ""
            try:
                for i in range(n):
                    with timer.measure(f"{kind}setup"):
                        tool.setup(i)
                for i in range(n):
                    ep, sbx = tool.endpoints.pop(i), tool.sandboxes[i]
                    with timer.measure(f"{kind}teardown"):
                        ep.leave(sbx)
                        ep.delete()
                    if not published:
                        with timer.measure("sandbox delete"):
                            sbx.delete()
            finally:
                timer.op = ""
                tool.stop()
        host = ws.namespace("phases-net/host", host=True)
        ctrl = pyln.Controller(
            state_dir=ws.root / "phases-net" / "state",
            drivers={"bridge": {"firewall": backend}},
            host_namespace=host,
        )
        try:
            for i in range(11):
                drain_background(ctrl)  # an idle controller, as in network_cycles
                subnet = str(ws.next_subnet())
                with timer.measure("network create" if i else "warm-up"):
                    net = ctrl.new_network("bridge", f"n{i}", ipam_v4=[{"pool": subnet}])
                with timer.measure("network delete" if i else "warm-up"):
                    net.delete()
        finally:
            timer.op = ""
            ctrl.close()
            ws.drop(host)
    finally:
        timer.uninstall()
    ops = [
        "setup",
        "teardown",
        "sandbox delete",
        "published setup",
        "published teardown",
        "network create",
        "network delete",
    ]
    labels = [label for label, _, _ in PHASES]
    head = ["phase (mean ms per operation)", *ops]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    rest = {}
    for op in ops:
        count = len(timer.walls[op])
        rest[op] = (sum(timer.walls[op]) - sum(timer.totals[(op, lb)] for lb in labels)) / count
    for label in [*labels, REST]:
        vals = []
        for op in ops:
            count = len(timer.walls[op])
            v = rest[op] if label == REST else timer.totals[(op, label)] / count
            vals.append(f"{v * MS:.2f}" if abs(v * MS) >= 0.005 else "")
        if any(vals):
            lines.append(f"| {label} | " + " | ".join(vals) + " |")
    totals = [f"**{statistics.fmean(timer.walls[op]) * MS:.2f}**" for op in ops]
    lines.append("| **total (wall)** | " + " | ".join(totals) + " |")
    counts = ", ".join(f"{op} {len(timer.walls[op])}" for op in ops)
    return (
        f"### Where pyln's time goes ({backend}, N={n} on one network; network create / "
        f"delete on an idle controller; operations: {counts})\n\n" + "\n".join(lines) + "\n"
    )


def _fmt_func(key: tuple[str, int, str]) -> str:
    path, line, func = key
    if path == "~":
        return func
    short = path.split("/pyln/", 1)[-1] if "/pyln/" in path else Path(path).name
    return f"{short}:{line} {func}"


# -- the table ---------------------------------------------------------------------------------


def p50(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def p90(xs: list[float]) -> float:
    if len(xs) < 2:
        return xs[0] if xs else float("nan")
    return statistics.quantiles(xs, n=10, method="inclusive")[8]


def fmt(x: float) -> str:
    if x != x:
        return "—"
    return f"{x:.1f}" if x >= 10 else f"{x:.2f}"


def cell(xs: list[float]) -> str:
    return f"{fmt(p50(xs))} / {fmt(p90(xs))}" if xs else "—"


def build_report(
    res: Results,
    sizes: list[int],
    pylns: list[str],
    peers: list[str],
    reps1: int,
    meta: dict[str, str],
    elapsed: float,
    phases: list[str],
) -> str:
    short = {t: t.replace("pyln ", "") for t in pylns}
    head = ["step", "N", *[f"{t} p50 / p90" for t in pylns], *[f"{p} p50 / p90" for p in peers]]
    head += [f"pyln / {' / '.join(peers)} (p50)", "pyln / faster peer (p50)", "target", "met"]
    rows: list[list[str]] = []

    def ratio_row(
        step: str, n: int, published: bool, metric: str, peer_metric: str, target: str, info: bool
    ) -> None:
        cells = [cell(res.get(t, published, n, metric)) for t in pylns]
        cells += [cell(res.get(p, published, n, peer_metric)) for p in peers]
        peer_p50 = [p50(res.get(p, published, n, peer_metric)) for p in peers]
        peer_p50 = [x for x in peer_p50 if x == x]
        ratios: list[str] = []
        mets: list[str] = []
        each: list[str] = []
        for t in pylns:
            mine = p50(res.get(t, published, n, metric))
            per = [mine / p50(res.get(p, published, n, peer_metric)) for p in peers]
            if mine == mine and per:
                each.append(f"{short[t]} " + " / ".join(f"{r:.2f}" for r in per))
        if peer_p50:
            best = min(peer_p50)
            for t in pylns:
                if not res.get(t, published, n, metric):
                    continue
                r = p50(res.get(t, published, n, metric)) / best
                ratios.append(f"{short[t]} {r:.2f}")
                mets.append(f"{short[t]} {'yes' if r <= TARGET_RATIO else 'no'}")
        rows.append(
            [
                step,
                str(n),
                *cells,
                ", ".join(each) or "—",
                ", ".join(ratios) or "—",
                "info" if info else target,
                "—" if info else (", ".join(mets) or "—"),
            ]
        )

    quarter = "≤ 0.25"
    for n in sizes:
        ratio_row("setup", n, False, "setup", "setup", quarter, False)
    flat_cells: list[str] = []
    flat_mets: list[str] = []
    big = max(sizes)
    quarter_n = max(1, big // 4)
    for t in [*pylns, *peers]:
        xs = res.get(t, False, big, "setup")
        if len(xs) >= 2 * quarter_n:
            f = p50(xs[-quarter_n:]) / p50(xs[:quarter_n])
            flat_cells.append(f"{f:.2f}")
            if t in pylns:
                flat_mets.append(f"{short[t]} {'yes' if f <= TARGET_FLAT else 'no'}")
        else:
            flat_cells.append("—")
    rows.append(
        [
            "setup flatness: p50 of the last / first quarter of containers",
            str(big),
            *flat_cells,
            "—",
            "—",
            f"flat: ≤ {TARGET_FLAT}",
            ", ".join(flat_mets) or "—",
        ]
    )
    if min(sizes) != big:
        across = []
        for t in [*pylns, *peers]:
            a, b = p50(res.get(t, False, big, "setup")), p50(res.get(t, False, min(sizes), "setup"))
            across.append(f"{a / b:.2f}" if a == a and b == b else "—")
        rows.append(
            [
                f"setup p50 at N={big} / p50 at N={min(sizes)}",
                f"{min(sizes)}→{big}",
                *across,
                "—",
                "—",
                "info",
                "—",
            ]
        )
    for n in sizes:
        ratio_row("teardown", n, False, "teardown", "teardown", quarter, False)
    for n in sizes:
        ratio_row(
            "teardown + sandbox.delete() (pyln; peers: teardown)",
            n,
            False,
            "teardown+sandbox",
            "teardown",
            quarter,
            True,
        )
    for n in sizes:
        ratio_row(
            "teardown until the links are gone (wall time / N, see notes)",
            n,
            False,
            "teardown drained",
            "teardown drained",
            quarter,
            True,
        )
    for n in sizes:
        ratio_row("published-port setup", n, True, "setup", "setup", quarter, False)
    for n in sizes:
        ratio_row("published-port teardown", n, True, "teardown", "teardown", quarter, True)

    net_rows: tuple[tuple[str, dict[str, list[float]], float, float | None], ...] = (
        ("network create", res.net_create, DOCKER_NETWORK_CREATE_MS, TARGET_NET_CREATE_MS),
        (
            "network create right after a delete (churn; info)",
            res.net_create_churn,
            DOCKER_NETWORK_CREATE_MS,
            None,
        ),
        ("network delete", res.net_delete, DOCKER_NETWORK_RM_MS, TARGET_NET_DELETE_MS),
    )
    for what, data, docker, target in net_rows:
        cells = [cell(data.get(b.replace("pyln ", ""), [])) for b in pylns]
        cells += ["— (no network step)" for _ in peers]
        ratios = []
        mets = []
        for t in pylns:
            xs = data.get(short[t], [])
            if xs:
                ratios.append(f"{short[t]} {p50(xs) / docker:.2f} of docker's {docker:.0f} ms")
                if target is not None:
                    mets.append(f"{short[t]} {'yes' if p50(xs) <= target else 'no'}")
        rows.append(
            [
                what,
                "—",
                *cells,
                "—",
                ", ".join(ratios),
                f"≤ {target:.0f} ms" if target is not None else "info",
                ", ".join(mets) or "—",
            ]
        )

    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    table = "\n".join(lines)

    # pyln's steps one by one (p50, ms).
    parts = [
        ("plain", False, "create"),
        ("plain", False, "join"),
        ("plain", False, "leave"),
        ("plain", False, "delete"),
        ("plain", False, "sandbox delete"),
        ("published", True, "create"),
        ("published", True, "join"),
        ("published", True, "leave"),
        ("published", True, "delete"),
    ]
    bhead = ["pyln step (p50 ms)", *[f"{short[t]} N={n}" for t in pylns for n in sizes]]
    blines = ["| " + " | ".join(bhead) + " |", "|" + "---|" * len(bhead)]
    for kind, published, metric in parts:
        vals = [fmt(p50(res.get(t, published, n, metric))) for t in pylns for n in sizes]
        blines.append(f"| {kind}: {metric} | " + " | ".join(vals) + " |")
    breakdown = "\n".join(blines)

    samples = ", ".join(
        f"N={n}: {reps1 if n == 1 else 1} run(s), {reps1 if n == 1 else n}" for n in sizes
    )
    cycles = len(next(iter(res.net_create.values()), []))
    notes = [
        f"Per-container times in milliseconds, p50 / p90 ({samples} samples per cell). "
        "Ratios are pyln p50 / the faster peer's p50 at the same N; lower is better.",
        "Peers run as one process per container through "
        f"`nsenter --net=<throwaway host ns>`; that launcher alone (`nsenter ... /bin/true`) "
        f"costs {res.launch_overhead:.2f} ms (p50), included in the peers' figures.",
        "Each run uses a fresh host namespace and a fresh network. netavark and CNI create "
        "the bridge and the network-wide rules lazily, in the first container's setup "
        "(netavark also deletes them in the last teardown); pyln does that in network "
        "create, outside the timed region. At N=1 every peer sample includes that work; "
        "at N≥50 it is one sample in N.",
        "pyln runs with its defaults, as Docker does: the userland proxy is on, so the "
        "first published port of a run also starts pyln's one proxy process (at N=1 every "
        "sample includes that start). netavark and CNI portmap have no userland proxy.",
        "pyln's leave returns once the veth pair is detached (down, off the bridge, "
        "renamed); a background thread then deletes it, which waits ~20 ms on kernel RCU "
        "grace periods. The peers delete synchronously. The 'until the links are gone' rows "
        "time N teardowns back to back plus the wait for pyln's background deletions, divided "
        "by N (one value per run; pyln's include sandbox.delete()).",
        "CNI figures are bridge (+ portmap) only; podman's old CNI conflists also chained "
        "firewall and tuning, so real CNI setups cost more. netavark is given static IPs "
        "(IPAM is podman's job, not netavark's); pyln's IPAM commits each address to SQLite "
        "before returning, and CNI host-local writes a file per address.",
        "netavark runs with NETAVARK_FW=iptables (iptables-nft here) and dns_enabled false "
        "(no aardvark-dns, no D-Bus); CNI bridge uses isGateway, ipMasq and hairpinMode; "
        "portmap uses iptables-nft.",
        f"network create / delete: pyln p50 / p90 over {cycles} "
        "create+delete cycles on one controller after a warm-up cycle, each create once the "
        "bridge driver's background deletions are done (an idle controller); the churn row "
        f"is {cycles} more cycles back to back, where a create meets the previous bridge's "
        "deletion in the kernel "
        "(first cycle: "
        + ", ".join(f"{b} {c:.1f} / {d:.1f} ms" for b, (c, d) in res.net_first.items())
        + "). Docker's 79 ms / 177 ms are the issue's figures for `docker network create` / "
        "`docker network rm` (CLI plus dockerd); Docker cannot be run here safely, so they "
        "are quoted, not measured.",
        "Flat in N: p50 of the last quarter of the containers set up in the N="
        f"{max(sizes)} run over p50 of the first quarter, ≤ {TARGET_FLAT}.",
    ]
    env = "\n".join(f"- {k}: {v}" for k, v in meta.items())
    return (
        "## CNM per-container cost: pyln vs netavark vs CNI\n\n"
        + table
        + "\n\n"
        + "\n".join(f"- {n}" for n in notes)
        + "\n\n### pyln, step by step\n\n"
        + breakdown
        + "\n\n"
        + "\n".join(phases)
        + "\n### Environment\n\n"
        + env
        + f"\n- wall time of the benchmark: {elapsed:.0f} s\n"
    )


# -- main --------------------------------------------------------------------------------------


@contextmanager
def sigterm_as_exit() -> Iterator[None]:
    """SIGTERM / SIGHUP raise SystemExit so the cleanup in `finally` still runs."""

    def handler(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1,50,200", help="container counts (default 1,50,200)")
    ap.add_argument("--reps1", type=int, default=15, help="runs at N=1 (default 15)")
    ap.add_argument("--backends", default="nftables,iptables", help="pyln firewall backends")
    ap.add_argument("--peers", default="netavark,cni", help="peers to run (netavark,cni or none)")
    ap.add_argument("--net-cycles", type=int, default=20, help="network create/delete cycles")
    ap.add_argument("--pyln-from", choices=("worktree", "head"), default="worktree")
    ap.add_argument("--no-profile", action="store_true", help="skip cProfile and phases")
    ap.add_argument(
        "--no-proxy-variant",
        dest="proxy_variant",
        action="store_false",
        help="skip the published-port runs of pyln with userland_proxy off",
    )
    ap.add_argument("--quick", action="store_true", help="N=1,5 and 3 runs at N=1: a smoke run")
    ap.add_argument("--out", default="/tmp/cnm_bench_table.md")
    ap.add_argument("--profile-out", default="/tmp/cnm_bench_profile.txt")
    args = ap.parse_args(argv)
    if args.quick:
        args.sizes, args.reps1, args.net_cycles = "1,5", 3, 5
    sizes = sorted({int(s) for s in args.sizes.split(",")})
    backends = [b for b in args.backends.split(",") if b]
    peer_names = [p for p in args.peers.split(",") if p and p != "none"]
    if os.geteuid() != 0:
        print("cnm_bench needs root (network namespaces, bridges, rules)", file=sys.stderr)
        return 2
    if max(sizes) > 250:
        print("at most 250 containers: one /24 per network", file=sys.stderr)
        return 2
    if peer_names:
        ensure_packages()
    before = machine_state()
    started = time.perf_counter()
    ws = Workspace()
    res = Results()
    profile = ""
    phases: list[str] = []
    with sigterm_as_exit():
        try:
            meta = {"pyln": pyln_source(args.pyln_from, ws.root)}
            meta.update(tool_versions())
            meta["command"] = "python " + " ".join([sys.argv[0], *(argv or sys.argv[1:])])
            meta["machine"] = f"{os.cpu_count()} CPUs, {platform.machine()}"
            res.launch_overhead = launch_overhead(ws)
            pylns: list[Tool] = [PylnTool(b) for b in backends]
            if args.proxy_variant and backends:
                pylns.append(PylnTool(backends[0], userland_proxy=False))
            peers: list[Tool] = []
            for p in peer_names:
                peers.append({"netavark": NetavarkTool, "cni": CniTool}[p]())
            tools = [*pylns, *peers]
            for n in sizes:
                reps = args.reps1 if n == 1 else 1
                for published in (False, True):
                    for rep in range(reps):  # tools interleaved, so drift hits all alike
                        for tool in tools:
                            if published not in tool.kinds:
                                continue
                            if rep == 0:
                                log(f"N={n} {'published' if published else 'plain'} {tool.name}")
                            run_cycle(ws, tool, n, published, rep, res)
            for b in backends:
                log(f"network create/delete, pyln {b}")
                network_cycles(ws, b, args.net_cycles, res)
            if not args.no_profile:
                pn = min(50, max(sizes))
                for b in backends:
                    log(f"phase timing of pyln {b}, {pn} containers")
                    phases.append(breakdown_report(ws, pn, b))
                log(f"cProfile of pyln nftables, {pn} containers")
                profile = profile_report(ws, pn)
        finally:
            log("cleaning up")
            ws.cleanup()
    after = machine_state()
    elapsed = time.perf_counter() - started
    changed = [k for k in before if before[k] != after[k]]
    meta["machine namespace after the run"] = (
        "unchanged (links, named netns, nft ruleset, iptables-save, ip6tables-save, "
        "ip_forward compared before/after)"
        if not changed
        else f"CHANGED: {', '.join(changed)}"
    )
    report = build_report(
        res,
        sizes,
        [t.name for t in pylns],
        [t.name for t in peers],
        args.reps1,
        meta,
        elapsed,
        phases,
    )
    print(report)
    Path(args.out).write_text(report)
    if profile:
        Path(args.profile_out).write_text(profile + "\n")
        print("## cProfile of pyln (nftables backend, main thread)\n")
        print(profile)
    log(f"table written to {args.out}" + (f", profile to {args.profile_out}" if profile else ""))
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())
