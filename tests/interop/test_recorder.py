"""The loopback recorder against the Go peer: what memberlist 0.2.2 puts on the wire,
layer by layer (captures for later codec tests)."""

from __future__ import annotations

import base64
import os
import zlib

import pytest

from .conftest import PeerFactory
from .recorder import Datagram, LoopbackRecorder

# Message type bytes (WIRE-NOTES.md).
PING, COMPOUND, COMPRESS, ENCRYPT, HAS_CRC = 0, 7, 9, 10, 12
# A compress message: msgpack {"Algo": 0 (LZW), "Buf": <raw>}, field names as raw strings.
COMPRESS_HEAD = bytes([COMPRESS]) + b"\x82\xa4Algo\x00\xa3Buf"


def _raw_header(b: int) -> bool:
    """msgpack "raw" (old str) headers only: fixraw, raw16, raw32 - never str8 or bin."""
    return 0xA0 <= b <= 0xBF or b in (0xDA, 0xDB)


def test_records_the_push_pull_of_a_joining_peer(memberlist_peer_factory: PeerFactory) -> None:
    """A TCP sink as the seed: the joiner sends its push/pull, gets no answer and gives up
    after TCPTimeout (1 s with the local config)."""
    with LoopbackRecorder() as rec:
        d = memberlist_peer_factory("d", config="local", join=[rec.addr], join_retry=0)
        failed = d.wait_event("join_failed", timeout=5)
        assert "i/o timeout" in failed["error"]
        stream = rec.wait_stream(lambda s: s.client_closed, timeout=5)
    data = bytes(stream.received)
    # Streams are always compressed (not only when smaller, unlike packets).
    assert data.startswith(COMPRESS_HEAD) and _raw_header(data[len(COMPRESS_HEAD)])
    assert not rec.datagrams()


def test_relays_and_records_both_directions(memberlist_peer_factory: PeerFactory) -> None:
    a = memberlist_peer_factory("a", config="local")
    with LoopbackRecorder(tcp_forward=a.addr, udp=False) as rec:
        b = memberlist_peer_factory("b", config="local", join=[rec.addr])
        assert b.wait_event("joined")["contacted"] == 1
        stream = rec.wait_stream(timeout=5)  # both sides closed the connection
        for p in (a, b):
            p.wait_members({"a", "b"})
    assert bytes(stream.received).startswith(COMPRESS_HEAD)
    assert bytes(stream.replied).startswith(COMPRESS_HEAD)
    assert len(rec.streams()) == 1  # after the join, a and b talk directly


def _unwrap_crc(d: Datagram) -> bytes:
    data = d.data
    if data[0] == HAS_CRC:
        assert int.from_bytes(data[1:5], "big") == zlib.crc32(data[5:]), d
        data = data[5:]
    return data


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
def test_records_probes_of_a_dead_node(
    memberlist_peer_factory: PeerFactory, encrypted: bool
) -> None:
    """x dies and the recorder takes its port: a and b go on probing it (UDP pings,
    then TCP fallback pings) until they declare it dead."""
    secret = base64.b64encode(os.urandom(16)).decode() if encrypted else None
    a = memberlist_peer_factory("a", config="local", secret=secret)
    b = memberlist_peer_factory("b", config="local", secret=secret, join=[a])
    x = memberlist_peer_factory("x", config="local", secret=secret, join=[a])
    for p in (a, b, x):
        p.wait_members({"a", "b", "x"})
    x.kill()
    with LoopbackRecorder(x.port) as rec:
        first = rec.wait_datagram(timeout=5)
        assert first.src[0] == "127.0.0.1" and first.src[1] in (a.port, b.port)
        if encrypted:
            # [version 1][12-byte nonce][ciphertext][16-byte tag], no type byte on UDP.
            assert first.data[0] == 1 and len(first.data) > 1 + 12 + 16
            assert b"SeqNo" not in first.data
            stream = rec.wait_stream(lambda s: len(s.received) >= 5, timeout=10)
            data = bytes(stream.received)
            assert data[0] == ENCRYPT and int.from_bytes(data[1:5], "big") >= 1 + 12 + 16
        else:
            # A bare ping (type 0), or with a CRC header when updates ride along.
            ping = rec.wait_datagram(lambda d: _unwrap_crc(d)[0] == PING, timeout=5)
            body = _unwrap_crc(ping)
            assert b"\xa4Node\xa1x" in body and b"\xa5SeqNo" in body
            # The sender's address rides along as 4 raw bytes.
            assert b"\xaaSourceAddr\xa4\x7f\x00\x00\x01" in body
