"""Running the backends' tools inside a namespace: libnftables through ctypes in a
thread that entered the namespace, and *-restore / *-save binaries spawned from such a
thread, with argv lists (input on stdin, never a shell)."""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import shutil
import socket
import struct
import subprocess
import threading
from typing import Any

from pyroute2.netlink.exceptions import NetlinkError  # type: ignore[import-untyped]

from pyln.firewall.errors import BackendUnavailable, FirewallError
from pyln.osl import Namespace, NamespaceWorker
from pyln.osl.rtnl import Rtnl

# Where a call runs inside a namespace: a fresh thread each time (Namespace) or a
# long-lived one (NamespaceWorker); both run inline for a caller already there.
InNamespace = Namespace | NamespaceWorker

NFT_CTX_DEFAULT = 0
NFT_CTX_OUTPUT_HANDLE = 1 << 3
NFT_CTX_OUTPUT_JSON = 1 << 4

_lib: ctypes.CDLL | None = None
_lib_lock = threading.Lock()


def _libnftables() -> ctypes.CDLL:
    """The libnftables shared library, loaded once, with its prototypes declared."""
    global _lib
    with _lib_lock:
        if _lib is not None:
            return _lib
        name = ctypes.util.find_library("nftables") or "libnftables.so.1"
        try:
            lib = ctypes.CDLL(name, use_errno=True)
        except OSError as e:
            raise BackendUnavailable(f"libnftables is not installed: {e}") from e
        lib.nft_ctx_new.restype = ctypes.c_void_p
        lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
        lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_output_get_flags.restype = ctypes.c_uint
        lib.nft_ctx_output_get_flags.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_output_set_flags.argtypes = [ctypes.c_void_p, ctypes.c_uint]
        lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_output_buffer.restype = ctypes.c_char_p
        lib.nft_ctx_get_output_buffer.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
        lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
        lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        lib.nft_run_cmd_from_buffer.restype = ctypes.c_int
        _lib = lib
        return lib


class NftError(FirewallError):
    """nft rejected a command; `stderr` holds its error text."""

    def __init__(self, message: str, stderr: str) -> None:
        super().__init__(message)
        self.stderr = stderr


def _nft_in_thread(payload: bytes) -> tuple[int, str, str]:
    lib = _libnftables()
    ctx = lib.nft_ctx_new(NFT_CTX_DEFAULT)
    if not ctx:
        raise FirewallError("nft_ctx_new failed")
    try:
        # JSON output also makes libnftables parse its input as JSON.
        flags = lib.nft_ctx_output_get_flags(ctx) | NFT_CTX_OUTPUT_JSON | NFT_CTX_OUTPUT_HANDLE
        lib.nft_ctx_output_set_flags(ctx, flags)
        lib.nft_ctx_buffer_output(ctx)
        lib.nft_ctx_buffer_error(ctx)
        rc = lib.nft_run_cmd_from_buffer(ctx, payload)
        out = (lib.nft_ctx_get_output_buffer(ctx) or b"").decode(errors="replace")
        err = (lib.nft_ctx_get_error_buffer(ctx) or b"").decode(errors="replace")
        return rc, out, err
    finally:
        lib.nft_ctx_free(ctx)


def nft_json(ns: InNamespace, commands: list[dict[str, Any]], what: str) -> None:
    """Applies `commands` (nft JSON command objects) as one transaction inside `ns`."""
    if not commands:
        return
    payload = json.dumps({"nftables": commands}).encode()
    rc, _, err = ns.run(_nft_in_thread, payload)
    if rc != 0:
        raise NftError(f"nftables: {what} failed: {err.strip()}", err)


def nft_list(ns: InNamespace, command: str) -> list[dict[str, Any]] | None:
    """The JSON objects `nft -j <command>` prints inside `ns` (e.g. "list table inet x"),
    or None if the object does not exist."""
    rc, out, err = ns.run(_nft_in_thread, command.encode())
    if rc != 0:
        if "No such file or directory" in err:
            return None
        raise NftError(f"nftables: {command} failed: {err.strip()}", err)
    if not out.strip():
        return []
    items: list[dict[str, Any]] = json.loads(out)["nftables"]
    return items


NETLINK_NETFILTER = 12
_NFT_MSG_GETGEN = (10 << 8) | 16  # NFNL_SUBSYS_NFTABLES, NFT_MSG_GETGEN
_NFT_MSG_NEWGEN = (10 << 8) | 15
_NFTA_GEN_ID = 1


class NftGeneration:
    """Reads the nftables ruleset generation of a namespace: a counter the kernel
    bumps on every committed transaction, by anyone. One small netlink request
    (~0.02 ms), so a firewall can tell whether the table it read before is still
    what the kernel has, instead of listing it again (~4 ms and growing with it)."""

    def __init__(self, ns: Namespace) -> None:
        self._nl = Rtnl(ns.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER))

    def close(self) -> None:
        self._nl.close()

    def read(self) -> int:
        """The current generation; FirewallError if the kernel does not answer."""
        try:
            # nfgenmsg: family AF_UNSPEC, version 0, resource id 0.
            replies = self._nl.raw(_NFT_MSG_GETGEN, 0, struct.pack("=BBH", 0, 0, 0))
        except NetlinkError as e:
            raise FirewallError(f"nftables: reading the ruleset generation: {e}") from e
        for msg in replies:
            if struct.unpack_from("=H", msg, 4)[0] == _NFT_MSG_NEWGEN:
                gen = _gen_id(msg[20:])
                if gen is not None:
                    return gen
        raise FirewallError("nftables: no ruleset generation in the reply")


def _gen_id(attrs: bytes) -> int | None:
    """NFTA_GEN_ID (a big-endian u32) from a NEWGEN message's attributes."""
    off = 0
    while off + 4 <= len(attrs):
        alen, atype = struct.unpack_from("=HH", attrs, off)
        if alen < 4:
            return None
        if atype & 0x3FFF == _NFTA_GEN_ID and alen >= 8:
            return int(struct.unpack_from(">I", attrs, off + 4)[0])
        off += (alen + 3) & ~3
    return None


def tool(name: str) -> str:
    """The full path of a command-line tool, or BackendUnavailable."""
    path = shutil.which(name)
    if path is None:
        raise BackendUnavailable(f"{name} is not installed")
    return path


def run_in_ns(ns: InNamespace, argv: list[str], stdin: str = "", timeout: float = 60) -> str:
    """Runs `argv` inside `ns` and returns its stdout; a non-zero exit raises
    FirewallError with its stderr. The child is spawned from a thread inside `ns` (a
    child starts in its spawning thread's namespaces): no nsenter to exec first, which
    measured 1.3 ms against 2.1 ms per iptables-restore here. No shell either."""

    def spawn() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv, input=stdin, capture_output=True, text=True, timeout=timeout, check=False
        )

    try:
        proc = ns.run(spawn)
    except subprocess.TimeoutExpired as e:
        raise FirewallError(f"{argv[0]} timed out after {timeout}s") from e
    if proc.returncode != 0:
        raise FirewallError(
            f"{' '.join(argv)} failed (exit {proc.returncode}): {proc.stderr.strip()}"
        )
    return proc.stdout
