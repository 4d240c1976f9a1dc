"""The hand-written netlink decoders never fail on any bytes: the brief link parser
(osl/rtnl.py) and the nftables generation reader (firewall/_exec.py). What they read
right is checked against the kernel in tests/kernel/test_rtnl.py and test_firewall.py."""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st

from pyln.firewall._exec import _gen_id
from pyln.osl.rtnl import LinkBrief, _parse_link, nla

RTM_NEWLINK = 16


def link_message(index: int, attrs: bytes) -> bytes:
    body = struct.pack("=BxHiII", 0, 0, index, 0, 0) + attrs
    return struct.pack("=IHHII", 16 + len(body), RTM_NEWLINK, 0, 1, 0) + body


@given(st.binary(max_size=512))
def test_parse_link_takes_any_bytes(data: bytes) -> None:
    out = _parse_link(data)
    assert out is None or isinstance(out, LinkBrief)


@given(st.integers(0, 2**31 - 1), st.binary(max_size=256))
def test_parse_link_takes_any_attributes(index: int, attrs: bytes) -> None:
    out = _parse_link(link_message(index, attrs))
    assert isinstance(out, LinkBrief) and out.index == index


@given(
    st.integers(1, 2**31 - 1),
    st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=15),
    st.integers(0, 2**32 - 1),
)
def test_parse_link_reads_what_was_packed(index: int, name: str, master: int) -> None:
    info = nla(18, nla(1, b"veth\0"))
    attrs = nla(3, name.encode() + b"\0") + nla(10, struct.pack("=I", master)) + info
    attrs += nla(1, bytes([2, 0x42, 10, 0, 0, 7]))
    out = _parse_link(link_message(index, attrs))
    assert out == LinkBrief(
        index=index, flags=0, name=name, kind="veth", master=master, mac="02:42:0a:00:00:07"
    )


@given(st.binary(max_size=256))
def test_generation_reader_takes_any_bytes(data: bytes) -> None:
    out = _gen_id(data)
    assert out is None or 0 <= out < 2**32
