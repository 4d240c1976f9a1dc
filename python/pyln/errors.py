"""Typed errors. The families mirror libnetwork's `types` package, so callers can
catch by kind (bad request, not found, ...) whatever component raised it."""

from __future__ import annotations


class PylnError(Exception):
    """Base of every error pyln raises on purpose."""


# Families, as libnetwork's types.*Error interfaces.
class BadRequest(PylnError):
    """The caller asked for something malformed or impossible."""


class NotFound(PylnError):
    """The object named does not exist."""


class Forbidden(PylnError):
    """The request is valid but not allowed in the current state."""


class NoService(PylnError):
    """A resource is exhausted or a service cannot serve the request."""


class Unimplemented(PylnError):
    """The operation is not implemented (libnetwork's NotImplementedError)."""


class Timeout(PylnError):
    """The operation did not complete in time."""


class Unavailable(PylnError):
    """A needed component is not reachable now."""


class Internal(PylnError):
    """A bug or an inconsistent internal state."""


class Retry(PylnError):
    """A transient condition: the same call may succeed later."""


class Maskable(PylnError):
    """An error the caller may ignore."""


# bitseq
class NoBitAvailable(NoService):
    """No free bit in the sequence or range."""


class BitAlreadyAllocated(Forbidden):
    """The bit asked for is already set."""


class BitOutOfRange(BadRequest, IndexError):
    """An ordinal or range outside the sequence."""


class InvalidBitseqLength(BadRequest, ValueError):
    """A sequence length of zero or above 2^64."""


class InvalidBitseqData(BadRequest, ValueError):
    """Serialized bytes that do not describe a valid sequence."""


# idm
class NoIDAvailable(NoService):
    """Every ID of the set (or range) is taken."""


class IDAlreadyAllocated(Forbidden):
    """The ID asked for is taken."""


class IDOutOfRange(BadRequest, IndexError):
    """An ID or range outside the set."""


class InvalidIDSet(BadRequest, ValueError):
    """An ID set with inverted or impossible bounds."""


# store
class StoreError(PylnError):
    """Base of datastore errors."""


class KeyNotFound(StoreError, NotFound):
    """No object under that key."""


class KeyModified(StoreError, Retry):
    """The object changed since it was read: an atomic write lost the race."""


class KeyExists(StoreError, Forbidden):
    """An atomic create found the key already there."""


class InvalidStoreData(StoreError, Internal):
    """A stored value that cannot be decoded."""


# CNM objects (libnetwork's error.go names)
class InvalidName(BadRequest):
    """An empty or malformed network, endpoint or sandbox name."""


class InvalidID(BadRequest):
    """An empty or malformed object id."""


class NetworkNameExists(Forbidden):
    """A network with that name already exists."""


class NetworkNotFound(NotFound):
    """No network with that name or id."""


class EndpointExists(Forbidden):
    """The network already has an endpoint with that name."""


class EndpointNotFound(NotFound):
    """No endpoint with that name or id (or it was deleted)."""


class SandboxNotFound(NotFound):
    """No sandbox with that id (or it was deleted)."""


class ActiveEndpoints(Forbidden):
    """The network still has endpoints: delete them first."""


class ActiveContainer(Forbidden):
    """The endpoint is still joined to a sandbox: leave first."""


class AlreadyJoined(Forbidden):
    """The endpoint is already joined to a sandbox."""


class NotJoined(Forbidden):
    """The endpoint is not joined to that sandbox."""


class StateDirInUse(Forbidden):
    """Another live controller holds the state directory."""


# networkdb and its membership layer.
class GossipError(PylnError):
    """Base of the gossip (memberlist, networkdb) errors."""


class GossipProtocolError(GossipError, BadRequest):
    """A peer sent bytes that are not a valid message of the protocol."""


class JoinFailed(GossipError, Unavailable):
    """No node given to join answered."""


class DatabaseClosed(GossipError, Forbidden):
    """The NetworkDB was closed."""


# wire codecs
class WireDecodeError(BadRequest, ValueError):
    """Bytes that are not a valid message of the wire format (truncated, malformed,
    of an unknown type, or a string field that is not UTF-8)."""


class EntryExists(GossipError, Forbidden):
    """A networkdb table entry with that key already exists."""


class EntryNotFound(GossipError, NotFound):
    """No live networkdb table entry with that key."""


class NetworkAlreadyJoined(GossipError, Forbidden):
    """This node is already attached to that network."""


class NetworkNotJoined(GossipError, NotFound):
    """This node is not attached to that network."""
