//! What goes in and out of the data model: the gossip events networkdb
//! exchanges (shaped like its protobuf messages, which another module
//! encodes), and the events table watchers see.

use std::fmt;

/// Kind of a table event, numbered as on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TableEventType {
    Create = 1,
    Update = 2,
    Delete = 3,
}

impl TableEventType {
    /// The variant for a wire number; `None` for 0 (INVALID) and unknown values.
    pub fn from_wire(v: i32) -> Option<Self> {
        match v {
            1 => Some(Self::Create),
            2 => Some(Self::Update),
            3 => Some(Self::Delete),
            _ => None,
        }
    }
}

/// A change to one table entry, as gossiped and bulk-synced.
///
/// `node_name` is the entry's owner: the node whose create, update or delete
/// this is. Relays pass it on unchanged, so it is never the relaying node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableEvent {
    pub kind: TableEventType,
    pub ltime: u64,
    pub node_name: String,
    pub network_id: String,
    pub table_name: String,
    pub key: String,
    pub value: Vec<u8>,
    /// For a delete: whole seconds the tombstone still has to live (0 or less
    /// from an old peer means "unknown": the receiver uses the full interval).
    /// For a live entry whose owner is suspended on the sender: the time left
    /// before the sender drops it. Otherwise 0.
    pub residual_reap_time: i32,
}

/// Kind of a network attachment event, numbered as on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NetworkEventType {
    Join = 1,
    Leave = 2,
}

impl NetworkEventType {
    /// The variant for a wire number; `None` for 0 (INVALID) and unknown values.
    pub fn from_wire(v: i32) -> Option<Self> {
        match v {
            1 => Some(Self::Join),
            2 => Some(Self::Leave),
            _ => None,
        }
    }
}

/// A node joining or leaving a network, stamped by the network clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkEvent {
    pub kind: NetworkEventType,
    pub ltime: u64,
    pub node_name: String,
    pub network_id: String,
}

/// Kind of a cluster membership event, numbered as on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeEventType {
    Join = 1,
    Leave = 2,
}

impl NodeEventType {
    /// The variant for a wire number; `None` for 0 (INVALID) and unknown values.
    pub fn from_wire(v: i32) -> Option<Self> {
        match v {
            1 => Some(Self::Join),
            2 => Some(Self::Leave),
            _ => None,
        }
    }
}

/// A node announcing that it joins or (gracefully) leaves the cluster,
/// stamped by its network clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeEvent {
    pub kind: NodeEventType,
    pub ltime: u64,
    pub node_name: String,
}

/// One node/network attachment in a push/pull exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkEntry {
    pub network_id: String,
    pub ltime: u64,
    pub node_name: String,
    pub leaving: bool,
}

/// [`NetworkEntry`] with borrowed strings: how a received push/pull is merged
/// (its attachments read in place, see [`NetworkEntry::as_ref`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetworkEntryRef<'a> {
    pub network_id: &'a str,
    pub ltime: u64,
    pub node_name: &'a str,
    pub leaving: bool,
}

impl NetworkEntry {
    pub fn as_ref(&self) -> NetworkEntryRef<'_> {
        NetworkEntryRef {
            network_id: &self.network_id,
            ltime: self.ltime,
            node_name: &self.node_name,
            leaving: self.leaving,
        }
    }
}

/// The network attachments a node knows of (its own and its peers'),
/// exchanged in memberlist's push/pull.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NetworkPushPull {
    /// The sender's network clock.
    pub ltime: u64,
    pub networks: Vec<NetworkEntry>,
    pub node_name: String,
}

/// What a table watcher is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WatchOp {
    /// The entry became visible on this node.
    Create,
    /// A visible entry got a new value.
    Update,
    /// A visible entry went away (deleted, owner gone, or network left).
    Delete,
}

/// A change of the table state as seen from this node.
///
/// The kind is decided by what changed locally, not by the kind of the wire
/// event: an update for an entry this node did not have is a `Create`, and a
/// delete of an entry watchers never saw is not reported at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchEvent {
    pub op: WatchOp,
    pub table: String,
    pub network_id: String,
    pub key: String,
    /// The new value; for a `Delete`, the last value watchers were shown.
    pub value: Vec<u8>,
}

impl fmt::Display for WatchEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?}({}/{}/{})",
            self.op, self.table, self.network_id, self.key
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_numbers() {
        assert_eq!(TableEventType::from_wire(1), Some(TableEventType::Create));
        assert_eq!(TableEventType::from_wire(3), Some(TableEventType::Delete));
        assert_eq!(TableEventType::from_wire(0), None);
        assert_eq!(TableEventType::Update as i32, 2);
        assert_eq!(
            NetworkEventType::from_wire(2),
            Some(NetworkEventType::Leave)
        );
        assert_eq!(NetworkEventType::from_wire(7), None);
        assert_eq!(NodeEventType::from_wire(1), Some(NodeEventType::Join));
        assert_eq!(NodeEventType::from_wire(0), None);
    }

    #[test]
    fn watch_event_display() {
        let ev = WatchEvent {
            op: WatchOp::Delete,
            table: "t".into(),
            network_id: "n".into(),
            key: "k".into(),
            value: vec![],
        };
        assert_eq!(ev.to_string(), "Delete(t/n/k)");
    }
}
