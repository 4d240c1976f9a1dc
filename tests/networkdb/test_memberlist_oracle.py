"""The Rust memberlist codec checked against an independent implementation: the
Python msgpack package decodes what the machine sends and encodes what it is fed
(go-msgpack's format: maps keyed by Go field names, raw strings, no bin type)."""

from __future__ import annotations

import io
import socket

import msgpack

from pyln import _core

PLAIN = {"enable_compression": False}


def machine(name: str, port: int) -> _core.MemberlistMachine:
    return _core.MemberlistMachine(0, name, "127.0.0.1", port, "lan", [], 7, PLAIN)


def unpack_all(data: bytes) -> list[object]:
    u = msgpack.Unpacker(io.BytesIO(data), raw=True, strict_map_key=False)
    return list(u)


def test_push_pull_stream_decodes_with_msgpack() -> None:
    a = machine("node-a", 7001)
    a.set_local_state(b"user-state")
    tokens = a.join(1, [("127.0.0.1", 7002)])
    (action,) = [x for x in a.take_actions() if x[0] == "stream"]
    _kind, host, port, data, token = action
    assert (host, port, token) == ("127.0.0.1", 7002, tokens[0])
    assert data[0] == 6  # pushPullMsg
    u = msgpack.Unpacker(raw=True)
    u.feed(data[1:])
    header = u.unpack()
    assert header == {b"Join": True, b"Nodes": 1, b"UserStateLen": len(b"user-state")}
    # Keys come out sorted by name, as go-msgpack writes them.
    assert list(header) == sorted(header)
    state = u.unpack()
    assert state[b"Name"] == b"node-a"
    assert state[b"Addr"] == socket.inet_aton("127.0.0.1")
    assert state[b"Port"] == 7001 and state[b"State"] == 0 and state[b"Incarnation"] == 1
    assert state[b"Vsn"] == bytes([1, 5, 2, 0, 0, 0])
    # The rest of the stream is the raw user state.
    assert data.endswith(b"user-state")


def test_machine_accepts_messages_encoded_by_msgpack() -> None:
    a = machine("node-a", 7001)
    alive = {
        "Incarnation": 3,
        "Node": "node-z",
        "Addr": socket.inet_aton("127.0.0.9"),
        "Port": 7999,
        "Meta": b"",
        "Vsn": bytes([1, 5, 2, 0, 0, 0]),
    }
    # Old raw strings (use_bin_type=False), as the Go peer reads and writes.
    body = msgpack.packb(alive, use_bin_type=False)
    a.handle_packet(1, "127.0.0.9", 7999, bytes([4]) + body)
    members = {m[0]: m for m in a.members()}
    assert members["node-z"] == ("node-z", "127.0.0.9", 7999, 0, 3)
    # A ping for us gets an ack with the same sequence number, to SourceAddr:Port.
    ping = {
        "SeqNo": 77,
        "Node": "node-a",
        "SourceAddr": socket.inet_aton("127.0.0.9"),
        "SourcePort": 7999,
        "SourceNode": "node-z",
    }
    a.handle_packet(2, "127.0.0.9", 40000, bytes([0]) + msgpack.packb(ping, use_bin_type=False))
    acks = [x for x in a.take_actions() if x[0] == "packet"]
    assert acks and acks[0][1:3] == ("127.0.0.9", 7999)
    data = acks[0][3]
    if data[0] == 7:  # compound: the ack plus piggybacked broadcasts
        n = data[1]
        first_len = int.from_bytes(data[2:4], "big")
        data = data[2 + 2 * n : 2 + 2 * n + first_len]
    assert data[0] == 2
    ack = msgpack.unpackb(data[1:], raw=True)
    assert ack[b"SeqNo"] == 77


def test_user_message_and_compound_from_msgpack_side() -> None:
    a = machine("node-a", 7001)
    user = bytes([8]) + b"payload-1"
    dead = bytes([5]) + msgpack.packb(
        {"Incarnation": 1, "Node": "nobody", "From": "x"}, use_bin_type=False
    )
    parts = [user, dead]
    compound = bytes([7, len(parts)]) + b"".join(len(p).to_bytes(2, "big") for p in parts)
    compound += b"".join(parts)
    a.handle_packet(1, "127.0.0.9", 7999, compound)
    assert a.take_received() == [b"payload-1"]
    assert a.stats()["bad_packets"] == 0
