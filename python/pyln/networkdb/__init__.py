"""networkdb: libnetwork's gossip-replicated tables on memberlist-compatible
SWIM membership. The protocol runs as sans-IO machines in the Rust core; this
package is the asyncio transport and the public API."""

from pyln.networkdb.memberlist import Memberlist, MemberlistConfig, Peer

__all__ = ["Memberlist", "MemberlistConfig", "Peer"]
