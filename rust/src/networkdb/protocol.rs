//! networkdb's gossip protocol as a sans-IO machine: the memberlist machine
//! for membership, plus libnetwork's network-scoped gossip of table events,
//! bulk syncs over TCP, node and network events on memberlist's broadcast
//! path, reaping, and the recovery loops (join retry, reconnect through failed
//! nodes, rejoin through the bootstrap nodes). The data model is `NetworkDb`.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;

use super::convert::{
    network_entry_from_wire, network_entry_to_wire, network_from_wire, network_to_wire, node_from_wire,
    node_to_wire, table_from_wire, table_to_wire,
};
use super::db::NetworkDb;
use super::events::{NetworkEvent, NetworkEventType, NodeEvent, NodeEventType, TableEvent, TableEventType, WatchEvent};
use super::networks::NetworkError;
use super::nodes::NodeState;
use super::store::{NodeId, TableError, TableOutcome};
use super::Config as DbConfig;
use crate::swim::queue::{keyed, BroadcastQueue};
use crate::swim::rng::Rng;
use crate::swim::{Action, Config as MlConfig, Delegate, Member, Memberlist, StreamBytes, SwimError};
use crate::wire::crypto::Keyring;
use crate::wire::memberlist::{node_state, Message as MlMessage};
use crate::wire::networkdb::{self as pb, Decode, Payload};

/// Bytes of the GossipMessage{COMPOUND} wrapper around a gossip packet, and
/// per part inside it (two tags and two length varints of up to 2 bytes).
const GOSSIP_HEADER: usize = 5;
const PART_OVERHEAD: usize = 6;
/// Nested compounds deeper than this are dropped (bounded recursion).
const MAX_DEPTH: u32 = 4;

/// networkdb's own periods and limits, microseconds.
#[derive(Debug, Clone)]
pub struct Settings {
    pub gossip_interval: u64,
    pub gossip_fanout: usize,
    pub bulk_sync_interval: u64,
    pub bulk_sync_timeout: u64,
    pub reap_period: u64,
    pub retry_interval: u64,
    pub rejoin_interval: u64,
    /// How long a graceful leave waits for its node event to go out.
    pub leave_timeout: u64,
    /// Retransmit multiplier of the per-network table queues (libnetwork: 4).
    pub table_retransmit_mult: u32,
    /// Bulk-synced events are not relayed while a network's queue is longer.
    pub max_queue_on_sync: usize,
    pub packet_buffer_size: usize,
    pub reap_entry_interval: u64,
    /// A table event queued (new or relayed) is gossiped after this delay rather
    /// than at the next tick, so each hop costs a network delay, not half a gossip
    /// interval; events queued within the delay go in one round. It trades packets
    /// for latency (about 3x the packets of tick-only gossip under a steady write
    /// load); 0 turns it off (libnetwork gossips only on the tick).
    pub eager_delay: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            gossip_interval: 200_000,
            gossip_fanout: 3,
            bulk_sync_interval: 30_000_000,
            bulk_sync_timeout: 30_000_000,
            reap_period: 5_000_000,
            retry_interval: 1_000_000,
            rejoin_interval: 60_000_000,
            leave_timeout: 1_000_000,
            table_retransmit_mult: 4,
            max_queue_on_sync: 500,
            packet_buffer_size: 1400,
            reap_entry_interval: 30 * 60 * 1_000_000,
            eager_delay: 5_000,
        }
    }
}

/// Counters of networkdb's own traffic and work.
#[derive(Debug, Clone, Default)]
pub struct NdbCounters {
    pub messages_in: u64,
    pub messages_out: u64,
    pub table_events_in: u64,
    pub table_events_applied: u64,
    pub relayed: u64,
    pub bulk_syncs_sent: u64,
    pub bulk_syncs_received: u64,
    pub bad_messages: u64,
    pub oversized_sent_reliably: u64,
    pub largest_gossip: usize,
}

/// What a node saw happen, recorded only when [`NdbNode::set_tracing`] is on
/// (the simulator measures convergence with it; real nodes leave it off).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trace {
    /// A peer's table event (gossip or bulk sync) was stored.
    Table { key: String, ltime: u64, deleting: bool },
    /// Memberlist reported the node alive (new, or back).
    NodeUp(String),
    /// Memberlist reported the node dead (`left`: it said goodbye).
    NodeDown { name: String, left: bool },
}

enum Out {
    /// A gossip packet to a peer (by id); the peers of one round share the bytes.
    Udp { to: NodeId, data: std::sync::Arc<[u8]> },
    Tcp { to: String, data: Vec<u8> },
}

/// Everything but the membership machine: the delegate memberlist calls.
pub struct Core {
    pub db: NetworkDb,
    pub s: Settings,
    node_q: BroadcastQueue,
    net_q: BroadcastQueue,
    table_q: BTreeMap<String, BroadcastQueue>,
    watch: Vec<WatchEvent>,
    out: Vec<Out>,
    bulk_pending: HashMap<String, u64>,
    /// Last address of each peer memberlist reported, and the inverse.
    addrs: AddrBook,
    trace: Option<Vec<Trace>>,
    rng: Rng,
    ml_mult: u32,
    num_members: usize,
    packet_limit: usize,
    pub counters: NdbCounters,
    leave_token: Option<u64>,
    leave_sent: bool,
    /// Something new was queued for network gossip since the last round.
    fresh: bool,
    /// Nodes held as failed or left of which a fresher `Join` arrived: active
    /// again if memberlist has them alive (checked by the node, which holds it).
    revive: Vec<String>,
}

/// Peer addresses by interned node id, as process-wide address ids
/// (`intern::addr_id`), and the inverse, by address id: both kinds of id are
/// dense, so both are lists. 8 bytes per peer (a node holds one per peer, a
/// simulated cluster N²), where two hash maps took ~150 and a list of
/// `Option<SocketAddr>` with a table of ids 14.
#[derive(Default)]
struct AddrBook {
    /// Node id → address id + 1 (0: none).
    addrs: Vec<u32>,
    /// Address id → node id + 1 (0: none).
    by_addr: Vec<u32>,
}

fn slot_of(v: &[u32], i: u32) -> Option<u32> {
    v.get(i as usize).copied().filter(|&x| x != 0).map(|x| x - 1)
}

impl AddrBook {
    fn get(&self, id: NodeId) -> Option<SocketAddr> {
        crate::intern::addr_of_id(slot_of(&self.addrs, id)?)
    }

    /// The id last seen at `a`.
    fn id_at(&self, a: &SocketAddr) -> Option<NodeId> {
        slot_of(&self.by_addr, crate::intern::find_addr_id(a)?)
    }

    fn remove(&mut self, id: NodeId) {
        let Some(ai) = slot_of(&self.addrs, id) else { return };
        self.addrs[id as usize] = 0;
        if slot_of(&self.by_addr, ai) == Some(id) {
            self.by_addr[ai as usize] = 0;
        }
    }

    fn set(&mut self, id: NodeId, a: SocketAddr) {
        self.remove(id);
        if let Some(o) = self.id_at(&a) {
            // Another id at this address (the caller purges such a node
            // first): the address now belongs to `id`.
            self.remove(o);
        }
        let ai = crate::intern::addr_id(a);
        crate::intern::grow_for_id(&mut self.addrs, id, 0);
        self.addrs[id as usize] = ai + 1;
        crate::intern::grow_for_id(&mut self.by_addr, ai, 0);
        self.by_addr[ai as usize] = id + 1;
    }
}

/// How far ahead of its stale check a bulk sync's event is prefetched: about
/// as many misses as a core keeps in flight.
const PREFETCH_AHEAD: usize = 8;

fn table_key(nid: &str, table: &str, key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(nid.len() + table.len() + key.len() + 2);
    k.extend_from_slice(nid.as_bytes());
    k.push(0);
    k.extend_from_slice(table.as_bytes());
    k.push(0);
    k.extend_from_slice(key.as_bytes());
    k
}

fn network_key(nid: &str, node: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(nid.len() + node.len() + 1);
    k.extend_from_slice(nid.as_bytes());
    k.push(0);
    k.extend_from_slice(node.as_bytes());
    k
}

impl Core {
    fn me(&self) -> String {
        self.db.node_name().to_owned()
    }

    fn handle_message(&mut self, now: u64, buf: &[u8], is_bulk: bool, depth: u32) {
        if depth > MAX_DEPTH {
            self.counters.bad_messages += 1;
            return;
        }
        let g = match pb::GossipMessageRef::decode(buf) {
            Ok(g) => g,
            Err(_) => {
                self.counters.bad_messages += 1;
                return;
            }
        };
        match g.r#type {
            pb::MessageType::TABLE_EVENT => self.handle_table(now, g.data, is_bulk),
            pb::MessageType::NODE_EVENT => {
                let Some(e) = pb::NodeEvent::decode(g.data).ok().and_then(|n| node_from_wire(&n)) else {
                    self.counters.bad_messages += 1;
                    return;
                };
                if self.db.join_revives(&e) {
                    self.revive.push(e.node_name.clone());
                }
                let c = self.db.apply_node_event(&e, now);
                self.watch.extend(c.watch);
                if c.changed {
                    self.node_q.push(buf.to_vec(), None, None);
                }
            }
            pb::MessageType::NETWORK_EVENT => {
                let Some(e) = pb::NetworkEvent::decode(g.data).ok().and_then(|n| network_from_wire(&n)) else {
                    self.counters.bad_messages += 1;
                    return;
                };
                let o = self.db.apply_network_event(&e, now);
                let relay = o.rebroadcast();
                self.watch.extend(o.watch);
                if relay {
                    self.net_q.push(buf.to_vec(), Some(network_key(&e.network_id, &e.node_name)), None);
                }
            }
            pb::MessageType::BULK_SYNC => self.handle_bulk_sync(now, g.data, depth),
            pb::MessageType::COMPOUND => match pb::split_compound(g.data) {
                Ok(parts) => {
                    self.prefetch_table_entries(&parts);
                    for p in parts {
                        self.handle_message(now, p, is_bulk, depth + 1);
                    }
                }
                Err(_) => self.counters.bad_messages += 1,
            },
            _ => self.counters.bad_messages += 1,
        }
    }

    /// Starts loading the stored entries that a compound's table events
    /// will be checked against, all at once: on a simulated node's cold
    /// state each lookup is a cache miss, and one after another they added
    /// up to the largest single cost of receiving gossip. A hint only: the
    /// events are then handled one by one as before.
    fn prefetch_table_entries(&self, parts: &[&[u8]]) {
        for p in parts {
            let Ok(g) = pb::GossipMessageRef::decode(p) else { continue };
            if g.r#type != pb::MessageType::TABLE_EVENT {
                continue;
            }
            if let Ok(r) = pb::TableEventRef::decode(g.data) {
                self.db.store().prefetch(r.table_name, r.network_id, r.key);
            }
        }
    }

    fn handle_table(&mut self, now: u64, data: &[u8], is_bulk: bool) {
        let Ok(r) = pb::TableEventRef::decode(data) else {
            self.counters.bad_messages += 1;
            return;
        };
        // Most gossip is copies of events already stored: drop those before
        // building an owned event (same outcome as the full merge: the clock
        // witnesses the time, nothing else changes).
        if r.node_name != self.db.node_name()
            && TableEventType::from_wire(r.r#type.0).is_some()
            && self.db.is_stale_table_event(r.table_name, r.network_id, r.key, r.l_time, r.node_name)
        {
            self.counters.table_events_in += 1;
            self.db.witness_table_time(r.l_time);
            return;
        }
        let Some(e) = table_from_wire(&r) else {
            self.counters.bad_messages += 1;
            return;
        };
        self.counters.table_events_in += 1;
        let o = self.db.apply_table_event(&e, is_bulk, now);
        self.trace_table(&e, &o);
        self.table_outcome(o, is_bulk);
    }

    fn trace_table(&mut self, e: &TableEvent, o: &TableOutcome) {
        if let (Some(t), true) = (&mut self.trace, o.changed()) {
            let deleting = e.kind == super::events::TableEventType::Delete;
            t.push(Trace::Table { key: e.key.clone(), ltime: e.ltime, deleting });
        }
    }

    fn table_outcome(&mut self, o: TableOutcome, is_bulk: bool) {
        if o.changed() {
            self.counters.table_events_applied += 1;
        }
        if let Some(w) = o.watch {
            self.watch.push(w);
        }
        if let Some(rb) = o.rebroadcast {
            let Some(q) = self.table_q.get_mut(&rb.network_id) else { return };
            if is_bulk && q.len() > self.s.max_queue_on_sync {
                return;
            }
            self.counters.relayed += 1;
            // Key and message in one buffer, shared by every node relaying it.
            let key = table_key(&rb.network_id, &rb.table_name, &rb.key);
            let bytes = crate::intern::shared_bytes(keyed(&key, &table_to_wire(&rb).encode_gossip()));
            q.push_keyed(bytes, Some(key.len()), None);
            self.fresh = true;
        }
    }

    fn handle_bulk_sync(&mut self, now: u64, data: &[u8], depth: u32) {
        let Ok(b) = pb::BulkSyncMessageRef::decode(data) else {
            self.counters.bad_messages += 1;
            return;
        };
        self.counters.bulk_syncs_received += 1;
        // The table events, read in place (valid ones only) and merged below,
        // after the other parts, as `NetworkDb::apply_bulk_sync` would.
        let mut events: Vec<pb::TableEventRef<'_>> = Vec::new();
        if !b.payload.is_empty() {
            match pb::split_compound_gossip(b.payload) {
                Ok(parts) => {
                    for p in parts {
                        match pb::GossipMessageRef::decode(p).map(|g| g.r#type) {
                            Ok(pb::MessageType::TABLE_EVENT) => {
                                match pb::TableEventRef::decode_gossip(p)
                                    .ok()
                                    .filter(|t| TableEventType::from_wire(t.r#type.0).is_some())
                                {
                                    Some(t) => events.push(t),
                                    None => self.counters.bad_messages += 1,
                                }
                            }
                            // Attachments (and anything else) as a normal message.
                            Ok(_) => self.handle_message(now, p, true, depth + 1),
                            Err(_) => self.counters.bad_messages += 1,
                        }
                    }
                }
                Err(_) => {
                    // Not a compound: a single message, as libnetwork would handle it.
                    self.handle_message(now, b.payload, true, depth + 1);
                }
            }
        }
        self.counters.table_events_in += events.len() as u64;
        // `NetworkDb::apply_bulk_sync`, except that an event the store already
        // holds (or holds a newer one of) is only witnessed, as its merge would
        // do, before an owned event is built: a bulk sync carries every entry of
        // its networks, and the receiver usually has them. Staleness is checked
        // as each event's turn comes, so earlier events of the sync count.
        if b.l_time > 0 {
            self.db.witness_table_time(b.l_time);
        }
        let mut merged = Vec::with_capacity(events.len());
        for (i, t) in events.iter().enumerate() {
            // The entry a few events on starts loading now (see
            // `prefetch_table_entries`).
            if let Some(a) = events.get(i + PREFETCH_AHEAD) {
                self.db.store().prefetch(a.table_name, a.network_id, a.key);
            }
            if t.node_name != self.db.node_name()
                && self.db.is_stale_table_event(t.table_name, t.network_id, t.key, t.l_time, t.node_name)
            {
                self.db.witness_table_time(t.l_time);
                continue;
            }
            // The kind was checked above, so this always converts.
            if let Some(e) = table_from_wire(t) {
                let o = self.db.apply_table_event(&e, true, now);
                merged.push((e, o));
            }
        }
        // A skipped event's outcome (ignored: no trace, watch or relay) adds
        // nothing here, so only the merged ones are gone through, in order.
        for (e, o) in merged {
            self.trace_table(&e, &o);
            self.table_outcome(o, true);
        }
        if !b.unsolicited {
            self.bulk_pending.remove(b.node_name);
        } else if b.node_name != self.db.node_name() {
            let networks: Vec<String> = b.networks.iter().map(|n| (*n).to_owned()).collect();
            self.bulk_sync_node(now, &networks, b.node_name, false);
        }
    }

    fn bulk_sync_node(&mut self, now: u64, networks: &[String], node: &str, unsolicited: bool) {
        let nids: Vec<&str> = networks.iter().map(String::as_str).collect();
        let evs = self.db.bulk_sync_events(&nids, now);
        // The attachments of the synced entries' owners (and this node's) go
        // first, so that the receiver accepts every owner's entries even if it
        // missed their network events. Only those: the other members'
        // attachments (N of them, most of a bulk sync in a large cluster) do
        // not change what the receiver accepts, and push/pull carries them.
        let owners: std::collections::HashSet<&str> = evs.iter().map(|e| e.node_name.as_str()).collect();
        let mut parts: Vec<Vec<u8>> = self
            .network_events_for(&nids, &owners)
            .iter()
            .map(|e| network_to_wire(e).encode_gossip())
            .collect();
        parts.extend(evs.iter().map(|e| table_to_wire(e).encode_gossip()));
        let payload = if parts.is_empty() { Vec::new() } else { pb::make_compound(&parts) };
        let bsm = pb::BulkSyncMessage {
            l_time: self.db.store().clock().time(),
            unsolicited,
            node_name: self.me(),
            networks: networks.to_vec(),
            payload,
        };
        self.out.push(Out::Tcp { to: node.to_owned(), data: bsm.encode_gossip() });
        self.counters.bulk_syncs_sent += 1;
        if unsolicited {
            self.bulk_pending.insert(node.to_owned(), now + self.s.bulk_sync_timeout);
        }
    }

    /// Join or leave events, with their Lamport times, for this node's
    /// attachments to the given networks and those of the `owners` among its
    /// peers.
    fn network_events_for(&self, nids: &[&str], owners: &std::collections::HashSet<&str>) -> Vec<NetworkEvent> {
        let me = self.db.node_name();
        let kind = |leaving: bool| if leaving { NetworkEventType::Leave } else { NetworkEventType::Join };
        let mut out: Vec<NetworkEvent> = self
            .db
            .networks()
            .own_networks()
            .filter(|(n, _)| nids.contains(n))
            .map(|(n, a)| NetworkEvent {
                kind: kind(a.leaving),
                ltime: a.ltime,
                node_name: me.to_owned(),
                network_id: n.to_owned(),
            })
            .collect();
        if owners.is_empty() {
            return out;
        }
        out.extend(
            self.db
                .networks()
                .all_attachments()
                .filter(|(node, n, _)| nids.contains(n) && owners.contains(self.db.name_of(*node)))
                .map(|(node, n, a)| NetworkEvent {
                    kind: kind(a.leaving),
                    ltime: a.ltime,
                    node_name: self.db.name_of(node).to_owned(),
                    network_id: n.to_owned(),
                }),
        );
        out
    }

    /// Bulk sync every network this node shares with `node`.
    fn bulk_sync_with(&mut self, now: u64, node: &str) {
        let nets: Vec<String> = self.db.common_networks(node).into_iter().map(str::to_owned).collect();
        self.bulk_sync_node(now, &nets, node, true);
    }

    fn queue_table_event(&mut self, e: &TableEvent) {
        let bytes = table_to_wire(e).encode_gossip();
        if bytes.len() + PART_OVERHEAD + GOSSIP_HEADER > self.packet_limit {
            // Would never fit a gossip packet: send it over TCP to each peer.
            let peers: Vec<String> = self
                .db
                .network_peers(&e.network_id)
                .into_iter()
                .filter(|p| *p != self.db.node_name())
                .map(str::to_owned)
                .collect();
            for p in peers {
                self.counters.oversized_sent_reliably += 1;
                self.out.push(Out::Tcp { to: p, data: bytes.clone() });
            }
            return;
        }
        if let Some(q) = self.table_q.get_mut(&e.network_id) {
            q.push(bytes, Some(table_key(&e.network_id, &e.table_name, &e.key)), None);
            self.fresh = true;
        }
    }

    fn gossip(&mut self) {
        // Only networks with something queued; peers are picked by index, so
        // a tick costs O(fanout), not O(peers).
        let nids: Vec<String> = self.table_q.iter().filter(|(_, q)| !q.is_empty()).map(|(n, _)| n.clone()).collect();
        for nid in nids {
            let count = self.db.network_peer_count(&nid);
            if count == 0 {
                continue;
            }
            let n = count + 1;
            let limit = self.packet_limit.saturating_sub(GOSSIP_HEADER);
            let mult = self.s.table_retransmit_mult;
            let Some(q) = self.table_q.get_mut(&nid) else { continue };
            if q.is_empty() {
                continue;
            }
            let msgs = q.get_shared(PART_OVERHEAD, limit, mult, n);
            if msgs.is_empty() {
                continue;
            }
            let compound: std::sync::Arc<[u8]> = pb::make_compound(&msgs).into();
            self.counters.largest_gossip = self.counters.largest_gossip.max(compound.len());
            let mut picks: Vec<usize> = Vec::new();
            let mut tries = 0;
            while picks.len() < self.s.gossip_fanout && tries < 3 * count {
                tries += 1;
                let i = self.rng.below(count);
                if !picks.contains(&i) {
                    picks.push(i);
                }
            }
            for i in picks {
                let Some(to) = self.db.networks().peer_at(&nid, i) else { continue };
                self.out.push(Out::Udp { to, data: compound.clone() });
            }
        }
    }

    fn bulk_sync_tick(&mut self, now: u64) {
        let mut networks: Vec<String> = self
            .db
            .networks()
            .own_networks()
            .filter(|(_, a)| !a.leaving)
            .map(|(n, _)| n.to_owned())
            .collect();
        while let Some(nid) = networks.first().cloned() {
            networks.remove(0);
            let count = self.db.network_peer_count(&nid);
            if count == 0 {
                continue;
            }
            let i = self.rng.below(count);
            let Some(peer) = self.db.network_peer_at(&nid, i).map(str::to_owned) else { continue };
            let common: Vec<String> = self.db.common_networks(&peer).into_iter().map(str::to_owned).collect();
            self.bulk_sync_node(now, &common, &peer, true);
            networks.retain(|n| !common.contains(n));
        }
    }

    fn addr_of(&self, name: &str) -> Option<SocketAddr> {
        self.db.store().node_id(name).and_then(|id| self.addrs.get(id))
    }

    fn take_out(&mut self) -> Vec<Out> {
        std::mem::take(&mut self.out)
    }
}

#[cfg(test)]
impl Core {
    pub(crate) fn bulk_sync_for_test(&mut self, now: u64, networks: &[String], node: &str) {
        self.bulk_sync_node(now, networks, node, false);
    }

    pub(crate) fn take_reliable_for_test(&mut self) -> Vec<Vec<u8>> {
        self.take_out()
            .into_iter()
            .filter_map(|o| match o {
                Out::Tcp { data, .. } => Some(data),
                Out::Udp { .. } => None,
            })
            .collect()
    }

    pub(crate) fn receive_for_test(&mut self, now: u64, msg: &[u8]) {
        self.handle_message(now, msg, false, 0);
    }
}

impl Delegate for Core {
    fn notify_msg(&mut self, now: u64, msg: &[u8]) {
        if msg.is_empty() {
            return;
        }
        self.counters.messages_in += 1;
        self.handle_message(now, msg, false, 0);
    }

    fn get_broadcasts(&mut self, overhead: usize, limit: usize) -> Vec<Vec<u8>> {
        let n = self.num_members;
        let mut out = self.net_q.get(overhead, limit, self.ml_mult, n);
        let used: usize = out.iter().map(|m| m.len() + overhead).sum();
        out.extend(self.node_q.get(overhead, limit.saturating_sub(used), self.ml_mult, n));
        for t in self.node_q.take_finished() {
            if Some(t) == self.leave_token {
                self.leave_sent = true;
            }
        }
        out
    }

    fn local_state(&mut self, join: bool) -> Vec<u8> {
        let (l_time, node_name, entries) = self.db.local_push_pull_refs(join);
        let networks = entries.iter().map(network_entry_to_wire).collect();
        pb::NetworkPushPullRef { l_time, networks, node_name }.encode_gossip()
    }

    fn merge_remote_state(&mut self, now: u64, buf: &[u8], _join: bool) {
        // Read in place: a push/pull lists every attachment in the cluster and
        // most are known; those then cost lookups, not copies. (Anything but a
        // well-formed PUSH_PULL is a bad message, as `pb::decode_gossip` has it.)
        let Ok(pp) = pb::NetworkPushPullRef::decode_gossip(buf) else {
            self.counters.bad_messages += 1;
            return;
        };
        let join = NodeEvent { kind: NodeEventType::Join, ltime: pp.l_time, node_name: pp.node_name.to_owned() };
        if self.db.join_revives(&join) {
            self.revive.push(join.node_name);
        }
        let networks = pp.networks.iter().map(network_entry_from_wire);
        let o = self.db.merge_push_pull_entries(pp.l_time, pp.node_name, networks, now);
        self.watch.extend(o.watch);
    }

    fn notify_join(&mut self, now: u64, m: &Member) {
        if m.name == self.db.node_name() {
            return;
        }
        // A new name on the address of a node we knew: that node is gone for
        // good (a restart under a new name); purge it.
        let me = self.db.store().node_id(&m.name);
        if let Some(o) = self.addrs.id_at(&m.addr) {
            if Some(o) != me {
                let name = self.db.name_of(o).to_owned();
                let c = self.db.node_left(&name, now);
                self.watch.extend(c.watch);
                self.addrs.remove(o);
            }
        }
        let c = self.db.node_joined(&m.name, now);
        self.watch.extend(c.watch);
        if let Some(id) = self.db.store().node_id(&m.name) {
            self.addrs.set(id, m.addr);
        }
        if let Some(t) = &mut self.trace {
            t.push(Trace::NodeUp(m.name.clone()));
        }
    }

    fn notify_leave(&mut self, now: u64, m: &Member) {
        let left = m.state == node_state::LEFT;
        let c = if left { self.db.node_left(&m.name, now) } else { self.db.node_failed(&m.name, now) };
        self.watch.extend(c.watch);
        if let Some(t) = &mut self.trace {
            t.push(Trace::NodeDown { name: m.name.clone(), left });
        }
    }
}

#[derive(Debug, Clone)]
enum JoinKind {
    Explicit,
    Retry,
    Rejoin,
    Reconnect(String),
}

/// Errors of the local API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NdbError {
    Table(TableError),
    Network(NetworkError),
    Closed,
}

impl std::fmt::Display for NdbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NdbError::Table(e) => write!(f, "{e}"),
            NdbError::Network(e) => write!(f, "{e}"),
            NdbError::Closed => write!(f, "the networkdb node has left"),
        }
    }
}

impl std::error::Error for NdbError {}

/// One networkdb node: memberlist plus networkdb, driven as one machine.
pub struct NdbNode {
    pub ml: Memberlist,
    pub core: Core,
    bootstrap: Vec<SocketAddr>,
    joins: HashMap<u64, JoinKind>,
    joined: bool,
    retry_join: bool,
    reconnecting: bool,
    leaving_deadline: Option<u64>,
    ml_left: bool,
    eager_at: Option<u64>,
    next_gossip: u64,
    next_bulk: u64,
    next_reap: u64,
    next_retry: u64,
    next_rejoin: u64,
    /// (time, messages, bytes) at the previous `stats` call, for the rates.
    last_stats: Option<(u64, u64, u64)>,
}

impl NdbNode {
    pub fn new(now: u64, ml_cfg: MlConfig, s: Settings, addr: SocketAddr, keyring: Option<Keyring>, seed: u64) -> Self {
        let mut rng = Rng::new(seed ^ 0xD8_D8D8);
        let ml_mult = ml_cfg.retransmit_mult;
        let name = ml_cfg.name.clone();
        let ml = Memberlist::new(now, ml_cfg, addr, keyring, seed);
        let packet_limit = s.packet_buffer_size.saturating_sub(ml.user_packet_overhead());
        let db = NetworkDb::new(&name, DbConfig::with_reap_entry_interval(s.reap_entry_interval));
        let stagger = |rng: &mut Rng, iv: u64| now + rng.next_u64() % iv.max(1);
        let next_gossip = stagger(&mut rng, s.gossip_interval);
        let next_bulk = now + s.bulk_sync_interval / 2 + rng.next_u64() % s.bulk_sync_interval.max(1);
        let next_reap = stagger(&mut rng, s.reap_period);
        let next_retry = stagger(&mut rng, s.retry_interval);
        let next_rejoin = now + s.rejoin_interval;
        let core = Core {
            db,
            s,
            node_q: BroadcastQueue::new(),
            net_q: BroadcastQueue::new(),
            table_q: BTreeMap::new(),
            watch: Vec::new(),
            out: Vec::new(),
            bulk_pending: HashMap::new(),
            addrs: AddrBook::default(),
            trace: None,
            rng,
            ml_mult,
            num_members: 1,
            packet_limit,
            counters: NdbCounters::default(),
            leave_token: None,
            leave_sent: false,
            fresh: false,
            revive: Vec::new(),
        };
        NdbNode {
            ml,
            core,
            bootstrap: Vec::new(),
            joins: HashMap::new(),
            joined: false,
            retry_join: false,
            reconnecting: false,
            leaving_deadline: None,
            ml_left: false,
            eager_at: None,
            next_gossip,
            next_bulk,
            next_reap,
            next_retry,
            next_rejoin,
            last_stats: None,
        }
    }

    pub fn name(&self) -> &str {
        self.ml.name()
    }

    fn pre(&mut self) {
        self.core.num_members = self.ml.num_nodes();
    }

    /// Hands networkdb's pending sends to memberlist.
    fn flush(&mut self) {
        for o in self.core.take_out() {
            match o {
                Out::Udp { to, data } => {
                    self.core.counters.messages_out += 1;
                    // networkdb's node ids are memberlist's (process-wide).
                    self.ml.send_best_effort_shared(to, &data);
                }
                Out::Tcp { to, data } => {
                    self.core.counters.messages_out += 1;
                    if !self.ml.send_reliable_to(&to, &data) {
                        if let Some(a) = self.core.addr_of(&to) {
                            self.ml.send_reliable(a, &data);
                        }
                    }
                }
            }
        }
    }

    // ---- driving ------------------------------------------------------------

    pub fn handle_packet(&mut self, now: u64, from: SocketAddr, data: &[u8]) {
        self.pre();
        self.ml.handle_packet(now, from, data, &mut self.core);
        self.after(now);
    }

    pub fn handle_stream(&mut self, now: u64, from: SocketAddr, data: &[u8]) -> Result<Option<Vec<u8>>, SwimError> {
        Ok(self.handle_stream_inflated(now, from, data, None)?.map(|r| r.data))
    }

    /// [`Self::handle_stream`] given what `data` decompresses to
    /// (`Memberlist::handle_stream_inflated`).
    pub fn handle_stream_inflated(
        &mut self,
        now: u64,
        from: SocketAddr,
        data: &[u8],
        ahead: Option<&[u8]>,
    ) -> Result<Option<StreamBytes>, SwimError> {
        self.pre();
        let r = self.ml.handle_stream_inflated(now, from, data, ahead, &mut self.core);
        self.after(now);
        r
    }

    pub fn stream_frame_len(&self, buf: &[u8]) -> Result<Option<usize>, SwimError> {
        self.ml.stream_frame_len(buf)
    }

    pub fn handle_stream_reply(&mut self, now: u64, token: u64, data: Option<&[u8]>) -> Result<bool, SwimError> {
        self.handle_stream_reply_inflated(now, token, data, None)
    }

    /// [`Self::handle_stream_reply`] given what the reply decompresses to.
    pub fn handle_stream_reply_inflated(
        &mut self,
        now: u64,
        token: u64,
        data: Option<&[u8]>,
        ahead: Option<&[u8]>,
    ) -> Result<bool, SwimError> {
        self.pre();
        let r = self.ml.handle_stream_reply_inflated(now, token, data, ahead, &mut self.core);
        self.stream_reply_done(now, token, r)
    }

    /// [`Self::handle_stream_reply`] with the reply already decoded (`len`: its
    /// size on the wire): a simulator's warm start decodes its snapshot once.
    pub fn handle_stream_reply_message(
        &mut self,
        now: u64,
        token: u64,
        msg: &MlMessage,
        len: usize,
    ) -> Result<bool, SwimError> {
        self.pre();
        let r = self.ml.handle_stream_reply_message(now, token, msg, len, &mut self.core);
        self.stream_reply_done(now, token, r)
    }

    fn stream_reply_done(&mut self, now: u64, token: u64, r: Result<bool, SwimError>) -> Result<bool, SwimError> {
        let ok = matches!(r, Ok(true));
        if let Some(kind) = self.joins.remove(&token) {
            match kind {
                JoinKind::Explicit | JoinKind::Retry | JoinKind::Rejoin => {
                    if ok {
                        self.on_joined();
                    } else if !self.joined
                        && !self.joins.values().any(|k| matches!(k, JoinKind::Explicit | JoinKind::Retry))
                    {
                        self.retry_join = true;
                    }
                }
                JoinKind::Reconnect(name) => {
                    self.reconnecting = false;
                    if ok {
                        self.queue_node_event(NodeEventType::Join, None);
                        self.core.bulk_sync_with(now, &name);
                    }
                }
            }
        }
        self.after(now);
        r
    }

    fn on_joined(&mut self) {
        self.joined = true;
        self.retry_join = false;
        self.queue_node_event(NodeEventType::Join, None);
    }

    /// A `Leave` of a node's previous life can arrive after memberlist saw the
    /// node come back (and after networkdb took it back as active): networkdb
    /// then holds it as left while memberlist has it alive, and libnetwork
    /// stays so until memberlist reports a join again, which may never come.
    /// A fresher `Join` from that node ends it here, if memberlist has the
    /// node alive (a `Join` of a node that since crashed must not revive it).
    fn revive(&mut self, now: u64) {
        for name in std::mem::take(&mut self.core.revive) {
            if self.ml.member(&name).is_some_and(|m| m.state == node_state::ALIVE) {
                let c = self.core.db.node_rejoined(&name, now);
                self.core.watch.extend(c.watch);
            }
        }
    }

    fn queue_node_event(&mut self, kind: NodeEventType, notify: Option<u64>) {
        let e = self.core.db.node_event(kind);
        self.core.node_q.push(node_to_wire(&e).encode_gossip(), None, notify);
    }

    fn after(&mut self, now: u64) {
        self.revive(now);
        if self.core.fresh {
            self.core.fresh = false;
            let d = self.core.s.eager_delay;
            if d > 0 && self.eager_at.is_none() && self.next_gossip > now + d {
                self.eager_at = Some(now + d);
            }
        }
        self.flush();
        if let Some(deadline) = self.leaving_deadline {
            if !self.ml_left && (self.core.leave_sent || now >= deadline) {
                self.ml_left = true;
                self.pre();
                self.ml.leave(now, &mut self.core);
            }
        }
    }

    pub fn poll_timeout(&self) -> u64 {
        let mut t = self.ml.poll_timeout();
        if !self.ml_left {
            t = t.min(self.next_gossip).min(self.next_bulk).min(self.next_reap).min(self.next_retry);
            t = t.min(self.next_rejoin);
            if let Some(e) = self.eager_at {
                t = t.min(e);
            }
        }
        if let (Some(d), false) = (self.leaving_deadline, self.ml_left) {
            t = t.min(d);
        }
        t
    }

    pub fn handle_timeout(&mut self, now: u64) {
        self.pre();
        self.ml.handle_timeout(now, &mut self.core);
        if self.ml_left {
            self.after(now);
            return;
        }
        if now >= self.next_gossip {
            while self.next_gossip <= now {
                self.next_gossip += self.core.s.gossip_interval;
            }
            self.eager_at = None;
            self.core.gossip();
        } else if self.eager_at.is_some_and(|e| now >= e) {
            self.eager_at = None;
            self.core.gossip();
        }
        if now >= self.next_bulk {
            while self.next_bulk <= now {
                self.next_bulk += self.core.s.bulk_sync_interval;
            }
            self.core.bulk_sync_tick(now);
        }
        if now >= self.next_reap {
            while self.next_reap <= now {
                self.next_reap += self.core.s.reap_period;
            }
            self.core.db.reap(now);
            self.core.bulk_pending.retain(|_, d| *d > now);
        }
        if now >= self.next_retry {
            while self.next_retry <= now {
                self.next_retry += self.core.s.retry_interval;
            }
            self.retry_tick(now);
        }
        if now >= self.next_rejoin {
            while self.next_rejoin <= now {
                self.next_rejoin += self.core.s.rejoin_interval;
            }
            self.rejoin_tick(now);
        }
        self.after(now);
    }

    fn retry_tick(&mut self, now: u64) {
        if self.leaving_deadline.is_some() {
            return;
        }
        if self.retry_join && !self.joined && !self.bootstrap.is_empty() {
            self.retry_join = false;
            let addrs = self.bootstrap.clone();
            for t in self.ml.join(now, &addrs, &mut self.core) {
                self.joins.insert(t, JoinKind::Retry);
            }
        }
        // libnetwork's reconnectNode: try one failed node, so that a node whose
        // peers all failed transiently finds its way back by itself.
        if self.reconnecting || self.core.db.nodes().failed_count() == 0 {
            return;
        }
        let failed: Vec<String> = self
            .core
            .db
            .nodes()
            .iter()
            .filter(|(_, r)| r.state == NodeState::Failed)
            .map(|(id, _)| self.core.db.name_of(id).to_owned())
            .collect();
        if failed.is_empty() {
            return;
        }
        let name = failed[self.core.rng.below(failed.len())].clone();
        let Some(addr) = self.core.addr_of(&name) else { return };
        self.core.db.refresh_local_state_time();
        self.reconnecting = true;
        for t in self.ml.join(now, &[addr], &mut self.core) {
            self.joins.insert(t, JoinKind::Reconnect(name.clone()));
        }
    }

    fn rejoin_tick(&mut self, now: u64) {
        if self.bootstrap.is_empty() || self.leaving_deadline.is_some() {
            return;
        }
        let me = self.ml.local_addr();
        // Whether a bootstrap node is an alive member: by address, through the
        // name last seen there (O(bootstrap), where a scan of members is O(N)).
        let present = self.bootstrap.iter().filter(|a| **a != me).any(|a| {
            self.core
                .addrs
                .id_at(a)
                .map(|id| self.core.db.name_of(id))
                .filter(|n| *n != self.ml.name())
                .and_then(|n| self.ml.member(n))
                .is_some_and(|m| m.addr == *a && m.state == node_state::ALIVE)
        });
        let others: Vec<SocketAddr> = self.bootstrap.iter().copied().filter(|a| *a != me).collect();
        if present || others.is_empty() {
            return;
        }
        for t in self.ml.join(now, &others, &mut self.core) {
            self.joins.insert(t, JoinKind::Rejoin);
        }
    }

    pub fn take_actions(&mut self) -> Vec<Action> {
        self.ml.take_actions()
    }

    pub fn take_watch_events(&mut self) -> Vec<WatchEvent> {
        std::mem::take(&mut self.core.watch)
    }

    /// Turns the [`Trace`] log on or off (off: nothing is recorded).
    pub fn set_tracing(&mut self, on: bool) {
        self.core.trace = on.then(Vec::new);
    }

    /// What was traced since the last call.
    pub fn take_trace(&mut self) -> Vec<Trace> {
        self.core.trace.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Drops every queued broadcast (memberlist's, node, network and table
    /// events) without sending it: the simulator's warm start, which gives
    /// nodes a cluster's state as if it had been running for a while.
    pub fn discard_broadcasts(&mut self) {
        self.ml.discard_broadcasts();
        self.core.node_q = BroadcastQueue::new();
        self.core.net_q = BroadcastQueue::new();
        for q in self.core.table_q.values_mut() {
            *q = BroadcastQueue::new();
        }
    }

    // ---- API ------------------------------------------------------------------

    /// Joins through `addrs` (they become the bootstrap nodes for rejoins).
    /// One token per address; if none succeeds the node retries every retry
    /// interval until one does or it leaves.
    pub fn join(&mut self, now: u64, addrs: &[SocketAddr]) -> Vec<u64> {
        self.bootstrap = addrs.to_vec();
        self.pre();
        let tokens = self.ml.join(now, addrs, &mut self.core);
        for &t in &tokens {
            self.joins.insert(t, JoinKind::Explicit);
        }
        tokens
    }

    fn check_open(&self) -> Result<(), NdbError> {
        if self.leaving_deadline.is_some() {
            Err(NdbError::Closed)
        } else {
            Ok(())
        }
    }

    pub fn join_network(&mut self, now: u64, nid: &str) -> Result<(), NdbError> {
        self.check_open()?;
        let e = self.core.db.join_network(nid).map_err(NdbError::Network)?;
        let me = self.name().to_owned();
        self.core.net_q.push(network_to_wire(&e).encode_gossip(), Some(network_key(nid, &me)), None);
        self.core.table_q.insert(nid.to_owned(), BroadcastQueue::new());
        let peers: Vec<String> =
            self.core.db.network_peers(nid).into_iter().filter(|p| *p != me).map(str::to_owned).collect();
        for p in peers {
            self.core.bulk_sync_with(now, &p);
        }
        self.core.db.mark_in_sync(nid);
        // Network events ride memberlist's broadcasts, a few transmits each: when many
        // nodes attach at once some miss a few. One push/pull a second later carries
        // every attachment the peer knows (otherwise: the next bulk sync, 30 s).
        self.ml.schedule_push_pull(now + 2 * crate::swim::machine::JOIN_FOLLOWUP);
        self.after(now);
        Ok(())
    }

    pub fn leave_network(&mut self, now: u64, nid: &str) -> Result<(), NdbError> {
        self.check_open()?;
        let l = self.core.db.leave_network(nid, now).map_err(NdbError::Network)?;
        let me = self.name().to_owned();
        self.core.net_q.push(network_to_wire(&l.event).encode_gossip(), Some(network_key(nid, &me)), None);
        self.core.watch.extend(l.watch);
        self.core.table_q.remove(nid);
        self.after(now);
        Ok(())
    }

    pub fn create_entry(&mut self, now: u64, table: &str, nid: &str, key: &str, value: &[u8]) -> Result<(), NdbError> {
        self.check_open()?;
        let ch = self.core.db.create_entry(table, nid, key, value).map_err(NdbError::Table)?;
        self.core.queue_table_event(&ch.event);
        self.core.watch.push(ch.watch);
        self.after(now);
        Ok(())
    }

    pub fn update_entry(&mut self, now: u64, table: &str, nid: &str, key: &str, value: &[u8]) -> Result<(), NdbError> {
        self.check_open()?;
        let ch = self.core.db.update_entry(table, nid, key, value).map_err(NdbError::Table)?;
        self.core.queue_table_event(&ch.event);
        self.core.watch.push(ch.watch);
        self.after(now);
        Ok(())
    }

    pub fn delete_entry(&mut self, now: u64, table: &str, nid: &str, key: &str) -> Result<(), NdbError> {
        self.check_open()?;
        let ch = self.core.db.delete_entry(table, nid, key, now).map_err(NdbError::Table)?;
        self.core.queue_table_event(&ch.event);
        self.core.watch.push(ch.watch);
        self.after(now);
        Ok(())
    }

    /// Graceful leave: a node leave event, then memberlist's leave.
    pub fn leave(&mut self, now: u64) {
        if self.leaving_deadline.is_some() {
            return;
        }
        let t = u64::MAX - 1;
        self.core.leave_token = Some(t);
        self.queue_node_event(NodeEventType::Leave, Some(t));
        let alone = self.ml.num_alive_peers() == 0;
        self.leaving_deadline = Some(if alone { now } else { now + self.core.s.leave_timeout });
        self.after(now);
    }

    pub fn leave_finished(&self) -> bool {
        self.ml_left && self.ml.leave_finished()
    }

    /// Live members (this node included): name and address. A suspected node
    /// stays until memberlist declares it dead, as in libnetwork.
    pub fn cluster_peers(&self) -> Vec<(String, SocketAddr)> {
        self.ml
            .members()
            .into_iter()
            .filter(|m| m.state == node_state::ALIVE || m.state == node_state::SUSPECT)
            .map(|m| (m.name, m.addr))
            .collect()
    }

    pub fn network_peers(&self, nid: &str) -> Vec<(String, SocketAddr)> {
        self.core
            .db
            .network_peers(nid)
            .into_iter()
            .filter_map(|n| self.ml.addr_of(n).map(|(a, _)| (n.to_owned(), a)))
            .collect()
    }

    pub fn table_queue_len(&self) -> usize {
        self.core.table_q.values().map(BroadcastQueue::len).sum()
    }

    pub fn table_queue_peak(&self) -> usize {
        self.core.table_q.values().map(BroadcastQueue::peak).max().unwrap_or(0)
    }

    /// Counters plus rates since the previous call: (name, value) pairs.
    pub fn stats(&mut self, now: u64) -> Vec<(&'static str, f64)> {
        let c = &self.ml.counters;
        let n = &self.core.counters;
        let msgs = c.packets_sent + c.packets_received + c.streams_sent + c.streams_received;
        let bytes = c.packet_bytes_sent + c.packet_bytes_received + c.stream_bytes_sent + c.stream_bytes_received;
        let (m_rate, b_rate) = match self.last_stats {
            Some((t0, m0, b0)) if now > t0 => {
                let dt = (now - t0) as f64 / 1e6;
                ((msgs - m0) as f64 / dt, (bytes - b0) as f64 / dt)
            }
            _ => (0.0, 0.0),
        };
        self.last_stats = Some((now, msgs, bytes));
        let failed = self.core.db.nodes().failed_count();
        let left = self.core.db.nodes().iter().filter(|(_, r)| r.state == NodeState::Left).count();
        vec![
            ("members", self.ml.num_alive_peers() as f64 + 1.0),
            ("failed_nodes", failed as f64),
            ("left_nodes", left as f64),
            ("networks", self.core.table_q.len() as f64),
            ("entries", self.core.db.store().len() as f64),
            ("memberlist_queue", self.ml.queue_len() as f64),
            ("node_event_queue", self.core.node_q.len() as f64),
            ("network_event_queue", self.core.net_q.len() as f64),
            ("table_queue", self.table_queue_len() as f64),
            ("table_queue_peak", self.table_queue_peak() as f64),
            ("messages_per_s", m_rate),
            ("bytes_per_s", b_rate),
            ("packets_sent", c.packets_sent as f64),
            ("packets_received", c.packets_received as f64),
            ("bytes_sent", (c.packet_bytes_sent + c.stream_bytes_sent) as f64),
            ("bytes_received", (c.packet_bytes_received + c.stream_bytes_received) as f64),
            ("bad_packets", c.bad_packets as f64),
            ("table_events_in", n.table_events_in as f64),
            ("table_events_applied", n.table_events_applied as f64),
            ("relayed", n.relayed as f64),
            ("bulk_syncs_sent", n.bulk_syncs_sent as f64),
            ("bulk_syncs_received", n.bulk_syncs_received as f64),
            ("bad_messages", n.bad_messages as f64),
            ("largest_gossip", n.largest_gossip as f64),
            ("health_score", self.ml.health_score() as f64),
        ]
    }
}

impl crate::sim::Machine for NdbNode {
    type Note = ();
    fn addr(&self) -> SocketAddr {
        self.ml.local_addr()
    }
    fn on_packet(&mut self, now: u64, from: SocketAddr, data: &[u8]) {
        self.handle_packet(now, from, data)
    }
    fn on_stream(&mut self, now: u64, from: SocketAddr, data: &[u8], ahead: Option<&[u8]>) -> Option<StreamBytes> {
        self.handle_stream_inflated(now, from, data, ahead).ok().flatten()
    }
    fn on_stream_reply(&mut self, now: u64, token: u64, data: Option<&[u8]>, ahead: Option<&[u8]>) {
        let _ = self.handle_stream_reply_inflated(now, token, data, ahead);
    }
    fn poll_timeout(&self) -> u64 {
        NdbNode::poll_timeout(self)
    }
    fn on_timeout(&mut self, now: u64) {
        self.handle_timeout(now)
    }
    fn take_actions(&mut self) -> Vec<Action> {
        self.ml.take_actions()
    }
}

#[cfg(test)]
mod addr_book_tests {
    use super::*;

    #[test]
    fn v4_and_v6_round_trip_and_move() {
        let mut b = AddrBook::default();
        let a4: SocketAddr = "10.1.2.3:7946".parse().unwrap();
        let a6: SocketAddr = "[fd00::1]:7946".parse().unwrap();
        b.set(3, a4);
        b.set(5, a6);
        assert_eq!(b.get(3), Some(a4));
        assert_eq!(b.get(5), Some(a6));
        assert_eq!(b.get(4), None);
        assert_eq!(b.id_at(&a4), Some(3));
        assert_eq!(b.id_at(&a6), Some(5));
        // The address moves to another id; the old one loses it.
        b.set(7, a4);
        assert_eq!(b.get(3), None);
        assert_eq!(b.id_at(&a4), Some(7));
        b.remove(5);
        assert_eq!(b.get(5), None);
        assert_eq!(b.id_at(&a6), None);
    }
}
