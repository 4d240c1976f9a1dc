"""networkdb's protobuf messages through the Python API (pyln._core), byte for byte
against libnetwork's Go code.

The vectors in ../shared/vectors/networkdb-wire.json (relative to the repository
root) are gogo/protobuf encodings made by libnetwork at commit
68aac7a957647e1e638cc8522f301656fab9f3ae: each message alone and wrapped in a
GossipMessage, with its decoded fields. Each is checked both ways, one at a time
and in batches; then hypothesis checks that decoding any bytes either gives a
message or raises WireDecodeError, and that encoded messages decode back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyln import _core
from pyln.errors import BadRequest, PylnError, WireDecodeError

if TYPE_CHECKING:
    from pyln._core import GossipMessage, TableEventFields

VECTORS_DIR = Path(__file__).resolve().parents[2] / "shared" / "vectors"

if not VECTORS_DIR.is_dir():
    pytest.skip(
        f"shared wire vectors not found: {VECTORS_DIR} does not exist",
        allow_module_level=True,
    )

# The directory is there: a missing or unreadable file is an error, not a skip.
_DOC = json.loads((VECTORS_DIR / "networkdb-wire.json").read_text())
VECTORS: list[dict[str, Any]] = _DOC["vectors"]

NETWORK_EVENT, TABLE_EVENT, PUSH_PULL, BULK_SYNC, COMPOUND, NODE_EVENT = 1, 2, 3, 4, 5, 6


def expected(v: dict[str, Any]) -> GossipMessage:
    """The message tuple a vector's "fields" describe."""
    f = v["fields"]
    t = v["gossip"]["type_num"]
    if t == NODE_EVENT:
        return (t, f["type_num"], f["l_time"], f["node_name"])
    if t == NETWORK_EVENT:
        return (t, f["type_num"], f["l_time"], f["node_name"], f["network_id"])
    if t == TABLE_EVENT:
        return (
            t,
            f["type_num"],
            f["l_time"],
            f["node_name"],
            f["network_id"],
            f["table_name"],
            f["key"],
            bytes.fromhex(f["value_hex"]),
            f.get("residual_reap_time", 0),
        )
    if t == PUSH_PULL:
        nets = [(n["network_id"], n["l_time"], n["node_name"], n["leaving"]) for n in f["networks"]]
        return (t, f["l_time"], nets, f.get("node_name", ""))
    if t == BULK_SYNC:
        return (
            t,
            f["l_time"],
            f["unsolicited"],
            f["node_name"],
            list(f["networks"]),
            bytes.fromhex(f["payload_hex"]),
        )
    if t == COMPOUND:
        return (t, [bytes.fromhex(m["Payload_hex"]) for m in f["messages"]])
    raise AssertionError(f"unknown type {t} in {v['name']!r}")


def ids(v: dict[str, Any]) -> str:
    return str(v["name"])


def test_vector_file_describes_the_go_source() -> None:
    assert "68aac7a957647e1e638cc8522f301656fab9f3ae" in _DOC["about"]
    assert len(VECTORS) == 14
    assert len({v["name"] for v in VECTORS}) == len(VECTORS)
    assert {v["gossip"]["type_num"] for v in VECTORS} == {1, 2, 3, 4, 5, 6}


@pytest.mark.parametrize("v", VECTORS, ids=ids)
def test_vector_both_ways(v: dict[str, Any]) -> None:
    wrapped = bytes.fromhex(v["hex"])
    inner = bytes.fromhex(v["inner_hex"])
    t = v["gossip"]["type_num"]
    msg = expected(v)
    assert bytes.fromhex(v["gossip"]["data_hex"]) == inner
    assert _core.encode_message(msg) == wrapped
    assert _core.encode_payload(msg) == inner
    assert _core.decode_message(wrapped) == msg
    assert _core.decode_payload(t, inner) == msg
    assert _core.decode_gossip([wrapped]) == [msg]


def test_vectors_in_one_batch() -> None:
    wrapped = [bytes.fromhex(v["hex"]) for v in VECTORS]
    assert _core.decode_gossip(wrapped) == [expected(v) for v in VECTORS]
    # Any iterable of bytes will do.
    assert _core.decode_gossip(tuple(wrapped)) == _core.decode_gossip(iter(wrapped))


def test_table_event_vectors_through_the_batch_encoder() -> None:
    table = [v for v in VECTORS if v["gossip"]["type_num"] == TABLE_EVENT]
    assert len(table) == 5
    fields: list[TableEventFields] = []
    for v in table:
        m = expected(v)
        assert len(m) == 9
        fields.append(m[1:])  # type: ignore[arg-type]
    assert _core.encode_table_events(fields) == [bytes.fromhex(v["hex"]) for v in table]
    assert _core.encode_table_events(iter(fields)) == _core.encode_table_events(tuple(fields))


def test_compound_vector_and_helpers() -> None:
    (v,) = [v for v in VECTORS if v["gossip"]["type_num"] == COMPOUND]
    wrapped = bytes.fromhex(v["hex"])
    parts = [bytes.fromhex(m["Payload_hex"]) for m in v["fields"]["messages"]]
    assert _core.make_compound(parts) == wrapped
    assert _core.split_compound(wrapped) == parts
    assert [m[0] for m in _core.decode_gossip(parts)] == [TABLE_EVENT, TABLE_EVENT]
    # The bulk sync vectors carry this compound as their payload.
    for b in (v for v in VECTORS if v["gossip"]["type_num"] == BULK_SYNC):
        assert bytes.fromhex(b["fields"]["payload_hex"]) == wrapped
    assert _core.split_compound(_core.make_compound([])) == []


def test_negative_int32_fields_round_trip() -> None:
    ev: TableEventFields = (-1, 2**64 - 1, "n", "net", "t", "k", b"v", -(2**31))
    (data,) = _core.encode_table_events([ev])
    assert _core.decode_gossip([data]) == [(TABLE_EVENT, *ev)]
    # int32 on the wire: sign-extended to ten bytes, as Go writes it.
    assert data.endswith(b"\x40" + b"\x80\x80\x80\x80\xf8\xff\xff\xff\xff\x01")


def test_unknown_fields_are_skipped() -> None:
    inner = bytes.fromhex(VECTORS[0]["inner_hex"])
    extra = b"\x78\x05" + b"\x81\x01" + bytes(8) + b"\x8a\x01\x02ab" + b"\x95\x01" + bytes(4)
    assert _core.decode_payload(NODE_EVENT, extra + inner + extra) == expected(VECTORS[0])


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"\x08\x02\x12\x05ab", "truncated"),
        (b"\x08\x09", "unknown message type 9"),
        (b"", "unknown message type 0"),
        (b"\x08\x02\x12\x03\x1a\x01\xff", "node_name is not valid UTF-8"),
        (b"\x08\x02\x12\x02\x12\x00", "l_time has wrong wire type 2"),
        (b"\x4e", "invalid wire type 6"),
        (b"\x0c", "end-group"),
        (b"\x08" + b"\xff" * 11, "varint longer than 10 bytes"),
    ],
)
def test_decode_errors_are_typed(data: bytes, fragment: str) -> None:
    with pytest.raises(WireDecodeError, match=fragment) as exc:
        _core.decode_message(data)
    assert isinstance(exc.value, BadRequest)
    assert isinstance(exc.value, ValueError)
    with pytest.raises(WireDecodeError, match=rf"^message 1: .*{fragment}"):
        _core.decode_gossip([bytes.fromhex(VECTORS[0]["hex"]), data])


def test_split_compound_wants_a_compound() -> None:
    with pytest.raises(WireDecodeError, match="expected type COMPOUND, found NODE_EVENT"):
        _core.split_compound(bytes.fromhex(VECTORS[0]["hex"]))


def test_bad_arguments() -> None:
    good: TableEventFields = (1, 1, "n", "net", "t", "k", b"v", 0)
    with pytest.raises(TypeError, match=r"table event 1: .*tuple of 8 items, not 3"):
        _core.encode_table_events([good, (1, 2, 3)])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="table event 0: key"):
        _core.encode_table_events([(1, 1, "n", "net", "t", 5, b"v", 0)])  # type: ignore[list-item]
    with pytest.raises(OverflowError, match="l_time"):
        _core.encode_table_events([(1, -1, "n", "net", "t", "k", b"v", 0)])
    with pytest.raises(OverflowError, match="residual_reap_time"):
        _core.encode_table_events([(1, 1, "n", "net", "t", "k", b"v", 2**31)])
    with pytest.raises(TypeError, match="list of messages, not bytes"):
        _core.decode_gossip(b"\x08\x06")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="message 0"):
        _core.decode_gossip(["not bytes"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="unknown message type 7"):
        _core.encode_message((7, []))
    with pytest.raises(TypeError, match="leaving"):
        _core.encode_message((PUSH_PULL, 1, [("n", 1, "x", 1)], "x"))  # type: ignore[arg-type]
    with pytest.raises(WireDecodeError, match="unknown message type 0"):
        _core.decode_payload(0, b"")


# Hypothesis.

names = st.one_of(st.just(""), st.text(max_size=40))
u64 = st.one_of(st.integers(0, 300), st.integers(0, 2**64 - 1))
i32 = st.one_of(st.integers(0, 4), st.integers(-(2**31), 2**31 - 1))
blobs = st.binary(max_size=300)
table_fields = st.tuples(i32, u64, names, names, names, names, blobs, i32)
messages: st.SearchStrategy[GossipMessage] = st.one_of(
    st.tuples(st.just(NETWORK_EVENT), i32, u64, names, names),
    table_fields.map(lambda f: (TABLE_EVENT, *f)),
    st.tuples(
        st.just(PUSH_PULL),
        u64,
        st.lists(st.tuples(names, u64, names, st.booleans()), max_size=4),
        names,
    ),
    st.tuples(st.just(BULK_SYNC), u64, st.booleans(), names, st.lists(names, max_size=4), blobs),
    st.tuples(st.just(COMPOUND), st.lists(blobs, max_size=4)),
    st.tuples(st.just(NODE_EVENT), i32, u64, names),
)


def mutated(data: bytes, edits: list[tuple[int, int]], cut: int) -> bytes:
    b = bytearray(data)
    for pos, val in edits:
        if b:
            b[pos % len(b)] = val
    return bytes(b[: cut % (len(b) + 1)])


valid_wire = st.sampled_from([bytes.fromhex(v["hex"]) for v in VECTORS])
fuzz_bytes = st.one_of(
    st.binary(max_size=300),
    st.builds(
        mutated,
        valid_wire,
        st.lists(st.tuples(st.integers(0, 600), st.integers(0, 255)), max_size=4),
        st.integers(0, 600),
    ),
)


def decodes_or_raises_typed(call: Any, *args: Any) -> None:
    try:
        call(*args)
    except WireDecodeError as e:
        assert isinstance(e, PylnError)
        assert str(e)


@settings(max_examples=1500, deadline=None)
@given(fuzz_bytes, st.integers(-1, 8))
def test_decode_any_bytes(data: bytes, t: int) -> None:
    decodes_or_raises_typed(_core.decode_message, data)
    decodes_or_raises_typed(_core.decode_gossip, [data, data])
    decodes_or_raises_typed(_core.decode_payload, t, data)
    decodes_or_raises_typed(_core.split_compound, data)


@settings(max_examples=500, deadline=None)
@given(messages)
def test_messages_round_trip(msg: GossipMessage) -> None:
    wrapped = _core.encode_message(msg)
    assert _core.decode_message(wrapped) == msg
    assert _core.decode_payload(msg[0], _core.encode_payload(msg)) == msg
    assert _core.decode_gossip([wrapped]) == [msg]


@settings(max_examples=200, deadline=None)
@given(st.lists(table_fields, max_size=30))
def test_table_event_batches_round_trip(events: list[TableEventFields]) -> None:
    encoded = _core.encode_table_events(events)
    assert encoded == [_core.encode_message((TABLE_EVENT, *e)) for e in events]
    assert _core.decode_gossip(encoded) == [(TABLE_EVENT, *e) for e in events]
    assert _core.split_compound(_core.make_compound(encoded)) == encoded
