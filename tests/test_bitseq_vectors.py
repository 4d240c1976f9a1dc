"""Byte-for-byte compatibility of pyln.bitseq with libnetwork's Go bitseq.

The vectors in ../shared/vectors/bitseq.json (relative to the repository root) are
Handle.ToByteArray() outputs of libnetwork at commit
68aac7a957647e1e638cc8522f301656fab9f3ae, with the set bits of each handle and the
calls that built it. Each vector is checked in both directions: decoding the bytes
gives exactly the listed bits, and building the same set with pyln gives exactly
the same bytes.
"""

from __future__ import annotations

import bisect
import json
from itertools import pairwise
from pathlib import Path

import pytest

from pyln.bitseq import Bitseq, NoBitAvailable

VECTORS_DIR = Path(__file__).resolve().parents[2] / "shared" / "vectors"

if not VECTORS_DIR.is_dir():
    pytest.skip(
        f"shared wire vectors not found: {VECTORS_DIR} does not exist",
        allow_module_level=True,
    )

# The directory is there: a missing or unreadable bitseq.json is an error, not a skip.
_DOC = json.loads((VECTORS_DIR / "bitseq.json").read_text())
VECTORS = _DOC["vectors"]
FULL_SCAN_LIMIT = 2**16


def test_vector_file_describes_the_go_source():
    about = _DOC["about"]
    assert "68aac7a957647e1e638cc8522f301656fab9f3ae" in about
    assert "ToByteArray" in about
    assert len(VECTORS) >= 25
    assert len({v["name"] for v in VECTORS}) == len(VECTORS)
    # the file covers every kind of construction handled below
    kinds = {construction_kind(v) for v in VECTORS}
    assert kinds == {"new", "set_any", "set_ascending", "set_order"}


def construction_kind(vector: dict) -> str:
    text = vector["construction"]
    if text == "NewHandle only":
        return "new"
    if text.startswith("SetAny() called ") and text.endswith(" times on a fresh handle"):
        return "set_any"
    if text == "Set(o) for each listed ordinal, ascending":
        return "set_ascending"
    if text == "Set(o) for each ordinal in 'set_order' (generation order)":
        return "set_order"
    raise AssertionError(f"unknown construction in {vector['name']!r}: {text!r}")


def ranges(vector: dict) -> list[tuple[int, int]]:
    return [(a, b) for a, b in vector["set_ranges_inclusive"]]


def set_count(vector: dict) -> int:
    return sum(b - a + 1 for a, b in ranges(vector))


def ordinals_from_ranges(vector: dict) -> range | list[int]:
    rs = ranges(vector)
    if len(rs) == 1:
        return range(rs[0][0], rs[0][1] + 1)
    return [o for a, b in rs for o in range(a, b + 1)]


def build(vector: dict) -> Bitseq:
    """The handle built the way the vector's Go code built it."""
    mask = Bitseq(vector["length_bits"])
    kind = construction_kind(vector)
    if kind == "set_any":
        n = int(vector["construction"].split()[2])
        set_any = mask.set_any
        last = None
        for _ in range(n):
            last = set_any()
        assert last == (n - 1 if n else None)
    elif kind == "set_ascending":
        listed = vector.get("set_order") or vector["set_ordinals"]
        assert listed == sorted(listed)
        for o in listed:
            mask.set(o)
    elif kind == "set_order":
        for o in vector["set_order"]:
            mask.set(o)
    return mask


def build_other_order(vector: dict) -> Bitseq:
    """The same set built another way: ascending Set() for SetAny handles,
    descending Set() for the others."""
    mask = Bitseq(vector["length_bits"])
    set_bit = mask.set
    todo = ordinals_from_ranges(vector)
    if construction_kind(vector) != "set_any":
        todo = reversed(todo)
    for o in todo:
        set_bit(o)
    return mask


def ids(vector: dict) -> str:
    return vector["name"]


@pytest.fixture(params=VECTORS, ids=ids)
def vector(request):
    return request.param


def test_round_trip(vector):
    data = bytes.fromhex(vector["hex"])
    assert len(data) == vector["serialized_len"]
    mask = Bitseq.from_bytes(data)
    assert mask.to_bytes() == data
    assert mask.bits == vector["length_bits"]
    assert mask.unselected == vector["unselected"]
    assert mask.bits - mask.unselected == vector["set_count"]
    assert Bitseq.from_bytes(mask.to_bytes()) == mask


def test_listed_bits_are_consistent(vector):
    # A guard on the data itself, so the checks below mean what they say.
    rs = ranges(vector)
    assert all(0 <= a <= b < vector["length_bits"] for a, b in rs)
    assert all(b + 1 < c for (_, b), (c, _) in pairwise(rs))
    assert set_count(vector) == vector["set_count"]
    if "set_ordinals" in vector:
        assert vector["set_ordinals"] == list(ordinals_from_ranges(vector))
    if "set_order" in vector:
        assert sorted(vector["set_order"]) == list(ordinals_from_ranges(vector))


def test_decoded_bits_match(vector):
    mask = Bitseq.from_bytes(bytes.fromhex(vector["hex"]))
    bits = vector["length_bits"]
    rs = ranges(vector)
    assert mask.bits - mask.unselected == set_count(vector)
    for a, b in rs:
        assert mask.is_set(a)
        assert mask.is_set(b)
        if a > 0:
            assert not mask.is_set(a - 1)
        if b + 1 < bits:
            assert not mask.is_set(b + 1)

    starts = [a for a, _ in rs]

    def listed(o: int) -> bool:
        i = bisect.bisect_right(starts, o) - 1
        return i >= 0 and o <= rs[i][1]

    if bits <= FULL_SCAN_LIMIT:
        probe = range(bits)
    else:
        # every ordinal near the edges, then a stride through the rest
        probe = sorted({*range(4096), *range(bits - 4096, bits), *range(0, bits, 997)})
    got = [o for o in probe if mask.is_set(o)]
    want = [o for o in probe if listed(o)]
    assert got == want


def test_fresh_build_gives_same_bytes(vector):
    mask = build(vector)
    assert mask.unselected == vector["unselected"]
    assert mask.to_bytes().hex() == vector["hex"]
    assert mask == Bitseq.from_bytes(bytes.fromhex(vector["hex"]))


def test_other_build_order_gives_same_bytes(vector):
    assert vector["same_bytes_when_built_in_other_order"] is True
    assert build_other_order(vector).to_bytes().hex() == vector["hex"]


def test_decoded_handle_keeps_working(vector):
    # After loading Go's bytes, allocation carries on where Go's handle would.
    mask = Bitseq.from_bytes(bytes.fromhex(vector["hex"]))
    rs = ranges(vector)
    first_free = 0
    for a, b in rs:
        if a > first_free:
            break
        first_free = b + 1
    if first_free >= vector["length_bits"]:
        with pytest.raises(NoBitAvailable):
            mask.set_any()
        return
    assert mask.set_any() == first_free
    assert mask.unselected == vector["unselected"] - 1
    assert mask.unset(first_free) is True
    assert mask.to_bytes().hex() == vector["hex"]
