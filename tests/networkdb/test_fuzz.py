"""Bytes from the network never crash or wedge a node: hypothesis drives the
machines' inputs with arbitrary and mutated data (no sockets involved)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pyln import _core, errors


def machines() -> list[_core.MemberlistMachine | _core.NetworkDBMachine]:
    ndb = _core.NetworkDBMachine(0, "fuzzed", "127.0.0.1", 7946, "lan", [], 1)
    ndb.join_network(0, "net")
    enc = _core.NetworkDBMachine(0, "fuzzed-enc", "127.0.0.1", 7947, "lan", [bytes(16)], 2)
    return [_core.MemberlistMachine(0, "plain", "127.0.0.1", 7948), ndb, enc]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_arbitrary_packets_and_streams(data: bytes) -> None:
    for m in machines():
        m.handle_packet(1, "127.0.0.2", 7000, data)
        try:
            m.stream_frame_len(data)
        except errors.GossipProtocolError:
            pass
        try:
            m.handle_stream(2, "127.0.0.2", 7000, data)
        except errors.GossipProtocolError:
            pass
        # Still alive and working: timers run and produce sane actions.
        m.handle_timeout(10_000_000)
        for kind, host, port, payload, _token in m.take_actions():
            assert kind in ("packet", "stream") and isinstance(payload, bytes)
            assert host and port > 0


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=1500), st.sampled_from([0, 1, 2, 3, 4, 5, 7, 8, 9, 11, 12]))
def test_typed_packets_with_garbage_bodies(body: bytes, msg_type: int) -> None:
    """A valid type byte (memberlist's) followed by anything."""
    for m in machines():
        m.handle_packet(1, "127.0.0.2", 7000, bytes([msg_type]) + body)
        m.handle_timeout(5_000_000)
        m.take_actions()


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=1500))
def test_user_messages_with_garbage_networkdb_payloads(payload: bytes) -> None:
    """Well-framed memberlist user messages whose networkdb content is junk."""
    (_, ndb, _) = machines()
    assert isinstance(ndb, _core.NetworkDBMachine)
    ndb.handle_packet(1, "127.0.0.2", 7000, b"\x08" + payload)
    ndb.handle_timeout(5_000_000)
    ndb.take_actions()
    # No peer is attached to the network, so nothing can have been stored.
    assert ndb.get_table_by_network("t", "net") == {}
    assert ndb.stats(6_000_000)["members"] == 1.0
