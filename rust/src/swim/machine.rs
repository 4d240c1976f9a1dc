//! The membership machine: memberlist 0.2.2's probe, indirect probe, suspicion,
//! refutation, gossip, push/pull, join and leave, restated as a sans-IO state
//! machine. Inputs carry `now` in microseconds; outputs are `Action`s.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::config::Config;
use super::delegate::{Delegate, Member};
use super::queue::BroadcastQueue;
use super::rng::Rng;
use super::suspicion::{suspicion_timeout, Suspicion};
use crate::wire::crypto::{self, Keyring};
use crate::wire::memberlist::{
    decode_packet, decode_stream_inflated, decode_stream_ref, encode_compressed, encode_compressed_resuming,
    encode_message, encode_push_pull_stream, encode_stream, inflate_stream, make_compound, msg_type,
    node_state, wrap_packet, Ack, Alive, Dead, IndirectPing, Message, Nack, PacketOpts, Ping,
    PushNodeState, PushNodeStateRef, PushPullRef, StreamMessage, Suspect, WireError,
};

/// Bytes a compound adds per part, and for its header (memberlist's constants).
const COMPOUND_OVERHEAD: usize = 2;
const COMPOUND_HEADER_OVERHEAD: usize = 2;
const USER_MSG_OVERHEAD: usize = 1;
/// A push/pull with more nodes than this is refused (memberlist: maxPushStateBytes is
/// 20 MB; this bounds what a peer can make us allocate per exchange).
const MAX_PUSH_NODES: usize = 1 << 20;

/// What the transport must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send one UDP datagram.
    Packet { to: SocketAddr, data: Vec<u8> },
    /// Open a TCP connection to `to` and write `data`. With a token, read one
    /// stream message back and hand it to `handle_stream_reply` (or `None` on
    /// error or after the TCP timeout). `plain`: see [`StreamBytes`].
    Stream { to: SocketAddr, data: Vec<u8>, token: Option<u64>, plain: Option<Vec<u8>> },
}

/// A stream message as sent and, when it is compressed and not encrypted,
/// the message before compression, which the receiver's decompression gives
/// back exactly (LZW is lossless). A simulator hands it to the receiver
/// (`handle_stream_inflated`) instead of having it decompress what this node
/// has just compressed; a real transport sends `data` and drops it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamBytes {
    pub data: Vec<u8>,
    pub plain: Option<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SwimError {
    Wire(WireError),
    /// A stream reply that is not what was asked for.
    Unexpected(String),
    UnknownToken(u64),
}

impl fmt::Display for SwimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SwimError::Wire(e) => write!(f, "{e}"),
            SwimError::Unexpected(m) => write!(f, "unexpected reply: {m}"),
            SwimError::UnknownToken(t) => write!(f, "no request with token {t}"),
        }
    }
}

impl std::error::Error for SwimError {}

impl From<WireError> for SwimError {
    fn from(e: WireError) -> Self {
        SwimError::Wire(e)
    }
}

/// One member: 32 bytes (a simulated cluster holds N² of them). The name is
/// a process-wide node id (`intern::node_id`) and the address a process-wide
/// address id (`intern::addr_id`), 4 bytes each, the text and the address
/// held once in the process; the meta, usually empty, is in
/// [`Memberlist::metas`].
#[derive(Debug, Clone)]
struct Node {
    id: u32,
    addr: u32,
    incarnation: u32,
    state: u8,
    state_change: u64,
    vsn: [u8; 6],
}

impl Node {
    fn name(&self) -> &'static str {
        // Every id in a record came from intern::node_id, which never forgets.
        crate::intern::node_name(self.id).unwrap_or_default()
    }
    fn dead_or_left(&self) -> bool {
        self.state == node_state::DEAD || self.state == node_state::LEFT
    }
    fn pmax(&self) -> u8 {
        self.vsn[1]
    }
    fn addr(&self) -> SocketAddr {
        // Every address id in a record came from intern::addr_id.
        crate::intern::addr_of_id(self.addr).unwrap_or(SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 0))
    }
}

/// The fields of an alive message, borrowed from a received [`Alive`] or a
/// push/pull entry. `alive_node` reads this and builds an owned `Alive` only
/// to broadcast a change: a push/pull lists every member, and in a settled
/// cluster nearly every entry changes nothing.
#[derive(Debug, Clone, Copy)]
struct AliveView<'a> {
    /// The name's id, when it had one before (an id never changes); `None`:
    /// look the name up. A push/pull may name a new member twice, so "no id
    /// when the merge began" does not mean "no member" by the second time.
    id: Option<u32>,
    incarnation: u32,
    node: &'a str,
    addr: &'a [u8],
    port: u16,
    meta: &'a [u8],
    vsn: &'a [u8],
}

impl<'a> AliveView<'a> {
    fn of(a: &'a Alive) -> Self {
        AliveView {
            id: None,
            incarnation: a.incarnation,
            node: &a.node,
            addr: &a.addr,
            port: a.port,
            meta: &a.meta,
            vsn: &a.vsn,
        }
    }

    fn of_push(r: &'a PushNodeStateRef<'a>, id: Option<u32>) -> Self {
        AliveView {
            id,
            incarnation: r.incarnation,
            node: &r.name,
            addr: r.addr,
            port: r.port,
            meta: r.meta,
            vsn: r.vsn,
        }
    }

    fn to_alive(self) -> Alive {
        Alive {
            incarnation: self.incarnation,
            node: self.node.to_string(),
            addr: self.addr.to_vec(),
            port: self.port,
            meta: self.meta.to_vec(),
            vsn: self.vsn.to_vec(),
        }
    }
}

/// Position in `nodes` by process-wide node id (`intern::node_id`): 4 bytes
/// per id. A hash table of positions keyed by name cost ~6 bytes a member and
/// two cache misses per lookup (its slot, then the record's name); networkdb
/// knows its peers' ids and sends by id without hashing at all.
#[derive(Default)]
struct NameIndex(Vec<u32>);

const NO_POS: u32 = u32::MAX;

impl NameIndex {
    fn get(&self, name: &str) -> Option<usize> {
        self.by_id(crate::intern::find_node_id(name)?)
    }

    fn by_id(&self, id: u32) -> Option<usize> {
        self.0.get(id as usize).copied().filter(|&p| p != NO_POS).map(|p| p as usize)
    }

    /// Indexes `nodes[i]`.
    fn insert(&mut self, nodes: &[Node], i: usize) {
        let id = nodes[i].id;
        crate::intern::grow_for_id(&mut self.0, id, NO_POS);
        self.0[id as usize] = i as u32;
    }

    /// `nodes[from]` is about to move to position `to`.
    fn moved(&mut self, nodes: &[Node], from: usize, to: usize) {
        if let Some(slot) = self.0.get_mut(nodes[from].id as usize) {
            *slot = to as u32;
        }
    }

    fn rebuild(&mut self, nodes: &[Node]) {
        self.0.fill(NO_POS);
        for i in 0..nodes.len() {
            self.insert(nodes, i);
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Pending {
    PushPull,
    TcpPing { seq: u32 },
}

#[derive(Debug, Clone)]
struct Probe {
    seq: u32,
    target: String,
    incarnation: u32,
    timeout_at: u64,
    deadline: u64,
    indirect_sent: bool,
    expected_nacks: u32,
    nacks: u32,
    tcp_contact: bool,
}

#[derive(Debug, Clone)]
struct Relay {
    requester: SocketAddr,
    seq: u32,
    nack: bool,
    deadline: u64,
}

/// Counters for stats and the simulator's reports.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    pub packets_sent: u64,
    pub packet_bytes_sent: u64,
    pub packets_received: u64,
    pub packet_bytes_received: u64,
    pub streams_sent: u64,
    pub stream_bytes_sent: u64,
    pub streams_received: u64,
    pub stream_bytes_received: u64,
    pub bad_packets: u64,
    pub probes: u64,
    pub probe_failures: u64,
}

pub struct Memberlist {
    cfg: Config,
    keyring: Option<Keyring>,
    rng: Rng,
    self_addr: SocketAddr,
    nodes: Vec<Node>,
    index: NameIndex,
    /// Members' metadata by node id; only non-empty ones (most are empty).
    metas: HashMap<u32, Box<[u8]>, crate::fasthash::FastBuild>,
    probe_index: usize,
    seq: u32,
    incarnation: u32,
    awareness: u32,
    suspicions: HashMap<String, Suspicion>,
    probe: Option<Probe>,
    relays: HashMap<u32, Relay>,
    pending: HashMap<u64, Pending>,
    next_token: u64,
    queue: BroadcastQueue,
    actions: Vec<Action>,
    next_probe: u64,
    next_gossip: u64,
    next_push_pull: u64,
    left: bool,
    leave_token: Option<u64>,
    leave_done: bool,
    /// One extra push/pull with a random live member shortly after a join.
    followup_at: Option<u64>,
    /// The last packet payload and what `wrap_packet` made of it.
    last_wrap: Option<(Vec<u8>, bool, Vec<u8>)>,
    /// The same for [`Self::send_best_effort_shared`], by the shared bytes'
    /// identity (held here, so their address cannot be reused meanwhile).
    last_shared: Option<(std::sync::Arc<[u8]>, bool, Vec<u8>)>,
    /// State changes queue no broadcasts (see `mute_broadcasts`).
    muted: bool,
    /// The last push/pull's compression, to resume (see `compress_push_pull`).
    push_pull_lzw: crate::wire::lzw::Resume,
    pub counters: Counters,
}

/// Plain push/pulls from this size on are compressed on a thread of their
/// own while the answering node merges (a thread costs ~20 µs; LZW over
/// 64 KB, ~300 µs).
const PARALLEL_COMPRESS_MIN: usize = 64 * 1024;

/// How long after a join the follow-up push/pull runs. When many nodes join at
/// once, each alive message is only retransmitted a few times and some pairs of
/// nodes miss every copy; memberlist then waits for the periodic push/pull (15 to
/// 60 s). One early exchange with a random member fixes that (wire-compatible: it
/// is an ordinary push/pull).
pub const JOIN_FOLLOWUP: u64 = 500_000;

/// [`ip_bytes`] in a buffer: the bytes are `.0[..len]`.
fn ip_buf(ip: IpAddr) -> ([u8; 16], usize) {
    let mut b = [0u8; 16];
    let o: &[u8] = match ip {
        IpAddr::V4(v4) => &v4.octets(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => &v4.octets(),
            None => &v6.octets(),
        },
    };
    b[..o.len()].copy_from_slice(o);
    (b, o.len())
}

fn ip_bytes(ip: IpAddr) -> Vec<u8> {
    let (b, len) = ip_buf(ip);
    b[..len].to_vec()
}

fn ip_from_bytes(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => Some(IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))),
        16 => {
            let mut o = [0u8; 16];
            o.copy_from_slice(b);
            let v6 = Ipv6Addr::from(o);
            Some(match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(v6),
            })
        }
        _ => None,
    }
}

fn vsn_array(v: &[u8]) -> [u8; 6] {
    let mut out = [0u8; 6];
    for (o, b) in out.iter_mut().zip(v.iter()) {
        *o = *b;
    }
    out
}

/// memberlist's pushPullScale: slower push/pull above 32 nodes.
fn push_pull_scale(interval: u64, n: usize) -> u64 {
    const THRESHOLD: f64 = 32.0;
    if (n as f64) <= THRESHOLD {
        return interval;
    }
    let mult = ((n as f64).log2() - THRESHOLD.log2()).ceil() as u64 + 1;
    interval * mult
}

impl Memberlist {
    /// A node alone in its cluster, alive at incarnation 1. `seed` feeds the
    /// machine's randomness (peer choice, timer stagger).
    pub fn new(now: u64, cfg: Config, self_addr: SocketAddr, keyring: Option<Keyring>, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let stagger = |rng: &mut Rng, iv: u64| now + iv.max(1) / 2 + rng.next_u64() % iv.max(1);
        let next_probe = stagger(&mut rng, cfg.probe_interval);
        let next_gossip = stagger(&mut rng, cfg.gossip_interval);
        let next_push_pull = stagger(&mut rng, cfg.push_pull_interval);
        let mut m = Memberlist {
            cfg,
            keyring,
            rng,
            self_addr,
            nodes: Vec::new(),
            index: NameIndex::default(),
            metas: HashMap::default(),
            probe_index: 0,
            seq: 0,
            incarnation: 0,
            awareness: 0,
            suspicions: HashMap::new(),
            probe: None,
            relays: HashMap::new(),
            pending: HashMap::new(),
            next_token: 1,
            queue: BroadcastQueue::new(),
            actions: Vec::new(),
            next_probe,
            next_gossip,
            next_push_pull,
            left: false,
            leave_token: None,
            leave_done: false,
            followup_at: None,
            last_wrap: None,
            last_shared: None,
            push_pull_lzw: Default::default(),
            muted: false,
            counters: Counters::default(),
        };
        m.incarnation += 1;
        let a = Alive {
            incarnation: m.incarnation,
            node: m.cfg.name.clone(),
            addr: ip_bytes(self_addr.ip()),
            port: self_addr.port(),
            meta: m.cfg.meta.clone(),
            vsn: m.cfg.vsn(),
        };
        m.alive_node(now, AliveView::of(&a), true, &mut super::delegate::NoDelegate);
        m
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn name(&self) -> &str {
        &self.cfg.name
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.self_addr
    }

    pub fn keyring_mut(&mut self) -> Option<&mut Keyring> {
        self.keyring.as_mut()
    }

    /// Number of known nodes, dead ones not yet forgotten included (memberlist's
    /// estNumNodes).
    pub fn num_nodes(&self) -> usize {
        self.nodes.len()
    }

    /// Alive members other than this node.
    pub fn num_alive_peers(&self) -> usize {
        self.nodes
            .iter()
            .filter(|n| n.name() != self.cfg.name && n.state == node_state::ALIVE)
            .count()
    }

    /// Every known node with its state.
    pub fn members(&self) -> Vec<Member> {
        (0..self.nodes.len()).map(|i| self.member_at(i)).collect()
    }

    pub fn member(&self, name: &str) -> Option<Member> {
        self.index.get(name).map(|i| self.member_at(i))
    }

    pub fn health_score(&self) -> u32 {
        self.awareness
    }

    pub fn queue_len(&self) -> usize {
        self.queue.len()
    }

    pub fn queue_peak(&self) -> usize {
        self.queue.peak()
    }

    /// Drops every queued broadcast unsent (the simulator's warm start).
    pub fn discard_broadcasts(&mut self) {
        self.queue = BroadcastQueue::new();
    }

    /// While `on`, state changes queue no broadcasts (their notifications
    /// never fire). For a simulator's warm start, which merges a snapshot of
    /// N members into every node and then discards the queue: encoding and
    /// queueing N alive messages per node was ~25% of the start-up.
    pub fn mute_broadcasts(&mut self, on: bool) {
        self.muted = on;
    }

    pub fn has_left(&self) -> bool {
        self.left
    }

    /// True once the leave broadcast went out enough times (or nobody was
    /// there to tell).
    pub fn leave_finished(&self) -> bool {
        self.leave_done
    }

    pub fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.actions)
    }

    fn token(&mut self) -> u64 {
        let t = self.next_token;
        self.next_token += 1;
        t
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    fn scaled(&self, t: u64) -> u64 {
        t * (self.awareness as u64 + 1)
    }

    fn apply_awareness(&mut self, delta: i64) {
        let max = self.cfg.awareness_max_multiplier.saturating_sub(1) as i64;
        self.awareness = (self.awareness as i64 + delta).clamp(0, max) as u32;
    }

    // ---- sending ------------------------------------------------------------

    fn encrypt_overhead(&self) -> usize {
        match (&self.keyring, self.cfg.encryption_version) {
            (None, _) => 0,
            (Some(_), 0) => 1 + 12 + 16 + 16,
            (Some(_), _) => 1 + 12 + 16,
        }
    }

    fn raw_send(&mut self, to: SocketAddr, pmax: Option<u8>, msg: Vec<u8>) {
        let opts = PacketOpts { crc: pmax.is_some_and(|p| p >= 5), compress: self.cfg.enable_compression };
        // The same payload often goes to several peers in a row (networkdb's
        // gossip fanout): compress it once.
        let data = match &self.last_wrap {
            Some((m, crc, w)) if *m == msg && *crc == opts.crc => w.clone(),
            _ => {
                let w = wrap_packet(msg.clone(), opts);
                self.last_wrap = Some((msg, opts.crc, w.clone()));
                w
            }
        };
        self.send_wrapped(to, data);
    }

    /// Sends a wrapped packet (encrypting it with a keyring).
    fn send_wrapped(&mut self, to: SocketAddr, mut data: Vec<u8>) {
        if let Some(kr) = &self.keyring {
            data = crypto::encrypt_packet(kr, self.cfg.encryption_version, &data);
        }
        self.counters.packets_sent += 1;
        self.counters.packet_bytes_sent += data.len() as u64;
        self.actions.push(Action::Packet { to, data });
    }

    fn get_broadcasts(&mut self, overhead: usize, limit: usize, d: &mut impl Delegate) -> Vec<Vec<u8>> {
        let n = self.nodes.len();
        let mut out = self.queue.get(overhead, limit, self.cfg.retransmit_mult, n);
        let used: usize = out.iter().map(|m| m.len() + overhead).sum();
        let avail = limit.saturating_sub(used);
        if avail > overhead + USER_MSG_OVERHEAD {
            let user = d.get_broadcasts(overhead + USER_MSG_OVERHEAD, avail);
            out.extend(user.iter().map(|m| user_frame(m)));
        }
        self.collect_finished();
        out
    }

    fn collect_finished(&mut self) {
        for t in self.queue.take_finished() {
            if Some(t) == self.leave_token {
                self.leave_done = true;
            }
        }
    }

    /// Sends `msg` with whatever broadcasts fit beside it.
    fn send_msg(&mut self, to: SocketAddr, msg: Vec<u8>, d: &mut impl Delegate) {
        let avail = self
            .cfg
            .udp_buffer_size
            .saturating_sub(msg.len() + COMPOUND_HEADER_OVERHEAD + self.encrypt_overhead());
        let extra = self.get_broadcasts(COMPOUND_OVERHEAD, avail, d);
        if extra.is_empty() {
            self.raw_send(to, None, msg);
        } else {
            let mut parts = Vec::with_capacity(extra.len() + 1);
            parts.push(msg);
            parts.extend(extra);
            for c in compounds(&parts) {
                self.raw_send(to, None, c);
            }
        }
    }

    fn encode_and_send(&mut self, to: SocketAddr, msg: &Message, d: &mut impl Delegate) {
        let buf = encode_message(msg);
        self.send_msg(to, buf, d);
    }

    fn broadcast(&mut self, node: &str, msg: &Message, notify: Option<u64>) {
        if self.muted {
            return;
        }
        self.queue.push(encode_message(msg), Some(node.as_bytes().to_vec()), notify);
    }

    fn stream(&mut self, to: SocketAddr, msg: &Message, token: Option<u64>) {
        let StreamBytes { data, plain } = self.encode_stream_bytes(msg);
        self.actions.push(Action::Stream { to, data, token, plain });
    }

    /// Address and highest protocol version of a known node.
    pub fn addr_of(&self, name: &str) -> Option<(SocketAddr, u8)> {
        self.index.get(name).map(|i| (self.nodes[i].addr(), self.nodes[i].pmax()))
    }

    /// Sends a user message over UDP to the node called `name`; false if unknown.
    pub fn send_best_effort_to(&mut self, name: &str, msg: &[u8]) -> bool {
        let Some((to, pmax)) = self.addr_of(name) else { return false };
        self.raw_send(to, Some(pmax), user_frame(msg));
        true
    }

    /// Sends a user message over UDP to the member with process-wide node id
    /// `id` (`intern::node_id`; false if unknown): networkdb knows its peers'
    /// ids, so a gossip send needs no name lookup. The bytes are shared by
    /// several sends (networkdb's gossip goes to a few peers per round): they
    /// are framed and compressed once, recognised by identity rather than
    /// compared.
    pub fn send_best_effort_shared(&mut self, id: u32, msg: &std::sync::Arc<[u8]>) -> bool {
        let Some(i) = self.index.by_id(id) else { return false };
        let (to, pmax) = (self.nodes[i].addr(), self.nodes[i].pmax());
        let opts = PacketOpts { crc: pmax >= 5, compress: self.cfg.enable_compression };
        let data = match &self.last_shared {
            Some((m, crc, w)) if std::sync::Arc::ptr_eq(m, msg) && *crc == opts.crc => w.clone(),
            _ => {
                let w = wrap_packet(user_frame(msg), opts);
                self.last_shared = Some((msg.clone(), opts.crc, w.clone()));
                w
            }
        };
        self.send_wrapped(to, data);
        true
    }

    /// Sends a user message over TCP to the node called `name`; false if unknown.
    pub fn send_reliable_to(&mut self, name: &str, msg: &[u8]) -> bool {
        let Some((to, _)) = self.addr_of(name) else { return false };
        self.stream(to, &Message::User(msg.to_vec()), None);
        true
    }

    /// Bytes the layers under a user message may add to a UDP packet (user
    /// type byte, CRC header, encryption), for callers that size payloads.
    pub fn user_packet_overhead(&self) -> usize {
        1 + 5 + self.encrypt_overhead()
    }

    /// Sends a user message to `to` over UDP (memberlist's SendBestEffort).
    pub fn send_best_effort(&mut self, to: SocketAddr, msg: &[u8]) {
        let id = crate::intern::find_addr_id(&to);
        let pmax = self.nodes.iter().find(|n| Some(n.addr) == id).map(Node::pmax);
        self.raw_send(to, pmax, user_frame(msg));
    }

    /// Sends a user message to `to` over TCP (memberlist's SendReliable).
    pub fn send_reliable(&mut self, to: SocketAddr, msg: &[u8]) {
        self.stream(to, &Message::User(msg.to_vec()), None);
    }

    fn send_parts(&mut self, to: SocketAddr, pmax: Option<u8>, mut parts: Vec<Vec<u8>>) {
        match parts.len() {
            0 => {}
            1 => {
                let p = parts.pop().unwrap_or_default();
                self.raw_send(to, pmax, p);
            }
            _ => {
                for c in compounds(&parts) {
                    self.raw_send(to, pmax, c);
                }
            }
        }
    }

    // ---- node states ----------------------------------------------------------

    /// A member's metadata (empty if it has none).
    fn meta(&self, id: u32) -> &[u8] {
        self.metas.get(&id).map_or(&[], |m| &m[..])
    }

    fn set_meta(&mut self, id: u32, meta: &[u8]) {
        if meta.is_empty() {
            self.metas.remove(&id);
        } else {
            self.metas.insert(id, Box::from(meta));
        }
    }

    /// The member at `idx` as the delegate sees it.
    fn member_at(&self, idx: usize) -> Member {
        let n = &self.nodes[idx];
        Member {
            name: n.name().to_string(),
            addr: n.addr(),
            meta: self.meta(n.id).to_vec(),
            state: n.state,
            incarnation: n.incarnation,
        }
    }

    fn notify_leave(&self, now: u64, idx: usize, d: &mut impl Delegate) {
        d.notify_leave(now, &self.member_at(idx));
    }

    /// memberlist's aliveNode. Every return before the state changes builds
    /// nothing owned: a push/pull entry of a member known at that address and
    /// incarnation (the common case) costs a name lookup and compares.
    fn alive_node(&mut self, now: u64, a: AliveView<'_>, bootstrap: bool, d: &mut impl Delegate) {
        if self.left && a.node == self.cfg.name {
            return;
        }
        if a.vsn.len() >= 3 {
            let (pmin, pmax) = (a.vsn[0], a.vsn[1]);
            if pmin == 0 || pmax == 0 || pmin > pmax {
                return;
            }
        }
        let Some(ip) = ip_from_bytes(a.addr) else { return };
        let addr = SocketAddr::new(ip, a.port);
        let mut updates_node = false;
        let found = match a.id {
            Some(id) => self.index.by_id(id),
            None => self.index.get(a.node),
        };
        let idx = match found {
            Some(i) => {
                let st = &self.nodes[i];
                if st.addr() != addr {
                    let can_reclaim = self.cfg.dead_node_reclaim_time > 0
                        && now.saturating_sub(st.state_change) > self.cfg.dead_node_reclaim_time;
                    if st.state == node_state::LEFT || (st.state == node_state::DEAD && can_reclaim) {
                        updates_node = true;
                    } else {
                        return; // conflicting address
                    }
                }
                i
            }
            None => {
                let node = Node {
                    id: crate::intern::node_id(a.node),
                    addr: crate::intern::addr_id(addr),
                    incarnation: 0,
                    state: node_state::DEAD,
                    state_change: now,
                    vsn: vsn_array(a.vsn),
                };
                // Insert at a random place so that probe orders differ per node.
                let n = self.nodes.len();
                let off = self.rng.below(n + 1);
                crate::intern::reserve_gently(&mut self.nodes, 1);
                self.nodes.push(node);
                self.index.moved(&self.nodes, off, n);
                self.nodes.swap(off, n);
                self.index.insert(&self.nodes, off);
                off
            }
        };
        let is_local = a.node == self.cfg.name;
        let st_inc = self.nodes[idx].incarnation;
        if a.incarnation <= st_inc && !is_local && !updates_node {
            return;
        }
        if a.incarnation < st_inc && is_local {
            return;
        }
        self.suspicions.remove(a.node);
        let old_state = self.nodes[idx].state;
        let id = self.nodes[idx].id;
        let meta_changed = a.meta != self.meta(id);
        if !bootstrap && is_local {
            let me = &self.nodes[idx];
            if a.incarnation == me.incarnation && !meta_changed && vsn_array(a.vsn) == me.vsn {
                return;
            }
            self.refute(idx, a.incarnation);
        } else {
            if !self.muted {
                let msg = Message::Alive(a.to_alive());
                self.broadcast(a.node, &msg, None);
            }
            let st = &mut self.nodes[idx];
            if !a.vsn.is_empty() {
                st.vsn = vsn_array(a.vsn);
            }
            st.incarnation = a.incarnation;
            if st.addr() != addr {
                st.addr = crate::intern::addr_id(addr);
            }
            if st.state != node_state::ALIVE {
                st.state = node_state::ALIVE;
                st.state_change = now;
            }
            if meta_changed {
                self.set_meta(id, a.meta);
            }
        }
        if old_state == node_state::DEAD || old_state == node_state::LEFT {
            d.notify_join(now, &self.member_at(idx));
        } else if meta_changed && self.meta(id) == a.meta {
            d.notify_update(now, &self.member_at(idx));
        }
    }

    fn refute(&mut self, idx: usize, accused: u32) {
        let mut inc = self.incarnation.wrapping_add(1);
        if accused >= inc {
            inc = accused.wrapping_add(1);
        }
        self.incarnation = inc;
        self.nodes[idx].incarnation = inc;
        self.apply_awareness(1);
        let me = &self.nodes[idx];
        let at = me.addr();
        let a = Alive {
            incarnation: inc,
            node: me.name().to_string(),
            addr: ip_bytes(at.ip()),
            port: at.port(),
            meta: self.meta(me.id).to_vec(),
            vsn: me.vsn.to_vec(),
        };
        let name = me.name();
        self.broadcast(name, &Message::Alive(a), None);
    }

    /// memberlist's suspectNode, with the suspect message's fields borrowed
    /// (an owned message is built only to broadcast).
    fn suspect_node(&mut self, now: u64, incarnation: u32, node: &str, from: &str) {
        let Some(idx) = self.index.get(node) else { return };
        if incarnation < self.nodes[idx].incarnation {
            return;
        }
        let msg = || Message::Suspect(Suspect { incarnation, node: node.to_string(), from: from.to_string() });
        if let Some(t) = self.suspicions.get_mut(node) {
            if t.confirm(now, from) {
                self.broadcast(node, &msg(), None);
            }
            return;
        }
        if self.nodes[idx].state != node_state::ALIVE {
            return;
        }
        if node == self.cfg.name {
            self.refute(idx, incarnation);
            return;
        }
        self.broadcast(node, &msg(), None);
        let st = &mut self.nodes[idx];
        st.incarnation = incarnation;
        st.state = node_state::SUSPECT;
        st.state_change = now;
        let n = self.nodes.len();
        let mut k = self.cfg.suspicion_mult.saturating_sub(2);
        if (n as i64) - 2 < k as i64 {
            k = 0;
        }
        let min = suspicion_timeout(self.cfg.suspicion_mult, n, self.cfg.probe_interval);
        let max = self.cfg.suspicion_max_timeout_mult as u64 * min;
        self.suspicions.insert(node.to_string(), Suspicion::new(now, from, k, min, max));
    }

    /// memberlist's deadNode, with the dead message's fields borrowed (an
    /// owned message is built only to broadcast). `from == node`: it left.
    fn dead_node(&mut self, now: u64, incarnation: u32, node: &str, from: &str, d: &mut impl Delegate) {
        let Some(idx) = self.index.get(node) else { return };
        if incarnation < self.nodes[idx].incarnation {
            return;
        }
        self.suspicions.remove(node);
        if self.nodes[idx].dead_or_left() {
            return;
        }
        let msg = || Message::Dead(Dead { incarnation, node: node.to_string(), from: from.to_string() });
        if node == self.cfg.name {
            if !self.left {
                self.refute(idx, incarnation);
                return;
            }
            let t = self.token();
            self.leave_token = Some(t);
            self.broadcast(node, &msg(), Some(t));
        } else {
            self.broadcast(node, &msg(), None);
        }
        let st = &mut self.nodes[idx];
        st.incarnation = incarnation;
        st.state = if node == from { node_state::LEFT } else { node_state::DEAD };
        st.state_change = now;
        self.notify_leave(now, idx, d);
    }

    /// memberlist's mergeState, over node states borrowed from the received
    /// bytes: an entry that changes nothing allocates nothing.
    fn merge_state(&mut self, now: u64, nodes: &[PushNodeStateRef<'_>], d: &mut impl Delegate) {
        // A node joining a large cluster learns it here: room for it at once
        // rather than growing by an eighth per new member.
        if self.nodes.capacity() < nodes.len() {
            self.nodes.reserve_exact(nodes.len() - self.nodes.len());
        }
        // The suspicions below come from this node; a borrow of `self.cfg`
        // would conflict with the `&mut self` calls, so one copy per merge.
        let me = self.cfg.name.clone();
        // Each member costs two cache misses on a node's cold state: its
        // index slot, then its record. Both are asked for ahead (the slot
        // twice as far), so that the misses of several members overlap.
        const AHEAD: usize = 8;
        let ids: Vec<Option<u32>> = nodes.iter().map(|r| crate::intern::find_node_id(&r.name)).collect();
        for (k, r) in nodes.iter().enumerate() {
            if let Some(slot) = ids.get(k + 2 * AHEAD).copied().flatten().and_then(|id| self.index.0.get(id as usize)) {
                crate::cache::prefetch(slot);
            }
            let ahead = ids.get(k + AHEAD).copied().flatten();
            if let Some(n) = ahead.and_then(|id| self.index.by_id(id)).and_then(|p| self.nodes.get(p)) {
                crate::cache::prefetch(n);
            }
            match r.state {
                node_state::ALIVE => self.alive_node(now, AliveView::of_push(r, ids[k]), false, d),
                node_state::LEFT => self.dead_node(now, r.incarnation, &r.name, &r.name, d),
                // A node the peer thinks dead is only suspected here.
                _ => self.suspect_node(now, r.incarnation, &r.name, &me),
            }
        }
    }

    // ---- input: packets -----------------------------------------------------

    /// A UDP datagram from `from`.
    pub fn handle_packet(&mut self, now: u64, from: SocketAddr, data: &[u8], d: &mut impl Delegate) {
        self.counters.packets_received += 1;
        self.counters.packet_bytes_received += data.len() as u64;
        let plain;
        let buf = match &self.keyring {
            Some(kr) => match crypto::decrypt_packet(kr, data) {
                Ok(p) => {
                    plain = p;
                    &plain[..]
                }
                Err(_) => {
                    self.counters.bad_packets += 1;
                    return;
                }
            },
            None => data,
        };
        match decode_packet(buf) {
            Ok((msgs, bad)) => {
                self.counters.bad_packets += bad as u64;
                for m in msgs {
                    self.handle_message(now, from, m, d);
                }
            }
            Err(_) => self.counters.bad_packets += 1,
        }
        self.collect_finished();
    }

    fn handle_message(&mut self, now: u64, from: SocketAddr, msg: Message, d: &mut impl Delegate) {
        match msg {
            Message::Ping(p) => self.handle_ping(from, p, d),
            Message::IndirectPing(ind) => self.handle_indirect_ping(now, from, ind, d),
            Message::Ack(a) => self.handle_ack(a.seq_no, d),
            Message::Nack(n) => {
                if let Some(p) = &mut self.probe {
                    if p.seq == n.seq_no {
                        p.nacks += 1;
                    }
                }
            }
            Message::Suspect(s) => self.suspect_node(now, s.incarnation, &s.node, &s.from),
            Message::Alive(a) => self.alive_node(now, AliveView::of(&a), false, d),
            Message::Dead(dm) => self.dead_node(now, dm.incarnation, &dm.node, &dm.from, d),
            Message::User(b) => d.notify_msg(now, &b),
            Message::PushPull(_) | Message::Err(_) => {}
        }
    }

    fn reply_addr(from: SocketAddr, addr: &[u8], port: u16) -> SocketAddr {
        match ip_from_bytes(addr) {
            Some(ip) if port != 0 => SocketAddr::new(ip, port),
            _ => from,
        }
    }

    fn handle_ping(&mut self, from: SocketAddr, p: Ping, d: &mut impl Delegate) {
        if !p.node.is_empty() && p.node != self.cfg.name {
            return;
        }
        let to = Self::reply_addr(from, &p.source_addr, p.source_port);
        let ack = Message::Ack(Ack { seq_no: p.seq_no, payload: Vec::new() });
        self.encode_and_send(to, &ack, d);
    }

    fn handle_indirect_ping(&mut self, now: u64, from: SocketAddr, ind: IndirectPing, d: &mut impl Delegate) {
        let Some(ip) = ip_from_bytes(&ind.target) else { return };
        let target = SocketAddr::new(ip, ind.port);
        let local = self.next_seq();
        let requester = Self::reply_addr(from, &ind.source_addr, ind.source_port);
        self.relays.insert(
            local,
            Relay { requester, seq: ind.seq_no, nack: ind.nack, deadline: now + self.cfg.probe_timeout },
        );
        let ping = Message::Ping(Ping {
            seq_no: local,
            node: ind.node,
            source_addr: ip_bytes(self.self_addr.ip()),
            source_port: self.self_addr.port(),
            source_node: self.cfg.name.clone(),
        });
        self.encode_and_send(target, &ping, d);
    }

    fn handle_ack(&mut self, seq: u32, d: &mut impl Delegate) {
        if let Some(p) = &self.probe {
            if p.seq == seq {
                // An ack before the probe timeout means we are healthy.
                if !p.indirect_sent {
                    self.apply_awareness(-1);
                }
                self.probe = None;
                return;
            }
        }
        if let Some(r) = self.relays.remove(&seq) {
            let ack = Message::Ack(Ack { seq_no: r.seq, payload: Vec::new() });
            self.encode_and_send(r.requester, &ack, d);
        }
    }

    // ---- input: streams -------------------------------------------------------

    /// How many bytes at the start of `buf` make one stream message: `Ok(None)`
    /// while more are needed. The transport frames TCP reads with this.
    pub fn stream_frame_len(&self, buf: &[u8]) -> Result<Option<usize>, SwimError> {
        match &self.keyring {
            Some(kr) => Ok(crypto::decrypt_stream(kr, buf)?.map(|(_, n)| n)),
            None => Ok(decode_stream_ref(buf, &mut Vec::new())?.map(|(_, n)| n)),
        }
    }

    /// Decrypts (into `plain`) and decodes one stream message; a push/pull
    /// comes out borrowed from `data`, `plain`, `ahead` (what unencrypted,
    /// compressed `data` decompresses to, when the caller has it) or
    /// `inflated` (where a compressed message is decompressed).
    fn open_stream<'a>(
        &self,
        data: &'a [u8],
        ahead: Option<&'a [u8]>,
        plain: &'a mut Vec<u8>,
        inflated: &'a mut Vec<u8>,
    ) -> Result<StreamMessage<'a>, SwimError> {
        // Tests check every plain byte a simulated sender hands over.
        if cfg!(any(test, debug_assertions)) && ahead.is_some() && self.keyring.is_none() {
            assert_eq!(inflate_stream(data).as_deref(), ahead, "a stream's plain bytes are not what it inflates to");
        }
        let (buf, ahead): (&'a [u8], _) = match &self.keyring {
            // A sender with a keyring sends no plain bytes.
            Some(kr) => match crypto::decrypt_stream(kr, data)? {
                Some((p, _)) => {
                    *plain = p;
                    (plain, None)
                }
                None => return Err(WireError::Truncated.into()),
            },
            None => (data, ahead),
        };
        match decode_stream_inflated(buf, ahead, inflated)? {
            Some((m, _)) => Ok(m),
            None => Err(WireError::Truncated.into()),
        }
    }

    /// This node's push/pull (its members and the delegate's state), encoded
    /// for a stream before compression: written from the member records, with
    /// no owned copy of each (a push/pull lists every member; at thousands of
    /// members the copies cost more than the encoding).
    fn plain_push_pull(&mut self, join: bool, d: &mut impl Delegate) -> Vec<u8> {
        let user_state = d.local_state(join);
        // Each member's address, read once, as the bytes and port it is sent as.
        let addrs: Vec<([u8; 16], usize, u16)> = self
            .nodes
            .iter()
            .map(|n| {
                let at = n.addr();
                let (ip, len) = ip_buf(at.ip());
                (ip, len, at.port())
            })
            .collect();
        let nodes = self.nodes.iter().zip(&addrs).map(|(n, (ip, len, port))| PushNodeStateRef {
            name: std::borrow::Cow::Borrowed(n.name()),
            addr: &ip[..*len],
            port: *port,
            meta: self.meta(n.id),
            incarnation: n.incarnation,
            state: n.state,
            vsn: &n.vsn,
        });
        encode_push_pull_stream(join, nodes, &user_state)
    }

    /// A push/pull's plain bytes, compressed (when configured) and sealed,
    /// while `beside` runs on this node. A push/pull mostly repeats the
    /// node's last one (every member; then the user state, whose clock may
    /// have moved), and LZW over every member was half of a push/pull's
    /// cost: the compression resumes the last one past their common start.
    /// With `parallel`, a large state is compressed on a thread of its own
    /// while `beside` runs (an answer merges the peer's state meanwhile), so
    /// that a long push/pull holds a simulation's other threads back for less.
    fn compress_push_pull(&mut self, plain: Vec<u8>, beside: impl FnOnce(&mut Self), parallel: bool) -> StreamBytes {
        if !self.cfg.enable_compression {
            beside(self);
            return self.seal_stream(plain, None);
        }
        let mut memo = std::mem::take(&mut self.push_pull_lzw);
        let z = if parallel && plain.len() >= PARALLEL_COMPRESS_MIN {
            std::thread::scope(|s| {
                let job = s.spawn(|| encode_compressed_resuming(&plain, &mut memo));
                beside(self);
                job.join().unwrap_or_else(|e| std::panic::resume_unwind(e))
            })
        } else {
            beside(self);
            encode_compressed_resuming(&plain, &mut memo)
        };
        self.push_pull_lzw = memo;
        self.seal_stream(z, Some(plain))
    }

    fn encode_stream_bytes(&mut self, msg: &Message) -> StreamBytes {
        let plain = encode_stream(msg, false);
        if self.cfg.enable_compression {
            let z = encode_compressed(&plain);
            self.seal_stream(z, Some(plain))
        } else {
            self.seal_stream(plain, None)
        }
    }

    /// Encrypts (with a keyring) and counts stream bytes about to be sent;
    /// `plain`: what `data` was compressed from, if it was.
    fn seal_stream(&mut self, mut data: Vec<u8>, mut plain: Option<Vec<u8>>) -> StreamBytes {
        if let Some(kr) = &self.keyring {
            data = crypto::encrypt_stream(kr, self.cfg.encryption_version, &data);
            plain = None;
        }
        self.counters.streams_sent += 1;
        self.counters.stream_bytes_sent += data.len() as u64;
        StreamBytes { data, plain }
    }

    /// One framed stream message received on an accepted TCP connection;
    /// returns the bytes to write back, if any.
    pub fn handle_stream(
        &mut self,
        now: u64,
        from: SocketAddr,
        data: &[u8],
        d: &mut impl Delegate,
    ) -> Result<Option<Vec<u8>>, SwimError> {
        Ok(self.handle_stream_inflated(now, from, data, None, d)?.map(|r| r.data))
    }

    /// [`Self::handle_stream`] given what `data` decompresses to, when the
    /// caller has it (`ahead`: a simulator passes the sender's
    /// [`StreamBytes::plain`]); the answer comes with its own.
    pub fn handle_stream_inflated(
        &mut self,
        now: u64,
        from: SocketAddr,
        data: &[u8],
        ahead: Option<&[u8]>,
        d: &mut impl Delegate,
    ) -> Result<Option<StreamBytes>, SwimError> {
        self.counters.streams_received += 1;
        self.counters.stream_bytes_received += data.len() as u64;
        let (mut plain, mut inflated) = (Vec::new(), Vec::new());
        let msg = self.open_stream(data, ahead, &mut plain, &mut inflated)?;
        let _ = from;
        let reply = match msg {
            StreamMessage::PushPull(pp) => {
                if pp.nodes.len() > MAX_PUSH_NODES {
                    return Err(SwimError::Unexpected("push/pull with too many nodes".into()));
                }
                // Memberlist answers with its state from before the merge.
                let plain = self.plain_push_pull(pp.join, d);
                let merge = |me: &mut Self| {
                    me.merge_state(now, &pp.nodes, d);
                    d.merge_remote_state(now, pp.user_state, pp.join);
                };
                Some(self.compress_push_pull(plain, merge, true))
            }
            StreamMessage::Other(Message::Ping(p)) => {
                if !p.node.is_empty() && p.node != self.cfg.name {
                    None
                } else {
                    let ack = Message::Ack(Ack { seq_no: p.seq_no, payload: Vec::new() });
                    Some(self.encode_stream_bytes(&ack))
                }
            }
            StreamMessage::Other(Message::User(b)) => {
                d.notify_msg(now, &b);
                None
            }
            StreamMessage::Other(other) => return Err(SwimError::Unexpected(format!("{other:?} on a stream"))),
        };
        self.collect_finished();
        Ok(reply)
    }

    /// The reply to a stream we opened (`None`: the connection failed or timed
    /// out). Returns true when it completed a push/pull.
    pub fn handle_stream_reply(
        &mut self,
        now: u64,
        token: u64,
        data: Option<&[u8]>,
        d: &mut impl Delegate,
    ) -> Result<bool, SwimError> {
        self.handle_stream_reply_inflated(now, token, data, None, d)
    }

    /// [`Self::handle_stream_reply`] given what the reply decompresses to
    /// (see [`Self::handle_stream_inflated`]).
    pub fn handle_stream_reply_inflated(
        &mut self,
        now: u64,
        token: u64,
        data: Option<&[u8]>,
        ahead: Option<&[u8]>,
        d: &mut impl Delegate,
    ) -> Result<bool, SwimError> {
        let Some(kind) = self.pending.remove(&token) else {
            return Err(SwimError::UnknownToken(token));
        };
        let Some(data) = data else { return Ok(false) };
        self.counters.stream_bytes_received += data.len() as u64;
        let (mut plain, mut inflated) = (Vec::new(), Vec::new());
        let msg = self.open_stream(data, ahead, &mut plain, &mut inflated)?;
        self.stream_reply_message(now, kind, msg, d)
    }

    /// [`Self::handle_stream_reply`] with the reply already decoded (`len`:
    /// its size on the wire). A simulator's warm start hands every node the
    /// same push/pull: decoding it once instead of N times.
    pub fn handle_stream_reply_message(
        &mut self,
        now: u64,
        token: u64,
        msg: &Message,
        len: usize,
        d: &mut impl Delegate,
    ) -> Result<bool, SwimError> {
        let Some(kind) = self.pending.remove(&token) else {
            return Err(SwimError::UnknownToken(token));
        };
        self.counters.stream_bytes_received += len as u64;
        match msg {
            Message::PushPull(pp) => {
                let view = PushPullRef {
                    join: pp.join,
                    nodes: pp.nodes.iter().map(PushNodeState::as_ref).collect(),
                    user_state: &pp.user_state,
                };
                self.stream_reply_message(now, kind, StreamMessage::PushPull(view), d)
            }
            other => self.stream_reply_message(now, kind, StreamMessage::Other(other.clone()), d),
        }
    }

    fn stream_reply_message(
        &mut self,
        now: u64,
        kind: Pending,
        msg: StreamMessage<'_>,
        d: &mut impl Delegate,
    ) -> Result<bool, SwimError> {
        match (kind, msg) {
            (Pending::PushPull, StreamMessage::PushPull(pp)) => {
                if pp.nodes.len() > MAX_PUSH_NODES {
                    return Err(SwimError::Unexpected("push/pull with too many nodes".into()));
                }
                self.merge_state(now, &pp.nodes, d);
                d.merge_remote_state(now, pp.user_state, pp.join);
                self.collect_finished();
                Ok(true)
            }
            (Pending::TcpPing { seq }, StreamMessage::Other(Message::Ack(a))) => {
                if let Some(p) = &mut self.probe {
                    if p.seq == seq && a.seq_no == seq {
                        p.tcp_contact = true;
                    }
                }
                Ok(false)
            }
            (_, other) => Err(SwimError::Unexpected(format!("{:?}", other.into_owned()))),
        }
    }

    // ---- API ------------------------------------------------------------------

    /// Starts a push/pull join with each address; returns one token per
    /// address (see `handle_stream_reply`).
    pub fn join(&mut self, now: u64, addrs: &[SocketAddr], d: &mut impl Delegate) -> Vec<u64> {
        self.followup_at = Some(now + JOIN_FOLLOWUP);
        let mut tokens = Vec::with_capacity(addrs.len());
        for &a in addrs {
            tokens.push(self.open_push_pull(a, true, d));
        }
        tokens
    }

    /// Asks for one push/pull with a random live member at `at` (or earlier if one
    /// is already due): layers above use it after a burst of their own broadcasts.
    pub fn schedule_push_pull(&mut self, at: u64) {
        self.followup_at = Some(self.followup_at.map_or(at, |f| f.min(at)));
    }

    /// Graceful leave: broadcasts our own death. `leave_finished` turns true
    /// once it went out (at once when nobody else is alive).
    pub fn leave(&mut self, now: u64, d: &mut impl Delegate) {
        if self.left {
            return;
        }
        self.left = true;
        let Some(idx) = self.index.get(&self.cfg.name) else { return };
        let inc = self.nodes[idx].incarnation;
        let name = self.cfg.name.clone();
        self.dead_node(now, inc, &name, &name, d);
        let any_alive = self.nodes.iter().any(|n| !n.dead_or_left() && n.name() != self.cfg.name);
        if !any_alive {
            self.leave_done = true;
        }
    }

    // ---- timers ---------------------------------------------------------------

    /// The earliest time `handle_timeout` has work to do.
    pub fn poll_timeout(&self) -> u64 {
        let mut t = self.next_probe.min(self.next_gossip).min(self.next_push_pull);
        if let Some(f) = self.followup_at {
            t = t.min(f);
        }
        if let Some(p) = &self.probe {
            t = t.min(if p.indirect_sent { p.deadline } else { p.timeout_at });
        }
        for r in self.relays.values() {
            t = t.min(r.deadline);
        }
        for s in self.suspicions.values() {
            t = t.min(s.deadline);
        }
        t
    }

    pub fn handle_timeout(&mut self, now: u64, d: &mut impl Delegate) {
        self.expire_relays(now, d);
        self.advance_probe(now, d);
        self.expire_suspicions(now, d);
        if now >= self.next_probe {
            while self.next_probe <= now {
                self.next_probe += self.cfg.probe_interval;
            }
            if self.probe.is_none() && !self.left {
                self.start_probe(now, d);
            }
        }
        if now >= self.next_gossip {
            while self.next_gossip <= now {
                self.next_gossip += self.cfg.gossip_interval;
            }
            self.gossip(now, d);
        }
        if self.followup_at.is_some_and(|f| now >= f) {
            self.followup_at = None;
            if !self.left {
                self.push_pull(d);
            }
        }
        if now >= self.next_push_pull {
            let iv = push_pull_scale(self.cfg.push_pull_interval, self.nodes.len());
            while self.next_push_pull <= now {
                self.next_push_pull += iv;
            }
            if !self.left {
                self.push_pull(d);
            }
        }
        self.collect_finished();
    }

    fn expire_relays(&mut self, now: u64, d: &mut impl Delegate) {
        let mut due: Vec<u32> = self.relays.iter().filter(|(_, r)| r.deadline <= now).map(|(&s, _)| s).collect();
        // In a fixed order (a hash map's is random): the same seed, the same run.
        due.sort_unstable();
        for s in due {
            if let Some(r) = self.relays.remove(&s) {
                if r.nack {
                    self.encode_and_send(r.requester, &Message::Nack(Nack { seq_no: r.seq }), d);
                }
            }
        }
    }

    fn expire_suspicions(&mut self, now: u64, d: &mut impl Delegate) {
        let mut due: Vec<String> =
            self.suspicions.iter().filter(|(_, s)| s.deadline <= now).map(|(n, _)| n.clone()).collect();
        // In a fixed order (a hash map's is random): the same seed, the same run.
        due.sort_unstable();
        let me = self.cfg.name.clone();
        for name in due {
            self.suspicions.remove(&name);
            let Some(idx) = self.index.get(&name) else { continue };
            if self.nodes[idx].state != node_state::SUSPECT {
                continue;
            }
            self.dead_node(now, self.nodes[idx].incarnation, &name, &me, d);
        }
    }

    fn random_nodes(&mut self, k: usize, exclude: impl Fn(&Node) -> bool) -> Vec<usize> {
        let n = self.nodes.len();
        let mut out: Vec<usize> = Vec::with_capacity(k);
        let mut i = 0;
        while i < 3 * n && out.len() < k {
            i += 1;
            let idx = self.rng.below(n);
            if exclude(&self.nodes[idx]) || out.contains(&idx) {
                continue;
            }
            out.push(idx);
        }
        out
    }

    fn reset_nodes(&mut self, now: u64) {
        let gttd = self.cfg.gossip_to_the_dead_time;
        let before = self.nodes.len();
        self.nodes.retain(|n| !(n.dead_or_left() && now.saturating_sub(n.state_change) > gttd));
        if self.nodes.len() != before {
            let names: std::collections::HashSet<&str> = self.nodes.iter().map(Node::name).collect();
            self.suspicions.retain(|k, _| names.contains(k.as_str()));
        }
        let mut nodes = std::mem::take(&mut self.nodes);
        self.rng.shuffle(&mut nodes);
        self.nodes = nodes;
        self.index.rebuild(&self.nodes);
        let index = &self.index;
        self.metas.retain(|&id, _| index.by_id(id).is_some());
    }

    fn start_probe(&mut self, now: u64, d: &mut impl Delegate) {
        let mut checked = 0;
        let idx = loop {
            if checked >= self.nodes.len() {
                return;
            }
            if self.probe_index >= self.nodes.len() {
                self.reset_nodes(now);
                self.probe_index = 0;
                checked += 1;
                continue;
            }
            let i = self.probe_index;
            self.probe_index += 1;
            let n = &self.nodes[i];
            if n.name() == self.cfg.name || n.dead_or_left() {
                checked += 1;
                continue;
            }
            break i;
        };
        self.counters.probes += 1;
        let seq = self.next_seq();
        let target = self.nodes[idx].clone();
        let ping = Message::Ping(Ping {
            seq_no: seq,
            node: target.name().to_string(),
            source_addr: ip_bytes(self.self_addr.ip()),
            source_port: self.self_addr.port(),
            source_node: self.cfg.name.clone(),
        });
        if target.state == node_state::ALIVE {
            self.encode_and_send(target.addr(), &ping, d);
        } else {
            let s = Message::Suspect(Suspect {
                incarnation: target.incarnation,
                node: target.name().to_string(),
                from: self.cfg.name.clone(),
            });
            let c = make_compound(&[encode_message(&ping), encode_message(&s)]);
            self.raw_send(target.addr(), None, c);
        }
        let interval = self.scaled(self.cfg.probe_interval);
        self.probe = Some(Probe {
            seq,
            target: target.name().to_string(),
            incarnation: target.incarnation,
            timeout_at: now + self.cfg.probe_timeout,
            deadline: now + interval,
            indirect_sent: false,
            expected_nacks: 0,
            nacks: 0,
            tcp_contact: false,
        });
    }

    fn advance_probe(&mut self, now: u64, d: &mut impl Delegate) {
        let Some(p) = self.probe.clone() else { return };
        if !p.indirect_sent && now >= p.timeout_at {
            let Some(tidx) = self.index.get(&p.target) else {
                self.probe = None;
                return;
            };
            let target = self.nodes[tidx].clone();
            let target_addr = target.addr();
            let me = self.cfg.name.clone();
            let peers = self.random_nodes(self.cfg.indirect_checks, |n| {
                n.name() == &*me || n.id == target.id || n.state != node_state::ALIVE
            });
            let mut expected = 0;
            for pi in peers {
                let peer = self.nodes[pi].clone();
                let nack = peer.pmax() >= 4;
                if nack {
                    expected += 1;
                }
                let ind = Message::IndirectPing(IndirectPing {
                    seq_no: p.seq,
                    target: ip_bytes(target_addr.ip()),
                    port: target_addr.port(),
                    node: target.name().to_string(),
                    nack,
                    source_addr: ip_bytes(self.self_addr.ip()),
                    source_port: self.self_addr.port(),
                    source_node: me.clone(),
                });
                self.encode_and_send(peer.addr(), &ind, d);
            }
            if !self.cfg.disable_tcp_pings && target.pmax() >= 3 {
                let t = self.token();
                self.pending.insert(t, Pending::TcpPing { seq: p.seq });
                let ping = Message::Ping(Ping {
                    seq_no: p.seq,
                    node: target.name().to_string(),
                    source_addr: ip_bytes(self.self_addr.ip()),
                    source_port: self.self_addr.port(),
                    source_node: me,
                });
                self.stream(target.addr(), &ping, Some(t));
            }
            if let Some(pr) = &mut self.probe {
                pr.indirect_sent = true;
                pr.expected_nacks = expected;
            }
            return;
        }
        if p.indirect_sent && now >= p.deadline {
            self.probe = None;
            if p.tcp_contact {
                return;
            }
            self.counters.probe_failures += 1;
            let delta = if p.expected_nacks > 0 {
                p.expected_nacks.saturating_sub(p.nacks) as i64
            } else {
                1
            };
            self.apply_awareness(delta);
            let me = self.cfg.name.clone();
            self.suspect_node(now, p.incarnation, &p.target, &me);
        }
    }

    fn gossip(&mut self, now: u64, d: &mut impl Delegate) {
        let me = self.cfg.name.clone();
        let gttd = self.cfg.gossip_to_the_dead_time;
        let targets = self.random_nodes(self.cfg.gossip_nodes, |n| {
            if n.name() == &*me {
                return true;
            }
            match n.state {
                node_state::ALIVE | node_state::SUSPECT => false,
                node_state::DEAD => now.saturating_sub(n.state_change) > gttd,
                _ => true,
            }
        });
        let avail = self.cfg.udp_buffer_size.saturating_sub(COMPOUND_HEADER_OVERHEAD + self.encrypt_overhead());
        for ti in targets {
            let msgs = self.get_broadcasts(COMPOUND_OVERHEAD, avail, d);
            if msgs.is_empty() {
                return;
            }
            let (addr, pmax) = (self.nodes[ti].addr(), self.nodes[ti].pmax());
            self.send_parts(addr, Some(pmax), msgs);
        }
    }

    fn push_pull(&mut self, d: &mut impl Delegate) {
        let me = self.cfg.name.clone();
        let pick = self.random_nodes(1, |n| n.name() == &*me || n.state != node_state::ALIVE);
        if let Some(&i) = pick.first() {
            let addr = self.nodes[i].addr();
            self.open_push_pull(addr, false, d);
        }
    }

    /// Sends this node's state to `to` on a new stream, whose reply is a
    /// push/pull to merge; returns the stream's token.
    fn open_push_pull(&mut self, to: SocketAddr, join: bool, d: &mut impl Delegate) -> u64 {
        let t = self.token();
        self.pending.insert(t, Pending::PushPull);
        let plain = self.plain_push_pull(join, d);
        let StreamBytes { data, plain } = self.compress_push_pull(plain, |_| {}, false);
        self.actions.push(Action::Stream { to, data, token: Some(t), plain });
        t
    }
}

#[cfg(test)]
impl Memberlist {
    /// Everything a merge can change, as text to compare two machines by:
    /// the member records in order (and their index), suspicions, own
    /// incarnation, awareness, the random generator, and the queued broadcasts
    /// in the order they would go out.
    pub(crate) fn state_for_test(&self) -> String {
        let mut susp: Vec<String> = self.suspicions.iter().map(|(k, v)| format!("{k}: {v:?}")).collect();
        susp.sort();
        let indexed: Vec<Option<usize>> = self.nodes.iter().map(|n| self.index.get(n.name())).collect();
        let queued = self.queue.clone().get(0, usize::MAX, u32::MAX, 1);
        let mut metas: Vec<(&str, &[u8])> =
            self.metas.iter().filter_map(|(&id, m)| Some((crate::intern::node_name(id)?, &m[..]))).collect();
        metas.sort();
        format!(
            "nodes {:?}\nnames {:?}\nmetas {metas:?}\nindexed {:?}\nsuspicions {susp:?}\nincarnation {} awareness {} left {} leave {:?} {}\nrng {:?}\nqueued {queued:?}",
            self.nodes,
            self.nodes.iter().map(Node::name).collect::<Vec<_>>(),
            indexed,
            self.incarnation,
            self.awareness,
            self.left,
            self.leave_token,
            self.leave_done,
            self.rng,
        )
    }
}

#[cfg(test)]
#[test]
fn member_record_is_32_bytes() {
    // N² of them in a simulated cluster of N nodes.
    assert_eq!(std::mem::size_of::<Node>(), 32);
}

/// A user (delegate) message as memberlist frames it: its type byte, then the bytes.
fn user_frame(msg: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(msg.len() + 1);
    b.push(msg_type::USER);
    b.extend_from_slice(msg);
    b
}

/// Splits parts into compound packets Go can read (at most 127 parts each).
fn compounds(parts: &[Vec<u8>]) -> Vec<Vec<u8>> {
    crate::wire::memberlist::make_compounds(parts)
}
