"""Tests for pyln.idm.Idm, the ID manager built on the bitmask.

The first tests restate libnetwork's idm/idm_test.go at commit
68aac7a957647e1e638cc8522f301656fab9f3ae through the Python API. Two Go cases
have no counterpart: New() with an empty store key (pyln's Idm has no key) and
an uninitialized Idm{} (a pyln Idm cannot exist without its bitmask).

Deliberate differences from Go:
- a one-ID set (start == end) is allowed; Go's New refuses end <= start;
- release() of a free ID, or of an ID outside the set, is a no-op returning False;
- errors are typed: InvalidIDSet, IDOutOfRange, IDAlreadyAllocated, NoIDAvailable.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyln import errors
from pyln.bitseq import Bitseq, InvalidBitseqData
from pyln.idm import IDAlreadyAllocated, Idm, IDOutOfRange, InvalidIDSet, NoIDAvailable

U64_MAX = 2**64 - 1

# --------------------------------------------------------------------------
# idm_test.go, restated
# --------------------------------------------------------------------------


# TestNew
def test_new():
    with pytest.raises(InvalidIDSet):
        Idm(1 << 10, 0)
    ids = Idm(0, 10)
    assert ids.start == 0
    assert ids.end == 10
    assert ids.free == 11


# TestAllocate
def test_allocate():
    ids = Idm(50, 52)
    with pytest.raises(IDOutOfRange):
        ids.get_specific_id(49)
    with pytest.raises(IDOutOfRange):
        ids.get_specific_id(53)

    assert ids.get_id() == 50
    with pytest.raises(IDAlreadyAllocated):
        ids.get_specific_id(50)
    assert ids.get_id() == 51
    assert ids.get_id() == 52
    with pytest.raises(NoIDAvailable):
        ids.get_id()
    assert ids.free == 0

    assert ids.release(50) is True
    assert ids.get_id() == 50

    assert ids.release(52) is True
    ids.get_specific_id(52)
    assert ids.is_taken(52)
    assert ids.free == 0


# --------------------------------------------------------------------------
# pyln behaviour
# --------------------------------------------------------------------------


def test_one_id_set():
    # Go refuses a set whose end is not above its start; pyln allows one ID.
    ids = Idm(7, 7)
    assert (ids.start, ids.end, ids.free) == (7, 7, 1)
    assert ids.get_id() == 7
    with pytest.raises(NoIDAvailable):
        ids.get_id()
    assert ids.release(7) is True
    ids.get_specific_id(7)
    with pytest.raises(IDAlreadyAllocated):
        ids.get_specific_id(7)
    top = Idm(U64_MAX, U64_MAX)
    assert top.get_id(serial=True) == U64_MAX
    assert top.release(U64_MAX) is True
    assert top.get_id(serial=True) == U64_MAX


def test_release_is_lenient():
    ids = Idm(100, 110)
    ids.get_specific_id(105)
    assert ids.release(104) is False  # free: nothing to do
    assert ids.release(99) is False  # outside the set
    assert ids.release(111) is False
    assert ids.release(-1) is False
    assert ids.release(2**64) is False
    assert ids.free == 10
    assert ids.release(105) is True
    assert ids.release(105) is False
    assert ids == Idm(100, 110)


def test_get_id_in_range():
    ids = Idm(100, 200)
    assert ids.get_id_in_range(150, 160) == 150
    assert ids.get_id_in_range(150, 160) == 151
    ids.get_specific_id(152)
    assert ids.get_id_in_range(150, 160) == 153
    assert ids.get_id_in_range(200, 200) == 200
    with pytest.raises(NoIDAvailable):
        ids.get_id_in_range(200, 200)
    assert ids.get_id_in_range(100, 100) == 100
    for lo, hi in [(90, 160), (150, 201), (99, 99), (201, 300), (160, 150), (-1, 150)]:
        with pytest.raises(IDOutOfRange):
            ids.get_id_in_range(lo, hi)
    assert ids.free == 101 - 6
    for _ in range(5):
        ids.get_id_in_range(154, 158)
    with pytest.raises(NoIDAvailable):
        ids.get_id_in_range(150, 158)
    assert ids.get_id() == 101


def test_serial_ids():
    ids = Idm(10, 14)
    assert ids.get_id(serial=True) == 10
    assert ids.get_id(serial=True) == 11
    assert ids.release(10) is True
    # serial mode moves on instead of handing the just-released ID back
    assert ids.get_id(serial=True) == 12
    assert ids.get_id(serial=True) == 13
    assert ids.get_id(serial=True) == 14
    # then wraps to the start
    assert ids.get_id(serial=True) == 10
    with pytest.raises(NoIDAvailable):
        ids.get_id(serial=True)
    assert ids.release(12) is True
    assert ids.get_id(serial=False) == 12

    other = Idm(10, 14)
    assert other.get_id() == 10
    other.release(10)
    assert other.get_id() == 10  # non-serial: lowest free


def test_serial_ids_in_range():
    ids = Idm(1000, 1999)
    assert ids.get_id_in_range(1500, 1509, serial=True) == 1500
    assert ids.get_id_in_range(1500, 1509, serial=True) == 1501
    ids.release(1500)
    assert ids.get_id_in_range(1500, 1509, serial=True) == 1502
    assert ids.get_id_in_range(1500, 1509) == 1500
    # the cursor (1501) is outside this range, so the search starts at its start
    assert ids.get_id_in_range(1000, 1001, serial=True) == 1000
    assert ids.get_id_in_range(1000, 1001, serial=True) == 1001
    with pytest.raises(NoIDAvailable):
        ids.get_id_in_range(1000, 1001, serial=True)


def test_is_taken():
    ids = Idm(5, 9)
    ids.get_specific_id(7)
    assert [ids.is_taken(i) for i in range(5, 10)] == [False, False, True, False, False]
    for outside in (4, 10, -1, 2**64):
        with pytest.raises(IDOutOfRange):
            ids.is_taken(outside)


def test_full_64_bit_set():
    ids = Idm(0, U64_MAX)
    assert ids.free == 2**64
    ids.get_specific_id(U64_MAX)
    assert ids.is_taken(U64_MAX)
    assert ids.get_id() == 0
    assert ids.get_id_in_range(U64_MAX - 1, U64_MAX) == U64_MAX - 1
    assert ids.free == 2**64 - 3
    again = Idm.from_bytes(0, ids.to_bytes())
    assert again == ids
    assert again.end == U64_MAX

    shifted = Idm(1, U64_MAX)
    assert shifted.free == U64_MAX
    assert shifted.get_id() == 1


def test_bytes_are_the_offset_bitmask():
    ids = Idm(4096, 4096 + 99)
    ids.get_specific_id(4096 + 3)
    ids.get_specific_id(4096 + 99)
    mask = Bitseq(100)
    mask.set(3)
    mask.set(99)
    assert ids.to_bytes() == mask.to_bytes()

    again = Idm.from_bytes(4096, ids.to_bytes())
    assert again == ids
    assert (again.start, again.end, again.free) == (4096, 4195, 98)
    assert again.is_taken(4099)
    assert again.get_id() == 4096
    # the same bytes at another start are another set
    moved = Idm.from_bytes(0, ids.to_bytes())
    assert (moved.start, moved.end) == (0, 99)
    assert moved != ids
    assert moved.is_taken(3)


def test_from_bytes_errors():
    with pytest.raises(InvalidBitseqData):
        Idm.from_bytes(0, b"\x00" * 27)
    # a 100-ID set starting this high would end past 2^64 - 1
    data = Idm(0, 99).to_bytes()
    with pytest.raises(InvalidIDSet):
        Idm.from_bytes(U64_MAX - 98, data)
    edge = Idm.from_bytes(U64_MAX - 99, data)
    assert edge.end == U64_MAX


def test_error_families():
    assert issubclass(NoIDAvailable, errors.NoService)
    assert issubclass(IDAlreadyAllocated, errors.Forbidden)
    assert issubclass(IDOutOfRange, errors.BadRequest)
    assert issubclass(IDOutOfRange, IndexError)
    assert issubclass(InvalidIDSet, errors.BadRequest)
    assert issubclass(InvalidIDSet, ValueError)


def test_raised_error_types():
    ids = Idm(1, 2)
    ids.get_specific_id(1)
    cases = [
        (lambda: ids.get_specific_id(1), IDAlreadyAllocated),
        (lambda: ids.get_specific_id(0), IDOutOfRange),
        (lambda: ids.get_specific_id(-5), IDOutOfRange),
        (lambda: ids.get_specific_id(2**64), IDOutOfRange),
        (lambda: ids.get_id_in_range(0, 2), IDOutOfRange),
        (lambda: Idm(3, 2), InvalidIDSet),
        (lambda: Idm(-1, 2), InvalidIDSet),
        (lambda: Idm(0, 2**64), InvalidIDSet),
    ]
    for call, kind in cases:
        with pytest.raises(kind) as exc:
            call()
        assert type(exc.value) is kind
    ids.get_id()
    with pytest.raises(NoIDAvailable) as exc:
        ids.get_id()
    assert type(exc.value) is NoIDAvailable
    with pytest.raises(NoIDAvailable):
        ids.get_id_in_range(1, 2, serial=True)


@pytest.mark.parametrize("bad", [1.0, "3", None, b"3"])
def test_non_int_ids_are_type_errors(bad):
    ids = Idm(0, 10)
    for call in (
        lambda: ids.get_specific_id(bad),
        lambda: ids.is_taken(bad),
        lambda: ids.get_id_in_range(bad, 5),
        lambda: ids.get_id_in_range(0, bad),
        lambda: Idm(bad, 10),
        lambda: Idm(0, bad),
    ):
        with pytest.raises(TypeError):
            call()
    assert ids.free == 11


@pytest.mark.parametrize("huge", [2**128, 2**200, -(2**127) - 1])
def test_huge_int_id_is_out_of_range(huge):
    # Any int that does not fit 64 bits is a typed range error (not a TypeError).
    ids = Idm(0, 10)
    with pytest.raises(IDOutOfRange):
        ids.get_specific_id(huge)
    with pytest.raises(IDOutOfRange):
        ids.get_id_in_range(0, huge)
    with pytest.raises(InvalidIDSet):
        Idm(0, huge)


# --------------------------------------------------------------------------
# hypothesis: an Idm against a Python set of taken IDs
# --------------------------------------------------------------------------


@st.composite
def idm_case(draw):
    start = draw(st.sampled_from([0, 1, 4094, 2**32 - 5, U64_MAX - 299]))
    size = draw(st.integers(1, 300))
    end = start + size - 1
    member = st.integers(start, end)
    near = st.integers(max(0, start - 3), min(U64_MAX, end + 3))
    op = st.one_of(
        st.tuples(st.just("get"), st.booleans()),
        st.tuples(st.just("specific"), near),
        st.tuples(st.just("range"), member, member, st.booleans()),
        st.tuples(st.just("release"), near),
        st.tuples(st.just("roundtrip")),
    )
    return start, end, draw(st.lists(op, max_size=60))


@settings(max_examples=200, deadline=None)
@given(idm_case())
def test_idm_matches_set_model(case):
    start, end, ops = case
    ids = Idm(start, end)
    taken: set[int] = set()
    cursor = 0  # last ID handed out + 1, an ID (not an offset)

    def first_free(lo: int, hi: int) -> int | None:
        i = lo
        while i in taken:
            i += 1
        return i if i <= hi else None

    def expect(lo: int, hi: int, serial: bool) -> int | None:
        found = first_free(cursor, hi) if serial and lo < cursor <= hi else None
        return found if found is not None else first_free(lo, hi)

    for op, *args in ops:
        if op in ("get", "range"):
            if op == "get":
                (serial,) = args
                lo, hi = start, end
            else:
                a, b, serial = args
                lo, hi = min(a, b), max(a, b)
            want = expect(lo, hi, serial)
            if want is None:
                with pytest.raises(NoIDAvailable):
                    if op == "get":
                        ids.get_id(serial=serial)
                    else:
                        ids.get_id_in_range(lo, hi, serial=serial)
            else:
                got = (
                    ids.get_id(serial=serial)
                    if op == "get"
                    else ids.get_id_in_range(lo, hi, serial=serial)
                )
                assert got == want
                taken.add(want)
                cursor = want + 1
        elif op == "specific":
            (i,) = args
            if not start <= i <= end:
                with pytest.raises(IDOutOfRange):
                    ids.get_specific_id(i)
            elif i in taken:
                with pytest.raises(IDAlreadyAllocated):
                    ids.get_specific_id(i)
            else:
                ids.get_specific_id(i)
                taken.add(i)
        elif op == "release":
            (i,) = args
            assert ids.release(i) is (i in taken)
            taken.discard(i)
        else:
            again = Idm.from_bytes(start, ids.to_bytes())
            assert again == ids
            assert again.to_bytes() == ids.to_bytes()
            ids = again
            cursor = 0  # the serial cursor is not part of the bytes
        assert ids.free == end - start + 1 - len(taken)

    assert [i for i in range(start, end + 1) if ids.is_taken(i)] == sorted(taken)
