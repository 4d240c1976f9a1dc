"""networkdb wire codec through the Python API (pytest-benchmark): batch encode and
decode of table events, per message, against a pure-Python protobuf codec of the
same messages measured in the same run. Not part of `make test`.

The batch is a bulk sync's worth of TABLE_EVENTs shaped like the "TableEvent
CREATE" vector (228 bytes wrapped in a GossipMessage): one node, network and
table, distinct 64-hex-char keys, 100-byte values. A second decode run gives
every event its own node, network and table names (the worst case for the
decoder's string reuse)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pyln import _core

if TYPE_CHECKING:
    from pyln._core import TableEventFields

N = 10_000
ROUNDS = 30
NODE, NETWORK, TABLE = "node-c", "4i2ztwbn4yxcb0ol6lw2ovibq", "endpoint_table"


def events(distinct_names: bool = False) -> list[TableEventFields]:
    out: list[TableEventFields] = []
    for i in range(N):
        suffix = f"{i:06d}" if distinct_names else ""
        out.append(
            (
                1,
                42 + i,
                NODE + suffix,
                NETWORK[: 25 - len(suffix)] + suffix,
                TABLE + suffix,
                f"{i:064x}",
                bytes((i + j) & 0xFF for j in range(100)),
                0,
            )
        )
    return out


# A plain-Python protobuf codec of the same message, for the same-run baseline.
def _varint(v: int) -> bytes:
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def _read_varint(b: bytes, i: int) -> tuple[int, int]:
    v = shift = 0
    while True:
        c = b[i]
        i += 1
        v |= (c & 0x7F) << shift
        if c < 0x80:
            return v, i
        shift += 7


def py_encode(e: TableEventFields) -> bytes:
    t, ltime, node, net, table, key, value, rrt = e
    body = bytearray()
    if t:
        body += b"\x08" + _varint(t & 0xFFFFFFFFFFFFFFFF)
    if ltime:
        body += b"\x10" + _varint(ltime)
    for tag, s in (
        (0x1A, node.encode()),
        (0x22, net.encode()),
        (0x2A, table.encode()),
        (0x32, key.encode()),
        (0x3A, value),
    ):
        if s:
            body.append(tag)
            body += _varint(len(s))
            body += s
    if rrt:
        body += b"\x40" + _varint(rrt & 0xFFFFFFFFFFFFFFFF)
    return b"\x08\x02\x12" + _varint(len(body)) + body if body else b"\x08\x02"


def py_decode(b: bytes) -> tuple[object, ...]:
    i, data = 0, b""
    while i < len(b):
        tag, i = _read_varint(b, i)
        if tag == 0x12:
            n, i = _read_varint(b, i)
            data = b[i : i + n]
            i += n
        else:
            _, i = _read_varint(b, i)
    f: list[object] = [2, 0, 0, "", "", "", "", b"", 0]
    i = 0
    while i < len(data):
        tag, i = _read_varint(data, i)
        field = tag >> 3
        if tag & 7 == 2:
            n, i = _read_varint(data, i)
            raw = data[i : i + n]
            i += n
            f[field] = raw if field == 7 else raw.decode()
        else:
            v, i = _read_varint(data, i)
            f[field] = v - (1 << 64) if field in (1, 8) and v >> 63 else v
    return tuple(f)


def _per_op(benchmark: Any) -> None:
    med = benchmark.stats.stats.median
    benchmark.extra_info["per_op_us"] = med / N * 1e6
    benchmark.extra_info["per_op_ns"] = round(med / N * 1e9, 1)


def test_ndb_encode_batch(benchmark: Any) -> None:
    """encode_table_events: N events, each wrapped in a GossipMessage."""
    evs = events()
    out = _core.encode_table_events(evs)
    assert len(out[0]) == 228 and out[0] == py_encode(evs[0])
    benchmark.pedantic(_core.encode_table_events, args=(evs,), rounds=ROUNDS, warmup_rounds=2)
    _per_op(benchmark)
    benchmark.extra_info["bytes_per_message"] = sum(map(len, out)) / N


def test_ndb_encode_batch_pure_python(benchmark: Any) -> None:
    """Same-run baseline: the same messages encoded by plain Python."""
    evs = events()
    assert [py_encode(e) for e in evs[:100]] == _core.encode_table_events(evs[:100])
    benchmark.pedantic(lambda: [py_encode(e) for e in evs], rounds=5, warmup_rounds=1)
    _per_op(benchmark)


def test_ndb_decode_batch(benchmark: Any) -> None:
    """decode_gossip: N encoded GossipMessages into message tuples."""
    wire = _core.encode_table_events(events())
    assert _core.decode_gossip(wire[:100]) == [py_decode(b) for b in wire[:100]]
    benchmark.pedantic(_core.decode_gossip, args=(wire,), rounds=ROUNDS, warmup_rounds=2)
    _per_op(benchmark)


def test_ndb_decode_batch_distinct_names(benchmark: Any) -> None:
    """decode_gossip where every event has its own node, network and table names."""
    wire = _core.encode_table_events(events(distinct_names=True))
    assert _core.decode_gossip(wire[:100]) == [py_decode(b) for b in wire[:100]]
    benchmark.pedantic(_core.decode_gossip, args=(wire,), rounds=ROUNDS, warmup_rounds=2)
    _per_op(benchmark)


def test_ndb_decode_batch_pure_python(benchmark: Any) -> None:
    """Same-run baseline: the same bytes decoded by plain Python."""
    wire = _core.encode_table_events(events())
    benchmark.pedantic(lambda: [py_decode(b) for b in wire], rounds=5, warmup_rounds=1)
    _per_op(benchmark)
