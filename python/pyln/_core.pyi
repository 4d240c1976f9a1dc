"""Type stubs for the Rust extension (rust/src/py.rs, rust/src/py_networkdb.rs)."""

from collections.abc import Iterable
from typing import Any, TypeAlias

class Bitseq:
    """A run-length encoded bitmask of 1..=2^64 bits, libnetwork's bitseq."""

    def __init__(self, bits: int) -> None: ...
    @property
    def bits(self) -> int: ...
    @property
    def unselected(self) -> int: ...
    @property
    def run_count(self) -> int: ...
    @property
    def serial_cursor(self) -> int: ...
    @serial_cursor.setter
    def serial_cursor(self, curr: int) -> None: ...
    def set(self, ordinal: int) -> None: ...
    def unset(self, ordinal: int) -> bool: ...
    def is_set(self, ordinal: int) -> bool: ...
    def set_any(self, serial: bool = False) -> int: ...
    def set_any_in_range(self, start: int, end: int, serial: bool = False) -> int: ...
    def to_bytes(self) -> bytes: ...
    @staticmethod
    def from_bytes(data: bytes) -> Bitseq: ...
    def runs(self) -> list[tuple[int, int]]: ...
    def copy(self) -> Bitseq: ...
    def __copy__(self) -> Bitseq: ...
    def __deepcopy__(self, memo: Any) -> Bitseq: ...
    def __eq__(self, other: object) -> bool: ...

class Idm:
    """A set of integer IDs [start, end], libnetwork's idm."""

    def __init__(self, start: int, end: int) -> None: ...
    @property
    def start(self) -> int: ...
    @property
    def end(self) -> int: ...
    @property
    def free(self) -> int: ...
    def get_id(self, serial: bool = False) -> int: ...
    def get_specific_id(self, id: int) -> None: ...
    def get_id_in_range(self, start: int, end: int, serial: bool = False) -> int: ...
    def release(self, id: int) -> bool: ...
    def is_taken(self, id: int) -> bool: ...
    def to_bytes(self) -> bytes: ...
    @staticmethod
    def from_bytes(start: int, data: bytes) -> Idm: ...
    def __eq__(self, other: object) -> bool: ...

# networkdb wire codec (rust/src/py_networkdb.rs). A message is a tuple: its
# GossipMessage type first, then its fields in .proto field-number order.
# Message types: NETWORK_EVENT=1 TABLE_EVENT=2 PUSH_PULL=3 BULK_SYNC=4 COMPOUND=5
# NODE_EVENT=6. Event types: NodeEvent/NetworkEvent INVALID=0 JOIN=1 LEAVE=2;
# TableEvent INVALID=0 CREATE=1 UPDATE=2 DELETE=3 (other int32 values pass
# through). Integers: l_time is a uint64, type and residual_reap_time are int32;
# out-of-range values raise OverflowError, wrong types TypeError. Decoding
# errors raise pyln.errors.WireDecodeError.

#: (type, l_time, node_name, network_id, table_name, key, value, residual_reap_time)
TableEventFields: TypeAlias = tuple[int, int, str, str, str, str, bytes, int]
#: (1, type, l_time, node_name, network_id)
NetworkEventMessage: TypeAlias = tuple[int, int, int, str, str]
#: (2, type, l_time, node_name, network_id, table_name, key, value, residual_reap_time)
TableEventMessage: TypeAlias = tuple[int, int, int, str, str, str, str, bytes, int]
#: (network_id, l_time, node_name, leaving)
NetworkEntryFields: TypeAlias = tuple[str, int, str, bool]
#: (3, l_time, networks, node_name)
PushPullMessage: TypeAlias = tuple[int, int, list[NetworkEntryFields], str]
#: (4, l_time, unsolicited, node_name, networks, payload)
BulkSyncMessage: TypeAlias = tuple[int, int, bool, str, list[str], bytes]
#: (5, payloads): each payload an encoded GossipMessage
CompoundMessage: TypeAlias = tuple[int, list[bytes]]
#: (6, type, l_time, node_name)
NodeEventMessage: TypeAlias = tuple[int, int, int, str]
GossipMessage: TypeAlias = (
    NetworkEventMessage
    | TableEventMessage
    | PushPullMessage
    | BulkSyncMessage
    | CompoundMessage
    | NodeEventMessage
)

def encode_table_events(events: Iterable[TableEventFields]) -> list[bytes]:
    """Encodes each table event wrapped in a GossipMessage (TABLE_EVENT)."""

def decode_gossip(messages: Iterable[bytes]) -> list[GossipMessage]:
    """Decodes encoded GossipMessages into message tuples. One bad message raises
    WireDecodeError (its index in the message) for the whole batch."""

def encode_message(msg: GossipMessage) -> bytes:
    """Encodes a message tuple wrapped in a GossipMessage."""

def decode_message(data: bytes) -> GossipMessage:
    """Decodes one encoded GossipMessage into a message tuple."""

def encode_payload(msg: GossipMessage) -> bytes:
    """Encodes the message alone: the `data` of its GossipMessage."""

def decode_payload(message_type: int, data: bytes) -> GossipMessage:
    """Decodes a bare message (a GossipMessage's `data`) of the given type."""

def make_compound(parts: Iterable[bytes]) -> bytes:
    """A COMPOUND GossipMessage holding already-encoded GossipMessages."""

def split_compound(data: bytes) -> list[bytes]:
    """The encoded GossipMessages inside a COMPOUND GossipMessage."""
