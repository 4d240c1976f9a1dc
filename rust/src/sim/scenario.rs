//! The capacity-planning simulator: N real networkdb machines (`NdbNode`) on
//! the virtual network, a workload of table writes, a built-in scenario of
//! faults, and the measurements and correctness checks of a run.
//!
//! Nothing here models the protocol: every packet is built, sent, decoded and
//! merged by the same code a real node runs. Only time, the wire and the
//! start-up are the simulator's (see [`Bootstrap`]).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::time::Instant;

use super::metrics::Recorder;
use super::net::{Machine, Sim, SimConfig};
use crate::networkdb::convert::push_pull_to_wire;
use crate::networkdb::events::{NetworkEntry, NetworkPushPull};
use crate::networkdb::protocol::{NdbNode, Settings, Trace};
use crate::swim::rng::Rng;
use crate::swim::suspicion::suspicion_timeout;
use crate::swim::{Action, Config as MlConfig, StreamBytes};
use crate::wire::memberlist::{encode_stream, node_state, Message, PushNodeState, PushPull};
use crate::wire::networkdb::Payload;

const SEC: u64 = 1_000_000;
/// The table the workload writes (libnetwork's service records live there).
pub const TABLE: &str = "endpoint_table";

/// How the cluster comes to exist before the measured run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bootstrap {
    /// Every node joins through node 0 over the protocol (push/pull), then
    /// joins its networks; the run starts once membership has converged.
    /// O(N²) work and O(N) queued broadcasts per node: for small clusters
    /// and for comparing with real ones.
    Join,
    /// Every node is handed the cluster's state as the reply to its join
    /// push/pull (the same message a seed would send, merged by the same
    /// code), and its broadcast queues are then emptied, as in a cluster
    /// that has been up for a while. The run starts at once.
    Warm,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// No faults.
    Steady,
    /// One node is cut off from every member it knows (both ways) from 10%
    /// to 55% of the run, then the network heals; nothing calls join: it must
    /// find its way back by itself. The report says whether it had come to
    /// believe every member dead by then (`seed_saw_all_dead`).
    Seed,
    /// The cluster splits in two halves (15% to 50% of the run), then heals.
    SplitBrain,
    /// Like the split brain, but one way only: the second half's packets
    /// do not reach the first half; the first half's reach the second.
    Asymmetric,
    /// Every node in turn leaves gracefully, stays down, and comes back with
    /// empty state, rejoins, joins its networks and re-creates its entries
    /// (leaves spread between 5% and 40% of the run).
    RollingRestart,
    /// A fraction of the nodes crash at once (20% of the run) and come back
    /// with empty state together (45%).
    MassChurn,
}

impl Scenario {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.replace('_', "-").as_str() {
            "steady" | "steady-state" => Scenario::Steady,
            "seed" => Scenario::Seed,
            "split-brain" | "split" => Scenario::SplitBrain,
            "asymmetric" | "asymmetric-partition" => Scenario::Asymmetric,
            "rolling-restart" | "rolling" => Scenario::RollingRestart,
            "mass-churn" | "churn" => Scenario::MassChurn,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Steady => "steady",
            Scenario::Seed => "seed",
            Scenario::SplitBrain => "split-brain",
            Scenario::Asymmetric => "asymmetric",
            Scenario::RollingRestart => "rolling-restart",
            Scenario::MassChurn => "mass-churn",
        }
    }
}

/// Everything a run depends on. Durations in seconds.
#[derive(Debug, Clone)]
pub struct Params {
    pub nodes: usize,
    pub duration: f64,
    pub seed: u64,
    pub loss: f64,
    pub latency: f64,
    pub jitter: f64,
    /// Each node's uplink, bytes per second (0: unlimited).
    pub bandwidth: f64,
    pub scenario: Scenario,
    pub bootstrap: Bootstrap,
    /// memberlist profile ("lan" or "local") and overrides.
    pub profile: String,
    pub probe_interval: Option<f64>,
    pub probe_timeout: Option<f64>,
    pub suspicion_mult: Option<u32>,
    pub push_pull_interval: Option<f64>,
    pub ml_gossip_interval: Option<f64>,
    pub ml_fanout: Option<usize>,
    pub ml_retransmit_mult: Option<u32>,
    /// networkdb's own settings.
    pub ndb: Settings,
    /// Workload: networks, membership pattern (0: every node in every
    /// network), writes, mix of create/update/delete, value size.
    pub networks: usize,
    pub networks_per_node: usize,
    pub writes: usize,
    /// Writes per second instead of a count (over the write window).
    pub write_rate: Option<f64>,
    pub mix: [f64; 3],
    pub value_size: usize,
    /// Final seconds without writes or faults, before the checks.
    pub settle: f64,
    /// Fraction of nodes crashed by the mass churn scenario.
    pub churn_fraction: f64,
    /// Seconds a restarted node stays down.
    pub downtime: f64,
    pub sample_interval: f64,
    /// Threads that run the nodes; 0: one per core this process may use.
    /// The run is the same for any number.
    pub threads: usize,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            nodes: 100,
            duration: 60.0,
            seed: 1,
            loss: 0.0,
            latency: 0.0002,
            jitter: 0.0001,
            bandwidth: 0.0,
            scenario: Scenario::Steady,
            bootstrap: Bootstrap::Warm,
            profile: "lan".into(),
            probe_interval: None,
            probe_timeout: None,
            suspicion_mult: None,
            push_pull_interval: None,
            ml_gossip_interval: None,
            ml_fanout: None,
            ml_retransmit_mult: None,
            ndb: Settings::default(),
            networks: 1,
            networks_per_node: 0,
            writes: 1000,
            write_rate: None,
            mix: [1.0, 0.0, 0.0],
            value_size: 100,
            settle: 15.0,
            churn_fraction: 0.2,
            downtime: 2.0,
            sample_interval: 1.0,
            threads: 0,
        }
    }
}

/// A parameter value as it comes from a scenario file or the command line.
#[derive(Debug, Clone)]
pub enum Value {
    Num(f64),
    Str(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamError(pub String);

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParamError {}

fn us(s: f64) -> u64 {
    (s * 1e6).round().max(0.0) as u64
}

impl Params {
    /// Sets one parameter by name (seconds for durations).
    pub fn set(&mut self, key: &str, v: Value) -> Result<(), ParamError> {
        let bad = |what: &str| ParamError(format!("parameter {key}: {what}"));
        let num = |v: &Value| match v {
            Value::Num(x) if x.is_finite() => Ok(*x),
            _ => Err(bad("must be a number")),
        };
        let pos = |v: &Value| {
            num(v).and_then(|x| {
                if x > 0.0 {
                    Ok(x)
                } else {
                    Err(bad("must be positive"))
                }
            })
        };
        let count = |v: &Value| {
            num(v).and_then(|x| {
                if x >= 0.0 && x.fract() == 0.0 {
                    Ok(x as usize)
                } else {
                    Err(bad("must be a whole number >= 0"))
                }
            })
        };
        match key {
            "nodes" => {
                self.nodes = count(&v)?;
                if self.nodes < 2 {
                    return Err(bad("needs at least 2 nodes"));
                }
            }
            "duration" => self.duration = pos(&v)?,
            "seed" => self.seed = count(&v)? as u64,
            "loss" => {
                let x = num(&v)?;
                if !(0.0..1.0).contains(&x) {
                    return Err(bad("must be in [0, 1)"));
                }
                self.loss = x;
            }
            "latency" => self.latency = num(&v)?.max(0.0),
            "jitter" => self.jitter = num(&v)?.max(0.0),
            "bandwidth" => self.bandwidth = num(&v)?.max(0.0),
            "threads" => self.threads = count(&v)?.min(256),
            "scenario" => match &v {
                Value::Str(s) => {
                    self.scenario = Scenario::parse(s).ok_or_else(|| bad("unknown scenario"))?
                }
                _ => return Err(bad("must be a name")),
            },
            "bootstrap" => match &v {
                Value::Str(s) if s == "join" => self.bootstrap = Bootstrap::Join,
                Value::Str(s) if s == "warm" => self.bootstrap = Bootstrap::Warm,
                _ => return Err(bad("must be 'join' or 'warm'")),
            },
            "profile" => match &v {
                Value::Str(s) if s == "lan" || s == "local" => self.profile = s.clone(),
                _ => return Err(bad("must be 'lan' or 'local'")),
            },
            "probe_interval" => self.probe_interval = Some(pos(&v)?),
            "probe_timeout" => self.probe_timeout = Some(pos(&v)?),
            "suspicion_mult" => self.suspicion_mult = Some(count(&v)?.max(1) as u32),
            "push_pull_interval" => self.push_pull_interval = Some(pos(&v)?),
            "memberlist_gossip_interval" => self.ml_gossip_interval = Some(pos(&v)?),
            "memberlist_fanout" => self.ml_fanout = Some(count(&v)?),
            "memberlist_retransmit_mult" => self.ml_retransmit_mult = Some(count(&v)? as u32),
            // The shared knobs set memberlist and networkdb alike.
            "gossip_interval" => {
                let x = pos(&v)?;
                self.ml_gossip_interval = Some(x);
                self.ndb.gossip_interval = us(x);
            }
            "fanout" => {
                let x = count(&v)?;
                self.ml_fanout = Some(x);
                self.ndb.gossip_fanout = x;
            }
            "retransmit_mult" => {
                let x = count(&v)? as u32;
                self.ml_retransmit_mult = Some(x);
                self.ndb.table_retransmit_mult = x;
            }
            "networkdb_gossip_interval" => self.ndb.gossip_interval = us(pos(&v)?),
            "networkdb_fanout" => self.ndb.gossip_fanout = count(&v)?,
            "table_retransmit_mult" => self.ndb.table_retransmit_mult = count(&v)? as u32,
            "bulk_sync_interval" => self.ndb.bulk_sync_interval = us(pos(&v)?),
            "reap_interval" | "reap_entry_interval" => self.ndb.reap_entry_interval = us(pos(&v)?),
            "reap_period" => self.ndb.reap_period = us(pos(&v)?),
            "eager_delay" => self.ndb.eager_delay = us(num(&v)?.max(0.0)),
            "retry_interval" => self.ndb.retry_interval = us(pos(&v)?),
            "rejoin_interval" => self.ndb.rejoin_interval = us(pos(&v)?),
            "networks" => self.networks = count(&v)?.max(1),
            "networks_per_node" => self.networks_per_node = count(&v)?,
            "writes" => self.writes = count(&v)?,
            "write_rate" => self.write_rate = Some(num(&v)?.max(0.0)),
            "creates" => self.mix[0] = num(&v)?.max(0.0),
            "updates" => self.mix[1] = num(&v)?.max(0.0),
            "deletes" => self.mix[2] = num(&v)?.max(0.0),
            "value_size" => self.value_size = count(&v)?.max(8),
            "settle" => self.settle = num(&v)?.max(0.0),
            "churn_fraction" => {
                let x = num(&v)?;
                if !(0.0..=1.0).contains(&x) {
                    return Err(bad("must be in [0, 1]"));
                }
                self.churn_fraction = x;
            }
            "downtime" => self.downtime = pos(&v)?,
            "sample_interval" => self.sample_interval = pos(&v)?,
            _ => return Err(ParamError(format!("unknown parameter {key:?}"))),
        }
        if self.mix.iter().sum::<f64>() <= 0.0 {
            self.mix = [1.0, 0.0, 0.0];
        }
        Ok(())
    }

    fn ml_config(&self, name: &str) -> MlConfig {
        let mut c = if self.profile == "local" {
            MlConfig::local(name)
        } else {
            MlConfig::lan(name)
        };
        if let Some(x) = self.probe_interval {
            c.probe_interval = us(x);
        }
        if let Some(x) = self.probe_timeout {
            c.probe_timeout = us(x);
        }
        if let Some(x) = self.suspicion_mult {
            c.suspicion_mult = x;
        }
        if let Some(x) = self.push_pull_interval {
            c.push_pull_interval = us(x);
        }
        if let Some(x) = self.ml_gossip_interval {
            c.gossip_interval = us(x);
        }
        if let Some(x) = self.ml_fanout {
            c.gossip_nodes = x;
        }
        if let Some(x) = self.ml_retransmit_mult {
            c.retransmit_mult = x;
        }
        c
    }

    /// The threads a run uses: `threads`, or from `PARALLEL_FROM` nodes one
    /// per usable core that no other process is running on now (below that
    /// size keeping the threads in step costs more than they give: 300 nodes
    /// ran about as fast on two as on one; and two threads on one free core
    /// wait for each other: 1,000 nodes beside a busy process were 4% slower
    /// on two threads than on one). The report is the same either way.
    pub fn sim_threads(&self) -> usize {
        match self.threads {
            0 if self.nodes < PARALLEL_FROM => 1,
            0 => {
                let cores = std::thread::available_parallelism().map_or(1, |t| t.get());
                cores.saturating_sub(others_running()).max(1)
            }
            t => t,
        }
    }

    /// The longest time memberlist takes to declare a suspect dead in a
    /// cluster of this size: suspicion_max_timeout_mult × the Lifeguard
    /// minimum. The bound of the "healthy node believed dead" check.
    pub fn suspicion_bound(&self) -> u64 {
        let c = self.ml_config("x");
        let min = suspicion_timeout(c.suspicion_mult, self.nodes, c.probe_interval);
        c.suspicion_max_timeout_mult as u64 * min
    }
}

/// The cluster size from which a run uses every free core by default.
pub const PARALLEL_FROM: usize = 400;

/// Runnable threads of other processes (the kernel's count in /proc/loadavg,
/// less this one): the least of five looks 10 ms apart, so that a process
/// that only passes by (a `ps`, a profiler waking up) does not count; 0
/// where it cannot be read.
fn others_running() -> usize {
    let look = || {
        let s = std::fs::read_to_string("/proc/loadavg").ok()?;
        let running = s.split_whitespace().nth(3)?.split('/').next()?.parse::<usize>().ok()?;
        Some(running.saturating_sub(1))
    };
    let mut least = usize::MAX;
    for k in 0..5 {
        if k > 0 {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        least = least.min(look().unwrap_or(0));
    }
    least
}

/// The node address of index `i` on the virtual network.
pub fn addr(i: usize) -> SocketAddr {
    let v = i as u32 + 1;
    SocketAddr::from(([10, (v >> 16) as u8, (v >> 8) as u8, v as u8], 7946))
}

/// A networkdb node on the virtual network; its traces are the simulator's
/// notes, which the runner hands to the recorder in time order.
pub struct SimNode {
    pub ndb: NdbNode,
}

impl SimNode {
    /// The Lamport time this node stores for `key` of the scenario's table.
    fn stored_ltime(&self, net: &str, key: &str) -> Option<u64> {
        self.ndb.core.db.store().get(TABLE, net, key).map(|v| v.ltime)
    }
}

impl Machine for SimNode {
    type Note = Trace;
    fn addr(&self) -> SocketAddr {
        self.ndb.ml.local_addr()
    }
    fn on_packet(&mut self, now: u64, from: SocketAddr, data: &[u8]) {
        self.ndb.handle_packet(now, from, data)
    }
    fn on_stream(&mut self, now: u64, from: SocketAddr, data: &[u8], ahead: Option<&[u8]>) -> Option<StreamBytes> {
        self.ndb.handle_stream_inflated(now, from, data, ahead).ok().flatten()
    }
    fn on_stream_reply(&mut self, now: u64, token: u64, data: Option<&[u8]>, ahead: Option<&[u8]>) {
        let _ = self.ndb.handle_stream_reply_inflated(now, token, data, ahead);
    }
    fn poll_timeout(&self) -> u64 {
        self.ndb.poll_timeout()
    }
    fn on_timeout(&mut self, now: u64) {
        self.ndb.handle_timeout(now)
    }
    fn take_actions(&mut self) -> Vec<Action> {
        // Watchers are not simulated: their events are dropped.
        let _ = self.ndb.take_watch_events();
        self.ndb.take_actions()
    }
    fn take_notes(&mut self) -> Vec<Trace> {
        self.ndb.take_trace()
    }
}

#[derive(Debug, Clone)]
enum Act {
    Write,
    Isolate(usize),
    Split,
    OneWay,
    Heal,
    Leave(usize),
    Crash(usize),
    Restart(usize),
    JoinNetworks(usize),
    Recreate(usize),
}

#[derive(Debug, Clone)]
struct LiveKey {
    key: String,
    owner: usize,
    network: usize,
    value: Vec<u8>,
}

/// A traffic sample: cluster totals at virtual time `t`.
#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    t: u64,
    bytes_sent: u64,
    bytes_received: u64,
    msgs_sent: u64,
    msgs_received: u64,
    up: usize,
}

/// Percentiles of a set of durations, ms.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Stats {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
    pub count: usize,
}

impl Stats {
    pub fn of(mut v: Vec<f64>) -> Self {
        if v.is_empty() {
            return Stats::default();
        }
        v.sort_by(|a, b| a.total_cmp(b));
        let q = |f: f64| v[((v.len() as f64 * f).ceil() as usize).clamp(1, v.len()) - 1];
        Stats {
            p50: q(0.5),
            p99: q(0.99),
            max: v[v.len() - 1],
            mean: v.iter().sum::<f64>() / v.len() as f64,
            count: v.len(),
        }
    }
}

/// The result of a run. Times in ms unless named otherwise.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub nodes: usize,
    pub duration_s: f64,
    pub seed: u64,
    pub loss: f64,
    pub scenario: String,
    pub bootstrap: String,
    pub entry_convergence: Stats,
    pub writes: usize,
    pub writes_converged: usize,
    pub writes_abandoned: usize,
    pub membership_convergence_ms: Option<f64>,
    /// (kind, at s, converged after ms).
    pub membership_events: Vec<(String, f64, Option<f64>)>,
    pub failure_detection_ms: Option<f64>,
    pub bytes_per_node_per_s: f64,
    pub bytes_received_per_node_per_s: f64,
    pub msgs_per_node_per_s: f64,
    pub msgs_received_per_node_per_s: f64,
    pub false_failures: u64,
    pub max_healthy_dead_ms: f64,
    pub suspicion_bound_ms: f64,
    pub healthy_dead_violations: u64,
    pub resurrections: u64,
    pub tables_converged: bool,
    pub mismatched_nodes: usize,
    pub membership_converged: bool,
    /// Seed scenario: whether the cut-off node believed every member dead
    /// when the network healed.
    pub seed_saw_all_dead: Option<bool>,
    pub converged: bool,
    pub peak_memberlist_queue: usize,
    pub peak_table_queue: usize,
    pub mean_peak_memberlist_queue: f64,
    pub events: u64,
    pub setup_wall_s: f64,
    pub run_wall_s: f64,
    /// Threads that ran the nodes (the report is otherwise the same for any).
    pub threads: usize,
    pub rss_bytes: u64,
    pub memory_per_node_bytes: f64,
    pub series_t: Vec<f64>,
    pub series_bytes: Vec<f64>,
    pub series_msgs: Vec<f64>,
    /// Fraction of (write, eligible node) pairs seen by t ms after the write.
    pub seen_t_ms: Vec<f64>,
    pub seen_fraction: Vec<f64>,
}

/// Resident memory of this process, bytes (0 where /proc is missing).
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|x| x.parse::<u64>().ok())
        })
        .map_or(0, |pages| pages * 4096)
}

pub struct Runner {
    p: Params,
    pub sim: Sim<SimNode>,
    rec: Recorder,
    rng: Rng,
    node_nets: Vec<Vec<usize>>,
    plan: Vec<(u64, Act)>,
    next: usize,
    pub t0: u64,
    pub end: u64,
    live: Vec<LiveKey>,
    key_counter: u64,
    /// Keys a node owned when it went down (re-created on restart).
    stash: HashMap<usize, Vec<LiveKey>>,
    samples: Vec<Sample>,
    next_sample: u64,
    bootstrap_nodes: Vec<SocketAddr>,
    isolated: Option<usize>,
    seed_saw_all_dead: Option<bool>,
    restarts: u64,
    started: Instant,
    setup_wall: f64,
    rss0: u64,
    rss_setup: u64,
    finished: bool,
}

fn pick_networks(p: &Params, rng: &mut Rng) -> Vec<Vec<usize>> {
    (0..p.nodes)
        .map(|_| {
            if p.networks_per_node == 0 || p.networks_per_node >= p.networks {
                (0..p.networks).collect()
            } else {
                let mut all: Vec<usize> = (0..p.networks).collect();
                rng.shuffle(&mut all);
                let mut v = all[..p.networks_per_node].to_vec();
                v.sort_unstable();
                v
            }
        })
        .collect()
}

/// Node `i`'s machine (tracing on), seeded from the run's seed, its index
/// and how many restarts the run has had.
fn new_ndb(p: &Params, i: usize, restarts: u64, now: u64) -> NdbNode {
    let name = format!("n{i}");
    let seed = p
        .seed
        .wrapping_mul(1_000_003)
        .wrapping_add(i as u64)
        .wrapping_add(restarts << 40);
    let mut ndb = NdbNode::new(now, p.ml_config(&name), p.ndb.clone(), addr(i), None, seed);
    ndb.set_tracing(true);
    ndb
}

fn net_name(j: usize) -> String {
    format!("net{j}")
}

impl Runner {
    /// Builds the cluster (see [`Bootstrap`]) and the plan of the run.
    pub fn new(p: Params) -> Result<Runner, ParamError> {
        if p.nodes < 2 {
            return Err(ParamError("needs at least 2 nodes".into()));
        }
        let started = Instant::now();
        // networkdb numbers nodes with process-wide ids in order of first
        // sight (intern::node_id): registering the names here, in node order
        // and before the nodes are built on several threads, gives every node
        // the same order of its peers in every run of a fresh process.
        for i in 0..p.nodes {
            crate::intern::node_id(&format!("n{i}"));
        }
        let rss0 = rss_bytes();
        let mut rng = Rng::new(p.seed ^ 0x0513_u64);
        let node_nets = pick_networks(&p, &mut rng);
        let mut members = vec![Vec::new(); p.networks];
        for (i, nets) in node_nets.iter().enumerate() {
            for &j in nets {
                members[j].push(i);
            }
        }
        let rec = Recorder::new(p.nodes, members, p.suspicion_bound());
        let cfg = SimConfig {
            latency: us(p.latency),
            jitter: us(p.jitter),
            loss: p.loss,
            stream_timeout: us(p.ml_config("x").tcp_timeout as f64 / 1e6),
            seed: p.seed,
            bandwidth: p.bandwidth as u64,
            threads: p.sim_threads(),
        };
        let bootstrap_nodes: Vec<SocketAddr> = if p.bootstrap == Bootstrap::Join {
            vec![addr(0)]
        } else {
            (0..p.nodes.min(3)).map(addr).collect()
        };
        let mut r = Runner {
            sim: Sim::new(cfg),
            rec,
            rng,
            node_nets,
            plan: Vec::new(),
            next: 0,
            t0: 0,
            end: 0,
            live: Vec::new(),
            key_counter: 0,
            stash: HashMap::new(),
            samples: Vec::new(),
            next_sample: 0,
            bootstrap_nodes,
            isolated: None,
            seed_saw_all_dead: None,
            restarts: 0,
            started,
            setup_wall: 0.0,
            rss0,
            rss_setup: 0,
            finished: false,
            p,
        };
        match r.p.bootstrap {
            Bootstrap::Warm => r.warm_start(),
            Bootstrap::Join => r.join_start(),
        }
        r.t0 = r.sim.now;
        r.end = r.t0 + us(r.p.duration);
        r.next_sample = r.t0;
        r.plan();
        r.setup_wall = started.elapsed().as_secs_f64();
        r.rss_setup = rss_bytes();
        r.sample();
        Ok(r)
    }

    fn make_node(&mut self, i: usize, now: u64) -> SimNode {
        SimNode { ndb: new_ndb(&self.p, i, self.restarts, now) }
    }

    /// Hands the nodes' traces since the last call to the recorder, in the
    /// simulator's order (see `Sim::take_notes`).
    fn flush(&mut self) {
        for (now, i, traces) in self.sim.take_notes() {
            self.rec.observe(i, now, traces);
        }
    }

    /// Runs `f` on node `i` now (an API call) and records its traces.
    fn input<R>(&mut self, i: usize, f: impl FnOnce(&mut SimNode, u64) -> R) -> Option<R> {
        let r = self.sim.with(i, f);
        self.flush();
        r
    }

    /// Runs the simulation to `t` and records the traces.
    fn run_to(&mut self, t: u64) {
        self.sim.run_until(t);
        self.flush();
    }

    /// Runs until `cond` holds (checked every `step`, traces recorded) or
    /// `deadline`.
    fn run_until_cond(&mut self, step: u64, deadline: u64, cond: impl Fn(&Self) -> bool) -> bool {
        loop {
            self.flush();
            if cond(self) {
                return true;
            }
            if self.sim.now >= deadline {
                return false;
            }
            let t = (self.sim.now + step).min(deadline);
            self.sim.run_until(t);
        }
    }

    fn warm_start(&mut self) {
        let n = self.p.nodes;
        let vsn = self.p.ml_config("x").vsn();
        let mut nodes = Vec::with_capacity(n);
        let mut networks = Vec::new();
        for i in 0..n {
            let ip = match addr(i).ip() {
                std::net::IpAddr::V4(v4) => v4.octets().to_vec(),
                std::net::IpAddr::V6(v6) => v6.octets().to_vec(),
            };
            nodes.push(PushNodeState {
                name: format!("n{i}"),
                addr: ip,
                port: addr(i).port(),
                meta: Vec::new(),
                incarnation: 1,
                state: node_state::ALIVE,
                vsn: vsn.clone(),
            });
            // A node's own attachments carry the ltime its join gives them:
            // one tick per network joined, then one per bootstrap address (each
            // join push/pull refreshes them). A lower ltime here made every
            // node's first bulk sync look like N new attachments to each
            // receiver, which relayed them all: N² network events.
            let lt = (self.node_nets[i].len() + self.bootstrap_nodes.len()) as u64;
            for &j in &self.node_nets[i] {
                networks.push(NetworkEntry {
                    network_id: net_name(j),
                    ltime: lt,
                    node_name: format!("n{i}"),
                    leaving: false,
                });
            }
        }
        let user = NetworkPushPull {
            ltime: (self.p.networks + self.bootstrap_nodes.len()) as u64 + 1,
            networks,
            node_name: "n0".into(),
        };
        let user_state = push_pull_to_wire(&user).encode_gossip();
        let snap = Message::PushPull(PushPull {
            join: false,
            nodes,
            user_state,
        });
        // Its size on the wire, for the machines' byte counters; the nodes get
        // it decoded (the same message each would decode from those bytes).
        let snap_len = encode_stream(&snap, false).len();
        let boot = self.bootstrap_nodes.clone();
        // Each node is built from its own seed and the same snapshot, so the
        // nodes are built on all cores (merging the N-member state is O(N) per
        // node, O(N²) in all) and added in order: the same cluster as one by one.
        let threads = std::thread::available_parallelism()
            .map_or(1, |t| t.get())
            .clamp(1, 8);
        let (p, nets, restarts) = (&self.p, &self.node_nets, self.restarts);
        let build = |i: usize| {
            let mut ndb = new_ndb(p, i, restarts, 0);
            for &j in &nets[i] {
                let _ = ndb.join_network(0, &net_name(j));
            }
            let tokens = ndb.join(0, &boot);
            let _ = ndb.take_actions();
            // The broadcasts the merge would queue are discarded below: not
            // building them at all is the same state, sooner.
            ndb.ml.mute_broadcasts(true);
            for (k, t) in tokens.into_iter().enumerate() {
                let _ = if k == 0 {
                    ndb.handle_stream_reply_message(0, t, &snap, snap_len)
                } else {
                    ndb.handle_stream_reply(0, t, None)
                };
            }
            ndb.ml.mute_broadcasts(false);
            ndb.discard_broadcasts();
            ndb
        };
        // In batches, each recorded before the next is built: a node just
        // built holds a trace note per member it learnt (N), and all N nodes'
        // notes at once were the run's peak (~4 GB at 10,000 nodes). Notes
        // are recorded in (time, node) order either way, all at time 0.
        const BATCH: usize = 256;
        let mut start = 0;
        while start < n {
            let len = BATCH.min(n - start);
            let mut built: Vec<Option<NdbNode>> = (0..len).map(|_| None).collect();
            std::thread::scope(|sc| {
                let chunk = len.div_ceil(threads).max(1);
                for (c, slots) in built.chunks_mut(chunk).enumerate() {
                    let build = &build;
                    sc.spawn(move || {
                        for (k, slot) in slots.iter_mut().enumerate() {
                            *slot = Some(build(start + c * chunk + k));
                        }
                    });
                }
            });
            for ndb in built.into_iter().flatten() {
                self.sim.add(SimNode { ndb });
            }
            // `flush`, on the fields it uses (`build` borrows others).
            for (now, i, traces) in self.sim.take_notes() {
                self.rec.observe(i, now, traces);
            }
            start += len;
        }
        drop(snap);
    }

    fn join_start(&mut self) {
        let n = self.p.nodes;
        for i in 0..n {
            let m = self.make_node(i, 0);
            self.sim.add(m);
        }
        self.flush();
        let boot = self.bootstrap_nodes.clone();
        for i in 1..n {
            self.input(i, |m, now| {
                m.ndb.join(now, &boot)
            });
        }
        self.rec.membership_event("formation", 0);
        self.run_until_cond(10_000, 300 * SEC, |r| r.rec.disagreement() == 0);
        for i in 0..n {
            self.join_networks(i);
        }
        let nets = self.node_nets.clone();
        let want: Vec<usize> = (0..self.p.networks)
            .map(|j| self.rec.members(j).len())
            .collect();
        self.run_until_cond(10_000, self.sim.now + 60 * SEC, |r| {
                (0..n).all(|i| {
                    r.sim.node(i).is_some_and(|m| {
                        nets[i]
                            .iter()
                            .all(|&j| m.ndb.core.db.network_peer_count(&net_name(j)) + 1 == want[j])
                    })
                })
            });
    }

    fn join_networks(&mut self, i: usize) {
        let nets: Vec<String> = self.node_nets[i].iter().map(|&j| net_name(j)).collect();
        self.input(i, |m, now| {
            for n in &nets {
                let _ = m.ndb.join_network(now, n);
            }
        });
    }

    fn at(&self, frac: f64) -> u64 {
        self.t0 + us(self.p.duration * frac)
    }

    fn plan(&mut self) {
        let n = self.p.nodes;
        let settle = self.p.settle.min(self.p.duration / 2.0);
        let window = us(self.p.duration - settle);
        if let Some(rate) = self.p.write_rate {
            self.p.writes = (rate * window as f64 / 1e6).round() as usize;
        }
        let mut plan: Vec<(u64, Act)> = Vec::new();
        for k in 0..self.p.writes {
            // Evenly spread over the write window, from its first instant.
            let t = self.t0 + window * k as u64 / self.p.writes.max(1) as u64;
            plan.push((t, Act::Write));
        }
        match self.p.scenario {
            Scenario::Steady => {}
            Scenario::Seed => {
                plan.push((self.at(0.1), Act::Isolate(n - 1)));
                plan.push((self.at(0.55), Act::Heal));
            }
            Scenario::SplitBrain => {
                plan.push((self.at(0.15), Act::Split));
                plan.push((self.at(0.5), Act::Heal));
            }
            Scenario::Asymmetric => {
                plan.push((self.at(0.15), Act::OneWay));
                plan.push((self.at(0.5), Act::Heal));
            }
            Scenario::RollingRestart => {
                let (a, b) = (self.at(0.05), self.at(0.4));
                let down = us(self.p.downtime);
                let leave = self.p.ndb.leave_timeout + 100_000;
                for i in 0..n {
                    let t = a + (b - a) * i as u64 / n as u64;
                    plan.push((t, Act::Leave(i)));
                    plan.push((t + leave, Act::Crash(i)));
                    plan.push((t + leave + down, Act::Restart(i)));
                    plan.push((t + leave + down + SEC, Act::JoinNetworks(i)));
                    plan.push((t + leave + down + 2 * SEC, Act::Recreate(i)));
                }
            }
            Scenario::MassChurn => {
                let k =
                    ((n as f64 * self.p.churn_fraction).round() as usize).min(n.saturating_sub(3));
                let mut victims: Vec<usize> = (3.min(n)..n).collect();
                self.rng.shuffle(&mut victims);
                victims.truncate(k);
                victims.sort_unstable();
                let (a, b) = (self.at(0.2), self.at(0.45));
                for &i in &victims {
                    plan.push((a, Act::Crash(i)));
                    plan.push((b, Act::Restart(i)));
                    plan.push((b + SEC, Act::JoinNetworks(i)));
                    plan.push((b + 2 * SEC, Act::Recreate(i)));
                }
            }
        }
        // Stable: equal times keep their order.
        plan.sort_by_key(|(t, _)| *t);
        self.plan = plan;
    }

    pub fn now(&self) -> u64 {
        self.sim.now
    }

    pub fn params(&self) -> &Params {
        &self.p
    }

    /// Progress in [0, 1].
    pub fn progress(&self) -> f64 {
        if self.end <= self.t0 {
            return 1.0;
        }
        (self.sim.now.saturating_sub(self.t0)) as f64 / (self.end - self.t0) as f64
    }

    pub fn done(&self) -> bool {
        self.sim.now >= self.end
    }

    /// Runs `dt` more virtual µs (not past the end); returns whether done.
    pub fn advance(&mut self, dt: u64) -> bool {
        let target = (self.sim.now + dt).min(self.end);
        loop {
            let next_act = self.plan.get(self.next).map_or(u64::MAX, |(t, _)| *t);
            let step = next_act.min(self.next_sample).min(target);
            self.run_to(step);
            if step == self.next_sample && self.next_sample <= target {
                self.sample();
                self.next_sample += us(self.p.sample_interval);
            }
            while self.plan.get(self.next).is_some_and(|(t, _)| *t <= step) {
                let act = self.plan[self.next].1.clone();
                self.next += 1;
                self.act(act);
            }
            if step >= target {
                break;
            }
        }
        self.done()
    }

    fn sample(&mut self) {
        let mut s = Sample {
            t: self.sim.now,
            ..Default::default()
        };
        for (i, tr) in self.sim.traffics().enumerate() {
            s.bytes_sent += tr.bytes_sent;
            s.bytes_received += tr.bytes_received;
            s.msgs_sent += tr.packets_sent + tr.streams_sent;
            s.msgs_received += tr.packets_received + tr.streams_received;
            if self.sim.node(i).is_some() {
                s.up += 1;
            }
        }
        self.samples.push(s);
    }

    fn up(&self, i: usize) -> bool {
        self.sim.node(i).is_some_and(|m| !m.ndb.leave_finished()) && self.rec.up[i]
    }

    fn act(&mut self, a: Act) {
        let now = self.sim.now;
        match a {
            Act::Write => self.write(),
            Act::Isolate(v) => {
                self.isolated = Some(v);
                for j in 0..self.p.nodes {
                    if j != v {
                        self.sim.block(v, j);
                        self.sim.block(j, v);
                        let r = &mut self.rec;
                        r.blocked.insert((v, j));
                        r.blocked.insert((j, v));
                    }
                }
            }
            Act::Split => {
                let half = self.p.nodes / 2;
                let groups: Vec<u32> = (0..self.p.nodes).map(|i| (i >= half) as u32).collect();
                self.sim.set_groups(&groups);
                self.rec.group = groups;
            }
            Act::OneWay => {
                let half = self.p.nodes / 2;
                let r = &mut self.rec;
                for a in half..self.p.nodes {
                    for b in 0..half {
                        self.sim.block(a, b);
                        r.blocked.insert((a, b));
                    }
                }
            }
            Act::Heal => {
                if let Some(v) = self.isolated.take() {
                    let alone = self.sim.node(v).map(|m| m.ndb.ml.num_alive_peers() == 0);
                    self.seed_saw_all_dead = alone;
                }
                self.sim.heal();
                let r = &mut self.rec;
                r.group.iter_mut().for_each(|g| *g = 0);
                r.blocked.clear();
                r.healed(now);
            }
            Act::Leave(i) => {
                self.stash_keys(i);
                self.input(i, |m, now| {
                        m.ndb.leave(now)
                });
                self.rec.node_down(i, now, "leave");
            }
            Act::Crash(i) => {
                if self.rec.up[i] {
                    self.stash_keys(i);
                    self.rec.node_down(i, now, "crash");
                }
                self.sim.crash(i);
            }
            Act::Restart(i) => {
                self.restarts += 1;
                let mut m = self.make_node(i, now);
                let boot: Vec<SocketAddr> = self
                    .bootstrap_nodes
                    .iter()
                    .copied()
                    .filter(|a| *a != addr(i))
                    .collect();
                m.ndb.join(now, &boot);
                self.rec.node_up(i, now, "restart");
                self.sim.replace(i, m);
                self.flush();
            }
            Act::JoinNetworks(i) => self.join_networks(i),
            Act::Recreate(i) => {
                for k in self.stash.remove(&i).unwrap_or_default() {
                    self.create(k.owner, k.network, k.key, k.value);
                }
            }
        }
    }

    fn stash_keys(&mut self, i: usize) {
        let (mine, rest): (Vec<LiveKey>, Vec<LiveKey>) = std::mem::take(&mut self.live)
            .into_iter()
            .partition(|k| k.owner == i);
        self.live = rest;
        self.stash.entry(i).or_default().extend(mine);
    }

    fn create(&mut self, owner: usize, network: usize, key: String, value: Vec<u8>) {
        let net = net_name(network);
        let ok = self.input(owner, |m, now| {
            m.ndb.create_entry(now, TABLE, &net, &key, &value).ok()?;
            m.stored_ltime(&net, &key)
        });
        if let Some(Some(ltime)) = ok {
            let now = self.sim.now;
            self.rec.write(now, owner, network, &key, ltime, false);
            self.live.push(LiveKey {
                key,
                owner,
                network,
                value,
            });
        }
    }

    fn write(&mut self) {
        let total: f64 = self.p.mix.iter().sum();
        let x = (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * total;
        let op = if x < self.p.mix[0] || self.live.is_empty() {
            0
        } else if x < self.p.mix[0] + self.p.mix[1] {
            1
        } else {
            2
        };
        if op == 0 {
            let ups: Vec<usize> = (0..self.p.nodes).filter(|&i| self.up(i)).collect();
            if ups.is_empty() {
                return;
            }
            let owner = ups[self.rng.below(ups.len())];
            let nets = &self.node_nets[owner];
            if nets.is_empty() {
                return;
            }
            let network = nets[self.rng.below(nets.len())];
            self.key_counter += 1;
            let key = format!("k{}", self.key_counter);
            let value = self.value(self.key_counter);
            self.create(owner, network, key, value);
            return;
        }
        let idx = self.rng.below(self.live.len());
        let k = self.live[idx].clone();
        if !self.up(k.owner) {
            return;
        }
        let net = net_name(k.network);
        self.key_counter += 1;
        let value = self.value(self.key_counter);
        let deleting = op == 2;
        let key = k.key.clone();
        let v2 = value.clone();
        let ok = self.input(k.owner, |m, now| {
            let r = if deleting {
                m.ndb.delete_entry(now, TABLE, &net, &key)
            } else {
                m.ndb.update_entry(now, TABLE, &net, &key, &v2)
            };
            r.ok()?;
            m.stored_ltime(&net, &key)
        });
        if let Some(Some(ltime)) = ok {
            let now = self.sim.now;
            self.rec.write(now, k.owner, k.network, &k.key, ltime, deleting);
            if deleting {
                self.live.swap_remove(idx);
            } else {
                self.live[idx].value = value;
            }
        }
    }

    fn value(&self, id: u64) -> Vec<u8> {
        let mut v = vec![0u8; self.p.value_size];
        v[..8].copy_from_slice(&id.to_be_bytes());
        v
    }

    /// Every live node's view of each network's table against the owners'
    /// truth (what each live owner itself holds); returns the mismatched
    /// nodes.
    fn check_tables(&self) -> usize {
        let mut bad = 0;
        for j in 0..self.p.networks {
            let net = net_name(j);
            let members: Vec<usize> = self.rec.members(j).to_vec();
            let mut truth: BTreeMap<String, (Vec<u8>, String)> = BTreeMap::new();
            for &o in &members {
                let Some(m) = self.sim.node(o).filter(|_| self.up(o)) else {
                    continue;
                };
                let me = m.ndb.name();
                for (k, v, owner) in m.ndb.core.db.table_by_network(TABLE, &net) {
                    if owner == me {
                        truth.insert(k.to_owned(), (v.to_vec(), owner.to_owned()));
                    }
                }
            }
            for &i in &members {
                let Some(m) = self.sim.node(i).filter(|_| self.up(i)) else {
                    continue;
                };
                let t = m.ndb.core.db.table_by_network(TABLE, &net);
                let same = t.len() == truth.len()
                    && t.iter()
                        .all(|(k, v, o)| truth.get(*k).is_some_and(|(tv, to)| tv == v && to == o));
                if !same {
                    bad += 1;
                    if std::env::var_os("PYLN_SIM_DEBUG").is_some() {
                        let mine: std::collections::BTreeSet<&str> =
                            t.iter().map(|x| x.0).collect();
                        let want: std::collections::BTreeSet<&str> =
                            truth.keys().map(String::as_str).collect();
                        eprintln!(
                            "node {i}: missing {:?} extra {:?}",
                            want.difference(&mine).take(5).collect::<Vec<_>>(),
                            mine.difference(&want).take(5).collect::<Vec<_>>()
                        );
                    }
                }
            }
        }
        bad
    }

    /// Runs to the end if needed, checks, and reports.
    pub fn report(&mut self) -> Report {
        while !self.done() {
            self.advance(10 * SEC);
        }
        if !self.finished {
            self.finished = true;
            if self.samples.last().is_none_or(|s| s.t < self.sim.now) {
                self.sample();
            }
            self.rec.finish(self.sim.now);
        }
        let run_wall = self.started.elapsed().as_secs_f64() - self.setup_wall;
        let rec = &self.rec;
        let conv = rec.convergence();
        let mut times = Vec::new();
        let mut abandoned = 0;
        let mut hist: BTreeMap<u64, u64> = BTreeMap::new();
        let mut eligible_total = 0u64;
        for (w, (c, offs)) in rec.writes.iter().zip(&conv) {
            let owner_ok = rec.up[w.owner] && rec.epoch[w.owner] <= w.at;
            match c {
                Some(t) => times.push(*t as f64 / 1000.0),
                None if !owner_ok => abandoned += 1,
                None => {}
            }
            eligible_total += rec.eligible(w) as u64;
            for &o in offs {
                *hist.entry(o / 10_000).or_default() += 1;
            }
        }
        let (mut seen_t, mut seen_f) = (Vec::new(), Vec::new());
        let mut acc = 0u64;
        for (b, c) in &hist {
            acc += c;
            seen_t.push((*b as f64 + 1.0) * 10.0);
            seen_f.push(if eligible_total > 0 {
                acc as f64 / eligible_total as f64
            } else {
                0.0
            });
        }
        let events: Vec<(String, f64, Option<f64>)> = rec
            .events
            .iter()
            .map(|e| {
                (
                    e.kind.to_owned(),
                    (e.at as f64 - self.t0 as f64) / 1e6,
                    e.converged_at.map(|c| (c - e.at) as f64 / 1000.0),
                )
            })
            .collect();
        let all_conv = events.iter().all(|e| e.2.is_some());
        let membership_convergence_ms = if all_conv {
            Some(events.iter().filter_map(|e| e.2).fold(0.0, f64::max))
        } else {
            None
        };
        let crashes: Vec<Option<f64>> = events
            .iter()
            .filter(|e| e.0 == "crash")
            .map(|e| e.2)
            .collect();
        let failure_detection_ms = if crashes.is_empty() || crashes.iter().any(Option::is_none) {
            None
        } else {
            Some(crashes.iter().flatten().fold(0.0, |a: f64, b| a.max(*b)))
        };
        // Rates over the measured run, per node that was up.
        let first = self
            .samples
            .iter()
            .find(|s| s.t >= self.t0)
            .copied()
            .unwrap_or_default();
        let last = self.samples.last().copied().unwrap_or_default();
        let secs = (last.t.saturating_sub(first.t)) as f64 / 1e6;
        let node_secs: f64 = self
            .samples
            .windows(2)
            .filter(|w| w[0].t >= self.t0)
            .map(|w| (w[1].t - w[0].t) as f64 / 1e6 * w[1].up as f64)
            .sum::<f64>()
            .max(1e-9);
        let rate = |a: u64, b: u64| {
            if secs > 0.0 {
                (b - a) as f64 / node_secs
            } else {
                0.0
            }
        };
        let (mut series_t, mut series_b, mut series_m) = (Vec::new(), Vec::new(), Vec::new());
        for w in self.samples.windows(2).filter(|w| w[0].t >= self.t0) {
            let dt = (w[1].t - w[0].t) as f64 / 1e6;
            if dt <= 0.0 {
                continue;
            }
            let up = w[1].up.max(1) as f64;
            series_t.push((w[1].t - self.t0) as f64 / 1e6);
            series_b.push((w[1].bytes_sent - w[0].bytes_sent) as f64 / dt / up);
            series_m.push((w[1].msgs_sent - w[0].msgs_sent) as f64 / dt / up);
        }
        let mut peak_ml = 0;
        let mut peak_tq = 0;
        let mut sum_ml = 0usize;
        let mut cnt = 0usize;
        for i in 0..self.p.nodes {
            if let Some(m) = self.sim.node(i) {
                peak_ml = peak_ml.max(m.ndb.ml.queue_peak());
                peak_tq = peak_tq.max(m.ndb.table_queue_peak());
                sum_ml += m.ndb.ml.queue_peak();
                cnt += 1;
            }
        }
        let mismatched = self.check_tables();
        let membership_converged = rec.disagreement() == 0;
        let rss = rss_bytes();
        let tables_converged = mismatched == 0;
        Report {
            nodes: self.p.nodes,
            duration_s: self.p.duration,
            seed: self.p.seed,
            loss: self.p.loss,
            scenario: self.p.scenario.name().into(),
            bootstrap: if self.p.bootstrap == Bootstrap::Warm {
                "warm".into()
            } else {
                "join".into()
            },
            entry_convergence: Stats::of(times.clone()),
            writes: rec.writes.len(),
            writes_converged: times.len(),
            writes_abandoned: abandoned,
            membership_convergence_ms,
            membership_events: events,
            failure_detection_ms,
            bytes_per_node_per_s: rate(first.bytes_sent, last.bytes_sent),
            bytes_received_per_node_per_s: rate(first.bytes_received, last.bytes_received),
            msgs_per_node_per_s: rate(first.msgs_sent, last.msgs_sent),
            msgs_received_per_node_per_s: rate(first.msgs_received, last.msgs_received),
            false_failures: rec.false_failures,
            max_healthy_dead_ms: rec.max_healthy_dead as f64 / 1000.0,
            suspicion_bound_ms: rec.suspicion_bound as f64 / 1000.0,
            healthy_dead_violations: rec.healthy_dead_violations,
            resurrections: rec.resurrections,
            tables_converged,
            mismatched_nodes: mismatched,
            membership_converged,
            seed_saw_all_dead: self.seed_saw_all_dead,
            converged: tables_converged && membership_converged,
            peak_memberlist_queue: peak_ml,
            peak_table_queue: peak_tq,
            mean_peak_memberlist_queue: if cnt > 0 {
                sum_ml as f64 / cnt as f64
            } else {
                0.0
            },
            events: self.sim.events_processed,
            setup_wall_s: self.setup_wall,
            run_wall_s: run_wall,
            threads: self.sim.threads(),
            rss_bytes: rss,
            memory_per_node_bytes: self.rss_setup.saturating_sub(self.rss0) as f64
                / self.p.nodes as f64,
            series_t,
            series_bytes: series_b,
            series_msgs: series_m,
            seen_t_ms: seen_t,
            seen_fraction: seen_f,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(n: usize, scenario: Scenario) -> Params {
        Params {
            nodes: n,
            duration: 40.0,
            writes: 60,
            scenario,
            settle: 15.0,
            ..Params::default()
        }
    }

    #[test]
    fn steady_state_converges_and_repeats() {
        let a = Runner::new(params(20, Scenario::Steady)).unwrap().report();
        assert!(a.converged, "{a:?}");
        assert_eq!(a.writes, 60);
        assert_eq!(a.writes_converged, 60);
        assert!(a.entry_convergence.p50 > 0.0 && a.entry_convergence.p50 < 5000.0);
        assert_eq!(a.false_failures, 0);
        let b = Runner::new(params(20, Scenario::Steady)).unwrap().report();
        assert_eq!(a.entry_convergence, b.entry_convergence);
        assert_eq!(a.bytes_per_node_per_s, b.bytes_per_node_per_s);
        assert_eq!(a.events, b.events);
    }

    /// A report with the measures of the machine (wall times, memory)
    /// blanked: what must not depend on how the run was executed.
    fn simulated(mut r: Report) -> String {
        r.setup_wall_s = 0.0;
        r.run_wall_s = 0.0;
        r.threads = 0;
        r.rss_bytes = 0;
        r.memory_per_node_bytes = 0.0;
        format!("{r:?}")
    }

    #[test]
    fn every_scenario_is_the_same_run_on_any_number_of_threads() {
        // Every scenario, with loss and jitter (drawn per node) and a
        // bandwidth limit: one thread, two and three (shards of unequal
        // sizes) give the very same report.
        for sc in [
            Scenario::Steady,
            Scenario::Seed,
            Scenario::SplitBrain,
            Scenario::Asymmetric,
            Scenario::RollingRestart,
            Scenario::MassChurn,
        ] {
            let run = |threads: usize| {
                let p = Params { threads, loss: 0.02, bandwidth: 2e6, duration: 20.0, ..params(24, sc) };
                simulated(Runner::new(p).unwrap().report())
            };
            let one = run(1);
            assert_eq!(one, run(2), "{sc:?}");
            assert_eq!(one, run(3), "{sc:?}");
        }
    }

    #[test]
    fn threads_default_to_one_for_small_clusters_and_free_cores_for_large() {
        let small = Params { nodes: PARALLEL_FROM - 1, ..Params::default() };
        assert_eq!(small.sim_threads(), 1);
        let large = Params { nodes: PARALLEL_FROM, ..Params::default() };
        let cores = std::thread::available_parallelism().map_or(1, |t| t.get());
        assert!((1..=cores).contains(&large.sim_threads()));
        assert_eq!(Params { threads: 3, ..small }.sim_threads(), 3);
    }

    #[test]
    fn join_bootstrap_forms_the_cluster() {
        let p = Params {
            bootstrap: Bootstrap::Join,
            ..params(10, Scenario::Steady)
        };
        let r = Runner::new(p).unwrap().report();
        assert!(r.converged, "{r:?}");
        assert_eq!(r.membership_events[0].0, "formation");
        assert!(r.membership_convergence_ms.is_some());
    }

    #[test]
    fn unknown_parameters_are_refused() {
        let mut p = Params::default();
        assert!(p.set("nodes", Value::Num(1.0)).is_err());
        assert!(p.set("bogus", Value::Num(1.0)).is_err());
        assert!(p.set("loss", Value::Num(1.5)).is_err());
        assert!(p.set("scenario", Value::Str("split-brain".into())).is_ok());
        assert_eq!(p.scenario, Scenario::SplitBrain);
    }
}
