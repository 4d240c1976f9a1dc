//! A discrete-event network: packets and streams between machines with
//! latency, jitter, loss and partitions, on a virtual microsecond clock.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::net::SocketAddr;

use crate::swim::rng::Rng;
use crate::swim::Action;

/// What the simulator needs from a protocol machine.
pub trait Machine {
    fn addr(&self) -> SocketAddr;
    fn on_packet(&mut self, now: u64, from: SocketAddr, data: &[u8]);
    fn on_stream(&mut self, now: u64, from: SocketAddr, data: &[u8]) -> Option<Vec<u8>>;
    fn on_stream_reply(&mut self, now: u64, token: u64, data: Option<&[u8]>);
    fn poll_timeout(&self) -> u64;
    fn on_timeout(&mut self, now: u64);
    fn take_actions(&mut self) -> Vec<Action>;
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
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig { latency: 200, jitter: 100, loss: 0.0, stream_timeout: 1_000_000, seed: 1, bandwidth: 0 }
    }
}

/// An event in the queue, ordered by (time, sequence): the heap holds the
/// event itself, so scheduling is one push and no side table.
#[derive(Debug)]
struct Scheduled {
    at: u64,
    seq: u64,
    ev: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
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
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

#[derive(Debug)]
enum Event {
    Timer { node: usize },
    Packet { to: usize, from: SocketAddr, data: Vec<u8> },
    Stream { to: usize, from: usize, data: Vec<u8>, token: Option<u64> },
    Reply { to: usize, token: u64, data: Option<Vec<u8>> },
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

pub struct Sim<M: Machine> {
    pub now: u64,
    cfg: SimConfig,
    rng: Rng,
    nodes: Vec<Option<M>>,
    by_addr: HashMap<SocketAddr, usize>,
    timer_at: Vec<u64>,
    heap: BinaryHeap<Reverse<Scheduled>>,
    seq: u64,
    /// Group of each node for partitions: traffic flows only within a group.
    group: Vec<u32>,
    /// Directed pairs (from, to) that are blocked.
    blocked: HashSet<(usize, usize)>,
    pub traffic: Vec<Traffic>,
    pub events_processed: u64,
    /// When each node's uplink is free again (with a bandwidth limit).
    tx_free: Vec<u64>,
}

impl<M: Machine> Sim<M> {
    pub fn new(cfg: SimConfig) -> Self {
        let rng = Rng::new(cfg.seed ^ 0x5151);
        Sim {
            now: 0,
            cfg,
            rng,
            nodes: Vec::new(),
            by_addr: HashMap::new(),
            timer_at: Vec::new(),
            heap: BinaryHeap::new(),
            seq: 0,
            group: Vec::new(),
            blocked: HashSet::new(),
            traffic: Vec::new(),
            events_processed: 0,
            tx_free: Vec::new(),
        }
    }

    pub fn config_mut(&mut self) -> &mut SimConfig {
        &mut self.cfg
    }

    /// Adds a machine; returns its index.
    pub fn add(&mut self, m: M) -> usize {
        let i = self.nodes.len();
        self.by_addr.insert(m.addr(), i);
        self.nodes.push(Some(m));
        self.timer_at.push(u64::MAX);
        self.group.push(0);
        self.traffic.push(Traffic::default());
        self.tx_free.push(0);
        self.after_input(i);
        i
    }

    /// Replaces node `i` (a restart) or brings it back.
    pub fn replace(&mut self, i: usize, m: M) {
        self.by_addr.insert(m.addr(), i);
        self.nodes[i] = Some(m);
        self.timer_at[i] = u64::MAX;
        self.after_input(i);
    }

    /// Crashes node `i`: it stops at once, with no goodbye.
    pub fn crash(&mut self, i: usize) -> Option<M> {
        self.timer_at[i] = u64::MAX;
        self.nodes[i].take()
    }

    pub fn node(&self, i: usize) -> Option<&M> {
        self.nodes.get(i).and_then(|n| n.as_ref())
    }

    pub fn node_mut(&mut self, i: usize) -> Option<&mut M> {
        self.nodes.get_mut(i).and_then(|n| n.as_mut())
    }

    /// Runs `f` on node `i` as an input at the current time (an API call).
    pub fn with<R>(&mut self, i: usize, f: impl FnOnce(&mut M, u64) -> R) -> Option<R> {
        let now = self.now;
        let r = self.nodes.get_mut(i)?.as_mut().map(|m| f(m, now));
        self.after_input(i);
        r
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Puts nodes into partition groups; only nodes of one group talk.
    pub fn set_groups(&mut self, groups: &[u32]) {
        for (g, v) in self.group.iter_mut().zip(groups) {
            *g = *v;
        }
    }

    pub fn heal(&mut self) {
        self.group.iter_mut().for_each(|g| *g = 0);
        self.blocked.clear();
    }

    pub fn block(&mut self, from: usize, to: usize) {
        self.blocked.insert((from, to));
    }

    /// Whether packets flow both ways between two nodes (ignoring loss and
    /// whether they are up).
    pub fn connected(&self, a: usize, b: usize) -> bool {
        self.group[a] == self.group[b] && !self.blocked.contains(&(a, b)) && !self.blocked.contains(&(b, a))
    }

    /// Events waiting in the queue.
    pub fn pending_events(&self) -> usize {
        self.heap.len()
    }

    /// The time of the next event, if any.
    pub fn next_event_at(&self) -> Option<u64> {
        self.heap.peek().map(|Reverse(s)| s.at)
    }

    fn reachable(&self, from: usize, to: usize) -> bool {
        self.group[from] == self.group[to] && !self.blocked.contains(&(from, to)) && self.nodes[to].is_some()
    }

    fn push(&mut self, at: u64, ev: Event) {
        self.seq += 1;
        self.heap.push(Reverse(Scheduled { at, seq: self.seq, ev }));
    }

    /// Serialisation on node `i`'s uplink: how long `bytes` wait to be out.
    fn uplink(&mut self, i: usize, bytes: usize) -> u64 {
        if self.cfg.bandwidth == 0 {
            return 0;
        }
        let start = self.tx_free[i].max(self.now);
        let done = start + (bytes as u64 * 1_000_000).div_ceil(self.cfg.bandwidth);
        self.tx_free[i] = done;
        done - self.now
    }

    fn delay(&mut self) -> u64 {
        let j = if self.cfg.jitter > 0 { self.rng.next_u64() % (self.cfg.jitter + 1) } else { 0 };
        self.cfg.latency + j
    }

    fn after_input(&mut self, i: usize) {
        let Some(m) = self.nodes[i].as_mut() else { return };
        let actions = m.take_actions();
        let next = m.poll_timeout().max(self.now);
        if next < self.timer_at[i] || self.timer_at[i] <= self.now {
            self.timer_at[i] = next;
            self.push(next, Event::Timer { node: i });
        }
        let from_addr = self.nodes[i].as_ref().map(|m| m.addr());
        let Some(from_addr) = from_addr else { return };
        for a in actions {
            match a {
                Action::Packet { to, data } => {
                    self.traffic[i].packets_sent += 1;
                    self.traffic[i].bytes_sent += data.len() as u64;
                    let Some(&j) = self.by_addr.get(&to) else { continue };
                    let lost = self.cfg.loss > 0.0
                        && (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= self.cfg.loss;
                    if lost || !self.reachable(i, j) {
                        self.traffic[i].dropped += 1;
                        continue;
                    }
                    let at = self.now + self.uplink(i, data.len()) + self.delay();
                    self.push(at, Event::Packet { to: j, from: from_addr, data });
                }
                Action::Stream { to, data, token } => {
                    self.traffic[i].streams_sent += 1;
                    self.traffic[i].bytes_sent += data.len() as u64;
                    match self.by_addr.get(&to).copied() {
                        Some(j) if self.reachable(i, j) => {
                            // A TCP exchange: connection set-up plus the send.
                            let at = self.now + self.uplink(i, data.len()) + 2 * self.delay();
                            self.push(at, Event::Stream { to: j, from: i, data, token });
                        }
                        _ => {
                            if let Some(t) = token {
                                let at = self.now + self.cfg.stream_timeout;
                                self.push(at, Event::Reply { to: i, token: t, data: None });
                            }
                        }
                    }
                }
            }
        }
    }

    /// Processes every event up to and including time `until`.
    pub fn run_until(&mut self, until: u64) {
        while let Some(Reverse(s)) = self.heap.peek() {
            if s.at > until {
                break;
            }
            let Some(Reverse(Scheduled { at, ev, .. })) = self.heap.pop() else { break };
            self.now = at;
            self.events_processed += 1;
            match ev {
                Event::Timer { node } => {
                    if self.timer_at[node] != at {
                        continue;
                    }
                    self.timer_at[node] = u64::MAX;
                    if let Some(m) = self.nodes[node].as_mut() {
                        m.on_timeout(at);
                        self.after_input(node);
                    }
                }
                Event::Packet { to, from, data } => {
                    if let Some(m) = self.nodes[to].as_mut() {
                        self.traffic[to].packets_received += 1;
                        self.traffic[to].bytes_received += data.len() as u64;
                        m.on_packet(at, from, &data);
                        self.after_input(to);
                    }
                }
                Event::Stream { to, from, data, token } => {
                    let Some(from_addr) = self.nodes[from].as_ref().map(|m| m.addr()) else { continue };
                    let reply = match self.nodes[to].as_mut() {
                        Some(m) => {
                            self.traffic[to].streams_received += 1;
                            self.traffic[to].bytes_received += data.len() as u64;
                            let r = m.on_stream(at, from_addr, &data);
                            self.after_input(to);
                            r
                        }
                        None => None,
                    };
                    if let Some(t) = token {
                        if let Some(r) = &reply {
                            self.traffic[to].bytes_sent += r.len() as u64;
                        }
                        let ok = self.reachable(to, from);
                        let up = reply.as_ref().map_or(0, |r| self.uplink(to, r.len()));
                        let at = self.now + if ok { up + self.delay() } else { self.cfg.stream_timeout };
                        let data = if ok { reply } else { None };
                        self.push(at, Event::Reply { to: from, token: t, data });
                    }
                }
                Event::Reply { to, token, data } => {
                    if let Some(m) = self.nodes[to].as_mut() {
                        if let Some(d) = &data {
                            self.traffic[to].bytes_received += d.len() as u64;
                        }
                        m.on_stream_reply(at, token, data.as_deref());
                        self.after_input(to);
                    }
                }
            }
        }
        self.now = self.now.max(until);
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
