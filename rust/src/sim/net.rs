//! A discrete-event network: packets and streams between machines with
//! latency, jitter, loss and partitions, on a virtual microsecond clock.
//!
//! Events are ordered by (time, origin node, the origin's own counter): an
//! order that does not depend on which thread runs which node, and each
//! node draws its network randomness (jitter, loss) from its own generator.
//! With more than one thread the nodes are split into contiguous shards,
//! each with its own queue and thread. Nothing a node does reaches another
//! node sooner than the shortest delay between two nodes (the lookahead),
//! so a shard may run an event as long as no other shard can still send it
//! an earlier one: each shard promises the others a time before which it
//! sends nothing (conservative synchronisation, see `run_shard`). Every
//! node sees the same inputs in the same order, so a run is the same
//! whatever the number of threads.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::swim::rng::Rng;
use crate::swim::{Action, StreamBytes};

/// What the simulator needs from a protocol machine.
pub trait Machine: Send {
    /// What the machine reports to whoever drives the simulation besides
    /// its sends (the scenario's traces); `()` for none.
    type Note: Send;
    fn addr(&self) -> SocketAddr;
    fn on_packet(&mut self, now: u64, from: SocketAddr, data: &[u8]);
    /// A stream's bytes and, as `ahead`, what they decompress to when the
    /// sender gave that ([`StreamBytes::plain`]); returns the answer.
    fn on_stream(&mut self, now: u64, from: SocketAddr, data: &[u8], ahead: Option<&[u8]>) -> Option<StreamBytes>;
    fn on_stream_reply(&mut self, now: u64, token: u64, data: Option<&[u8]>, ahead: Option<&[u8]>);
    fn poll_timeout(&self) -> u64;
    fn on_timeout(&mut self, now: u64);
    fn take_actions(&mut self) -> Vec<Action>;
    /// Notes made since the last call (collected after every input).
    fn take_notes(&mut self) -> Vec<Self::Note> {
        Vec::new()
    }
}

#[derive(Debug, Clone)]
pub struct SimConfig {
    /// One-way latency and uniform jitter added to it, microseconds.
    pub latency: u64,
    pub jitter: u64,
    /// Probability that a UDP packet is dropped.
    pub loss: f64,
    /// How long a stream to an unreachable node takes to fail.
    pub stream_timeout: u64,
    pub seed: u64,
    /// Each node's uplink, bytes per second (0: unlimited): a packet leaves
    /// once the ones before it are out, so bursts queue.
    pub bandwidth: u64,
    /// Threads that run the nodes (1: the caller's alone). The run is the
    /// same for any number; with a zero latency it is always one.
    pub threads: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig { latency: 200, jitter: 100, loss: 0.0, stream_timeout: 1_000_000, seed: 1, bandwidth: 0, threads: 1 }
    }
}

/// An event in a queue, ordered by (time, origin, origin's sequence): the
/// heap holds the event itself, so scheduling is one push and no side table.
#[derive(Debug)]
struct Scheduled {
    at: u64,
    origin: u32,
    seq: u64,
    ev: Event,
}

impl Scheduled {
    fn key(&self) -> (u64, u32, u64) {
        (self.at, self.origin, self.seq)
    }
}

impl PartialEq for Scheduled {
    fn eq(&self, o: &Self) -> bool {
        self.key() == o.key()
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.key().cmp(&o.key())
    }
}

#[derive(Debug)]
enum Event {
    Timer { node: usize },
    Packet { to: usize, from: SocketAddr, data: Vec<u8> },
    // Boxed: every queued event is as large as the largest kind.
    Stream { to: usize, from: usize, data: Box<Payload>, token: Option<u64> },
    Reply { to: usize, token: u64, data: Option<Box<Payload>> },
}

/// A stream's bytes and, while few bytes are held so, the sender's plain
/// bytes they decompress to (`StreamBytes`): the receiver reads those
/// instead of decompressing (its `open_stream` checks them in tests).
#[derive(Debug)]
struct Payload {
    data: Vec<u8>,
    plain: Option<Vec<u8>>,
}

/// Only streams this large carry their plain bytes: decompressing a large
/// one (a push/pull, a bulk sync) is part of a long event that holds every
/// shard back; a small one is not worth holding. In tests every stream
/// carries them, so that the receiver checks them all.
const PLAIN_MIN: usize = if cfg!(test) { 1 } else { 16 << 10 };
/// Plain bytes held in flight at most, over all runs in the process: when
/// every node opens a push/pull at once they would double a large run's
/// memory, for nothing (long events at one time run in parallel anyway).
const PLAIN_BUDGET: usize = 128 << 20;
static PLAIN_HELD: AtomicUsize = AtomicUsize::new(0);

impl Payload {
    fn new(s: StreamBytes) -> Box<Self> {
        let plain = s.plain.filter(|p| {
            s.data.len() >= PLAIN_MIN
                && PLAIN_HELD
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |h| {
                        (h + p.len() <= PLAIN_BUDGET).then_some(h + p.len())
                    })
                    .is_ok()
        });
        Box::new(Payload { data: s.data, plain })
    }
}

impl Drop for Payload {
    fn drop(&mut self) {
        if let Some(p) = &self.plain {
            PLAIN_HELD.fetch_sub(p.len(), Ordering::Relaxed);
        }
    }
}

impl Event {
    /// The node the event happens at.
    fn node(&self) -> usize {
        match self {
            Event::Timer { node } => *node,
            Event::Packet { to, .. } | Event::Stream { to, .. } | Event::Reply { to, .. } => *to,
        }
    }
}

/// Per-node traffic counters kept by the network.
#[derive(Debug, Clone, Default)]
pub struct Traffic {
    pub packets_sent: u64,
    pub bytes_sent: u64,
    pub packets_received: u64,
    pub bytes_received: u64,
    pub dropped: u64,
    /// TCP exchanges opened and accepted (their bytes are in the byte counts).
    pub streams_sent: u64,
    pub streams_received: u64,
}

/// A node and what the network keeps for it; only its shard's thread
/// touches it during a run.
struct Slot<M> {
    m: Option<M>,
    /// The time of its one live timer event (others in the queue are stale).
    timer_at: u64,
    traffic: Traffic,
    /// When its uplink is free again (with a bandwidth limit).
    tx_free: u64,
    /// Its jitter and loss draws.
    rng: Rng,
    /// Events it has scheduled: the last part of their order.
    sent: u64,
}

/// The network's shape, read by every shard during a run and changed only
/// between runs.
struct Net {
    cfg: SimConfig,
    by_addr: HashMap<SocketAddr, usize>,
    addrs: Vec<SocketAddr>,
    up: Vec<bool>,
    /// Group of each node for partitions: traffic flows only within a group.
    group: Vec<u32>,
    /// Directed pairs (from, to) that are blocked.
    blocked: HashSet<(usize, usize)>,
}

impl Net {
    fn reachable(&self, from: usize, to: usize) -> bool {
        self.group[from] == self.group[to] && !self.blocked.contains(&(from, to)) && self.up[to]
    }

    /// The shortest time between a node acting and another node hearing of
    /// it: how far a shard's promise reaches past its earliest event.
    fn lookahead(&self) -> u64 {
        self.cfg.latency.min(self.cfg.stream_timeout)
    }
}

type Queue = BinaryHeap<Reverse<Scheduled>>;
/// Notes of a run: (time, node, what the node noted then).
type Notes<N> = Vec<(u64, usize, Vec<N>)>;

/// One thread's part of a run: the nodes `own` (a range of indexes, the
/// first of `slots` being node `base`) and their queue. Events for other
/// nodes wait in `out` until they are posted to their shard.
struct Shard<'a, M: Machine> {
    base: usize,
    slots: &'a mut [Slot<M>],
    own: std::ops::Range<usize>,
    heap: &'a mut Queue,
    out: Vec<Scheduled>,
    net: &'a Net,
    notes: Notes<M::Note>,
    events: u64,
}

impl<M: Machine> Shard<'_, M> {
    fn slot(&mut self, i: usize) -> &mut Slot<M> {
        &mut self.slots[i - self.base]
    }

    fn schedule(&mut self, origin: usize, at: u64, ev: Event) {
        let s = self.slot(origin);
        s.sent += 1;
        let item = Scheduled { at, origin: origin as u32, seq: s.sent, ev };
        if self.own.contains(&item.ev.node()) {
            self.heap.push(Reverse(item));
        } else {
            self.out.push(item);
        }
    }

    fn delay(&mut self, i: usize) -> u64 {
        let (latency, jitter) = (self.net.cfg.latency, self.net.cfg.jitter);
        let j = if jitter > 0 { self.slot(i).rng.next_u64() % (jitter + 1) } else { 0 };
        latency + j
    }

    /// Serialisation on node `i`'s uplink: how long `bytes` wait to be out.
    fn uplink(&mut self, i: usize, now: u64, bytes: usize) -> u64 {
        let bw = self.net.cfg.bandwidth;
        if bw == 0 {
            return 0;
        }
        let s = self.slot(i);
        let start = s.tx_free.max(now);
        let done = start + (bytes as u64 * 1_000_000).div_ceil(bw);
        s.tx_free = done;
        done - now
    }

    /// Collects what node `i` did with an input at `now`: its sends, its
    /// next timer and its notes.
    fn after_input(&mut self, i: usize, now: u64) {
        let net = self.net;
        let s = self.slot(i);
        let Some(m) = s.m.as_mut() else { return };
        let actions = m.take_actions();
        let notes = m.take_notes();
        let next = m.poll_timeout().max(now);
        let from_addr = m.addr();
        let rearm = next < s.timer_at || s.timer_at <= now;
        if rearm {
            s.timer_at = next;
        }
        if !notes.is_empty() {
            self.notes.push((now, i, notes));
        }
        if rearm {
            self.schedule(i, next, Event::Timer { node: i });
        }
        for a in actions {
            match a {
                Action::Packet { to, data } => {
                    let loss = net.cfg.loss;
                    let s = self.slot(i);
                    s.traffic.packets_sent += 1;
                    s.traffic.bytes_sent += data.len() as u64;
                    let Some(&j) = net.by_addr.get(&to) else { continue };
                    let lost = loss > 0.0 && (s.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= loss;
                    if lost || !net.reachable(i, j) {
                        s.traffic.dropped += 1;
                        continue;
                    }
                    let at = now + self.uplink(i, now, data.len()) + self.delay(i);
                    self.schedule(i, at, Event::Packet { to: j, from: from_addr, data });
                }
                Action::Stream { to, data, token, plain } => {
                    let s = self.slot(i);
                    s.traffic.streams_sent += 1;
                    s.traffic.bytes_sent += data.len() as u64;
                    match net.by_addr.get(&to).copied() {
                        Some(j) if net.reachable(i, j) => {
                            // A TCP exchange: connection set-up plus the send.
                            let at = now + self.uplink(i, now, data.len()) + 2 * self.delay(i);
                            let data = Payload::new(StreamBytes { data, plain });
                            self.schedule(i, at, Event::Stream { to: j, from: i, data, token });
                        }
                        _ => {
                            if let Some(t) = token {
                                let at = now + net.cfg.stream_timeout;
                                self.schedule(i, at, Event::Reply { to: i, token: t, data: None });
                            }
                        }
                    }
                }
            }
        }
    }

    /// The time of this shard's next event.
    fn next_at(&self) -> u64 {
        self.heap.peek().map_or(u64::MAX, |Reverse(s)| s.at)
    }

    /// Processes this shard's events before `bound`, in order.
    fn run(&mut self, bound: u64) {
        while self.heap.peek().is_some_and(|Reverse(s)| s.at < bound) {
            let Some(Reverse(Scheduled { at, ev, .. })) = self.heap.pop() else { break };
            self.events += 1;
            self.handle(at, ev);
        }
    }

    fn handle(&mut self, at: u64, ev: Event) {
        let net = self.net;
        match ev {
            Event::Timer { node } => {
                let s = self.slot(node);
                if s.timer_at != at {
                    return;
                }
                s.timer_at = u64::MAX;
                if let Some(m) = s.m.as_mut() {
                    m.on_timeout(at);
                    self.after_input(node, at);
                }
            }
            Event::Packet { to, from, data } => {
                let s = self.slot(to);
                if let Some(m) = s.m.as_mut() {
                    s.traffic.packets_received += 1;
                    s.traffic.bytes_received += data.len() as u64;
                    m.on_packet(at, from, &data);
                    self.after_input(to, at);
                }
            }
            Event::Stream { to, from, data, token } => {
                if !net.up[from] {
                    return;
                }
                let from_addr = net.addrs[from];
                let s = self.slot(to);
                let reply = match s.m.as_mut() {
                    Some(m) => {
                        s.traffic.streams_received += 1;
                        s.traffic.bytes_received += data.data.len() as u64;
                        let r = m.on_stream(at, from_addr, &data.data, data.plain.as_deref());
                        self.after_input(to, at);
                        r
                    }
                    None => None,
                };
                if let Some(t) = token {
                    if let Some(r) = &reply {
                        self.slot(to).traffic.bytes_sent += r.data.len() as u64;
                    }
                    let ok = net.reachable(to, from);
                    let up = reply.as_ref().map_or(0, |r| self.uplink(to, at, r.data.len()));
                    let at = at + if ok { up + self.delay(to) } else { net.cfg.stream_timeout };
                    let data = if ok { reply.map(Payload::new) } else { None };
                    self.schedule(to, at, Event::Reply { to: from, token: t, data });
                }
            }
            Event::Reply { to, token, data } => {
                let s = self.slot(to);
                if let Some(m) = s.m.as_mut() {
                    if let Some(d) = &data {
                        s.traffic.bytes_received += d.data.len() as u64;
                    }
                    let ahead = data.as_ref().and_then(|d| d.plain.as_deref());
                    m.on_stream_reply(at, token, data.as_ref().map(|d| &d.data[..]), ahead);
                    self.after_input(to, at);
                }
            }
        }
    }
}

/// What one shard tells the others, in a cache line of its own (shards
/// that wrote next to each other's flags slowed each other down).
#[repr(align(128))]
struct Lane {
    /// No event the shard sends from now on is earlier than this.
    promise: AtomicU64,
    /// The shard is waiting for a promise, and whether it is asleep (it
    /// spins briefly, then parks so that a busy machine's cores go to
    /// work, not to spinning).
    waiting: AtomicBool,
    parked: AtomicBool,
    thread: std::sync::OnceLock<std::thread::Thread>,
}

/// Events sent to one shard, and how many (read without the lock).
#[repr(align(128))]
struct Inbox {
    posted: AtomicUsize,
    mail: Mutex<Vec<Scheduled>>,
}

/// What the shards of a parallel run share.
struct Exchange {
    lanes: Vec<Lane>,
    inboxes: Vec<Inbox>,
    failed: AtomicBool,
}

impl Exchange {
    fn new(promises: impl Iterator<Item = u64>) -> Self {
        let lanes: Vec<Lane> = promises
            .map(|p| Lane {
                promise: AtomicU64::new(p),
                waiting: AtomicBool::new(false),
                parked: AtomicBool::new(false),
                thread: std::sync::OnceLock::new(),
            })
            .collect();
        let inboxes = (0..lanes.len()).map(|_| Inbox { posted: AtomicUsize::new(0), mail: Mutex::new(Vec::new()) }).collect();
        Exchange { lanes, inboxes, failed: AtomicBool::new(false) }
    }

    /// The earliest event the other shards may still send shard `k`.
    fn safe(&self, k: usize) -> u64 {
        let others = self.lanes.iter().enumerate().filter(|(o, _)| *o != k);
        others.map(|(_, l)| l.promise.load(Ordering::SeqCst)).min().unwrap_or(u64::MAX)
    }

    fn others_waiting(&self, k: usize) -> bool {
        self.lanes.iter().enumerate().any(|(o, l)| o != k && l.waiting.load(Ordering::Relaxed))
    }

    fn promise(&self, k: usize, p: u64) {
        if self.lanes[k].promise.swap(p, Ordering::SeqCst) == p {
            return;
        }
        for (o, l) in self.lanes.iter().enumerate() {
            if o != k && l.parked.load(Ordering::SeqCst) {
                if let Some(t) = l.thread.get() {
                    t.unpark();
                }
            }
        }
    }

    fn post(&self, d: usize, items: &mut Vec<Scheduled>) {
        let n = items.len();
        self.inboxes[d].mail.lock().unwrap_or_else(|e| e.into_inner()).append(items);
        self.inboxes[d].posted.fetch_add(n, Ordering::Release);
    }

    fn take(&self, k: usize, heap: &mut Queue) {
        let b = &self.inboxes[k];
        if b.posted.load(Ordering::Acquire) > 0 {
            let mut mail = b.mail.lock().unwrap_or_else(|e| e.into_inner());
            b.posted.fetch_sub(mail.len(), Ordering::Relaxed);
            heap.extend(mail.drain(..).map(Reverse));
        }
    }
}

/// How many times a waiting shard spins (~50 µs) before it parks.
const SPINS: u32 = 1_000;
/// Events a shard runs between promises while no other shard waits.
const BATCH: u32 = 16;

/// Shard `k`'s side of a parallel run up to `until` (inclusive), by
/// conservative synchronisation: it runs its events only while no other
/// shard can still send it an earlier one (their promises), then posts
/// what it sent and promises its earliest possible event plus the
/// lookahead. A shard waits only when it is a lookahead ahead of another,
/// so uneven stretches even out instead of holding every shard back.
fn run_shard<M: Machine>(sh: &mut Shard<'_, M>, k: usize, x: &Exchange, bounds: &[usize], until: u64) {
    struct FailOnPanic<'a>(&'a AtomicBool);
    impl Drop for FailOnPanic<'_> {
        fn drop(&mut self) {
            if std::thread::panicking() {
                self.0.store(true, Ordering::Relaxed);
            }
        }
    }
    let _guard = FailOnPanic(&x.failed);
    let me = &x.lanes[k];
    let _ = me.thread.set(std::thread::current());
    let look = sh.net.lookahead().max(1);
    let end = until.saturating_add(1);
    let mut post: Vec<Vec<Scheduled>> = (0..x.lanes.len()).map(|_| Vec::new()).collect();
    let mut spins = 0u32;
    loop {
        let safe = x.safe(k);
        // Mail posted before those promises is in the box now.
        x.take(k, sh.heap);
        let next = sh.next_at();
        let lb = next.min(safe);
        x.promise(k, if lb >= end { u64::MAX } else { lb.saturating_add(look) });
        if lb >= end {
            return;
        }
        let bound = safe.min(end);
        if next < bound {
            if spins > 0 {
                spins = 0;
                me.waiting.store(false, Ordering::Relaxed);
            }
            // Every event before `bound` is safe; a waiting shard gets a
            // fresh promise after each one.
            let mut ran = 0;
            while let Some(Reverse(Scheduled { at, ev, .. })) = sh.heap.pop() {
                sh.events += 1;
                sh.handle(at, ev);
                ran += 1;
                if sh.next_at() >= bound || ran >= BATCH || x.others_waiting(k) {
                    break;
                }
            }
            for item in sh.out.drain(..) {
                post[shard_of(bounds, item.ev.node())].push(item);
            }
            for (d, items) in post.iter_mut().enumerate() {
                if !items.is_empty() {
                    x.post(d, items);
                }
            }
        } else {
            if x.failed.load(Ordering::Relaxed) {
                return;
            }
            if spins == 0 {
                me.waiting.store(true, Ordering::Relaxed);
            }
            if spins < SPINS {
                spins += 1;
                std::hint::spin_loop();
            } else {
                // Asleep only if no promise moved since we looked (a shard
                // that moves one after this flag is up wakes us).
                me.parked.store(true, Ordering::SeqCst);
                if x.safe(k) == safe && !x.failed.load(Ordering::SeqCst) {
                    std::thread::park_timeout(std::time::Duration::from_millis(10));
                }
                me.parked.store(false, Ordering::SeqCst);
            }
        }
    }
}

/// The shard whose range (`bounds[k]..bounds[k + 1]`) holds node `i`.
fn shard_of(bounds: &[usize], i: usize) -> usize {
    bounds.partition_point(|&b| b <= i).saturating_sub(1).min(bounds.len().saturating_sub(2))
}

pub struct Sim<M: Machine> {
    pub now: u64,
    net: Net,
    slots: Vec<Slot<M>>,
    /// One queue per shard; shard k runs nodes `bounds[k]..bounds[k + 1]`.
    heaps: Vec<Queue>,
    bounds: Vec<usize>,
    /// Events scheduled between runs, queued by the next run.
    pending: Vec<Scheduled>,
    notes: Notes<M::Note>,
    pub events_processed: u64,
}

impl<M: Machine> Sim<M> {
    pub fn new(cfg: SimConfig) -> Self {
        Sim {
            now: 0,
            net: Net {
                cfg,
                by_addr: HashMap::new(),
                addrs: Vec::new(),
                up: Vec::new(),
                group: Vec::new(),
                blocked: HashSet::new(),
            },
            slots: Vec::new(),
            heaps: vec![Queue::new()],
            bounds: vec![0, 0],
            pending: Vec::new(),
            notes: Vec::new(),
            events_processed: 0,
        }
    }

    pub fn config_mut(&mut self) -> &mut SimConfig {
        &mut self.net.cfg
    }

    /// An input between runs (an add, an API call, a restart): node `i`'s
    /// events wait in `pending` (a shard that owns no node) for the next run.
    fn after_input(&mut self, i: usize) {
        let mut sh = Shard {
            base: 0,
            slots: &mut self.slots,
            own: 0..0,
            heap: &mut self.heaps[0],
            out: std::mem::take(&mut self.pending),
            net: &self.net,
            notes: std::mem::take(&mut self.notes),
            events: 0,
        };
        sh.after_input(i, self.now);
        (self.pending, self.notes) = (sh.out, sh.notes);
    }

    /// Adds a machine; returns its index.
    pub fn add(&mut self, m: M) -> usize {
        let i = self.slots.len();
        self.net.by_addr.insert(m.addr(), i);
        self.net.addrs.push(m.addr());
        self.net.up.push(true);
        self.net.group.push(0);
        // Each node's own stream of network draws, so that they do not depend
        // on the order in which nodes send.
        let rng = Rng::new((self.net.cfg.seed ^ 0x5151).wrapping_add((i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)));
        self.slots.push(Slot { m: Some(m), timer_at: u64::MAX, traffic: Traffic::default(), tx_free: 0, rng, sent: 0 });
        self.after_input(i);
        i
    }

    /// Replaces node `i` (a restart) or brings it back.
    pub fn replace(&mut self, i: usize, m: M) {
        self.net.by_addr.insert(m.addr(), i);
        self.net.addrs[i] = m.addr();
        self.net.up[i] = true;
        let s = &mut self.slots[i];
        s.m = Some(m);
        s.timer_at = u64::MAX;
        self.after_input(i);
    }

    /// Crashes node `i`: it stops at once, with no goodbye.
    pub fn crash(&mut self, i: usize) -> Option<M> {
        self.net.up[i] = false;
        let s = &mut self.slots[i];
        s.timer_at = u64::MAX;
        s.m.take()
    }

    pub fn node(&self, i: usize) -> Option<&M> {
        self.slots.get(i).and_then(|s| s.m.as_ref())
    }

    pub fn node_mut(&mut self, i: usize) -> Option<&mut M> {
        self.slots.get_mut(i).and_then(|s| s.m.as_mut())
    }

    /// Runs `f` on node `i` as an input at the current time (an API call).
    pub fn with<R>(&mut self, i: usize, f: impl FnOnce(&mut M, u64) -> R) -> Option<R> {
        let now = self.now;
        let r = self.slots.get_mut(i)?.m.as_mut().map(|m| f(m, now));
        self.after_input(i);
        r
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Node `i`'s traffic counters.
    pub fn traffic(&self, i: usize) -> &Traffic {
        &self.slots[i].traffic
    }

    /// Every node's traffic counters, in node order.
    pub fn traffics(&self) -> impl Iterator<Item = &Traffic> {
        self.slots.iter().map(|s| &s.traffic)
    }

    /// The machines' notes since the last call, as (time, node, notes), in
    /// time order and, at one time, in node order (each node's in the order
    /// it made them): the same for any number of threads.
    pub fn take_notes(&mut self) -> Notes<M::Note> {
        let mut v = std::mem::take(&mut self.notes);
        v.sort_by_key(|(t, i, _)| (*t, *i));
        v
    }

    /// Puts nodes into partition groups; only nodes of one group talk.
    pub fn set_groups(&mut self, groups: &[u32]) {
        for (g, v) in self.net.group.iter_mut().zip(groups) {
            *g = *v;
        }
    }

    pub fn heal(&mut self) {
        self.net.group.iter_mut().for_each(|g| *g = 0);
        self.net.blocked.clear();
    }

    pub fn block(&mut self, from: usize, to: usize) {
        self.net.blocked.insert((from, to));
    }

    /// Whether packets flow both ways between two nodes (ignoring loss and
    /// whether they are up).
    pub fn connected(&self, a: usize, b: usize) -> bool {
        let n = &self.net;
        n.group[a] == n.group[b] && !n.blocked.contains(&(a, b)) && !n.blocked.contains(&(b, a))
    }

    /// Events waiting in the queues.
    pub fn pending_events(&self) -> usize {
        self.heaps.iter().map(BinaryHeap::len).sum::<usize>() + self.pending.len()
    }

    /// The time of the next event, if any.
    pub fn next_event_at(&self) -> Option<u64> {
        let queued = self.heaps.iter().filter_map(|h| h.peek().map(|Reverse(s)| s.at));
        queued.chain(self.pending.iter().map(|s| s.at)).min()
    }

    /// The threads a run uses: the configured number, at most one per
    /// node, and one when there is no lookahead.
    pub fn threads(&self) -> usize {
        if self.net.lookahead() == 0 {
            1
        } else {
            self.net.cfg.threads.clamp(1, self.slots.len().max(1))
        }
    }

    /// Splits the nodes into as many shards as threads (one with no
    /// lookahead), re-queueing events if the split changed, and queues the
    /// events scheduled since the last run.
    fn partition(&mut self) {
        let n = self.slots.len();
        let k = self.threads();
        let bounds: Vec<usize> = (0..=k).map(|s| s * n / k).collect();
        if bounds != self.bounds {
            let old = std::mem::replace(&mut self.heaps, (0..k).map(|_| Queue::new()).collect());
            self.pending.extend(old.into_iter().flat_map(|h| h.into_vec().into_iter().map(|Reverse(s)| s)));
            self.bounds = bounds;
        }
        for item in self.pending.drain(..) {
            let k = shard_of(&self.bounds, item.ev.node());
            self.heaps[k].push(Reverse(item));
        }
    }

    /// Processes every event up to and including time `until`.
    pub fn run_until(&mut self, until: u64) {
        self.partition();
        if self.heaps.len() == 1 {
            let mut sh = Shard {
                base: 0,
                slots: &mut self.slots,
                own: 0..usize::MAX,
                heap: &mut self.heaps[0],
                out: Vec::new(),
                net: &self.net,
                notes: Vec::new(),
                events: 0,
            };
            sh.run(until.saturating_add(1));
            self.events_processed += sh.events;
            self.notes.append(&mut sh.notes);
        } else {
            self.run_parallel(until);
        }
        self.now = self.now.max(until);
    }

    fn run_parallel(&mut self, until: u64) {
        let k = self.heaps.len();
        // Every event from now on is at or after the earliest queued one, so
        // nothing reaches a shard before that plus the lookahead.
        let look = self.net.lookahead().max(1);
        let first = self.heaps.iter().filter_map(|h| h.peek().map(|Reverse(s)| s.at)).min().unwrap_or(u64::MAX);
        let x = Exchange::new(self.heaps.iter().map(|h| {
            let next = h.peek().map_or(u64::MAX, |Reverse(s)| s.at);
            next.min(first.saturating_add(look)).saturating_add(look)
        }));
        let (net, bounds) = (&self.net, &self.bounds);
        let mut shards: Vec<Shard<'_, M>> = Vec::with_capacity(k);
        let mut rest: &mut [Slot<M>] = &mut self.slots;
        for (s, heap) in self.heaps.iter_mut().enumerate() {
            let (mine, more) = std::mem::take(&mut rest).split_at_mut(bounds[s + 1] - bounds[s]);
            rest = more;
            shards.push(Shard {
                base: bounds[s],
                slots: mine,
                own: bounds[s]..bounds[s + 1],
                heap,
                out: Vec::new(),
                net,
                notes: Vec::new(),
                events: 0,
            });
        }
        std::thread::scope(|sc| {
            let mut it = shards.iter_mut().enumerate();
            let first = it.next();
            let handles: Vec<_> = it
                .map(|(s, sh)| {
                    let x = &x;
                    sc.spawn(move || run_shard(sh, s, x, bounds, until))
                })
                .collect();
            if let Some((s, sh)) = first {
                run_shard(sh, s, &x, bounds, until);
            }
            for h in handles {
                if let Err(e) = h.join() {
                    std::panic::resume_unwind(e);
                }
            }
        });
        for mut sh in shards {
            self.events_processed += sh.events;
            self.notes.append(&mut sh.notes);
        }
        // Events sent for after `until` that their shard had not taken.
        for (k, b) in x.inboxes.into_iter().enumerate() {
            let items = b.mail.into_inner().unwrap_or_else(|e| e.into_inner());
            self.heaps[k].extend(items.into_iter().map(Reverse));
        }
    }

    /// Runs until `cond` holds (checked every `step`) or `deadline`; returns
    /// whether it held.
    pub fn run_until_cond(&mut self, step: u64, deadline: u64, mut cond: impl FnMut(&Self) -> bool) -> bool {
        loop {
            if cond(self) {
                return true;
            }
            if self.now >= deadline {
                return false;
            }
            let t = (self.now + step).min(deadline);
            self.run_until(t);
        }
    }
}
