"""Shared fixtures. The session fixture fails the run if any test left a network
namespace or link behind in the kernel, or a helper process running."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyln.store import SQLiteStore

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
# Set to the starting process's pid in the environment of every memberlist peer the
# interop tests start (tests/interop/memberlist_peer.py), so that peers other test
# runs on this machine own are not taken for ours.
PEER_OWNER_ENV = "PYLN_TEST_OWNER"


def _started_by_us(pid: str) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = f.read().split(b"\0")
    except OSError:
        return False
    return f"{PEER_OWNER_ENV}={os.getpid()}".encode() in env


def _kernel_objects() -> set[str]:
    """Network namespaces (named, or mounted anywhere), links of this namespace, pyln
    proxy processes and the memberlist peers this session started, now present."""
    names: set[str] = set()
    if os.path.isdir("/run/netns"):
        names |= {f"netns:{n}" for n in os.listdir("/run/netns")}
    if os.path.isdir("/sys/class/net"):
        names |= {f"link:{n}" for n in os.listdir("/sys/class/net")}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if " - nsfs " in line:
                names.add(f"netns-mount:{fields[4]}")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "portmapper/proxy" in cmd or "pyln.portmapper.proxy" in cmd:
            names.add(f"process:{pid}:{cmd.strip()}")
        elif "memberlist-peer" in cmd and _started_by_us(pid):
            names.add(f"process:{pid}:{cmd.strip()}")
    return names


@pytest.fixture(scope="session", autouse=True)
def kernel_leak_check() -> Iterator[None]:
    before = _kernel_objects()
    yield
    leaked = sorted(_kernel_objects() - before)
    if leaked:
        pytest.fail(f"tests left kernel objects behind: {', '.join(leaked)}", pytrace=False)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "state", scope="local")
    yield s
    s.close()


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    """A state directory for tests that open several stores on one file."""
    p = tmp_path / "state"
    p.mkdir()
    return p


def run_python(code: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Runs `code` in a fresh interpreter of this environment (another process)."""
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
