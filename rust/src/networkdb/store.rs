//! The table store: entries keyed by (table, network, key), their owners,
//! tombstones and reaping, the table clock, and the rules for merging a table
//! event from a peer.
//!
//! The store knows nothing of network membership: whoever calls
//! [`TableStore::merge`] says, in a [`MergeContext`], whether this node is in
//! the event's network and whether the event's owner is. [`super::NetworkDb`]
//! works that out from its network attachments.
//!
//! # Layout and memory
//!
//! Table names, network ids and node names are interned (`u32` ids), so an
//! entry holds none of them. Entries live in one small map per (network,
//! table) pair, keyed by the entry key; the key (`Key`) is inline or one
//! shared `Arc<str>`, and the two secondary indexes hold copies of it:
//!
//! * `groups`: (network, table) → key → entry, a `strmap` per group. Lookups
//!   are point queries; a (table, network) walk with a key prefix and a whole
//!   network (bulk sync) sort the group's keys. A table across all networks
//!   walks the (few) groups of that table.
//! * `by_owner`: the set of (owner, network, table, key): the entries a node
//!   owns in one network (its leave), or everywhere (its failure or
//!   departure). One B-tree for all owners: a set per (owner, network) cost a
//!   B-tree leaf (~370 bytes) for an owner's one or two entries, the largest
//!   share of a simulated node's table memory when many nodes write.
//! * `expiry`: (deadline, network, table, key) for tombstones and for the
//!   entries of suspended owners, so reaping touches only what expires.
//!
//! Cost of one live entry on x86-64, with 64-byte keys and `v`-byte values
//! (the `memory_per_entry` test recomputes the fixed parts): the `Entry`
//! is 40 bytes and sits with its 24-byte key (`Key`: inline up to 22 bytes,
//! else a pointer to one shared allocation of 16 bytes of counts + the bytes)
//! in a slot that is one cache line (`strmap`: 64 bytes, the map 1/4 to 1/2
//! full, so that a received event's stale check is one miss); the owner-index
//! slot is 32 bytes in a B-tree; the value is an `Arc<[u8]>` shared by every
//! store of the process that holds the same bytes (`intern::shared_bytes`),
//! so a real node pays `v` + 16 for it and a simulated cluster pays that once
//! per distinct value. (Before `sim-scale`, with 16-byte key pointers in
//! B-tree groups and boxed values: 205 + `v` bytes per entry measured with
//! random key order, 239 + `v` sorted.) A tombstone adds an expiry-index
//! slot (40 bytes, about 55 with slack). libnetwork holds each entry in two
//! radix trees under the full "/table/network/key" path, with an owner name.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use super::clock::LamportClock;
use super::events::{TableEvent, TableEventType, WatchEvent, WatchOp};
use super::names::{Interner, NodeNames};
use super::strmap::StrMap;
use super::SECOND;

/// An entry key: up to 22 bytes inline, longer ones in one shared
/// allocation. Received events are looked up by key in every node's store,
/// and following a pointer to the key's bytes was the simulator's largest
/// cost (a cache miss per lookup); inline keys are compared in place. Ordered,
/// compared and hashed as the `str` it holds (so maps can be queried by `&str`).
#[derive(Clone)]
enum Key {
    Inline(u8, [u8; 22]),
    Shared(Arc<str>),
}

impl Key {
    fn new(s: &str) -> Self {
        if s.len() <= 22 {
            let mut b = [0u8; 22];
            b[..s.len()].copy_from_slice(s.as_bytes());
            Key::Inline(s.len() as u8, b)
        } else {
            Key::Shared(Arc::from(s))
        }
    }

    fn as_str(&self) -> &str {
        match self {
            Key::Inline(n, b) => {
                let bytes = &b[..usize::from(*n)];
                // SAFETY: `bytes` is a copy of a whole `&str` (see `new`).
                unsafe { std::str::from_utf8_unchecked(bytes) }
            }
            Key::Shared(s) => s,
        }
    }
}

impl std::ops::Deref for Key {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl std::borrow::Borrow<str> for Key {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for Key {
    fn eq(&self, o: &Self) -> bool {
        self.as_str() == o.as_str()
    }
}
impl Eq for Key {}
impl PartialOrd for Key {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Key {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(o.as_str())
    }
}
impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.as_str().hash(h)
    }
}
impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}


/// The entries of one (network, table) pair, by key. A hash map (`strmap`):
/// most work is point lookups of received events (a B-tree cost ~20 string
/// compares each); the ordered walks (bulk sync, prefix walk) sort the keys.
#[derive(Debug, Clone, Default)]
struct Group(StrMap<Key, Entry>);

impl Group {
    fn get(&self, key: &str) -> Option<&Entry> {
        self.0.get(key)
    }
    fn get_key_value(&self, key: &str) -> Option<(&Key, &Entry)> {
        self.0.get_key_value(key)
    }
    fn get_mut(&mut self, key: &str) -> Option<&mut Entry> {
        self.0.get_mut(key)
    }
    fn insert(&mut self, key: Key, e: Entry) {
        self.0.insert(key, e);
    }
    fn prefetch(&self, key: &str) {
        self.0.prefetch(key);
    }
    fn remove_entry(&mut self, key: &str) -> Option<(Key, Entry)> {
        self.0.remove_entry(key)
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// Entries in key order.
    fn sorted(&self) -> Vec<(&Key, &Entry)> {
        let mut v: Vec<_> = self.0.iter().collect();
        v.sort_unstable_by(|a, b| a.0.cmp(b.0));
        v
    }
}

impl std::ops::Index<&str> for Group {
    type Output = Entry;
    fn index(&self, key: &str) -> &Entry {
        self.0.get(key).expect("entry exists")
    }
}

/// The (network, table) groups, in slot order. A store usually has one
/// group (one network, one table): the smallest is held inline, so that
/// finding it follows no pointer (the stale check of every received event
/// looked the group up in a B-tree first: a cache miss per event on a
/// simulated node, whose state is cold). The others, if any, are a sorted
/// list. Invariant: `rest` is empty when `first` is, and every slot in
/// `rest` is larger than `first`'s.
#[derive(Debug, Clone, Default)]
struct Groups {
    first: Option<((NetId, TableId), Group)>,
    rest: Vec<((NetId, TableId), Group)>,
}

impl Groups {
    fn get(&self, slot: &(NetId, TableId)) -> Option<&Group> {
        match &self.first {
            Some((s, g)) if s == slot => Some(g),
            Some(_) => self.rest.binary_search_by(|(s, _)| s.cmp(slot)).ok().map(|i| &self.rest[i].1),
            None => None,
        }
    }

    fn get_mut(&mut self, slot: &(NetId, TableId)) -> Option<&mut Group> {
        match &mut self.first {
            Some((s, g)) if s == slot => Some(g),
            Some(_) => {
                let i = self.rest.binary_search_by(|(s, _)| s.cmp(slot)).ok()?;
                Some(&mut self.rest[i].1)
            }
            None => None,
        }
    }

    /// The group at `slot`, made empty if there was none.
    fn or_default(&mut self, slot: (NetId, TableId)) -> &mut Group {
        match &self.first {
            None => {}
            Some((s, _)) if *s == slot => {}
            Some((s, _)) if *s > slot => {
                if let Some(old) = self.first.take() {
                    self.rest.insert(0, old);
                }
            }
            Some(_) => {
                let i = match self.rest.binary_search_by(|(s, _)| s.cmp(&slot)) {
                    Ok(i) => i,
                    Err(i) => {
                        self.rest.insert(i, (slot, Group::default()));
                        i
                    }
                };
                return &mut self.rest[i].1;
            }
        }
        &mut self.first.get_or_insert_with(|| (slot, Group::default())).1
    }

    fn remove(&mut self, slot: &(NetId, TableId)) {
        match &self.first {
            Some((s, _)) if s == slot => {
                self.first = (!self.rest.is_empty()).then(|| self.rest.remove(0));
            }
            Some(_) => {
                if let Ok(i) = self.rest.binary_search_by(|(s, _)| s.cmp(slot)) {
                    self.rest.remove(i);
                }
            }
            None => {}
        }
    }

    /// All groups in slot order.
    fn iter(&self) -> impl Iterator<Item = (&(NetId, TableId), &Group)> {
        self.first.iter().chain(self.rest.iter()).map(|(s, g)| (s, g))
    }

    /// The groups of one network, in table order.
    fn of_network(&self, nid: NetId) -> impl Iterator<Item = (&(NetId, TableId), &Group)> {
        self.iter().filter(move |(s, _)| s.0 == nid)
    }
}

impl std::ops::Index<&(NetId, TableId)> for Groups {
    type Output = Group;
    fn index(&self, slot: &(NetId, TableId)) -> &Group {
        self.get(slot).expect("group exists")
    }
}

/// Interned node name.
pub type NodeId = u32;
type NetId = u32;
type TableId = u32;

/// One table entry. Which (network, table, key) it is, is given by where it
/// is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    /// Table-clock time of the latest create, update or delete.
    ltime: u64,
    /// Absolute time (µs) at which the reaper drops the entry; 0 for none.
    /// Set for tombstones and for live entries of suspended owners.
    reap_at: u64,
    /// Shared through `intern::shared_bytes`: every node stores the same
    /// values, and a simulated cluster holds each one once, not N times.
    value: Arc<[u8]>,
    owner: NodeId,
    /// A tombstone: deleted, kept until `reap_at` so that older events for
    /// the key are recognised as stale.
    deleting: bool,
}

/// A read-only look at one stored entry, tombstones and hidden ones included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryView<'a> {
    pub table: &'a str,
    pub network_id: &'a str,
    pub key: &'a str,
    pub ltime: u64,
    pub owner: NodeId,
    pub value: &'a [u8],
    /// A tombstone.
    pub deleting: bool,
    /// The owner is suspended (failed): the entry is kept but not shown.
    pub hidden: bool,
    /// When the reaper drops it (µs), if it is a tombstone or hidden.
    pub reap_at: Option<u64>,
}

impl EntryView<'_> {
    /// Whether reads and watchers see this entry.
    pub fn is_visible(&self) -> bool {
        !self.deleting && !self.hidden
    }

    /// Seconds the entry has left before it is reaped, as sent in a table
    /// event; 0 if it is not going to be reaped.
    pub fn residual_reap_secs(&self, now: u64) -> i32 {
        residual_secs(self.reap_at.unwrap_or(0), now)
    }
}

/// Seconds left until `reap_at`, rounded up and never 0 while the entry
/// exists: 0 on the wire means "unknown" and would make the receiver keep the
/// tombstone for a whole new interval.
fn residual_secs(reap_at: u64, now: u64) -> i32 {
    if reap_at == 0 {
        return 0;
    }
    let secs = reap_at.saturating_sub(now).div_ceil(SECOND).max(1);
    i32::try_from(secs).unwrap_or(i32::MAX)
}

/// Why a local table operation was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableError {
    /// Create of a key that has a live entry.
    Exists {
        table: String,
        network_id: String,
        key: String,
    },
    /// Update or delete of a key with no entry (or one hidden because its
    /// owner failed, which counts as none).
    NotFound {
        table: String,
        network_id: String,
        key: String,
    },
    /// Update or delete of a key whose entry is a tombstone.
    Deleting {
        table: String,
        network_id: String,
        key: String,
    },
}

impl fmt::Display for TableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exists {
                table,
                network_id,
                key,
            } => write!(
                f,
                "entry in table {table} with network id {network_id} and key {key} already exists"
            ),
            Self::NotFound {
                table,
                network_id,
                key,
            } => write!(
                f,
                "entry in table {table} with network id {network_id} and key {key} does not exist"
            ),
            Self::Deleting {
                table,
                network_id,
                key,
            } => write!(
                f,
                "entry in table {table} with network id {network_id} and key {key} is being deleted"
            ),
        }
    }
}

impl std::error::Error for TableError {}

/// The result of a local create, update or delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalChange {
    /// To gossip on the network's table queue (libnetwork queues it only if
    /// this node has joined the network; a store of a network not joined is
    /// local only).
    pub event: TableEvent,
    /// What a watcher of this node's tables sees. libnetwork's current
    /// `Watch` only reports entries of remote owners, so a caller that mirrors
    /// it drops these.
    pub watch: WatchEvent,
}

/// What the caller knows about membership when a table event arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MergeContext {
    /// This node has joined the event's network and is not leaving it.
    pub joined: bool,
    /// This node has finished the bulk sync it does on joining the network
    /// (libnetwork's `inSync`): only then does it relay events.
    pub in_sync: bool,
    /// The event's owner, if it has a non-leaving attachment to the network
    /// (a failed node's remembered attachment counts); `None` otherwise.
    pub owner: Option<NodeId>,
}

/// How a table event was handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Stored: the entry now reflects the event.
    Applied,
    /// The event is this node's own, come back through gossip.
    OwnEvent,
    /// This node is not in the network, or is leaving it.
    NotInNetwork,
    /// The owner is not (or no longer) attached to the network.
    OwnerNotInNetwork,
    /// The stored entry is as new or newer (ltime compare).
    Stale,
}

/// The result of merging a table event from a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableOutcome {
    pub verdict: Verdict,
    /// What watchers see, if the visible state changed.
    pub watch: Option<WatchEvent>,
    /// The event to relay on the network's queue, if libnetwork would: the
    /// received event with the original owner, changed only in the residual
    /// reap time of a delete that came with none. libnetwork additionally
    /// drops relays of bulk-synced events while its relay queue holds more
    /// than 500 messages; that check is the caller's.
    pub rebroadcast: Option<TableEvent>,
}

impl TableOutcome {
    fn ignored(verdict: Verdict) -> Self {
        Self {
            verdict,
            watch: None,
            rebroadcast: None,
        }
    }

    /// Whether the store changed.
    pub fn changed(&self) -> bool {
        self.verdict == Verdict::Applied
    }
}

/// How entries of a node that leaves a network, or the cluster, are dropped
/// by the nodes that see it go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DepartedEntries {
    /// Remove them outright (moby 21d9109750, "stop forging tombstone
    /// entries"): the leave itself removes them everywhere; a forged
    /// tombstone with the entry's own ltime would block a live entry with the
    /// same ltime after a quick leave and rejoin (moby issue 47728).
    #[default]
    Remove,
    /// Turn them into tombstones with their ltime and owner unchanged, reaped
    /// after the entry interval and never broadcast (libnetwork 2017-2025,
    /// "Network db stabilization"). Kept to reproduce that behaviour.
    Tombstone,
}

/// Where an entry is: network, table, key.
type Slot = (NetId, TableId, Key);
/// (owner, network, table, key) of every entry.
type OwnerIndex = BTreeSet<(NodeId, NetId, TableId, Key)>;

/// The part of the owner index from (owner, network) on.
fn owned_from(
    index: &OwnerIndex,
    owner: NodeId,
    nid: NetId,
) -> impl Iterator<Item = &(NodeId, NetId, TableId, Key)> {
    index.range((owner, nid, 0, Key::new(""))..).take_while(move |o| o.0 == owner)
}

/// Entries, indexes, the table clock and the set of suspended owners.
#[derive(Debug, Clone)]
pub struct TableStore {
    nodes: NodeNames,
    tables: Interner,
    nets: Interner,
    clock: LamportClock,
    reap_interval: u64,
    groups: Groups,
    by_owner: OwnerIndex,
    expiry: BTreeSet<(u64, NetId, TableId, Key)>,
    suspended: BTreeSet<NodeId>,
    len: usize,
}

impl TableStore {
    /// An empty store whose tombstones live `reap_interval` µs.
    pub fn new(reap_interval: u64) -> Self {
        Self {
            nodes: NodeNames::new(),
            tables: Interner::new(),
            nets: Interner::new(),
            clock: LamportClock::new(),
            reap_interval,
            groups: Groups::default(),
            by_owner: BTreeSet::new(),
            expiry: BTreeSet::new(),
            suspended: BTreeSet::new(),
            len: 0,
        }
    }

    // ---- names -----------------------------------------------------------

    /// The id of a node name, adding it if new.
    pub fn intern_node(&mut self, name: &str) -> NodeId {
        self.nodes.intern(name)
    }

    /// The id of a node name already seen.
    pub fn node_id(&self, name: &str) -> Option<NodeId> {
        self.nodes.lookup(name)
    }

    /// The name behind a node id.
    pub fn node_name(&self, id: NodeId) -> &str {
        self.nodes.name(id)
    }

    /// How many node names are interned.
    pub fn node_names(&self) -> usize {
        self.nodes.len()
    }

    // ---- clock -----------------------------------------------------------

    /// The table clock.
    pub fn clock(&self) -> LamportClock {
        self.clock
    }

    /// Fold a remote table time into the clock (a bulk sync's `ltime`).
    pub fn witness(&mut self, ltime: u64) {
        self.clock.witness(ltime);
    }

    /// The interval tombstones live, in µs.
    pub fn reap_interval(&self) -> u64 {
        self.reap_interval
    }

    // ---- reads -----------------------------------------------------------

    /// Number of stored entries, tombstones and hidden ones included.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of entries waiting for the reaper (tombstones, hidden entries).
    pub fn pending_reap(&self) -> usize {
        self.expiry.len()
    }

    /// Whether `owner`'s entries are hidden because it failed.
    pub fn is_suspended(&self, owner: NodeId) -> bool {
        self.suspended.contains(&owner)
    }

    /// The stored entry for a key, whatever its state.
    pub fn get(&self, table: &str, network_id: &str, key: &str) -> Option<EntryView<'_>> {
        let slot = self.find(table, network_id)?;
        let (k, e) = self.groups.get(&slot)?.get_key_value(key)?;
        Some(self.view(slot.0, slot.1, k, e))
    }

    /// The value of a visible entry (not a tombstone, owner not failed).
    pub fn get_visible(&self, table: &str, network_id: &str, key: &str) -> Option<&[u8]> {
        self.get(table, network_id, key)
            .filter(EntryView::is_visible)
            .map(|v| v.value)
    }

    /// The entries of one table in one network whose key starts with
    /// `prefix`, in key order, whatever their state.
    pub fn walk_prefix<'a>(
        &'a self,
        table: &str,
        network_id: &str,
        prefix: &'a str,
    ) -> impl Iterator<Item = EntryView<'a>> + 'a {
        let found = self
            .find(table, network_id)
            .and_then(|slot| self.groups.get(&slot).map(|g| (slot, g)));
        found.into_iter().flat_map(move |((nid, tid), group)| {
            let mut v: Vec<_> = group.0.iter().filter(|(k, _)| k.starts_with(prefix)).collect();
            v.sort_unstable_by(|a, b| a.0.cmp(b.0));
            v.into_iter().map(move |(k, e)| self.view(nid, tid, k, e))
        })
    }

    /// Every entry of one network, by table then key, whatever its state:
    /// what a bulk sync of the network sends.
    pub fn network_entries<'a>(
        &'a self,
        network_id: &str,
    ) -> impl Iterator<Item = EntryView<'a>> + 'a {
        let nid = self.nets.lookup(network_id);
        nid.into_iter().flat_map(move |nid| {
            self.groups
                .of_network(nid)
                .flat_map(move |(&(n, t), group)| {
                    group.sorted().into_iter().map(move |(k, e)| self.view(n, t, k, e))
                })
        })
    }

    /// Every entry of one table, across networks, whatever its state.
    pub fn table_entries<'a>(&'a self, table: &str) -> impl Iterator<Item = EntryView<'a>> + 'a {
        let tid = self.tables.lookup(table);
        self.groups
            .iter()
            .filter(move |((_, t), _)| Some(*t) == tid)
            .flat_map(move |(&(n, t), group)| group.sorted().into_iter().map(move |(k, e)| self.view(n, t, k, e)))
    }

    /// The entries `owner` owns in one network, whatever their state.
    pub fn owner_entries<'a>(
        &'a self,
        owner: NodeId,
        network_id: &str,
    ) -> impl Iterator<Item = EntryView<'a>> + 'a {
        let nid = self.nets.lookup(network_id);
        nid.into_iter().flat_map(move |nid| {
            owned_from(&self.by_owner, owner, nid).take_while(move |o| o.1 == nid).map(move |(_, _, tid, key)| {
                let e = &self.groups[&(nid, *tid)][key];
                self.view(nid, *tid, key, e)
            })
        })
    }

    /// Gives every entry `owner` holds (tombstones included) a fresh table
    /// time, so that peers holding older state for them accept ours (the
    /// seed's updateLocalStateTime, after a gossip failure). Returns the time.
    pub fn refresh_owner_times(&mut self, owner: NodeId) -> u64 {
        let ltime = self.clock.increment();
        for (_, nid, tid, key) in owned_from(&self.by_owner, owner, 0) {
            if let Some(e) = self.groups.get_mut(&(*nid, *tid)).and_then(|g| g.get_mut(key)) {
                e.ltime = ltime;
            }
        }
        ltime
    }

    /// Table events describing every entry of the given networks, tombstones
    /// with their residual reap time, for a bulk sync to a peer.
    pub fn bulk_sync_events(&self, network_ids: &[&str], now: u64) -> Vec<TableEvent> {
        let mut out = Vec::new();
        for nid in network_ids {
            out.extend(self.network_entries(nid).map(|v| TableEvent {
                kind: if v.deleting {
                    TableEventType::Delete
                } else {
                    TableEventType::Create
                },
                ltime: v.ltime,
                node_name: self.node_name(v.owner).to_owned(),
                network_id: v.network_id.to_owned(),
                table_name: v.table.to_owned(),
                key: v.key.to_owned(),
                value: v.value.to_vec(),
                residual_reap_time: v.residual_reap_secs(now),
            }));
        }
        out
    }

    // ---- local operations --------------------------------------------------

    /// Create an entry owned by `me`. Fails if a visible entry exists; a
    /// tombstone, or an entry hidden because its owner failed, is replaced.
    pub fn create(
        &mut self,
        me: NodeId,
        table: &str,
        network_id: &str,
        key: &str,
        value: &[u8],
    ) -> Result<LocalChange, TableError> {
        if self.get_visible(table, network_id, key).is_some() {
            return Err(TableError::Exists {
                table: table.into(),
                network_id: network_id.into(),
                key: key.into(),
            });
        }
        let ltime = self.clock.increment();
        self.put_local(me, table, network_id, key, value, ltime, false, 0);
        Ok(self.local_change(
            TableEventType::Create,
            WatchOp::Create,
            me,
            ltime,
            table,
            network_id,
            key,
            value,
            0,
        ))
    }

    /// Give an entry a new value, now owned by `me`. Fails if there is no
    /// visible entry: none, a tombstone, or one hidden because its owner failed.
    pub fn update(
        &mut self,
        me: NodeId,
        table: &str,
        network_id: &str,
        key: &str,
        value: &[u8],
    ) -> Result<LocalChange, TableError> {
        self.check_visible(table, network_id, key)?;
        let ltime = self.clock.increment();
        self.put_local(me, table, network_id, key, value, ltime, false, 0);
        Ok(self.local_change(
            TableEventType::Update,
            WatchOp::Update,
            me,
            ltime,
            table,
            network_id,
            key,
            value,
            0,
        ))
    }

    /// Delete an entry: it becomes a tombstone owned by `me` that keeps its
    /// value and lives one reap interval. Fails like [`Self::update`].
    pub fn delete(
        &mut self,
        me: NodeId,
        table: &str,
        network_id: &str,
        key: &str,
        now: u64,
    ) -> Result<LocalChange, TableError> {
        self.check_visible(table, network_id, key)?;
        let value: Vec<u8> = self
            .get(table, network_id, key)
            .map(|v| v.value.to_vec())
            .unwrap_or_default();
        let ltime = self.clock.increment();
        let reap_at = now.saturating_add(self.reap_interval);
        self.put_local(me, table, network_id, key, &value, ltime, true, reap_at);
        Ok(self.local_change(
            TableEventType::Delete,
            WatchOp::Delete,
            me,
            ltime,
            table,
            network_id,
            key,
            &value,
            residual_secs(reap_at, now),
        ))
    }

    fn check_visible(&self, table: &str, network_id: &str, key: &str) -> Result<(), TableError> {
        let deleting = match self.get(table, network_id, key) {
            Some(v) if v.is_visible() => return Ok(()),
            // A hidden entry (its owner failed) is as good as absent.
            Some(v) => v.deleting,
            None => false,
        };
        let (table, network_id, key) = (table.into(), network_id.into(), key.into());
        Err(if deleting {
            TableError::Deleting {
                table,
                network_id,
                key,
            }
        } else {
            TableError::NotFound {
                table,
                network_id,
                key,
            }
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn put_local(
        &mut self,
        me: NodeId,
        table: &str,
        network_id: &str,
        key: &str,
        value: &[u8],
        ltime: u64,
        deleting: bool,
        reap_at: u64,
    ) {
        let nid = self.nets.intern(network_id);
        let tid = self.tables.intern(table);
        self.put(
            nid,
            tid,
            key,
            Entry {
                ltime,
                reap_at,
                value: crate::intern::shared_bytes(value.to_vec()),
                owner: me,
                deleting,
            },
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn local_change(
        &self,
        kind: TableEventType,
        op: WatchOp,
        me: NodeId,
        ltime: u64,
        table: &str,
        network_id: &str,
        key: &str,
        value: &[u8],
        residual_reap_time: i32,
    ) -> LocalChange {
        LocalChange {
            event: TableEvent {
                kind,
                ltime,
                node_name: self.node_name(me).to_owned(),
                network_id: network_id.to_owned(),
                table_name: table.to_owned(),
                key: key.to_owned(),
                value: value.to_vec(),
                residual_reap_time,
            },
            watch: watch(op, table, network_id, key, value),
        }
    }

    // ---- merging remote events ---------------------------------------------

    /// Merge a table event from a peer (gossip, or a bulk sync when
    /// `is_bulk_sync`), with the rules libnetwork ended up with:
    ///
    /// 1. the table clock witnesses the event's ltime, whatever follows;
    /// 2. nothing is stored for a network this node is not in or is leaving,
    ///    nor for an owner not attached to the network;
    /// 3. an event no newer than the stored entry (ltime <=) is stale;
    /// 4. otherwise the event replaces the entry, keeping the event's owner.
    ///    A delete becomes a tombstone living its residual reap time, or the
    ///    full interval if it came with none; a delete of an unknown key is
    ///    stored too, so a late create cannot bring the key back;
    /// 5. watchers see what changed locally: a create or update of a key not
    ///    visible here is a create, of a visible one an update; a delete of a
    ///    visible entry is a delete carrying the value watchers saw, any other
    ///    delete is silent; nothing about a suspended owner's entries shows;
    /// 6. the event is relayed only once the network is in sync; a delete of
    ///    an unknown key only if it came by bulk sync and its tombstone has
    ///    more than 1/6 of the interval left, so old deletes stop circling.
    pub fn merge(
        &mut self,
        ev: &TableEvent,
        ctx: MergeContext,
        is_bulk_sync: bool,
        now: u64,
    ) -> TableOutcome {
        self.clock.witness(ev.ltime);
        if !ctx.joined {
            return TableOutcome::ignored(Verdict::NotInNetwork);
        }
        let Some(owner) = ctx.owner else {
            return TableOutcome::ignored(Verdict::OwnerNotInNetwork);
        };

        let deleting = ev.kind == TableEventType::Delete;
        let owner_suspended = self.is_suspended(owner);
        // (was visible, the value watchers saw if it stops being visible)
        let prev = match self.get(&ev.table_name, &ev.network_id, &ev.key) {
            // Newer ltime wins. libnetwork has no tie-break, so two owners
            // writing one key at the same ltime could diverge for good; here
            // the larger owner name wins a tie, which every node agrees on.
            Some(v)
                if v.ltime > ev.ltime
                    || (v.ltime == ev.ltime && self.node_name(v.owner) >= ev.node_name.as_str()) =>
            {
                return TableOutcome::ignored(Verdict::Stale)
            }
            Some(v) => {
                let gone = v.is_visible() && (deleting || owner_suspended);
                Some((v.is_visible(), gone.then(|| v.value.to_vec())))
            }
            None => None,
        };

        let residual = u64::try_from(ev.residual_reap_time).unwrap_or(0);
        let reap_at = if deleting || owner_suspended {
            let keep = if residual == 0 {
                self.reap_interval
            } else {
                residual.saturating_mul(SECOND)
            };
            now.saturating_add(keep)
        } else {
            0
        };

        let nid = self.nets.intern(&ev.network_id);
        let tid = self.tables.intern(&ev.table_name);
        self.put(
            nid,
            tid,
            &ev.key,
            Entry {
                ltime: ev.ltime,
                reap_at,
                value: crate::intern::shared_bytes(ev.value.clone()),
                owner,
                deleting,
            },
        );

        let (t, n, k) = (&ev.table_name, &ev.network_id, &ev.key);
        let relay = |ev: &TableEvent| {
            let mut out = ev.clone();
            if deleting && ev.residual_reap_time <= 0 {
                out.residual_reap_time = residual_secs(reap_at, now);
            }
            out
        };
        let (was_visible, gone_value) = match prev {
            Some(p) => p,
            None if deleting => {
                // Unknown until now: a tombstone nobody here saw alive.
                let keep_relaying = is_bulk_sync
                    && ctx.in_sync
                    && reap_at.saturating_sub(now) > self.reap_interval / 6;
                return TableOutcome {
                    verdict: Verdict::Applied,
                    watch: None,
                    rebroadcast: keep_relaying.then(|| relay(ev)),
                };
            }
            None => (false, None),
        };
        let watch_event = if deleting || owner_suspended {
            // The entry stops being visible (or stays invisible).
            gone_value.map(|v| watch(WatchOp::Delete, t, n, k, &v))
        } else if was_visible {
            Some(watch(WatchOp::Update, t, n, k, &ev.value))
        } else {
            Some(watch(WatchOp::Create, t, n, k, &ev.value))
        };
        TableOutcome {
            verdict: Verdict::Applied,
            watch: watch_event,
            rebroadcast: ctx.in_sync.then(|| relay(ev)),
        }
    }

    // ---- node and network departures --------------------------------------

    /// `owner` left the network: drop its entries there, as `mode` says,
    /// without broadcasting anything (each node sees the leave and does the
    /// same). Watchers see a delete for each entry that was visible.
    pub fn drop_owner_in_network(
        &mut self,
        owner: NodeId,
        network_id: &str,
        mode: DepartedEntries,
        now: u64,
    ) -> Vec<WatchEvent> {
        let Some(nid) = self.nets.lookup(network_id) else {
            return Vec::new();
        };
        let slots: Vec<Slot> = owned_from(&self.by_owner, owner, nid)
            .take_while(|o| o.1 == nid)
            .map(|(_, n, t, k)| (*n, *t, k.clone()))
            .collect();
        let hidden = self.is_suspended(owner);
        let mut out = Vec::new();
        for (nid, tid, key) in slots {
            let e = &self.groups[&(nid, tid)][&key];
            let was_visible = !e.deleting && !hidden;
            if was_visible {
                out.push(self.watch_at(WatchOp::Delete, nid, tid, &key, &e.value));
            }
            match mode {
                DepartedEntries::Remove => {
                    self.remove(nid, tid, &key);
                }
                DepartedEntries::Tombstone => {
                    if !e.deleting {
                        let mut e = e.clone();
                        e.deleting = true;
                        e.reap_at = now.saturating_add(self.reap_interval);
                        self.put(nid, tid, &key, e);
                    }
                }
            }
        }
        out
    }

    /// This node (`me`) leaves the network: its own live entries become
    /// tombstones with fresh ltimes (so that, should it rejoin quickly, the
    /// bulk sync tells peers that missed the leave to drop them); its own
    /// tombstones stay; everyone else's entries are removed without a
    /// tombstone, so that their creates are accepted after a rejoin. Nothing
    /// is broadcast. Watchers see a delete for each entry that was visible.
    pub fn leave_network(&mut self, me: NodeId, network_id: &str, now: u64) -> Vec<WatchEvent> {
        let Some(nid) = self.nets.lookup(network_id) else {
            return Vec::new();
        };
        let slots: Vec<Slot> = self
            .groups
            .of_network(nid)
            .flat_map(|(&(n, t), g)| g.sorted().into_iter().map(move |(k, _)| (n, t, k.clone())))
            .collect();
        let mut out = Vec::new();
        for (nid, tid, key) in slots {
            let e = &self.groups[&(nid, tid)][&key];
            let visible = !e.deleting && !self.is_suspended(e.owner);
            if visible {
                out.push(self.watch_at(WatchOp::Delete, nid, tid, &key, &e.value));
            }
            if e.owner == me {
                if !e.deleting {
                    let mut e = e.clone();
                    e.ltime = self.clock.increment();
                    e.deleting = true;
                    e.reap_at = now.saturating_add(self.reap_interval);
                    self.put(nid, tid, &key, e);
                }
            } else {
                self.remove(nid, tid, &key);
            }
        }
        out
    }

    /// `owner` failed: hide its live entries from reads and watchers, keep
    /// them (and keep accepting events for them), and let them age out after
    /// one reap interval so that they cannot outlive the owner's own
    /// tombstones. Watchers see a delete for each. No-op if already suspended.
    pub fn suspend_owner(&mut self, owner: NodeId, now: u64) -> Vec<WatchEvent> {
        if !self.suspended.insert(owner) {
            return Vec::new();
        }
        let reap_at = now.saturating_add(self.reap_interval);
        let mut out = Vec::new();
        for (nid, tid, key) in self.owner_slots(owner) {
            let e = &self.groups[&(nid, tid)][&key];
            if e.deleting {
                continue;
            }
            out.push(self.watch_at(WatchOp::Delete, nid, tid, &key, &e.value));
            let mut e = e.clone();
            e.reap_at = reap_at;
            self.put(nid, tid, &key, e);
        }
        out
    }

    /// `owner` is back: show its remembered live entries again (watchers see
    /// a create for each) and stop their aging. No-op if not suspended.
    pub fn restore_owner(&mut self, owner: NodeId) -> Vec<WatchEvent> {
        if !self.suspended.remove(&owner) {
            return Vec::new();
        }
        let mut out = Vec::new();
        for (nid, tid, key) in self.owner_slots(owner) {
            let e = &self.groups[&(nid, tid)][&key];
            if e.deleting {
                continue;
            }
            out.push(self.watch_at(WatchOp::Create, nid, tid, &key, &e.value));
            let mut e = e.clone();
            e.reap_at = 0;
            self.put(nid, tid, &key, e);
        }
        out
    }

    /// `owner` is gone for good: remove all its entries, tombstones included,
    /// and forget its suspension. Watchers see a delete for each entry that
    /// was visible (none if it was suspended: they were told then).
    pub fn drop_owner(&mut self, owner: NodeId) -> Vec<WatchEvent> {
        let hidden = self.suspended.remove(&owner);
        let mut out = Vec::new();
        for (nid, tid, key) in self.owner_slots(owner) {
            if let Some(e) = self.remove(nid, tid, &key) {
                if !e.deleting && !hidden {
                    out.push(self.watch_at(WatchOp::Delete, nid, tid, &key, &e.value));
                }
            }
        }
        out
    }

    /// Drop every entry whose reap time has come (tombstones, and hidden
    /// entries of suspended owners); returns how many.
    pub fn reap(&mut self, now: u64) -> usize {
        let mut n = 0;
        while let Some(first) = self.expiry.first() {
            if first.0 > now {
                break;
            }
            let (_, nid, tid, key) = self.expiry.pop_first().expect("first exists");
            if self.remove(nid, tid, &key).is_some() {
                n += 1;
            }
        }
        n
    }

    // ---- internals -----------------------------------------------------------

    /// Whether [`Self::merge`] would drop a peer's event for this key as
    /// stale: the entry held is newer, or as new with an owner name that wins
    /// the tie. It allocates nothing, so gossip can drop the many copies of
    /// an event it already has before building it.
    pub fn is_stale(&self, table: &str, network_id: &str, key: &str, ltime: u64, node_name: &str) -> bool {
        let Some(slot) = self.find(table, network_id) else { return false };
        let Some(e) = self.groups.get(&slot).and_then(|g| g.get(key)) else { return false };
        e.ltime > ltime || (e.ltime == ltime && self.nodes.name_of_held(e.owner) >= node_name)
    }

    /// Hints that the entry for this key is about to be looked up (see
    /// `strmap`); reads and changes nothing.
    pub fn prefetch(&self, table: &str, network_id: &str, key: &str) {
        if let Some(g) = self.find(table, network_id).and_then(|slot| self.groups.get(&slot)) {
            g.prefetch(key);
        }
    }

    fn find(&self, table: &str, network_id: &str) -> Option<(NetId, TableId)> {
        Some((self.nets.lookup(network_id)?, self.tables.lookup(table)?))
    }

    fn view<'a>(&'a self, nid: NetId, tid: TableId, key: &'a str, e: &'a Entry) -> EntryView<'a> {
        EntryView {
            table: self.tables.name(tid),
            network_id: self.nets.name(nid),
            key,
            ltime: e.ltime,
            owner: e.owner,
            value: &e.value,
            deleting: e.deleting,
            hidden: self.suspended.contains(&e.owner),
            reap_at: (e.reap_at != 0).then_some(e.reap_at),
        }
    }

    fn watch_at(
        &self,
        op: WatchOp,
        nid: NetId,
        tid: TableId,
        key: &str,
        value: &[u8],
    ) -> WatchEvent {
        watch(op, self.tables.name(tid), self.nets.name(nid), key, value)
    }

    fn owner_slots(&self, owner: NodeId) -> Vec<Slot> {
        owned_from(&self.by_owner, owner, 0).map(|(_, n, t, k)| (*n, *t, k.clone())).collect()
    }

    /// Insert or replace the entry at (nid, tid, key), keeping the indexes.
    fn put(&mut self, nid: NetId, tid: TableId, key: &str, entry: Entry) {
        let group = self.groups.or_default((nid, tid));
        let shared = match group.get_key_value(key) {
            Some((k, old)) => {
                let k = k.clone();
                if old.owner != entry.owner {
                    self.by_owner.remove(&(old.owner, nid, tid, k.clone()));
                    self.by_owner.insert((entry.owner, nid, tid, k.clone()));
                }
                if old.reap_at != entry.reap_at {
                    if old.reap_at != 0 {
                        self.expiry.remove(&(old.reap_at, nid, tid, k.clone()));
                    }
                    if entry.reap_at != 0 {
                        self.expiry.insert((entry.reap_at, nid, tid, k.clone()));
                    }
                }
                k
            }
            None => {
                let k = Key::new(key);
                self.by_owner.insert((entry.owner, nid, tid, k.clone()));
                if entry.reap_at != 0 {
                    self.expiry.insert((entry.reap_at, nid, tid, k.clone()));
                }
                self.len += 1;
                k
            }
        };
        group.insert(shared, entry);
    }

    /// Remove the entry at (nid, tid, key), keeping the indexes.
    fn remove(&mut self, nid: NetId, tid: TableId, key: &str) -> Option<Entry> {
        let group = self.groups.get_mut(&(nid, tid))?;
        let (k, e) = group.remove_entry(key)?;
        if group.is_empty() {
            self.groups.remove(&(nid, tid));
        }
        self.by_owner.remove(&(e.owner, nid, tid, k.clone()));
        if e.reap_at != 0 {
            self.expiry.remove(&(e.reap_at, nid, tid, k));
        }
        self.len -= 1;
        Some(e)
    }

    /// Check that the indexes agree with the entries (tests).
    #[cfg(test)]
    pub(crate) fn check_invariants(&self) {
        let mut n = 0;
        let mut owned = 0;
        let mut expiring = 0;
        for (&(nid, tid), group) in self.groups.iter() {
            assert!(!group.is_empty(), "empty group kept");
            for (k, e) in group.0.iter() {
                n += 1;
                assert!(self.by_owner.contains(&(e.owner, nid, tid, k.clone())));
                if e.reap_at != 0 {
                    expiring += 1;
                    assert!(self.expiry.contains(&(e.reap_at, nid, tid, k.clone())));
                }
            }
        }
        owned += self.by_owner.len();
        assert_eq!(n, self.len);
        assert_eq!(owned, self.len);
        assert_eq!(expiring, self.expiry.len());
    }
}

fn watch(op: WatchOp, table: &str, network_id: &str, key: &str, value: &[u8]) -> WatchEvent {
    WatchEvent {
        op,
        table: table.to_owned(),
        network_id: network_id.to_owned(),
        key: key.to_owned(),
        value: value.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60 * SECOND;
    const REAP: u64 = 30 * MIN;

    fn store() -> (TableStore, NodeId, NodeId) {
        let mut s = TableStore::new(REAP);
        let me = s.intern_node("me");
        let peer = s.intern_node("peer");
        (s, me, peer)
    }

    fn joined(owner: NodeId) -> MergeContext {
        MergeContext {
            joined: true,
            in_sync: true,
            owner: Some(owner),
        }
    }

    fn ev(kind: TableEventType, ltime: u64, key: &str, value: &str) -> TableEvent {
        TableEvent {
            kind,
            ltime,
            node_name: "peer".into(),
            network_id: "n1".into(),
            table_name: "t1".into(),
            key: key.into(),
            value: value.as_bytes().to_vec(),
            residual_reap_time: 0,
        }
    }

    #[test]
    fn local_create_update_delete() {
        let (mut s, me, _) = store();
        let c = s.create(me, "t1", "n1", "k", b"v1").unwrap();
        assert_eq!(c.event.kind, TableEventType::Create);
        assert_eq!(c.event.ltime, 1);
        assert_eq!(c.event.node_name, "me");
        assert_eq!(c.event.residual_reap_time, 0);
        assert_eq!(c.watch.op, WatchOp::Create);
        assert_eq!(s.get_visible("t1", "n1", "k"), Some(&b"v1"[..]));

        let u = s.update(me, "t1", "n1", "k", b"v2").unwrap();
        assert_eq!((u.event.kind, u.event.ltime), (TableEventType::Update, 2));
        assert_eq!(u.watch.op, WatchOp::Update);
        assert_eq!(u.watch.value, b"v2");

        let d = s.delete(me, "t1", "n1", "k", 100).unwrap();
        assert_eq!((d.event.kind, d.event.ltime), (TableEventType::Delete, 3));
        assert_eq!(d.event.residual_reap_time, 1800);
        assert_eq!(d.event.value, b"v2", "a tombstone keeps the value");
        assert_eq!(d.watch.op, WatchOp::Delete);
        assert_eq!(d.watch.value, b"v2");
        let v = s.get("t1", "n1", "k").unwrap();
        assert!(v.deleting);
        assert_eq!(v.reap_at, Some(100 + REAP));
        assert_eq!(s.get_visible("t1", "n1", "k"), None);
        s.check_invariants();
    }

    #[test]
    fn create_fails_over_live_entry_but_not_over_tombstone() {
        let (mut s, me, _) = store();
        s.create(me, "t1", "n1", "k", b"v").unwrap();
        let err = s.create(me, "t1", "n1", "k", b"v").unwrap_err();
        assert!(matches!(err, TableError::Exists { .. }));
        assert_eq!(
            err.to_string(),
            "entry in table t1 with network id n1 and key k already exists"
        );
        s.delete(me, "t1", "n1", "k", 0).unwrap();
        let c = s.create(me, "t1", "n1", "k", b"again").unwrap();
        assert_eq!(c.event.ltime, 3);
        let v = s.get("t1", "n1", "k").unwrap();
        assert!(!v.deleting);
        assert_eq!(v.reap_at, None, "a recreated entry is no longer reaped");
        assert_eq!(s.pending_reap(), 0);
        s.check_invariants();
    }

    #[test]
    fn update_and_delete_fail_on_missing_or_deleting() {
        let (mut s, me, _) = store();
        let e = s.update(me, "t1", "n1", "k", b"v").unwrap_err();
        assert_eq!(
            e.to_string(),
            "entry in table t1 with network id n1 and key k does not exist"
        );
        assert!(matches!(
            s.delete(me, "t1", "n1", "k", 0),
            Err(TableError::NotFound { .. })
        ));
        s.create(me, "t1", "n1", "k", b"v").unwrap();
        s.delete(me, "t1", "n1", "k", 0).unwrap();
        let e = s.update(me, "t1", "n1", "k", b"v").unwrap_err();
        assert!(matches!(e, TableError::Deleting { .. }));
        assert_eq!(
            e.to_string(),
            "entry in table t1 with network id n1 and key k is being deleted"
        );
        assert!(matches!(
            s.delete(me, "t1", "n1", "k", 0),
            Err(TableError::Deleting { .. })
        ));
        // Failed operations do not tick the clock.
        assert_eq!(s.clock().time(), 2);
    }

    #[test]
    fn update_of_remote_entry_takes_ownership() {
        let (mut s, me, peer) = store();
        s.merge(
            &ev(TableEventType::Create, 5, "k", "a"),
            joined(peer),
            false,
            0,
        );
        let u = s.update(me, "t1", "n1", "k", b"b").unwrap();
        assert_eq!(u.event.ltime, 7, "clock witnessed 5, then ticked");
        assert_eq!(s.get("t1", "n1", "k").unwrap().owner, me);
        assert_eq!(s.owner_entries(peer, "n1").count(), 0);
        assert_eq!(s.owner_entries(me, "n1").count(), 1);
        s.check_invariants();
    }

    #[test]
    fn lookups_and_walks() {
        let (mut s, me, peer) = store();
        for (t, n, k) in [
            ("t1", "n1", "a1"),
            ("t1", "n1", "a2"),
            ("t1", "n1", "b1"),
            ("t2", "n1", "a1"),
            ("t1", "n2", "a1"),
        ] {
            s.create(me, t, n, k, k.as_bytes()).unwrap();
        }
        let mut e = ev(TableEventType::Create, 50, "a3", "x");
        e.table_name = "t1".into();
        s.merge(&e, joined(peer), false, 0);

        let keys: Vec<_> = s.walk_prefix("t1", "n1", "a").map(|v| v.key).collect();
        assert_eq!(keys, ["a1", "a2", "a3"]);
        assert_eq!(s.walk_prefix("t1", "n1", "").count(), 4);
        assert_eq!(s.walk_prefix("t1", "n1", "c").count(), 0);
        assert_eq!(s.walk_prefix("t9", "n1", "").count(), 0);

        let net: Vec<_> = s.network_entries("n1").map(|v| (v.table, v.key)).collect();
        // By table (in order of first use), then key.
        assert_eq!(
            net,
            [
                ("t1", "a1"),
                ("t1", "a2"),
                ("t1", "a3"),
                ("t1", "b1"),
                ("t2", "a1")
            ]
        );
        assert_eq!(s.network_entries("n1").count(), 5);
        assert_eq!(s.network_entries("n2").count(), 1);
        assert_eq!(s.network_entries("nope").count(), 0);

        let mut t1: Vec<_> = s
            .table_entries("t1")
            .map(|v| (v.network_id, v.key))
            .collect();
        t1.sort();
        assert_eq!(
            t1,
            [
                ("n1", "a1"),
                ("n1", "a2"),
                ("n1", "a3"),
                ("n1", "b1"),
                ("n2", "a1")
            ]
        );

        let mine: Vec<_> = s
            .owner_entries(me, "n1")
            .map(|v| (v.table, v.key))
            .collect();
        assert_eq!(mine.len(), 4);
        let theirs: Vec<_> = s.owner_entries(peer, "n1").map(|v| v.key).collect();
        assert_eq!(theirs, ["a3"]);
        assert_eq!(s.len(), 6);
        s.check_invariants();
    }

    #[test]
    fn residual_is_rounded_up_and_never_zero() {
        assert_eq!(residual_secs(0, 5), 0);
        assert_eq!(residual_secs(10 * SECOND, 0), 10);
        assert_eq!(residual_secs(10 * SECOND + 1, 0), 11);
        assert_eq!(residual_secs(10 * SECOND, 10 * SECOND), 1);
        assert_eq!(residual_secs(10 * SECOND, 20 * SECOND), 1);
        assert_eq!(residual_secs(u64::MAX, 0), i32::MAX);
    }

    #[test]
    fn reap_drops_only_expired_tombstones() {
        let (mut s, me, _) = store();
        s.create(me, "t1", "n1", "a", b"").unwrap();
        s.create(me, "t1", "n1", "b", b"").unwrap();
        s.create(me, "t1", "n1", "live", b"").unwrap();
        s.delete(me, "t1", "n1", "a", 0).unwrap();
        s.delete(me, "t1", "n1", "b", MIN).unwrap();
        assert_eq!(s.pending_reap(), 2);
        assert_eq!(s.reap(REAP - 1), 0);
        assert_eq!(
            s.get("t1", "n1", "a").unwrap().residual_reap_secs(REAP - 1),
            1
        );
        assert_eq!(s.reap(REAP), 1);
        assert!(s.get("t1", "n1", "a").is_none());
        assert_eq!(s.reap(REAP + MIN), 1);
        assert_eq!(s.len(), 1);
        assert_eq!(s.pending_reap(), 0);
        s.check_invariants();
    }

    #[test]
    fn suspend_and_restore_owner() {
        let (mut s, _, peer) = store();
        s.merge(
            &ev(TableEventType::Create, 1, "a", "va"),
            joined(peer),
            false,
            0,
        );
        s.merge(
            &ev(TableEventType::Create, 2, "b", "vb"),
            joined(peer),
            false,
            0,
        );
        s.merge(
            &ev(TableEventType::Delete, 3, "b", "vb"),
            joined(peer),
            false,
            0,
        );

        let w = s.suspend_owner(peer, 10);
        assert_eq!(w.len(), 1, "only the visible entry is reported");
        assert_eq!((w[0].op, w[0].key.as_str()), (WatchOp::Delete, "a"));
        assert!(s.suspend_owner(peer, 20).is_empty(), "idempotent");
        let a = s.get("t1", "n1", "a").unwrap();
        assert!(a.hidden && !a.is_visible());
        assert_eq!(a.reap_at, Some(10 + REAP));
        assert_eq!(s.get_visible("t1", "n1", "a"), None);

        let w = s.restore_owner(peer);
        assert_eq!(w.len(), 1);
        assert_eq!(
            (w[0].op, w[0].value.as_slice()),
            (WatchOp::Create, &b"va"[..])
        );
        assert_eq!(s.get("t1", "n1", "a").unwrap().reap_at, None);
        assert!(s.restore_owner(peer).is_empty(), "idempotent");
        s.check_invariants();
    }

    #[test]
    fn hidden_entries_age_out() {
        let (mut s, _, peer) = store();
        s.merge(
            &ev(TableEventType::Create, 1, "a", "va"),
            joined(peer),
            false,
            0,
        );
        s.suspend_owner(peer, 0);
        assert_eq!(s.reap(REAP), 1);
        assert!(s.restore_owner(peer).is_empty(), "nothing left to restore");
        s.check_invariants();
    }

    #[test]
    fn drop_owner_everywhere() {
        let (mut s, me, peer) = store();
        s.merge(
            &ev(TableEventType::Create, 1, "a", "va"),
            joined(peer),
            false,
            0,
        );
        let mut e = ev(TableEventType::Create, 2, "b", "vb");
        e.network_id = "n2".into();
        s.merge(&e, joined(peer), false, 0);
        s.create(me, "t1", "n1", "mine", b"").unwrap();
        let w = s.drop_owner(peer);
        assert_eq!(w.len(), 2);
        assert_eq!(s.len(), 1);
        s.check_invariants();
    }

    #[test]
    fn drop_owner_in_network_modes() {
        let (mut s, me, peer) = store();
        s.merge(
            &ev(TableEventType::Create, 1, "a", "va"),
            joined(peer),
            false,
            0,
        );
        s.merge(
            &ev(TableEventType::Create, 2, "dead", "vd"),
            joined(peer),
            false,
            0,
        );
        s.merge(
            &ev(TableEventType::Delete, 3, "dead", "vd"),
            joined(peer),
            false,
            0,
        );
        s.create(me, "t1", "n1", "mine", b"").unwrap();
        let mut copy = s.clone();

        let w = s.drop_owner_in_network(peer, "n1", DepartedEntries::Remove, 0);
        assert_eq!(w.len(), 1);
        assert_eq!(s.len(), 1);
        assert!(s.get("t1", "n1", "mine").is_some());
        s.check_invariants();

        let w = copy.drop_owner_in_network(peer, "n1", DepartedEntries::Tombstone, 7);
        assert_eq!(w.len(), 1);
        let a = copy.get("t1", "n1", "a").unwrap();
        assert!(a.deleting);
        assert_eq!((a.ltime, a.owner, a.reap_at), (1, peer, Some(7 + REAP)));
        let dead = copy.get("t1", "n1", "dead").unwrap();
        assert_eq!(dead.reap_at, Some(REAP), "existing tombstone untouched");
        copy.check_invariants();
    }

    #[test]
    fn leave_network_tombstones_own_and_removes_others() {
        let (mut s, me, peer) = store();
        s.merge(
            &ev(TableEventType::Create, 1, "theirs", "x"),
            joined(peer),
            false,
            0,
        );
        s.create(me, "t1", "n1", "mine", b"m").unwrap();
        s.create(me, "t1", "n1", "gone", b"g").unwrap();
        s.delete(me, "t1", "n1", "gone", 0).unwrap();
        s.create(me, "t1", "n2", "other-net", b"o").unwrap();
        let before = s.clock().time();

        let mut w = s.leave_network(me, "n1", 50);
        w.sort_by(|a, b| a.key.cmp(&b.key));
        let keys: Vec<_> = w.iter().map(|e| (e.op, e.key.as_str())).collect();
        assert_eq!(
            keys,
            [(WatchOp::Delete, "mine"), (WatchOp::Delete, "theirs")]
        );
        assert!(s.get("t1", "n1", "theirs").is_none());
        let mine = s.get("t1", "n1", "mine").unwrap();
        assert!(mine.deleting);
        assert_eq!(mine.ltime, before + 1, "fresh ltime");
        assert_eq!(mine.reap_at, Some(50 + REAP));
        assert_eq!(s.get("t1", "n1", "gone").unwrap().reap_at, Some(REAP));
        assert!(s.get_visible("t1", "n2", "other-net").is_some());
        s.check_invariants();
    }

    #[test]
    fn bulk_sync_events_carry_owner_and_residual() {
        let (mut s, me, peer) = store();
        s.merge(
            &ev(TableEventType::Create, 1, "a", "va"),
            joined(peer),
            false,
            0,
        );
        s.create(me, "t1", "n1", "b", b"vb").unwrap();
        s.delete(me, "t1", "n1", "b", 0).unwrap();
        let evs = s.bulk_sync_events(&["n1", "unknown"], 10 * MIN);
        assert_eq!(evs.len(), 2);
        assert_eq!(evs[0].node_name, "peer");
        assert_eq!(evs[0].kind, TableEventType::Create);
        assert_eq!(evs[0].residual_reap_time, 0);
        assert_eq!(evs[1].node_name, "me");
        assert_eq!(evs[1].kind, TableEventType::Delete);
        assert_eq!(evs[1].residual_reap_time, 20 * 60);
        assert_eq!(evs[1].value, b"vb");
    }

    proptest::proptest! {
        /// The inline-first group list keeps the groups and their order as a
        /// B-tree map would.
        #[test]
        fn groups_behave_as_an_ordered_map(ops in proptest::collection::vec((0u8..3, 0u32..3, 0u32..3), 0..60)) {
            let mut g = Groups::default();
            let mut m: std::collections::BTreeMap<(NetId, TableId), usize> = std::collections::BTreeMap::new();
            for (i, (op, n, t)) in ops.into_iter().enumerate() {
                let slot = (n, t);
                if op < 2 {
                    let key = format!("k{i}");
                    g.or_default(slot).insert(Key::new(&key), Entry {
                        ltime: i as u64, reap_at: 0, value: Arc::from(&b""[..]), owner: 0, deleting: false,
                    });
                    *m.entry(slot).or_default() += 1;
                } else {
                    g.remove(&slot);
                    m.remove(&slot);
                }
                let got: Vec<((NetId, TableId), usize)> = g.iter().map(|(s, gr)| (*s, gr.0.len())).collect();
                let want: Vec<((NetId, TableId), usize)> = m.iter().map(|(s, c)| (*s, *c)).collect();
                proptest::prop_assert_eq!(got, want);
                proptest::prop_assert!(g.first.is_some() || g.rest.is_empty());
                for s in m.keys() {
                    proptest::prop_assert!(g.get(s).is_some());
                }
                proptest::prop_assert!(g.of_network(1).all(|(s, _)| s.0 == 1));
            }
        }
    }

    #[test]
    fn memory_per_entry() {
        use std::mem::size_of;
        // The stored entry: ltime, reap deadline, boxed value, owner id, flag.
        assert_eq!(size_of::<Entry>(), 40);
        // One slot of a group map (key + entry), one of the owner index, one
        // of the expiry index (tombstones only). A key of up to 22 bytes is
        // inline; a longer one (64 bytes here) is one shared allocation.
        let group_slot = StrMap::<Key, Entry>::slot_bytes();
        assert_eq!(size_of::<Key>() + size_of::<Entry>(), group_slot);
        let owner_slot = size_of::<(NodeId, NetId, TableId, Key)>();
        let expiry_slot = size_of::<(u64, NetId, TableId, Key)>();
        assert_eq!((group_slot, owner_slot, expiry_slot), (64, 40, 40));
        // The long key's allocation: strong and weak counts, then the bytes.
        let key_len = 64;
        // The group map is a quarter to half full (two to four slots an
        // entry), the owner B-tree's leaves half full to full.
        let densest = 2 * group_slot + owner_slot + 16 + key_len;
        let sparsest = 4 * group_slot + 2 * owner_slot + 16 + key_len;
        assert_eq!((densest, sparsest), (248, 416));
    }
}
