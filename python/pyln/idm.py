"""ID manager for VNIs, VLAN IDs and the like (Rust: rust/src/idm.rs)."""

from pyln._core import Idm
from pyln.errors import IDAlreadyAllocated, IDOutOfRange, InvalidIDSet, NoIDAvailable

__all__ = ["IDAlreadyAllocated", "IDOutOfRange", "Idm", "InvalidIDSet", "NoIDAvailable"]
