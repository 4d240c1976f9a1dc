//! networkdb's data model: the eventually consistent table store that
//! libnetwork replicates by gossip, without the gossip.
//!
//! Everything here is plain data and rules: no I/O, no clocks, no
//! randomness. Time comes in as `now`, microseconds on any monotonic scale the
//! caller likes; ordering comes from two Lamport clocks (one for table
//! events, one for network and node events), as in libnetwork.
//!
//! * [`clock`]: the Lamport clock.
//! * [`names`]: interning of node names, network ids and table names.
//! * [`events`]: the gossip messages going in and out, and watch events.
//! * [`store`]: entries, tombstones, reaping, merge rules for table events.
//! * `strmap`: the store's per-group map, one cache line per entry.
//! * [`networks`]: node/network attachments and per-network peer lists.
//! * [`nodes`]: cluster membership (active, failed, left).
//! * [`db`]: [`NetworkDb`], which ties them together the way libnetwork's
//!   `NetworkDB` does; the gossip protocol machine drives it.

pub mod clock;
pub mod convert;
pub mod db;
pub mod events;
pub mod names;
pub mod networks;
pub mod nodes;
pub mod protocol;
pub mod store;
mod strmap;

#[cfg(test)]
mod cluster_tests;
#[cfg(test)]
mod merge_bench;
#[cfg(test)]
mod merge_tests;
#[cfg(test)]
mod tests;

pub use clock::LamportClock;
pub use db::{NetworkDb, NetworkLeave, NetworkOutcome, NodeChange, PushPullOutcome, ReapCounts};
pub use events::{
    NetworkEntry, NetworkEvent, NetworkEventType, NetworkPushPull, NodeEvent, NodeEventType,
    TableEvent, TableEventType, WatchEvent, WatchOp,
};
pub use networks::{NetworkError, NetworkVerdict};
pub use nodes::NodeState;
pub use store::{
    DepartedEntries, EntryView, LocalChange, NodeId, TableError, TableOutcome, TableStore, Verdict,
};

/// One second in the µs unit `now` is counted in.
pub const SECOND: u64 = 1_000_000;

/// Intervals and policies. Durations are in µs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// How long a tombstone (or an entry of a failed owner) is kept before
    /// the reaper drops it: libnetwork's `reapEntryInterval`, 30 minutes. It
    /// has to outlast failed bulk syncs and partitions: a delete that has not
    /// reached a node before the tombstone is gone everywhere can no longer
    /// win against that node's stale copy.
    pub reap_entry_interval: u64,
    /// How often libnetwork runs its reaper (`reapPeriod`, 5 s). Here only
    /// the default network interval derives from it; when to call
    /// [`NetworkDb::reap`] is the caller's choice.
    pub reap_period: u64,
    /// How long a leaving network attachment is kept:
    /// `reap_entry_interval + 5 * reap_period`, so that the entries of a
    /// network are reaped before the attachment that lets them be merged.
    pub reap_network_interval: u64,
    /// How long a failed or left node is remembered (`nodeReapInterval`,
    /// 24 hours); a failed node's suspended state goes with it.
    pub node_reap_interval: u64,
    /// What peers do with the entries of a node that leaves a network.
    pub departed_entries: DepartedEntries,
}

impl Default for Config {
    fn default() -> Self {
        Self::with_reap_entry_interval(30 * 60 * SECOND)
    }
}

impl Config {
    /// libnetwork's defaults with another entry reap interval (the network
    /// interval follows it, as in libnetwork).
    pub fn with_reap_entry_interval(reap_entry_interval: u64) -> Self {
        let reap_period = 5 * SECOND;
        Self {
            reap_entry_interval,
            reap_period,
            reap_network_interval: reap_entry_interval + 5 * reap_period,
            node_reap_interval: 24 * 3600 * SECOND,
            departed_entries: DepartedEntries::Remove,
        }
    }
}
