"""Tests for pyln.bitseq.Bitseq, the run-length encoded bitmask.

The first part restates, through the public Python API, the behaviours that
libnetwork's bitseq/sequence_test.go checks at commit
68aac7a957647e1e638cc8522f301656fab9f3ae. The Go tests poke at internals (the
`sequence` linked list, getAvailableBit, findSequence, pushReservation); here a
mask is built from its wire bytes and the externally visible consequence is
checked instead: the ordinal handed out, `is_set`, the `runs()` list or the bytes.
Go addresses a bit as (bytePos, bitPos), i.e. ordinal = 8 * bytePos + bitPos.

Deliberate differences from Go (each also noted where it matters):
- Out-of-range ordinals raise BitOutOfRange; Go's IsSet answers False and its
  Set/Unset return an untyped error.
- Unset of a free bit is a no-op that returns False (Go "succeeds" and, through
  Handle.set, still increments its unselected counter).
- from_bytes merges neighbouring runs that hold the same block, so masks that Go
  would keep as distinct linked lists compare equal; like Go's CheckConsistency
  it drops zero-count runs, and it takes the free count from the runs, not the
  header.
- set_any_in_range accepts a one-ordinal range (start == end); Go refuses it.

The second part covers pyln-only behaviour (typed errors, 2^64-bit masks, serial
mode) and the third runs hypothesis against a plain Python set model and fuzzes
from_bytes.
"""

from __future__ import annotations

import copy
import random
import struct
from itertools import pairwise

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyln import errors
from pyln.bitseq import (
    BitAlreadyAllocated,
    BitOutOfRange,
    Bitseq,
    InvalidBitseqData,
    InvalidBitseqLength,
    NoBitAvailable,
)

FULL = 0xFFFF_FFFF
U64 = 2**64


def encode(runs: list[tuple[int, int]], bits: int | None = None) -> bytes:
    """libnetwork's Handle.ToByteArray layout for the given (block, count) runs.

    The unselected field is derived from the runs, so the result is accepted by
    from_bytes whenever the runs themselves are valid.
    """
    nblocks = sum(count for _, count in runs)
    if bits is None:
        bits = 32 * nblocks
    free = sum(count * (32 - block.bit_count()) for block, count in runs)
    if bits % 32:
        free -= 32 - bits % 32  # unused tail of the last block is not a free ordinal
    out = struct.pack(">QQ", bits % U64, free % U64)
    for block, count in runs:
        out += struct.pack(">IQ", block, count)
    return out


def from_runs(runs: list[tuple[int, int]], bits: int | None = None) -> Bitseq:
    return Bitseq.from_bytes(encode(runs, bits))


def pos(byte_pos: int, bit_pos: int) -> int:
    """Go's (bytePos, bitPos) address as an ordinal."""
    return 8 * byte_pos + bit_pos


# Go's getTestSequence(): 1024 blocks (32768 bits) of mixed content.
TEST_SEQUENCE = [
    (FULL, 100),
    (0xFFFFFFFE, 1),
    (0xFF000000, 10),
    (FULL, 50),
    (0xFFFFFFFC, 1),
    (0xFF800000, 1),
    (FULL, 87),
    (0x0, 150),
    (FULL, 200),
    (0x0000FFFF, 1),
    (0x0, 399),
    (FULL, 23),
    (0x1, 1),
]


# --------------------------------------------------------------------------
# Part 1: sequence_test.go, restated
# --------------------------------------------------------------------------


# TestSequenceGetAvailableBit: the first free bit of a one-run mask, searching
# from an offset inside the first block. Go's count-0 sequences cannot be built
# from bytes (see test_zero_count_runs_are_dropped).
@pytest.mark.parametrize(
    ("block", "count", "start", "want"),
    [
        (0x0, 1, 0, pos(0, 0)),
        (0x0, 100, 0, pos(0, 0)),
        (0x80000000, 1, 0, pos(0, 1)),
        (0x80000000, 100, 0, pos(0, 1)),
        (0xFF000000, 1, 0, pos(1, 0)),
        (0xFF000000, 100, 0, pos(1, 0)),
        (0xFF800000, 1, 0, pos(1, 1)),
        (0xFF800000, 100, 0, pos(1, 1)),
        (0xFFC0FF00, 1, 0, pos(1, 2)),
        (0xFFC0FF00, 100, 0, pos(1, 2)),
        (0xFFE0FF00, 1, 0, pos(1, 3)),
        (0xFFE0FF00, 100, 0, pos(1, 3)),
        (0xFFFEFF00, 1, 0, pos(1, 7)),
        (0xFFFEFF00, 100, 0, pos(1, 7)),
        (0xFFFFC0FF, 1, 0, pos(2, 2)),
        (0xFFFFC0FF, 100, 0, pos(2, 2)),
        (0xFFFFFF00, 1, 0, pos(3, 0)),
        (0xFFFFFF00, 100, 0, pos(3, 0)),
        (0xFFFFFFFE, 1, 0, pos(3, 7)),
        (0xFFFFFFFE, 100, 0, pos(3, 7)),
        (FULL, 1, 0, None),
        (FULL, 100, 0, None),
        # with a start offset
        (0x0, 1, 1, pos(0, 1)),
        (0x0, 1, 31, pos(3, 7)),
        (0xF0FF0000, 1, 0, pos(0, 4)),
        (0xF0FF0000, 1, 8, pos(2, 0)),
        (FULL, 1, 16, None),
        (FULL, 1, 31, None),
        (FULL, 2, 32, None),
    ],
)
def test_first_free_bit_in_one_run(block, count, start, want):
    mask = from_runs([(block, count)])
    end = 32 * count - 1
    if want is None:
        with pytest.raises(NoBitAvailable):
            mask.set_any_in_range(start, end)
        assert mask == from_runs([(block, count)])
    else:
        assert mask.set_any_in_range(start, end) == want
        assert mask.is_set(want)


def test_zero_count_runs_are_dropped():
    # Go tolerates sequences with a count of 0 and CheckConsistency drops them;
    # pyln's decoder drops them too.
    assert Bitseq.from_bytes(encode([(0x0, 0), (0x0, 1)], bits=32)).runs() == [(0x0, 1)]
    assert Bitseq.from_bytes(encode([(0x0, 1), (FULL, 0)], bits=32)) == Bitseq(32)
    with pytest.raises(InvalidBitseqData):
        Bitseq.from_bytes(encode([(0x0, 0)], bits=32))


# TestSequenceEqual. Go compares linked lists node by node, so (0x0, 2) differs from
# (0x0, 1)->(0x0, 1) there; pyln merges equal neighbours on decode, so those are
# the same mask (by design).
def test_equality():
    assert from_runs([(0x0, 8)]) == from_runs([(0x0, 8)])
    assert from_runs([(0x0, 2)]) == from_runs([(0x0, 1), (0x0, 1)])
    assert from_runs([(0x0, 2), (0x1, 1)]) != from_runs([(0x0, 2)])
    assert from_runs([(0x12345678, 8)]) == from_runs([(0x12345678, 8)])
    assert from_runs([(0x12345678, 8)]) != from_runs([(0x12345678, 9)])
    assert from_runs([(0x12345678, 1), (FULL, 1)]) != from_runs([(0x12345678, 1)])
    assert from_runs([(0x12345678, 1)]) != from_runs([(0x12345678, 1), (FULL, 1)])
    # same length, different content
    assert from_runs([(0x12345678, 1), (FULL, 1)]) != from_runs([(0x12345678, 1), (0x0, 1)])
    assert Bitseq(8) != Bitseq(9)
    assert Bitseq(8) != 8
    assert Bitseq(8) != "Bitseq(8)"


# TestSequenceCopy
@pytest.mark.parametrize("how", ["method", "copy", "deepcopy"])
def test_copy_is_equal_and_independent(how):
    original = from_runs(TEST_SEQUENCE)
    if how == "method":
        dup = original.copy()
    elif how == "copy":
        dup = copy.copy(original)
    else:
        dup = copy.deepcopy(original)
    assert dup == original
    assert dup is not original
    assert dup.to_bytes() == original.to_bytes()
    # Changing the copy leaves the original alone, and the other way round.
    assert dup.set_any() == 3231
    assert not original.is_set(3231)
    assert dup != original
    original.unset(0)
    assert dup.is_set(0)


# TestGetFirstAvailable: set_any on a whole mask.
@pytest.mark.parametrize(
    ("runs", "want"),
    [
        ([(FULL, 2048)], None),
        ([(0x0, 8)], pos(0, 0)),
        ([(0x80000000, 8)], pos(0, 1)),
        ([(0xC0000000, 8)], pos(0, 2)),
        ([(0xE0000000, 8)], pos(0, 3)),
        ([(0xF0000000, 8)], pos(0, 4)),
        ([(0xF8000000, 8)], pos(0, 5)),
        ([(0xFC000000, 8)], pos(0, 6)),
        ([(0xFE000000, 8)], pos(0, 7)),
        ([(FULL, 1), (0x00000000, 1), (FULL, 6)], pos(4, 0)),
        ([(FULL, 1), (0x80000000, 1), (FULL, 6)], pos(4, 1)),
        ([(FULL, 1), (0xC0000000, 1), (FULL, 6)], pos(4, 2)),
        ([(FULL, 1), (0xE0000000, 1), (FULL, 6)], pos(4, 3)),
        ([(FULL, 1), (0xF0000000, 1), (FULL, 6)], pos(4, 4)),
        ([(FULL, 1), (0xF8000000, 1), (FULL, 6)], pos(4, 5)),
        ([(FULL, 1), (0xFC000000, 1), (FULL, 6)], pos(4, 6)),
        ([(FULL, 1), (0xFE000000, 1), (FULL, 6)], pos(4, 7)),
        ([(FULL, 1), (0xFF000000, 1), (FULL, 6)], pos(5, 0)),
        ([(FULL, 1), (0xFF800000, 1), (FULL, 6)], pos(5, 1)),
        ([(FULL, 1), (0xFFC00000, 1), (FULL, 6)], pos(5, 2)),
        ([(FULL, 1), (0xFFE00000, 1), (FULL, 6)], pos(5, 3)),
        ([(FULL, 1), (0xFFF00000, 1), (FULL, 6)], pos(5, 4)),
        ([(FULL, 1), (0xFFF80000, 1), (FULL, 6)], pos(5, 5)),
        ([(FULL, 1), (0xFFFC0000, 1), (FULL, 6)], pos(5, 6)),
        ([(FULL, 1), (0xFFFE0000, 1), (FULL, 6)], pos(5, 7)),
        ([(FULL, 1), (0xFFFFFFFE, 1), (FULL, 6)], pos(7, 7)),
        ([(FULL, 2), (0x0, 6)], pos(8, 0)),
    ],
)
def test_set_any_finds_first_free(runs, want):
    mask = from_runs(runs)
    if want is None:
        assert mask.unselected == 0
        with pytest.raises(NoBitAvailable):
            mask.set_any()
    else:
        assert not mask.is_set(want)
        assert all(mask.is_set(o) for o in range(want))
        assert mask.set_any() == want
        assert mask.is_set(want)


# TestFindSequence: which run holds a byte is internal; what shows is whether an
# ordinal of that byte is inside the mask and what bit it reads.
def test_byte_positions_map_to_runs():
    one_empty_block = from_runs([(0x0, 1)])
    assert not one_empty_block.is_set(pos(0, 0))
    assert not one_empty_block.is_set(pos(1, 0))
    for byte_pos in (31, 60):
        with pytest.raises(BitOutOfRange):
            one_empty_block.is_set(pos(byte_pos, 0))

    ten_full = from_runs([(FULL, 10)])
    for byte_pos in (0, 3, 4, 7, 8, 39):
        assert ten_full.is_set(pos(byte_pos, 0))
        assert ten_full.is_set(pos(byte_pos, 7))
    with pytest.raises(BitOutOfRange):
        ten_full.is_set(pos(40, 0))

    two_runs = from_runs([(FULL, 10), (0xCC000000, 10)])
    # byte 79 is the last byte of the last block of the second run: 0xcc000000's low byte
    assert not any(two_runs.is_set(pos(79, bit)) for bit in range(8))
    # byte 76 is the first byte of that block: 0xcc = 11001100
    assert [two_runs.is_set(pos(76, bit)) for bit in range(8)] == [
        True,
        True,
        False,
        False,
        True,
        True,
        False,
        False,
    ]
    with pytest.raises(BitOutOfRange):
        two_runs.is_set(pos(80, 0))


# TestCheckIfAvailable: whether a given ordinal is free (Set succeeds) or taken.
# Go answers "not available" for ordinals past the end; pyln raises BitOutOfRange.
_THREE = [(FULL, 1), (0xC00000FF, 1), (0x0, 1)]


@pytest.mark.parametrize(
    ("runs", "ordinal", "free"),
    [
        ([(0x0, 1)], 0, True),
        ([(0x0, 1)], 1, True),
        ([(0x0, 1)], 31, True),
        ([(0x0, 1)], 60, None),
        ([(FULL, 1), (0x800000FF, 1)], 31, False),
        ([(FULL, 1), (0x800000FF, 1)], 32, False),
        ([(FULL, 1), (0x800000FF, 1)], 33, True),
        ([(FULL, 1), (0xC00000FF, 1)], 33, False),
        ([(FULL, 1), (0xC00000FF, 1)], 34, True),
        (_THREE, 55, True),
        (_THREE, 56, False),
        (_THREE, 63, False),
        (_THREE, 64, True),
        (_THREE, 95, True),
        (_THREE, 96, None),
    ],
)
def test_check_if_available(runs, ordinal, free):
    mask = from_runs(runs)
    before = mask.to_bytes()
    if free is None:
        for op in (mask.set, mask.is_set, mask.unset):
            with pytest.raises(BitOutOfRange):
                op(ordinal)
        assert mask.to_bytes() == before
    elif free:
        assert not mask.is_set(ordinal)
        mask.set(ordinal)
        assert mask.is_set(ordinal)
        assert mask.unselected == from_runs(runs).unselected - 1
    else:
        assert mask.is_set(ordinal)
        with pytest.raises(BitAlreadyAllocated):
            mask.set(ordinal)
        assert mask.to_bytes() == before


# TestMergeSequences: neighbouring runs with the same block become one run. Go's
# mergeSequences works on the list; pyln merges while decoding (by design), so
# runs() and to_bytes() show the merged form.
@pytest.mark.parametrize(
    ("original", "merged"),
    [
        ([(0xFE000000, 8), (0xFE000000, 2)], [(0xFE000000, 10)]),
        ([(FULL, 8), (FULL, 1)], [(FULL, 9)]),
        ([(FULL, 1), (FULL, 8)], [(FULL, 9)]),
        ([(0xFFFFFFF0, 8), (0xFFFFFFF0, 1)], [(0xFFFFFFF0, 9)]),
        ([(0xFFFFFFF0, 1), (0xFFFFFFF0, 8)], [(0xFFFFFFF0, 9)]),
        ([(0xFE, 8), (0xFE, 1), (0xFE, 5)], [(0xFE, 14)]),
        ([(0xFE, 8), (0xFE, 1), (0xFE, 5), (0xFF, 1)], [(0xFE, 14), (0xFF, 1)]),
        # nothing to merge
        ([(0xFE, 8), (0xF8, 1), (0xFE, 5)], [(0xFE, 8), (0xF8, 1), (0xFE, 5)]),
        # equal neighbours after a distinct head
        ([(0xFE, 8), (0xFF, 1), (0xFF, 5)], [(0xFE, 8), (0xFF, 6)]),
    ],
)
def test_decode_merges_equal_neighbours(original, merged):
    mask = from_runs(original)
    assert mask.runs() == merged
    assert mask.to_bytes() == encode(merged)
    assert mask == from_runs(merged)


# TestPushReservation: setting one bit splits, shrinks and merges runs. Each case
# is (runs before, (bytePos, bitPos), runs after).
_MID = [(0x80000000, 1), (0x0, 6), (0x1, 1)]

PUSH_CASES = [
    # fill in addresses 0..7 of the first block
    ([(0x0, 8)], (0, 0), [(0x80000000, 1), (0x0, 7)]),
    ([(0x80000000, 8)], (0, 1), [(0xC0000000, 1), (0x80000000, 7)]),
    ([(0xC0000000, 8)], (0, 2), [(0xE0000000, 1), (0xC0000000, 7)]),
    ([(0xE0000000, 8)], (0, 3), [(0xF0000000, 1), (0xE0000000, 7)]),
    ([(0xF0000000, 8)], (0, 4), [(0xF8000000, 1), (0xF0000000, 7)]),
    ([(0xF8000000, 8)], (0, 5), [(0xFC000000, 1), (0xF8000000, 7)]),
    ([(0xFC000000, 8)], (0, 6), [(0xFE000000, 1), (0xFC000000, 7)]),
    ([(0xFE000000, 8)], (0, 7), [(0xFF000000, 1), (0xFE000000, 7)]),
    ([(0x80000000, 1), (0x0, 7)], (0, 1), [(0xC0000000, 1), (0x0, 7)]),
    # fill in addresses 32..39 (second block)
    *(
        (
            [(FULL, 1), (block, 1), (FULL, 6)],
            (4, bit),
            [(FULL, 1), ((block >> 1) | 0x80000000, 1), (FULL, 6)],
        )
        for bit, block in enumerate(
            [0x0, 0x80000000, 0xC0000000, 0xE0000000, 0xF0000000, 0xF8000000]
        )
    ),
    ([(FULL, 1), (0xFC000000, 1), (FULL, 6)], (4, 6), [(FULL, 1), (0xFE000000, 1), (FULL, 6)]),
    ([(FULL, 1), (0xFE000000, 1), (FULL, 6)], (4, 7), [(FULL, 1), (0xFF000000, 1), (FULL, 6)]),
    # fill in addresses 40..47
    ([(FULL, 1), (0xFF000000, 1), (FULL, 6)], (5, 0), [(FULL, 1), (0xFF800000, 1), (FULL, 6)]),
    ([(FULL, 1), (0xFF800000, 1), (FULL, 6)], (5, 1), [(FULL, 1), (0xFFC00000, 1), (FULL, 6)]),
    ([(FULL, 1), (0xFFC00000, 1), (FULL, 6)], (5, 2), [(FULL, 1), (0xFFE00000, 1), (FULL, 6)]),
    ([(FULL, 1), (0xFFE00000, 1), (FULL, 6)], (5, 3), [(FULL, 1), (0xFFF00000, 1), (FULL, 6)]),
    ([(FULL, 1), (0xFFF00000, 1), (FULL, 6)], (5, 4), [(FULL, 1), (0xFFF80000, 1), (FULL, 6)]),
    ([(FULL, 1), (0xFFF80000, 1), (FULL, 6)], (5, 5), [(FULL, 1), (0xFFFC0000, 1), (FULL, 6)]),
    ([(FULL, 1), (0xFFFC0000, 1), (FULL, 6)], (5, 6), [(FULL, 1), (0xFFFE0000, 1), (FULL, 6)]),
    ([(FULL, 1), (0xFFFE0000, 1), (FULL, 6)], (5, 7), [(FULL, 1), (0xFFFF0000, 1), (FULL, 6)]),
    # a new run inserted after a full prefix
    ([(FULL, 2), (0x0, 6)], (8, 0), [(FULL, 2), (0x80000000, 1), (0x0, 5)]),
    ([(FULL, 2), (0x80000000, 1), (0x0, 5)], (8, 1), [(FULL, 2), (0xC0000000, 1), (0x0, 5)]),
    # the changed block merges with the run after it
    (
        [(FULL, 7), (0xFFFFFFFE, 2), (FULL, 1)],
        (31, 7),
        [(FULL, 8), (0xFFFFFFFE, 1), (FULL, 1)],
    ),
    ([(FULL, 1), (0xFFFFFFFC, 1), (0xFFFFFFFE, 6)], (7, 6), [(FULL, 1), (0xFFFFFFFE, 7)]),
    # ... with the runs before and after it
    ([(FULL, 7), (0xFFFFFFFE, 1), (FULL, 1)], (31, 7), [(FULL, 9)]),
    ([(FULL, 7), (0xFFFFFFFE, 1)], (31, 7), [(FULL, 8)]),
    # the last bit of the mask
    ([(0x0, 8)], (31, 7), [(0x0, 7), (0x1, 1)]),
    # a run in the middle: its first block
    (
        [(0x40000000, 1), (0x0, 6), (0x1, 1)],
        (4, 0),
        [(0x40000000, 1), (0x80000000, 1), (0x0, 5), (0x1, 1)],
    ),
    (_MID, (4, 0), [(0x80000000, 2), (0x0, 5), (0x1, 1)]),
    (_MID, (4, 31), [(0x80000000, 1), (0x1, 1), (0x0, 5), (0x1, 1)]),
    (_MID, (4, 16), [(0x80000000, 1), (0x8000, 1), (0x0, 5), (0x1, 1)]),
    # ... a block inside it
    (_MID, (16, 0), [(0x80000000, 1), (0x0, 3), (0x80000000, 1), (0x0, 2), (0x1, 1)]),
    (_MID, (16, 31), [(0x80000000, 1), (0x0, 3), (0x1, 1), (0x0, 2), (0x1, 1)]),
    (_MID, (16, 15), [(0x80000000, 1), (0x0, 3), (0x10000, 1), (0x0, 2), (0x1, 1)]),
    # ... its last block
    (_MID, (24, 0), [(0x80000000, 1), (0x0, 5), (0x80000000, 1), (0x1, 1)]),
    (
        [(0x80000000, 1), (0x0, 6), (0x4, 1)],
        (24, 31),
        [(0x80000000, 1), (0x0, 5), (0x1, 1), (0x4, 1)],
    ),
    (_MID, (24, 31), [(0x80000000, 1), (0x0, 5), (0x1, 2)]),
    (_MID, (24, 16), [(0x80000000, 1), (0x0, 5), (0x8000, 1), (0x1, 1)]),
]


@pytest.mark.parametrize(("before", "address", "after"), PUSH_CASES)
def test_set_reshapes_runs(before, address, after):
    mask = from_runs(before)
    ordinal = pos(*address)
    mask.set(ordinal)
    assert mask.runs() == after
    assert mask.to_bytes() == encode(after)
    assert mask.unselected == from_runs(before).unselected - 1
    # Releasing the bit (pushReservation with release=true) restores the original.
    assert mask.unset(ordinal) is True
    assert mask == from_runs(before)


# The "redundant push" cases: setting a bit that is already set changes nothing.
# Go silently ignores it; pyln raises BitAlreadyAllocated and leaves the mask alone.
@pytest.mark.parametrize(
    ("runs", "address"),
    [
        ([(0xFFFF0000, 1)], (0, 0)),
        ([(0xFFFF0000, 7)], (25, 7)),
        ([(FULL, 7), (0xFFFFFFFE, 1), (FULL, 1)], (7, 7)),
    ],
)
def test_set_of_a_set_bit_changes_nothing(runs, address):
    mask = from_runs(runs)
    with pytest.raises(BitAlreadyAllocated):
        mask.set(pos(*address))
    assert mask.runs() == runs
    assert mask == from_runs(runs)


# TestSerializeDeserialize
def test_serialize_deserialize_test_sequence():
    data = encode(TEST_SEQUENCE)
    mask = Bitseq.from_bytes(data)
    assert mask.bits == 1024 * 32
    assert mask.runs() == TEST_SEQUENCE
    assert mask.to_bytes() == data
    again = Bitseq.from_bytes(mask.to_bytes())
    assert again == mask
    assert again.runs() == TEST_SEQUENCE


# TestSet
def test_set_on_test_sequence():
    mask = from_runs(TEST_SEQUENCE)
    first_free = 32 * 100 + 31
    last = 1024 * 32 - 1

    # Go's IsSet(100000) answers false; pyln refuses the out-of-range ordinal.
    with pytest.raises(BitOutOfRange):
        mask.is_set(100000)
    assert mask.is_set(0)
    assert not mask.is_set(first_free)
    assert mask.is_set(last)

    with pytest.raises(BitAlreadyAllocated):
        mask.set(0)
    assert mask.set_any() == first_free
    assert mask.is_set(first_free)
    assert mask.unset(first_free) is True
    assert not mask.is_set(first_free)
    mask.set(first_free)
    assert mask.is_set(first_free)
    with pytest.raises(BitAlreadyAllocated):
        mask.set(last)


# TestSetUnset
def test_fill_then_empty():
    bits = 32 * 32
    mask = Bitseq(bits)
    with pytest.raises(BitOutOfRange):
        mask.set(bits)
    with pytest.raises(BitOutOfRange):
        mask.unset(bits)

    handed = []
    while mask.unselected > 0:
        handed.append(mask.set_any())
    assert handed == list(range(bits))
    with pytest.raises(NoBitAvailable):
        mask.set_any()
    with pytest.raises(NoBitAvailable):
        mask.set_any_in_range(10, 20)
    with pytest.raises(BitAlreadyAllocated):
        mask.set(50)
    assert mask.runs() == [(FULL, 32)]

    ordinal = 0
    while mask.unselected < bits:
        assert mask.unset(ordinal) is True
        ordinal += 1
    assert ordinal == bits
    assert mask == Bitseq(bits)
    assert mask.runs() == [(0x0, 32)]


# TestSetInRange
def test_set_any_in_range_on_test_sequence():
    bits = 1024 * 32
    mask = from_runs(TEST_SEQUENCE)
    first_free = 100 * 32 + 31

    with pytest.raises(BitOutOfRange):  # inverted range
        mask.set_any_in_range(4, 3)
    # Go refuses every one-ordinal range; pyln accepts them (by design), and 5 is taken.
    with pytest.raises(NoBitAvailable):
        mask.set_any_in_range(5, 5)
    with pytest.raises(BitOutOfRange):  # end past the mask
        mask.set_any_in_range(0, bits)

    assert mask.set_any_in_range(100 * 32, 101 * 32) == first_free
    with pytest.raises(NoBitAvailable):
        mask.set_any_in_range(0, 32)
    with pytest.raises(NoBitAvailable):
        mask.set_any_in_range(0, first_free - 1)
    with pytest.raises(NoBitAvailable):
        mask.set_any_in_range(111 * 32, 161 * 32)

    assert mask.set_any_in_range(161 * 32, 162 * 32) == 161 * 32 + 30
    assert mask.set_any_in_range(161 * 32, 162 * 32) == 161 * 32 + 31
    with pytest.raises(NoBitAvailable):
        mask.set_any_in_range(161 * 32, 162 * 32)
    # Go only checks this succeeds: the first free bit is now in block 101 (0xff000000).
    assert mask.set_any_in_range(0, bits - 1) == 101 * 32 + 8


def test_set_any_in_range_on_a_partial_block():
    mask = Bitseq(30)
    got = []
    while mask.unselected > 22:
        got.append(mask.set_any_in_range(0, 7))
    assert got == list(range(8))
    with pytest.raises(NoBitAvailable):
        mask.set_any_in_range(0, 7)

    got = []
    while mask.unselected > 14:
        got.append(mask.set_any_in_range(8, 15))
    assert got == list(range(8, 16))
    with pytest.raises(NoBitAvailable):
        mask.set_any_in_range(0, 15)

    # a range that ends on the last bit
    got = []
    while mask.unselected > 12:
        got.append(mask.set_any_in_range(28, 29))
    assert got == [28, 29]
    with pytest.raises(NoBitAvailable):
        mask.set_any_in_range(28, 29)
    assert mask.runs() == [(0xFFFF000C, 1)]


# TestSetAnyInRange: a bit in neither the first nor the last block of a run.
def test_set_any_in_range_inside_a_run():
    mask = Bitseq(8 * 32)
    mask.set(0)
    mask.set(255)
    assert mask.set_any_in_range(128, 255) == 128
    assert mask.set_any_in_range(128, 255) == 129
    assert mask.set_any_in_range(246, 255) == 246
    assert mask.set_any_in_range(246, 255) == 247
    assert mask.runs() == [
        (0x80000000, 1),
        (0x0, 3),
        (0xC0000000, 1),
        (0x0, 2),
        (0x00000301, 1),
    ]


# TestMethods
def test_accessors_and_runs():
    bits = 256 * 32
    mask = Bitseq(bits)
    assert mask.bits == bits
    assert mask.unselected == bits
    assert mask.runs() == [(0x0, 256)]
    for want in range(192):
        assert mask.set_any() == want
    assert mask.unselected == bits - 192
    assert mask.runs() == [(FULL, 6), (0x0, 250)]


# TestRandomAllocateDeallocate (Go seeds from the clock; fixed seeds here).
@pytest.mark.parametrize("seed", [1, 2, 3, 2024])
def test_random_allocate_deallocate(seed):
    rng = random.Random(seed)
    bits = 16 * 32
    mask = Bitseq(bits)
    order = list(range(bits))
    rng.shuffle(order)
    for ordinal in order:
        mask.set(ordinal)
    assert mask.unselected == 0
    assert mask.runs() == [(FULL, 16)]

    rng.shuffle(order)
    for ordinal in order:
        assert mask.unset(ordinal) is True
    assert mask.unselected == bits
    assert mask.runs() == [(0x0, 16)]


# TestAllocateRandomDeallocate
@pytest.mark.parametrize("seed", [1, 7, 99])
def test_allocate_random_deallocate(seed):
    rng = random.Random(seed)
    blocks = 8
    bits = blocks * 32
    half = [(FULL, blocks // 2), (0x0, blocks // 2)]
    mask = Bitseq(bits)
    for want in range(bits // 2):
        assert mask.set_any() == want
    assert mask.unselected == bits // 2
    assert mask.runs() == half

    released = rng.sample(range(bits // 2), bits // 4)
    for ordinal in released:
        assert mask.unset(ordinal) is True
    assert mask.unselected == 3 * bits // 4

    retaken = sorted(mask.set_any() for _ in range(bits // 4))
    assert retaken == sorted(released)
    assert mask.unselected == bits // 2
    assert mask.runs() == half


# TestRetrieveFromStore: the store keeps the handle as its bytes.
def test_state_survives_bytes_round_trip():
    mask = Bitseq(8 * 32)
    for _ in range(4 * 32):
        mask.set_any()
    again = Bitseq.from_bytes(mask.to_bytes())
    assert again == mask
    assert again.bits == mask.bits
    assert again.unselected == mask.unselected
    assert again.runs() == mask.runs() == [(FULL, 4), (0x0, 4)]
    assert again.set_any() == mask.set_any() == 128


# TestIsCorrupted. A sound handle stays decodable after setting its first and last bit.
def test_sound_handle_is_not_corrupted():
    mask = Bitseq(1024)
    mask.set(0)
    mask.set(1023)
    assert mask.runs() == [(0x80000000, 1), (0x0, 30), (0x1, 1)]
    assert Bitseq.from_bytes(mask.to_bytes()) == mask


# The three corrupted IPAM handles reported by docker 1.9 users carry zero-count runs.
# Go's CheckConsistency drops those runs, and so does pyln's decoder. pyln also takes
# the free count from the runs: the second handle's header says 65319 free but its
# runs have 65310, and pyln reports the runs' figure.
CORRUPTED = [
    (
        65412,
        True,
        [
            (FULL, 3),
            (0xFFFFFFBF, 0),
            (0xFE98816E, 1),
            (FULL, 0),
            (0xE3BC0000, 1),
            (0x0, 2042),
            (0x1, 1),
            (0x0, 0),
        ],
    ),
    (
        65319,
        False,
        [
            (FULL, 7),
            (0xFFFFFF7F, 0),
            (FULL, 0),
            (0x2000000, 1),
            (0x0, 2039),
            (0x1, 1),
            (0x0, 0),
        ],
    ),
    (
        65456,
        True,
        [
            (FULL, 2),
            (0xFFFBFFFF, 0),
            (0xFFD07000, 1),
            (0x0, 333),
            (0x40000000, 1),
            (0x0, 1710),
            (0x1, 1),
            (0x0, 0),
        ],
    ),
]


@pytest.mark.parametrize(("unselected", "consistent", "runs"), CORRUPTED)
def test_corrupted_handles(unselected, consistent, runs):
    def go_bytes(runs):
        # the handle as Go wrote it: its own header, whatever the runs say
        return encode(runs, bits=65536)[:8] + struct.pack(">Q", unselected) + encode(runs)[16:]

    repaired = [(block, count) for block, count in runs if count]
    for data in (go_bytes(runs), go_bytes(repaired)):
        mask = Bitseq.from_bytes(data)
        assert mask.runs() == repaired
        assert mask.is_set(65535)
        assert mask == from_runs(repaired)
        assert mask.unselected == from_runs(repaired).unselected
        assert (mask.unselected == unselected) == consistent
        assert mask.to_bytes() == encode(repaired, bits=65536)


# --------------------------------------------------------------------------
# Part 2: pyln behaviour beyond the Go tests
# --------------------------------------------------------------------------


def test_new_mask_bytes():
    assert Bitseq(64).to_bytes().hex() == (
        "0000000000000040" + "0000000000000040" + "00000000" + "0000000000000002"
    )
    assert Bitseq(1).runs() == [(0x0, 1)]
    assert Bitseq(33).runs() == [(0x0, 2)]


def test_unset_of_a_free_bit_is_a_noop():
    # Go's Unset of a free bit returns nil but still bumps unselected; pyln reports
    # False and leaves the counter and the bytes untouched (by design).
    mask = Bitseq(100)
    mask.set(42)
    before = mask.to_bytes()
    assert mask.unset(43) is False
    assert mask.unselected == 99
    assert mask.to_bytes() == before
    assert mask.unset(42) is True
    assert mask.unset(42) is False
    assert mask == Bitseq(100)
    assert mask.unselected == 100


def test_one_ordinal_range():
    # Go's SetAnyInRange refuses start == end; pyln hands out that one ordinal.
    mask = Bitseq(64)
    assert mask.set_any_in_range(40, 40) == 40
    with pytest.raises(NoBitAvailable):
        mask.set_any_in_range(40, 40)
    assert mask.set_any_in_range(63, 63) == 63
    assert mask.set_any_in_range(0, 0) == 0


def test_partial_last_block_is_never_handed_out():
    mask = Bitseq(70)
    assert [mask.set_any() for _ in range(70)] == list(range(70))
    with pytest.raises(NoBitAvailable):
        mask.set_any()
    assert mask.unselected == 0
    assert mask.runs() == [(FULL, 2), (0xFC000000, 1)]


# Error typing ---------------------------------------------------------------


def test_error_families():
    assert issubclass(NoBitAvailable, errors.NoService)
    assert issubclass(BitAlreadyAllocated, errors.Forbidden)
    assert issubclass(BitOutOfRange, errors.BadRequest)
    assert issubclass(BitOutOfRange, IndexError)
    assert issubclass(InvalidBitseqLength, errors.BadRequest)
    assert issubclass(InvalidBitseqLength, ValueError)
    assert issubclass(InvalidBitseqData, errors.BadRequest)
    assert issubclass(InvalidBitseqData, ValueError)


def test_raised_error_types():
    mask = Bitseq(3)
    mask.set(1)
    with pytest.raises(BitAlreadyAllocated) as exc:
        mask.set(1)
    assert type(exc.value) is BitAlreadyAllocated
    assert isinstance(exc.value, errors.Forbidden)

    mask.set(0)
    mask.set(2)
    with pytest.raises(NoBitAvailable) as exc:
        mask.set_any()
    assert type(exc.value) is NoBitAvailable
    assert isinstance(exc.value, errors.NoService)
    with pytest.raises(NoBitAvailable):
        mask.set_any(serial=True)
    with pytest.raises(NoBitAvailable):
        mask.set_any_in_range(0, 2)

    with pytest.raises(InvalidBitseqData) as exc:
        Bitseq.from_bytes(b"")
    assert type(exc.value) is InvalidBitseqData
    assert isinstance(exc.value, ValueError)


@pytest.mark.parametrize("bits", [1, 31, 32, 100, 2**32, 2**64])
@pytest.mark.parametrize("method", ["set", "unset", "is_set"])
def test_out_of_range_ordinals(bits, method):
    mask = Bitseq(bits)
    for bad in (bits, bits + 1, -1, -(2**63), 2**64, 2**64 + 5, 2**100):
        with pytest.raises(BitOutOfRange) as exc:
            getattr(mask, method)(bad)
        assert type(exc.value) is BitOutOfRange
        assert isinstance(exc.value, IndexError)
        assert isinstance(exc.value, errors.BadRequest)
    assert mask.unselected == bits
    assert mask == Bitseq(bits)


def test_bad_ranges():
    mask = Bitseq(100)
    for start, end in [(5, 4), (0, 100), (99, 100), (100, 100), (-1, 5), (0, -1), (0, 2**64)]:
        with pytest.raises(BitOutOfRange):
            mask.set_any_in_range(start, end)
        with pytest.raises(BitOutOfRange):
            mask.set_any_in_range(start, end, serial=True)
    assert mask == Bitseq(100)


@pytest.mark.parametrize("bits", [0, -1, -(2**70), 2**64 + 1, 2**65, 2**200])
def test_invalid_lengths(bits):
    with pytest.raises(InvalidBitseqLength) as exc:
        Bitseq(bits)
    assert type(exc.value) is InvalidBitseqLength
    assert isinstance(exc.value, ValueError)
    assert isinstance(exc.value, errors.BadRequest)


def test_two_to_the_64_bits():
    mask = Bitseq(2**64)
    assert mask.bits == 2**64
    assert mask.unselected == 2**64
    # The length and free count are written modulo 2^64, as Go's uint64 would.
    assert mask.to_bytes()[:16] == bytes(16)
    top = 2**64 - 1
    mask.set(top)
    assert mask.is_set(top)
    assert not mask.is_set(top - 1)
    assert mask.unselected == 2**64 - 1
    assert mask.runs() == [(0x0, 2**59 - 1), (0x1, 1)]
    assert mask.to_bytes()[:16] == bytes(8) + b"\xff" * 8
    with pytest.raises(BitAlreadyAllocated):
        mask.set(top)
    assert mask.set_any_in_range(top - 5, top) == top - 5
    again = Bitseq.from_bytes(mask.to_bytes())
    assert again == mask
    assert again.bits == 2**64
    assert again.is_set(top)
    assert mask.unset(top) is True
    assert mask.unset(top - 5) is True
    assert mask == Bitseq(2**64)


@pytest.mark.parametrize("bad", [1.0, 2.5, "3", b"\x03", None, [1], object()])
def test_non_int_ordinals_are_type_errors(bad):
    mask = Bitseq(10)
    for call in (
        lambda: mask.set(bad),
        lambda: mask.unset(bad),
        lambda: mask.is_set(bad),
        lambda: mask.set_any_in_range(bad, 5),
        lambda: mask.set_any_in_range(0, bad),
    ):
        with pytest.raises(TypeError):
            call()
    assert mask == Bitseq(10)


@pytest.mark.parametrize("bad", [8.0, "8", None, b"8"])
def test_non_int_length_is_type_error(bad):
    with pytest.raises(TypeError):
        Bitseq(bad)


@pytest.mark.parametrize("huge", [2**128, 2**200, -(2**127) - 1])
def test_huge_int_ordinal_is_out_of_range(huge):
    # Any int that does not fit 64 bits is out of range (not a TypeError).
    mask = Bitseq(10)
    for method in (mask.set, mask.unset, mask.is_set):
        with pytest.raises(BitOutOfRange):
            method(huge)
    with pytest.raises(BitOutOfRange):
        mask.set_any_in_range(0, huge)


# Serial mode -----------------------------------------------------------------


def test_serial_does_not_hand_back_a_just_released_bit():
    mask = Bitseq(8)
    assert mask.set_any(serial=True) == 0
    assert mask.set_any(serial=True) == 1
    assert mask.unset(0) is True
    assert mask.set_any(serial=True) == 2
    assert [mask.set_any(serial=True) for _ in range(5)] == [3, 4, 5, 6, 7]
    # past the end it wraps to the start and finds the released bit
    assert mask.set_any(serial=True) == 0
    with pytest.raises(NoBitAvailable):
        mask.set_any(serial=True)


def test_non_serial_hands_back_the_lowest_free_bit():
    mask = Bitseq(8)
    assert [mask.set_any() for _ in range(3)] == [0, 1, 2]
    mask.unset(1)
    assert mask.set_any() == 1
    mask.unset(0)
    assert mask.set_any(serial=False) == 0


def test_serial_skips_taken_bits_and_wraps():
    mask = Bitseq(100)
    for ordinal in (11, 12, 50, 99):
        mask.set(ordinal)
    assert mask.set_any(serial=True) == 0
    mask.serial_cursor = 11
    assert mask.set_any(serial=True) == 13
    mask.serial_cursor = 50
    assert mask.set_any(serial=True) == 51
    # cursor on the last (taken) ordinal: nothing free after it, wrap to 1
    mask.serial_cursor = 99
    assert mask.set_any(serial=True) == 1
    assert mask.serial_cursor == 2


def test_serial_in_range():
    mask = Bitseq(64)
    assert mask.set_any_in_range(10, 20, serial=True) == 10
    assert mask.set_any_in_range(10, 20, serial=True) == 11
    mask.unset(10)
    assert mask.set_any_in_range(10, 20, serial=True) == 12
    # non-serial within the same range takes the lowest free ordinal
    assert mask.set_any_in_range(10, 20) == 10
    mask.unset(10)
    # the cursor is now 11, inside the range; serial continues from there
    assert mask.set_any_in_range(10, 20, serial=True) == 13
    # a cursor outside the range makes the serial search start at the range start
    assert mask.set_any_in_range(30, 40, serial=True) == 30
    assert mask.serial_cursor == 31
    assert mask.set_any_in_range(10, 20, serial=True) == 10
    # fill the rest of the range, then wrap inside it
    assert [mask.set_any_in_range(10, 20, serial=True) for _ in range(7)] == list(range(14, 21))
    mask.unset(12)
    assert mask.set_any_in_range(10, 20, serial=True) == 12
    with pytest.raises(NoBitAvailable):
        mask.set_any_in_range(10, 20, serial=True)


def test_serial_cursor_follows_every_set_any():
    mask = Bitseq(32)
    assert mask.serial_cursor == 0
    assert mask.set_any() == 0
    assert mask.serial_cursor == 1
    mask.set(5)  # a specific set does not move the cursor
    assert mask.serial_cursor == 1
    assert mask.set_any_in_range(20, 25) == 20
    assert mask.serial_cursor == 21
    mask.unset(0)
    assert mask.set_any(serial=True) == 21


def test_serial_cursor_is_not_on_the_wire():
    mask = Bitseq(16)
    other = Bitseq(16)
    for _ in range(4):
        mask.set_any(serial=True)
    mask.unset(1)
    other.set(0)
    other.set(2)
    other.set(3)
    assert mask.serial_cursor == 4
    assert other.serial_cursor == 0
    assert mask.to_bytes() == other.to_bytes()
    assert mask == other
    again = Bitseq.from_bytes(mask.to_bytes())
    assert again.serial_cursor == 0
    assert again.set_any(serial=True) == 1
    again.unset(1)
    again.serial_cursor = mask.serial_cursor
    assert again.set_any(serial=True) == mask.set_any(serial=True) == 4


def test_serial_wraps_past_two_to_the_64():
    top = 2**64 - 1
    mask = Bitseq(2**64)
    assert mask.set_any_in_range(top - 1, top, serial=True) == top - 1
    assert mask.set_any_in_range(top - 1, top, serial=True) == top
    assert mask.serial_cursor == 0  # one past 2^64 - 1, modulo 2^64
    assert mask.set_any(serial=True) == 0
    assert mask.set_any(serial=True) == 1
    mask.unset(0)
    assert mask.set_any(serial=True) == 2


# --------------------------------------------------------------------------
# Part 3: hypothesis
# --------------------------------------------------------------------------


class Model:
    """The mask as a Python set, with the serial cursor rule spelled out."""

    def __init__(self, bits: int) -> None:
        self.bits = bits
        self.taken: set[int] = set()
        self.cursor = 0  # last ordinal handed out + 1 (not wrapped)

    def first_free(self, lo: int, hi: int) -> int | None:
        o = lo
        while o in self.taken:
            o += 1
        return o if o <= hi else None

    def set_any_in_range(self, start: int, end: int, serial: bool) -> int | None:
        found = None
        if serial and start < self.cursor <= end:
            found = self.first_free(self.cursor, end)
        if found is None:
            found = self.first_free(start, end)
        if found is not None:
            self.taken.add(found)
            self.cursor = found + 1
        return found


def ordinals(bits: int) -> st.SearchStrategy[int]:
    if bits <= 300:
        return st.integers(0, bits - 1)
    edges = [
        st.integers(0, 70),
        st.integers(max(0, bits - 70), bits - 1),
        st.integers(bits // 2 - 40, bits // 2 + 40),
    ]
    return st.one_of(*edges)


def operations(bits: int) -> st.SearchStrategy[list[tuple]]:
    o = ordinals(bits)
    return st.lists(
        st.one_of(
            st.tuples(st.just("set"), o),
            st.tuples(st.just("unset"), o),
            st.tuples(st.just("any"), st.booleans()),
            st.tuples(st.just("range"), o, o, st.booleans()),
            st.tuples(st.just("roundtrip"), st.booleans()),
        ),
        max_size=80,
    )


def probes(model: Model) -> set[int]:
    """The ordinals worth looking at in a mask too big to scan."""
    bits = model.bits
    out = {0, bits - 1, bits // 2, bits // 2 - 1}
    for o in model.taken:
        out.update((o - 1, o, o + 1))
    return {o for o in out if 0 <= o < bits}


def check_state(mask: Bitseq, model: Model, full_scan: bool) -> None:
    assert mask.bits == model.bits
    assert mask.unselected == model.bits - len(model.taken)
    assert mask.serial_cursor == model.cursor % U64
    looked_at = range(model.bits) if full_scan else sorted(probes(model))
    assert [o for o in looked_at if mask.is_set(o)] == sorted(
        o for o in model.taken if o in looked_at
    )


def run_against_model(bits: int, ops: list[tuple]) -> None:
    mask = Bitseq(bits)
    model = Model(bits)
    small = bits <= 300
    for op, *args in ops:
        if op == "set":
            (o,) = args
            if o in model.taken:
                with pytest.raises(BitAlreadyAllocated):
                    mask.set(o)
            else:
                mask.set(o)
                model.taken.add(o)
        elif op == "unset":
            (o,) = args
            assert mask.unset(o) is (o in model.taken)
            model.taken.discard(o)
        elif op == "any":
            (serial,) = args
            want = model.set_any_in_range(0, bits - 1, serial)
            if want is None:
                with pytest.raises(NoBitAvailable):
                    mask.set_any(serial=serial)
            else:
                assert mask.set_any(serial=serial) == want
        elif op == "range":
            a, b, serial = args
            lo, hi = min(a, b), max(a, b)
            want = model.set_any_in_range(lo, hi, serial)
            if want is None:
                with pytest.raises(NoBitAvailable):
                    mask.set_any_in_range(lo, hi, serial)
            else:
                assert mask.set_any_in_range(lo, hi, serial) == want
        else:  # roundtrip through the wire bytes
            (keep_cursor,) = args
            data = mask.to_bytes()
            again = Bitseq.from_bytes(data)
            assert again == mask
            assert again.to_bytes() == data
            assert again.serial_cursor == 0
            if keep_cursor:
                again.serial_cursor = mask.serial_cursor
            else:
                model.cursor = 0
            mask = again
            check_state(mask, model, small)
        assert mask.unselected == bits - len(model.taken)
    check_state(mask, model, small)
    final = Bitseq.from_bytes(mask.to_bytes())
    assert final == mask
    check_state(final, _without_cursor(model), small)


def _without_cursor(model: Model) -> Model:
    fresh = Model(model.bits)
    fresh.taken = set(model.taken)
    return fresh


@st.composite
def small_case(draw):
    bits = draw(st.one_of(st.integers(1, 40), st.integers(1, 300)))
    return bits, draw(operations(bits))


@settings(max_examples=300, deadline=None)
@given(small_case())
def test_small_masks_match_set_model(case):
    run_against_model(*case)


BIG_LENGTHS = [2**24, 2**24 + 7, 2**32, 2**32 + 17, 2**64 - 3, 2**64]


@st.composite
def big_case(draw):
    bits = draw(st.sampled_from(BIG_LENGTHS))
    return bits, draw(operations(bits))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(big_case())
def test_big_masks_match_set_model(case):
    run_against_model(*case)


# from_bytes fuzzing ------------------------------------------------------------


def parse_runs(data: bytes) -> list[tuple[int, int]]:
    return [struct.unpack(">IQ", data[i : i + 12]) for i in range(16, len(data), 12)]


def check_decode(data: bytes) -> Bitseq | None:
    """from_bytes either refuses with InvalidBitseqData or gives a mask that round-trips."""
    try:
        mask = Bitseq.from_bytes(data)
    except InvalidBitseqData as exc:
        assert isinstance(exc, ValueError)
        return None
    out = mask.to_bytes()
    # the length survives; the free count is the runs' (the header's is redundant)
    assert out[:8] == data[:8]
    free = sum(count * (32 - block.bit_count()) for block, count in mask.runs())
    assert mask.unselected == free - (-mask.bits % 32)
    again = Bitseq.from_bytes(out)
    assert again == mask
    assert again.to_bytes() == out
    assert 0 <= mask.unselected <= mask.bits <= U64
    runs = mask.runs()
    assert all(a[0] != b[0] for a, b in pairwise(runs))
    assert sum(count for _, count in runs) == -(-mask.bits // 32)
    assert parse_runs(out) == runs
    in_runs = parse_runs(data)
    if all(a[0] != b[0] for a, b in pairwise(in_runs)) and all(c for _, c in in_runs):
        # canonical input comes back byte for byte, but for a drifted free count
        assert out[16:] == data[16:]
    for o in (0, mask.bits - 1):
        assert mask.is_set(o) in (True, False)
    return mask


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=100))
def test_from_bytes_arbitrary(data):
    check_decode(data)


@settings(max_examples=300, deadline=None)
@given(
    st.integers(0, 2**64 - 1),
    st.integers(0, 2**64 - 1),
    st.lists(st.tuples(st.integers(0, FULL), st.integers(0, 2**64 - 1)), min_size=1, max_size=6),
)
def test_from_bytes_arbitrary_fields(bits, unselected, runs):
    data = struct.pack(">QQ", bits, unselected) + b"".join(
        struct.pack(">IQ", block, count) for block, count in runs
    )
    check_decode(data)


@st.composite
def valid_encoding(draw) -> bytes:
    bits = draw(st.one_of(st.integers(1, 300), st.sampled_from(BIG_LENGTHS)))
    mask = Bitseq(bits)
    for o in draw(st.lists(ordinals(bits), max_size=20)):
        if not mask.is_set(o):
            mask.set(o)
    return mask.to_bytes()


@st.composite
def mutated_encoding(draw) -> bytes:
    data = bytearray(draw(valid_encoding()))
    kind = draw(st.sampled_from(["flip", "truncate", "extend", "several"]))
    if kind == "flip":
        i = draw(st.integers(0, len(data) - 1))
        data[i] ^= draw(st.integers(1, 255))
    elif kind == "truncate":
        del data[draw(st.integers(0, len(data) - 1)) :]
    elif kind == "extend":
        data += draw(st.binary(min_size=1, max_size=30))
    else:
        for _ in range(draw(st.integers(1, 4))):
            i = draw(st.integers(0, len(data) - 1))
            data[i] = draw(st.integers(0, 255))
    return bytes(data)


@settings(max_examples=600, deadline=None)
@given(mutated_encoding())
def test_from_bytes_mutated(data):
    check_decode(data)


@settings(max_examples=200, deadline=None)
@given(valid_encoding(), st.data())
def test_from_bytes_split_runs_are_merged(data, choices):
    # Splitting a run into two with the same block is still a valid encoding of the
    # same mask; decoding merges them back into the canonical bytes.
    runs = parse_runs(data)
    splittable = [i for i, (_, count) in enumerate(runs) if count >= 2]
    if not splittable:
        assert check_decode(data) is not None
        return
    i = choices.draw(st.sampled_from(splittable))
    block, count = runs[i]
    k = choices.draw(st.integers(1, count - 1))
    split = [*runs[:i], (block, k), (block, count - k), *runs[i + 1 :]]
    raw = data[:16] + b"".join(struct.pack(">IQ", b, c) for b, c in split)
    mask = Bitseq.from_bytes(raw)
    assert mask.to_bytes() == data
    assert mask == Bitseq.from_bytes(data)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(64, 4096).flatmap(lambda n: st.tuples(st.just(n), st.sets(st.integers(0, n - 1))))
)
def test_set_ordinals_lists_exactly_the_set_bits(case: tuple[int, set[int]]) -> None:
    from pyln.restore import set_ordinals

    n, ordinals = case
    bits = Bitseq(n)
    for o in sorted(ordinals):
        bits.set(o)
    assert list(set_ordinals(bits)) == sorted(ordinals)


def test_set_ordinals_walks_repeated_blocks_and_huge_masks() -> None:
    from pyln.restore import set_ordinals

    bits = Bitseq(1 << 64)
    for _ in range(32 * 5 + 3):  # five full blocks (one run) and a partial one
        bits.set_any()
    far = (1 << 63) + 5
    bits.set(far)
    assert list(set_ordinals(bits)) == [*range(32 * 5 + 3), far]
