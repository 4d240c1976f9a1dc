//! Node/network attachments: which networks this node and each peer are in,
//! stamped by the network clock, with leaves kept (as `leaving`) until
//! reaped; and who the gossip peers of each network are.

use std::collections::BTreeMap;
use std::fmt;
use std::num::NonZeroU64;

use super::clock::LamportClock;
use super::names::Interner;
use super::store::NodeId;

type NetId = u32;

/// A peer's attachment to a network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attachment {
    /// Network-clock time of the latest join or leave.
    pub ltime: u64,
    /// It left; the attachment is kept until `reap_at` so that older joins
    /// are recognised as stale.
    pub leaving: bool,
    /// When a leaving attachment is dropped (µs). A `NonZeroU64`, so that an
    /// attachment is 24 bytes (a node holds one per peer and network).
    pub reap_at: Option<NonZeroU64>,
}

/// This node's own attachment to a network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnAttachment {
    pub ltime: u64,
    pub leaving: bool,
    pub reap_at: Option<u64>,
    /// The bulk sync done on joining has happened (libnetwork's `inSync`):
    /// until then, table events are merged but not relayed.
    pub in_sync: bool,
}

/// Why a local join or leave was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkError {
    AlreadyJoined { network_id: String },
    NotJoined { network_id: String },
}

impl fmt::Display for NetworkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AlreadyJoined { network_id } => {
                write!(f, "network {network_id} is already joined")
            }
            Self::NotJoined { network_id } => {
                write!(f, "network {network_id} is not joined")
            }
        }
    }
}

impl std::error::Error for NetworkError {}

/// How a peer's network event was handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkVerdict {
    /// The attachment changed: relay the event.
    Joined,
    /// The attachment changed to leaving: relay the event; the caller drops
    /// the node's entries in the network.
    Left,
    /// The event is about this node.
    OwnEvent,
    /// Not newer than the attachment held (ltime compare).
    Stale,
    /// A leave for an attachment never seen: nothing to do.
    UnknownLeave,
    /// A first join from a node that is not an active member: refused, as
    /// nothing would ever clean the attachment up if that node were gone.
    NodeNotActive,
}

impl NetworkVerdict {
    /// Whether the attachment changed (and libnetwork would relay the event).
    pub fn changed(self) -> bool {
        matches!(self, Self::Joined | Self::Left)
    }
}

/// A reap deadline as stored (a deadline of 0 counts as 1 µs).
pub fn reap_time(t: u64) -> Option<NonZeroU64> {
    NonZeroU64::new(t.max(1))
}

/// (Peer, network) → attachment. A peer's attachment with the smallest
/// network id sits in a vector slot indexed by the peer's node id (ids are
/// dense); its other attachments, if any, in a side B-tree. Reap times, which
/// only leaving attachments have, are in a side map. In a cluster of one
/// network that is 16 bytes per peer (a node holds one per peer, a simulated
/// cluster N²), where one B-tree of all of them cost ~60.
#[derive(Debug, Clone, Default)]
struct AttachMap {
    first: Vec<Option<Slim>>,
    more: BTreeMap<(NodeId, NetId), (u64, bool)>,
    reap: BTreeMap<(NodeId, NetId), NonZeroU64>,
}

/// The first attachment of a peer: network, ltime, leaving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slim {
    nid: NetId,
    leaving: bool,
    ltime: u64,
}

impl AttachMap {
    /// (ltime, leaving) of an attachment.
    fn slim(&self, node: NodeId, nid: NetId) -> Option<(u64, bool)> {
        match self.first.get(node as usize)? {
            Some(s) if s.nid == nid => Some((s.ltime, s.leaving)),
            Some(s) if s.nid < nid => self.more.get(&(node, nid)).copied(),
            _ => None,
        }
    }

    fn full(&self, node: NodeId, nid: NetId, (ltime, leaving): (u64, bool)) -> Attachment {
        let reap_at = if leaving { self.reap.get(&(node, nid)).copied() } else { None };
        Attachment { ltime, leaving, reap_at }
    }

    fn get(&self, node: NodeId, nid: NetId) -> Option<Attachment> {
        self.slim(node, nid).map(|s| self.full(node, nid, s))
    }

    /// Inserts or replaces an attachment.
    fn insert(&mut self, node: NodeId, nid: NetId, a: Attachment) {
        match a.reap_at {
            Some(t) => self.reap.insert((node, nid), t),
            None => self.reap.remove(&(node, nid)),
        };
        let v = (a.ltime, a.leaving);
        let i = node as usize;
        crate::intern::grow_for_id(&mut self.first, node, None);
        let slot = &mut self.first[i];
        let mine = Slim { nid, leaving: a.leaving, ltime: a.ltime };
        match slot {
            None => *slot = Some(mine),
            Some(s) if s.nid == nid => *s = mine,
            Some(s) if s.nid < nid => {
                self.more.insert((node, nid), v);
            }
            Some(_) => {
                // The new one has the smallest id: it takes the slot.
                if let Some(old) = slot.replace(mine) {
                    self.more.insert((node, old.nid), (old.ltime, old.leaving));
                }
            }
        }
    }

    /// After the slot of `node` was emptied: its next attachment moves in.
    fn promote(&mut self, node: NodeId) {
        let next = self.more.range((node, 0)..=(node, NetId::MAX)).next().map(|(&k, _)| k);
        if let Some(k) = next {
            if let (Some((ltime, leaving)), Some(slot)) = (self.more.remove(&k), self.first.get_mut(node as usize)) {
                *slot = Some(Slim { nid: k.1, leaving, ltime });
            }
        }
    }

    fn remove(&mut self, node: NodeId, nid: NetId) {
        let Some(slot) = self.first.get_mut(node as usize) else { return };
        match slot {
            Some(s) if s.nid == nid => {
                *slot = None;
                self.promote(node);
            }
            Some(_) => {
                self.more.remove(&(node, nid));
            }
            None => {}
        }
        self.reap.remove(&(node, nid));
    }

    /// A peer's attachments, by network id.
    fn of(&self, node: NodeId) -> impl Iterator<Item = (NetId, Attachment)> + '_ {
        self.first
            .get(node as usize)
            .copied()
            .flatten()
            .map(|s| (s.nid, (s.ltime, s.leaving)))
            .into_iter()
            .chain(self.more.range((node, 0)..=(node, NetId::MAX)).map(|(&(_, n), &v)| (n, v)))
            .map(move |(n, v)| (n, self.full(node, n, v)))
    }

    /// All attachments, by (node id, network id).
    fn iter(&self) -> impl Iterator<Item = (NodeId, NetId, Attachment)> + '_ {
        (0..self.first.len() as NodeId).flat_map(move |node| self.of(node).map(move |(n, a)| (node, n, a)))
    }

    /// Drops the leaving attachments whose reap time is `now` or earlier;
    /// returns how many. Only leaving attachments have a reap time, so this
    /// reads the side map, not every peer's slot.
    fn remove_due(&mut self, now: u64) -> usize {
        let due: Vec<(NodeId, NetId)> = self
            .reap
            .iter()
            .filter(|&(&(node, nid), t)| t.get() <= now && self.slim(node, nid).is_some_and(|(_, leaving)| leaving))
            .map(|(&k, _)| k)
            .collect();
        for &(node, nid) in &due {
            self.remove(node, nid);
        }
        due.len()
    }

    /// Keeps the attachments for which `keep` holds (called once for each).
    #[cfg(test)]
    fn retain(&mut self, mut keep: impl FnMut(&Attachment) -> bool) {
        let drop: Vec<(NodeId, NetId)> = self.iter().filter(|(_, _, a)| !keep(a)).map(|(n, k, _)| (n, k)).collect();
        for (node, nid) in drop {
            self.remove(node, nid);
        }
    }
}

/// Own and peer attachments, the gossip peer lists, and the network clock.
#[derive(Debug, Clone)]
pub struct Networks {
    clock: LamportClock,
    nets: Interner,
    reap_interval: u64,
    own: BTreeMap<NetId, OwnAttachment>,
    /// (Peer, network) → attachment. A failed peer's attachments are kept.
    /// One map for all peers: a map per peer would cost a B-tree node (~400
    /// bytes) for each peer's usually single attachment.
    attachments: AttachMap,
    /// Network → active peers with a non-leaving attachment (not this node),
    /// sorted: a vector, so that gossip picks random peers in O(1).
    peers: BTreeMap<NetId, Vec<NodeId>>,
}

impl Networks {
    /// No attachments; leaving attachments live `reap_interval` µs.
    pub fn new(reap_interval: u64) -> Self {
        Self {
            clock: LamportClock::new(),
            nets: Interner::new(),
            reap_interval,
            own: BTreeMap::new(),
            attachments: AttachMap::default(),
            peers: BTreeMap::new(),
        }
    }

    /// The network clock.
    pub fn clock(&self) -> LamportClock {
        self.clock
    }

    /// Fold a remote network-clock time into the clock.
    pub fn witness(&mut self, ltime: u64) {
        self.clock.witness(ltime);
    }

    /// Tick the network clock (for this node's own node events).
    pub fn tick(&mut self) -> u64 {
        self.clock.increment()
    }

    // ---- this node ---------------------------------------------------------

    /// Join a network; returns the ltime to announce. Rejoining a network
    /// being left is allowed and starts it afresh (not in sync).
    pub fn join(&mut self, network_id: &str) -> Result<u64, NetworkError> {
        let nid = self.nets.intern(network_id);
        if self.own.get(&nid).is_some_and(|a| !a.leaving) {
            return Err(NetworkError::AlreadyJoined {
                network_id: network_id.into(),
            });
        }
        let ltime = self.clock.increment();
        self.own.insert(
            nid,
            OwnAttachment {
                ltime,
                leaving: false,
                reap_at: None,
                in_sync: false,
            },
        );
        Ok(ltime)
    }

    /// Leave a joined network; returns the ltime to announce. The attachment
    /// is kept as leaving until reaped.
    pub fn leave(&mut self, network_id: &str, now: u64) -> Result<u64, NetworkError> {
        let own = self
            .nets
            .lookup(network_id)
            .and_then(|nid| self.own.get_mut(&nid))
            .filter(|a| !a.leaving);
        let Some(own) = own else {
            return Err(NetworkError::NotJoined {
                network_id: network_id.into(),
            });
        };
        let ltime = self.clock.increment();
        own.ltime = ltime;
        own.leaving = true;
        own.reap_at = Some(now.saturating_add(self.reap_interval));
        Ok(ltime)
    }

    /// Record that the join-time bulk sync of a network is done; false if the
    /// network is not joined.
    pub fn mark_in_sync(&mut self, network_id: &str) -> bool {
        match self.own_mut(network_id) {
            Some(a) if !a.leaving => {
                a.in_sync = true;
                true
            }
            _ => false,
        }
    }

    /// This node's attachment to a network, leaving or not.
    pub fn own(&self, network_id: &str) -> Option<&OwnAttachment> {
        self.own.get(&self.nets.lookup(network_id)?)
    }

    /// Whether this node is in the network and not leaving it.
    pub fn is_joined(&self, network_id: &str) -> bool {
        self.own(network_id).is_some_and(|a| !a.leaving)
    }

    /// Whether the network is joined and its join-time sync done.
    pub fn in_sync(&self, network_id: &str) -> bool {
        self.own(network_id)
            .is_some_and(|a| !a.leaving && a.in_sync)
    }

    /// This node's attachments, leaving ones included.
    pub fn own_networks(&self) -> impl Iterator<Item = (&str, &OwnAttachment)> {
        self.own.iter().map(|(&nid, a)| (self.nets.name(nid), a))
    }

    /// Stamp all own attachments with a fresh ltime, so that a push/pull
    /// overrides whatever stale leave a peer may hold for them (done when
    /// rejoining the cluster, as libnetwork's `updateLocalNetworkTime`).
    pub fn refresh_own_times(&mut self) {
        let ltime = self.clock.increment();
        for a in self.own.values_mut() {
            a.ltime = ltime;
        }
    }

    // ---- peers ---------------------------------------------------------------

    /// Merge a peer's join (`leave == false`) or leave of a network, by
    /// Lamport comparison with the attachment held. `active` says whether
    /// the node is an active member: only then is a first join accepted and
    /// the node made a gossip peer of the network.
    pub fn apply(
        &mut self,
        node: NodeId,
        active: bool,
        network_id: &str,
        leave: bool,
        ltime: u64,
        now: u64,
    ) -> NetworkVerdict {
        self.clock.witness(ltime);
        let known = self
            .nets
            .lookup(network_id)
            .filter(|nid| self.attachment_of(node, *nid).is_some());
        if let Some(nid) = known {
            let reap_interval = self.reap_interval;
            let Some(mut a) = self.attachments.get(node, nid) else { return NetworkVerdict::Stale };
            if a.ltime >= ltime {
                return NetworkVerdict::Stale;
            }
            a.ltime = ltime;
            a.leaving = leave;
            a.reap_at = if leave { reap_time(now.saturating_add(reap_interval)) } else { None };
            self.attachments.insert(node, nid, a);
            if leave {
                self.unpeer(nid, node);
                return NetworkVerdict::Left;
            }
            if active {
                self.peer(nid, node);
            }
            return NetworkVerdict::Joined;
        }
        if leave {
            return NetworkVerdict::UnknownLeave;
        }
        if !active {
            return NetworkVerdict::NodeNotActive;
        }
        let nid = self.nets.intern(network_id);
        self.attachments.insert(
            node,
            nid,
            Attachment {
                ltime,
                leaving: false,
                reap_at: None,
            },
        );
        self.peer(nid, node);
        NetworkVerdict::Joined
    }

    /// A peer's attachment to a network, leaving or not.
    pub fn attachment(&self, node: NodeId, network_id: &str) -> Option<Attachment> {
        self.attachment_of(node, self.nets.lookup(network_id)?)
    }

    /// Whether a peer has a non-leaving attachment to the network (a failed
    /// peer's remembered attachment counts).
    pub fn is_attached(&self, node: NodeId, network_id: &str) -> bool {
        self.nets
            .lookup(network_id)
            .and_then(|nid| self.attachments.slim(node, nid))
            .is_some_and(|(_, leaving)| !leaving)
    }

    /// A peer's attachments, leaving ones included.
    pub fn attachments_of(&self, node: NodeId) -> impl Iterator<Item = (&str, Attachment)> {
        self.attachments.of(node).map(move |(nid, a)| (self.nets.name(nid), a))
    }

    /// All peer attachments, leaving ones included: (node, network, attachment).
    pub fn all_attachments(&self) -> impl Iterator<Item = (NodeId, &str, Attachment)> {
        self.attachments.iter().map(move |(node, nid, a)| (node, self.nets.name(nid), a))
    }

    /// The active peers with a non-leaving attachment to the network, by id
    /// (this node not included).
    pub fn peers(&self, network_id: &str) -> impl Iterator<Item = NodeId> + '_ {
        self.nets
            .lookup(network_id)
            .and_then(|nid| self.peers.get(&nid))
            .into_iter()
            .flat_map(|s| s.iter().copied())
    }

    /// How many active peers have a non-leaving attachment to the network.
    pub fn peer_count(&self, network_id: &str) -> usize {
        self.nets.lookup(network_id).and_then(|nid| self.peers.get(&nid)).map_or(0, Vec::len)
    }

    /// The `i`th of [`Self::peers`] (in id order).
    pub fn peer_at(&self, network_id: &str, i: usize) -> Option<NodeId> {
        self.nets.lookup(network_id).and_then(|nid| self.peers.get(&nid)).and_then(|v| v.get(i).copied())
    }

    /// Networks this node is attached to (leaving ones included, as
    /// libnetwork's `findCommonNetworks`) in which `node` has a non-leaving
    /// attachment: what a bulk sync with that node covers.
    pub fn common_networks(&self, node: NodeId) -> Vec<&str> {
        self.own
            .keys()
            .filter(|&&nid| self.attachments.slim(node, nid).is_some_and(|(_, leaving)| !leaving))
            .map(|&nid| self.nets.name(nid))
            .collect()
    }

    /// The peer failed: it stops being a gossip peer of its networks, but its
    /// attachments are remembered for [`Self::restore_node`].
    pub fn suspend_node(&mut self, node: NodeId) {
        let nids: Vec<NetId> = self.attachments.of(node).map(|(nid, _)| nid).collect();
        for nid in nids {
            self.unpeer(nid, node);
        }
    }

    /// The peer is back: it is a gossip peer again of the networks it has a
    /// non-leaving attachment to.
    pub fn restore_node(&mut self, node: NodeId) {
        let nids: Vec<NetId> =
            self.attachments.of(node).filter(|(_, a)| !a.leaving).map(|(nid, _)| nid).collect();
        for nid in nids {
            self.peer(nid, node);
        }
    }

    /// The peer is gone for good: forget its attachments.
    pub fn forget_node(&mut self, node: NodeId) {
        self.suspend_node(node);
        let nids: Vec<NetId> = self.attachments.of(node).map(|(nid, _)| nid).collect();
        for nid in nids {
            self.attachments.remove(node, nid);
        }
    }

    /// Drop leaving attachments (own and peers') whose reap time has come;
    /// returns (own, peers) counts.
    pub fn reap(&mut self, now: u64) -> (usize, usize) {
        let due = |a: Option<u64>| a.is_some_and(|t| t <= now);
        let before = self.own.len();
        self.own.retain(|_, a| !(a.leaving && due(a.reap_at)));
        let own = before - self.own.len();
        (own, self.attachments.remove_due(now))
    }

    fn own_mut(&mut self, network_id: &str) -> Option<&mut OwnAttachment> {
        let nid = self.nets.lookup(network_id)?;
        self.own.get_mut(&nid)
    }

    fn attachment_of(&self, node: NodeId, nid: NetId) -> Option<Attachment> {
        self.attachments.get(node, nid)
    }

    fn peer(&mut self, nid: NetId, node: NodeId) {
        let v = self.peers.entry(nid).or_default();
        // Ids mostly arrive in increasing order (interned as first seen).
        crate::intern::reserve_gently(v, 1);
        if v.last().is_none_or(|&l| l < node) {
            v.push(node);
        } else if let Err(i) = v.binary_search(&node) {
            v.insert(i, node);
        }
    }

    fn unpeer(&mut self, nid: NetId, node: NodeId) {
        if let Some(set) = self.peers.get_mut(&nid) {
            if let Ok(i) = set.binary_search(&node) {
                set.remove(i);
            }
            if set.is_empty() {
                self.peers.remove(&nid);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REAP: u64 = 1000;

    #[test]
    fn per_peer_records_are_16_bytes() {
        // A node holds one of each per peer; a simulated cluster N².
        assert_eq!(std::mem::size_of::<Option<Slim>>(), 16);
        assert_eq!(std::mem::size_of::<Option<super::super::nodes::Slim>>(), 16);
    }

    #[test]
    fn own_join_leave_rejoin() {
        let mut n = Networks::new(REAP);
        assert_eq!(n.join("n1"), Ok(1));
        assert_eq!(
            n.join("n1").unwrap_err().to_string(),
            "network n1 is already joined"
        );
        assert!(n.is_joined("n1") && !n.in_sync("n1"));
        assert!(n.mark_in_sync("n1"));
        assert!(n.in_sync("n1"));
        assert_eq!(n.leave("n1", 10), Ok(2));
        assert!(!n.is_joined("n1") && !n.in_sync("n1"));
        assert_eq!(n.own("n1").unwrap().reap_at, Some(10 + REAP));
        assert!(!n.mark_in_sync("n1"));
        assert_eq!(
            n.leave("n1", 10).unwrap_err(),
            NetworkError::NotJoined {
                network_id: "n1".into()
            }
        );
        assert_eq!(
            n.leave("n9", 10).unwrap_err().to_string(),
            "network n9 is not joined"
        );
        assert_eq!(n.join("n1"), Ok(3));
        let a = n.own("n1").unwrap();
        assert!(!a.leaving && !a.in_sync && a.reap_at.is_none());
    }

    #[test]
    fn peer_events_by_lamport_time() {
        let mut n = Networks::new(REAP);
        assert_eq!(
            n.apply(7, true, "n1", true, 1, 0),
            NetworkVerdict::UnknownLeave
        );
        assert_eq!(
            n.apply(7, false, "n1", false, 1, 0),
            NetworkVerdict::NodeNotActive
        );
        assert_eq!(n.apply(7, true, "n1", false, 5, 0), NetworkVerdict::Joined);
        assert_eq!(n.clock().time(), 6, "witnessed");
        assert_eq!(n.peers("n1").collect::<Vec<_>>(), [7]);
        assert_eq!(n.apply(7, true, "n1", true, 5, 0), NetworkVerdict::Stale);
        assert_eq!(n.apply(7, true, "n1", true, 6, 100), NetworkVerdict::Left);
        let a = n.attachment(7, "n1").unwrap();
        assert!(a.leaving);
        assert_eq!(a.reap_at, reap_time(100 + REAP));
        assert!(!n.is_attached(7, "n1"));
        assert_eq!(n.peers("n1").count(), 0);
        assert_eq!(n.apply(7, true, "n1", false, 6, 0), NetworkVerdict::Stale);
        // A rejoin of a known attachment is taken even from a failed node,
        // which does not become a peer until it is back.
        assert_eq!(n.apply(7, false, "n1", false, 8, 0), NetworkVerdict::Joined);
        assert!(n.is_attached(7, "n1"));
        assert_eq!(n.peers("n1").count(), 0);
        n.restore_node(7);
        assert_eq!(n.peers("n1").collect::<Vec<_>>(), [7]);
    }

    #[test]
    fn suspend_restore_forget() {
        let mut n = Networks::new(REAP);
        n.join("n1").unwrap();
        n.apply(7, true, "n1", false, 1, 0);
        n.apply(7, true, "n2", false, 2, 0);
        n.apply(8, true, "n1", false, 3, 0);
        assert_eq!(n.common_networks(7), ["n1"]);
        n.suspend_node(7);
        assert_eq!(n.peers("n1").collect::<Vec<_>>(), [8]);
        assert_eq!(n.peers("n2").count(), 0);
        assert!(n.is_attached(7, "n2"), "remembered");
        n.restore_node(7);
        assert_eq!(n.peers("n1").collect::<Vec<_>>(), [7, 8]);
        n.forget_node(7);
        assert_eq!(n.peers("n1").collect::<Vec<_>>(), [8]);
        assert_eq!(n.attachments_of(7).count(), 0);
        assert_eq!(n.all_attachments().count(), 1);
        assert!(n.common_networks(7).is_empty());
    }

    #[test]
    fn attach_map_keeps_order_and_promotes() {
        let at = |ltime| Attachment { ltime, leaving: false, reap_at: None };
        let mut m = AttachMap::default();
        m.insert(3, 5, at(1));
        m.insert(3, 2, at(2)); // smaller id: takes the slot
        m.insert(3, 9, at(3));
        m.insert(1, 7, at(4));
        let all: Vec<(NodeId, NetId, u64)> = m.iter().map(|(n, k, a)| (n, k, a.ltime)).collect();
        assert_eq!(all, [(1, 7, 4), (3, 2, 2), (3, 5, 1), (3, 9, 3)]);
        assert_eq!(m.get(3, 5).map(|a| a.ltime), Some(1));
        assert!(m.get(3, 4).is_none() && m.get(2, 7).is_none() && m.get(9, 1).is_none());
        m.remove(3, 2);
        assert_eq!(m.of(3).map(|(k, _)| k).collect::<Vec<_>>(), [5, 9]);
        m.retain(|a| a.ltime != 1);
        assert_eq!(m.of(3).map(|(k, _)| k).collect::<Vec<_>>(), [9]);
        m.insert(3, 9, Attachment { ltime: 30, leaving: true, reap_at: NonZeroU64::new(99) });
        assert_eq!(m.get(3, 9), Some(Attachment { ltime: 30, leaving: true, reap_at: NonZeroU64::new(99) }));
        m.insert(3, 1, at(5)); // takes the slot; 9 keeps its reap time
        assert_eq!(m.get(3, 9).and_then(|a| a.reap_at), NonZeroU64::new(99));
        m.remove(3, 1);
        m.remove(3, 9);
        m.remove(1, 7);
        assert_eq!(m.iter().count(), 0);
    }

    #[test]
    fn reap_leaving_attachments() {
        let mut n = Networks::new(REAP);
        n.join("mine").unwrap();
        n.join("kept").unwrap();
        n.leave("mine", 0).unwrap();
        n.apply(7, true, "n1", false, 10, 0);
        n.apply(7, true, "n1", true, 11, 5);
        n.apply(7, true, "n2", false, 12, 0);
        assert_eq!(n.reap(REAP - 1), (0, 0));
        assert_eq!(n.reap(REAP), (1, 0));
        assert_eq!(n.reap(REAP + 5), (0, 1));
        assert!(n.own("mine").is_none());
        assert!(n.own("kept").is_some());
        assert!(n.attachment(7, "n1").is_none());
        assert!(n.is_attached(7, "n2"));
        n.refresh_own_times();
        assert_eq!(
            n.own_networks().map(|(_, a)| a.ltime).collect::<Vec<_>>(),
            [14]
        );
    }
}
