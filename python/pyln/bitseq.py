"""Run-length encoded bitmasks with libnetwork's semantics and serialized form
(implemented in Rust: rust/src/bitseq.rs)."""

from pyln._core import Bitseq
from pyln.errors import (
    BitAlreadyAllocated,
    BitOutOfRange,
    InvalidBitseqData,
    InvalidBitseqLength,
    NoBitAvailable,
)

__all__ = [
    "BitAlreadyAllocated",
    "BitOutOfRange",
    "Bitseq",
    "InvalidBitseqData",
    "InvalidBitseqLength",
    "NoBitAvailable",
]
